"""Re-ID retrieval evaluation: mAP, CMC and mINP under an explicit protocol, in bounded memory.

The standard protocol of Market-1501, DukeMTMC-reID, MSMT17 and VeRi-776: for every query,
gallery samples with the same identity *and* the same camera are removed (as are gallery samples
of junk identities); queries whose identity has no gallery match left are skipped and counted.
The numbers equal those of the evaluators used across Re-ID papers (torchreid's
``evaluate_rank`` with the Market-1501 metric, the AGW code for mINP) on inputs without ties in
distance.

Queries are processed in blocks of ``block_size`` rows, so memory stays at a few arrays of
``block_size x n_gallery`` whatever the number of queries. No argsort of a full row is
needed: the distances of the ranked gallery samples are sorted by value and the rank of every
true match is found by binary search, which gives every quantity (the first match for CMC,
every match for AP, the last one for mINP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._progress import Progress, check_progress, ranges
from ._validation import (
    check_cameras,
    check_features,
    check_int,
    check_labels,
    check_probability,
    check_same_length,
    to_numpy,
)

__all__ = ["Protocol", "RetrievalResult", "evaluate_retrieval"]

_BLOCK_ELEMENTS = 1 << 24  # default block: about 16 M distances (64 MiB in float32) per array


@dataclass(frozen=True)
class Protocol:
    """The rules of a retrieval evaluation, recorded with every result.

    Parameters
    ----------
    remove_same_camera : bool, default True
        For each query, remove the gallery samples that have the query's identity and camera
        (the Market-1501 / DukeMTMC-reID / MSMT17 / VeRi-776 rule). Needs camera ids.
    junk_pids : tuple of int, default ()
        Gallery samples with these identities are removed for every query (the original
        Market-1501 devkit treats identity -1 as junk; torchreid drops those images when it
        loads the dataset, which gives the same numbers). A query with a junk identity has no
        match left and is skipped.
    name : str, default "market1501"
        A label for reports.

    Raises
    ------
    TypeError
        If ``remove_same_camera`` is not a bool, ``junk_pids`` holds non-integers or ``name``
        is not a string.

    Examples
    --------
    >>> Protocol()
    Protocol(remove_same_camera=True, junk_pids=(), name='market1501')
    >>> Protocol.market1501(junk_pids=[-1]).junk_pids
    (-1,)
    >>> Protocol.no_camera().remove_same_camera
    False
    """

    remove_same_camera: bool = True
    junk_pids: tuple[int, ...] = ()
    name: str = "market1501"

    def __post_init__(self) -> None:
        if not isinstance(self.remove_same_camera, (bool, np.bool_)):
            raise TypeError(f"remove_same_camera must be a bool, got {self.remove_same_camera!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {self.name!r}")
        junk = self.junk_pids
        if isinstance(junk, (str, bytes)) or not hasattr(junk, "__iter__"):
            raise TypeError(f"junk_pids must be a sequence of integer identities, got {junk!r}")
        junk = tuple(junk)
        if any(isinstance(j, (bool, np.bool_)) or not isinstance(j, (int, np.integer)) for j in junk):
            raise TypeError(f"junk_pids must hold integer identities, got {junk!r}")
        object.__setattr__(self, "remove_same_camera", bool(self.remove_same_camera))
        object.__setattr__(self, "junk_pids", tuple(sorted({int(j) for j in junk})))

    @classmethod
    def market1501(cls, junk_pids: Any = ()) -> Protocol:
        """The standard protocol (Market-1501, DukeMTMC-reID, MSMT17, VeRi-776): same-camera removal on.

        Parameters
        ----------
        junk_pids : sequence of int, default ()
            Identities whose gallery samples are ignored (``(-1,)`` for the raw Market-1501
            gallery).

        Returns
        -------
        Protocol
            ``Protocol(remove_same_camera=True, junk_pids=junk_pids, name="market1501")``.
        """
        return cls(remove_same_camera=True, junk_pids=junk_pids, name="market1501")

    @classmethod
    def no_camera(cls, junk_pids: Any = ()) -> Protocol:
        """No same-camera removal: every gallery sample of the query's identity is a match.

        The default when no camera ids are given.

        Parameters
        ----------
        junk_pids : sequence of int, default ()
            Identities whose gallery samples are ignored.

        Returns
        -------
        Protocol
            ``Protocol(remove_same_camera=False, junk_pids=junk_pids, name="no_camera")``.
        """
        return cls(remove_same_camera=False, junk_pids=junk_pids, name="no_camera")


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Outcome of :func:`evaluate_retrieval`.

    Attributes
    ----------
    mAP : float
        Mean over valid queries of the average precision.
    cmc : numpy.ndarray of float64, shape (min(max_rank, n_gallery),)
        ``cmc[k]`` = fraction of valid queries whose first match is at rank ``<= k + 1``
        (the result's own array).
    mINP : float
        Mean inverse negative penalty (Ye et al., AGW): mean over valid queries of
        ``number of matches / rank of the last match``.
    n_valid_queries : int
        Queries with at least one match left after the protocol's removals.
    n_skipped_queries : int
        Queries without any match left (not counted in the means).
    protocol : Protocol
        The rules that were applied.
    reranked : bool
        Whether k-reciprocal re-ranking was applied.
    """

    mAP: float
    cmc: np.ndarray = field(repr=False)
    mINP: float
    n_valid_queries: int
    n_skipped_queries: int
    protocol: Protocol
    reranked: bool

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based): the fraction of valid queries with a match in the top ``k``.

        Parameters
        ----------
        k : int
            Rank, ``1 <= k <= len(cmc)``.

        Returns
        -------
        float
            ``cmc[k - 1]``.

        Raises
        ------
        ValueError
            If ``k`` is not in ``[1, len(cmc)]``.
        TypeError
            If ``k`` is not an integer.

        Examples
        --------
        >>> import numpy as np
        >>> result = evaluate_retrieval(
        ...     query_pids=[0, 1], gallery_pids=[1, 0, 0], distmat=np.array([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3]])
        ... )
        >>> result.rank(1), result.cmc.tolist()
        (1.0, [1.0, 1.0, 1.0])
        """
        k = check_int(k, "k", low=1, high=int(self.cmc.shape[0]))
        return float(self.cmc[k - 1])

    def __repr__(self) -> str:
        ranks = ", ".join(f"rank{k}={self.cmc[k - 1]:.4f}" for k in (1, 5, 10) if k <= self.cmc.shape[0])
        return (
            f"RetrievalResult(mAP={self.mAP:.4f}, {ranks}, mINP={self.mINP:.4f}, "
            f"n_valid_queries={self.n_valid_queries}, n_skipped_queries={self.n_skipped_queries}, "
            f"protocol={self.protocol!r}, reranked={self.reranked})"
        )

    def __str__(self) -> str:
        ranks = "  ".join(f"Rank-{k}: {100 * self.cmc[k - 1]:.1f}%" for k in (1, 5, 10) if k <= self.cmc.shape[0])
        removal = "same-camera matches removed" if self.protocol.remove_same_camera else "no camera removal"
        junk = f", junk ids {list(self.protocol.junk_pids)}" if self.protocol.junk_pids else ""
        return (
            f"mAP: {100 * self.mAP:.1f}%  {ranks}  mINP: {100 * self.mINP:.1f}%\n"
            f"{self.n_valid_queries} valid queries, {self.n_skipped_queries} skipped; "
            f"protocol {self.protocol.name!r} ({removal}{junk}); re-ranking {'on' if self.reranked else 'off'}"
        )


# ---------------------------------------------------------------- kernels


def _count_before(sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray, *, inclusive: bool) -> np.ndarray:
    """Per entry, how many values of ``sorted_rows[rows]`` are < ``values`` (<= if inclusive).

    A binary search run for all entries at once (one vectorised step per halving).
    """
    n_cols = sorted_rows.shape[1]
    lo = np.zeros(rows.shape, dtype=np.int64)
    hi = np.full(rows.shape, n_cols, dtype=np.int64)
    for _ in range(max(1, n_cols).bit_length() + 1):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        probe = sorted_rows[rows, np.minimum(mid, n_cols - 1)]
        right = (probe <= values) if inclusive else (probe < values)
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return lo


def _positive_ranks(
    values: np.ndarray, members: np.ndarray, positive: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks of the ``positive`` entries among the ``members`` of their row.

    Rows are ranked by ``values`` ascending, ties broken by column (gallery) index. ``positive``
    must be a subset of ``members``; values must be finite. Returns (rows, ranks).
    """
    rows, cols = np.nonzero(positive)
    if rows.size == 0:
        return rows, rows.copy()
    keyed = np.where(members, values, np.inf)
    keyed.sort(axis=1)
    v = values[rows, cols]
    before = _count_before(keyed, rows, v, inclusive=False)
    upto = _count_before(keyed, rows, v, inclusive=True)
    del keyed
    tied = np.flatnonzero(upto - before > 1)  # another member shares the value: count those at lower index
    for start in range(0, tied.size, chunk):
        t = tied[start : start + chunk]
        r, c = rows[t], cols[t]
        lower = np.arange(values.shape[1])[None, :] < c[:, None]
        before[t] += np.count_nonzero(members[r] & (values[r] == v[t][:, None]) & lower, axis=1)
    return rows, before + 1


def _stable_top(d: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the first ``n`` entries of each row in (value, column) order."""
    if n >= d.shape[1]:
        return np.ones(d.shape, dtype=bool)
    kth = np.partition(d, n - 1, axis=1)[:, n - 1 : n]
    top = d < kth
    tie = d == kth
    room = n - np.count_nonzero(top, axis=1)
    return top | (tie & (np.cumsum(tie, axis=1, dtype=np.int32) <= room[:, None]))


def _row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row without an (N, D) temporary."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _lookup_csr(matrix: Any, rows: np.ndarray, cols: np.ndarray, missing: float) -> np.ndarray:
    """``matrix[rows, cols]`` for a CSR matrix with sorted indices, ``missing`` where not stored."""
    n_cols = matrix.shape[1]
    stored_rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    stored = stored_rows * n_cols + matrix.indices
    wanted = rows.astype(np.int64) * n_cols + cols
    slot = np.minimum(np.searchsorted(stored, wanted), max(stored.size - 1, 0))
    found = stored[slot] == wanted if stored.size else np.zeros(wanted.shape, dtype=bool)
    return np.where(found, matrix.data[slot] if stored.size else missing, missing)


def _factorize_jointly(query_cams: Any, gallery_cams: Any, qp: np.ndarray, gp: np.ndarray) -> tuple[np.ndarray, ...]:
    """Camera codes shared by query and gallery (any hashable ids)."""
    check_same_length(query_pids=qp, query_cams=check_cameras(query_cams, "query_cams"))
    check_same_length(gallery_pids=gp, gallery_cams=check_cameras(gallery_cams, "gallery_cams"))
    n_query = qp.shape[0]
    q = to_numpy(query_cams, "query_cams")
    g = to_numpy(gallery_cams, "gallery_cams")
    same_kind = q.dtype.kind == g.dtype.kind or (q.dtype.kind in "biuf" and g.dtype.kind in "biuf")
    joint = np.concatenate([q, g]) if same_kind else np.concatenate([q.astype(object), g.astype(object)])
    codes = check_cameras(joint, "cams")
    return codes[:n_query], codes[n_query:]


# ---------------------------------------------------------------- evaluation steps


def _check_pids(query_pids: Any, gallery_pids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery identities, neither empty."""
    qp = check_labels(query_pids, "query_pids")
    gp = check_labels(gallery_pids, "gallery_pids")
    n_query, n_gallery = qp.shape[0], gp.shape[0]
    if n_query == 0 or n_gallery == 0:
        raise ValueError(f"query_pids and gallery_pids must not be empty, got lengths {n_query} and {n_gallery}")
    return qp, gp


def _check_camera_pair(
    query_cams: Any, gallery_cams: Any, qp: np.ndarray, gp: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Joint camera codes of query and gallery, or None when neither is given."""
    if (query_cams is None) != (gallery_cams is None):
        given = "query_cams" if gallery_cams is None else "gallery_cams"
        raise ValueError(f"query_cams and gallery_cams must be given together or not at all, got only {given}")
    if query_cams is None:
        return None
    qc, gc = _factorize_jointly(query_cams, gallery_cams, qp, gp)
    return qc, gc


def _check_protocol(protocol: Any, has_cams: bool) -> Protocol:
    """The protocol, defaulting on whether cameras were given; same-camera removal needs them."""
    if protocol is None:
        protocol = Protocol.market1501() if has_cams else Protocol.no_camera()
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a labelrefine.retrieval.Protocol, got {type(protocol).__name__}")
    if protocol.remove_same_camera and not has_cams:
        raise ValueError(
            "protocol removes same-camera matches (remove_same_camera=True) but query_cams and gallery_cams "
            "were not given; pass cameras or use Protocol.no_camera()"
        )
    return protocol


def _check_rerank(rerank: Any) -> bool:
    if not isinstance(rerank, (bool, np.bool_)):
        raise TypeError(f"rerank must be a bool, got {rerank!r}")
    return bool(rerank)


class _MatrixRows:
    """Distances read from a precomputed (Q, G) matrix, one block of rows at a time."""

    def __init__(self, distmat: Any, n_query: int, n_gallery: int) -> None:
        self.matrix = to_numpy(distmat, "distmat")  # a view: rows are read (and checked) one block at a time
        if self.matrix.shape != (n_query, n_gallery):
            raise ValueError(
                f"distmat must have shape (len(query_pids), len(gallery_pids)) = {(n_query, n_gallery)}, "
                f"got {self.matrix.shape}"
            )
        check_features(self.matrix[:1], "distmat")  # dtype rule

    def block(self, start: int, stop: int) -> np.ndarray:
        d = np.asarray(self.matrix[start:stop])
        if d.dtype == np.float16:
            d = d.astype(np.float32)
        finite = np.isfinite(d).all(axis=1)
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite)[0])
            raise ValueError(f"distmat must be finite, got NaN or infinity (first in row {bad})")
        return d


class _CosineRows:
    """Cosine distances ``1 - cos`` of query rows to the gallery; features are never normalised in place."""

    def __init__(self, query_feats: Any, gallery_feats: Any, qp: np.ndarray, gp: np.ndarray) -> None:
        qf = check_features(query_feats, "query_feats")
        gf = check_features(gallery_feats, "gallery_feats")
        check_same_length(query_pids=qp, query_feats=qf)
        check_same_length(gallery_pids=gp, gallery_feats=gf)
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(
                f"query_feats and gallery_feats must have the same number of columns, got {qf.shape[1]} and "
                f"{gf.shape[1]}"
            )
        self.query, self.gallery = qf, gf
        self.dtype = np.result_type(qf.dtype, gf.dtype)
        self.tiny = np.finfo(self.dtype).tiny
        # the gallery is scaled after the product (a (G,) vector) rather than normalised (a (G, D) copy)
        self.gallery_scale = (1.0 / np.maximum(_row_norms(gf), self.tiny)).astype(self.dtype)
        self.gallery_t = gf.astype(self.dtype, copy=False).T

    def block(self, start: int, stop: int) -> np.ndarray:
        q = self.query[start:stop].astype(self.dtype, copy=False)
        q = q / np.maximum(_row_norms(q), self.tiny)[:, None]
        d = q @ self.gallery_t
        d *= self.gallery_scale
        np.subtract(1.0, d, out=d)
        return d

    def union_jaccard(self, k1: int, k2: int) -> Any:
        """The sparse k-reciprocal Jaccard distance over the normalised query + gallery rows (CSR, sorted)."""
        from .neighbors import jaccard_distance

        union = np.concatenate([self.query, self.gallery]).astype(self.dtype, copy=False)
        union /= np.maximum(_row_norms(union), self.tiny)[:, None]
        jaccard = jaccard_distance(union, k1=k1, k2=k2).tocsr()
        jaccard.sort_indices()
        return jaccard


def _distance_source(
    query_feats: Any, gallery_feats: Any, distmat: Any, rerank: bool, qp: np.ndarray, gp: np.ndarray
) -> _MatrixRows | _CosineRows:
    """Where the distances come from: exactly one of ``distmat`` and the feature pair."""
    use_feats = query_feats is not None or gallery_feats is not None
    if distmat is not None and use_feats:
        raise ValueError("give either query_feats/gallery_feats or distmat, got both")
    if distmat is None and not (query_feats is not None and gallery_feats is not None):
        raise ValueError("query_feats and gallery_feats are required when distmat is not given")
    if distmat is None:
        return _CosineRows(query_feats, gallery_feats, qp, gp)
    if rerank:
        raise ValueError("rerank=True needs query_feats and gallery_feats, got distmat only")
    return _MatrixRows(distmat, qp.shape[0], gp.shape[0])


def _protocol_masks(
    qp: np.ndarray, gp: np.ndarray, junk: np.ndarray, cams: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(members, positive) of a block: gallery samples the protocol keeps, and the true matches among them.

    ``cams`` (block query cameras, gallery cameras) is given when same-camera matches are removed.
    """
    same_pid = qp[:, None] == gp[None, :]
    members = np.repeat(~junk[None, :], qp.shape[0], axis=0)
    if cams is not None:
        members &= ~(same_pid & (cams[0][:, None] == cams[1][None, :]))
    return members, same_pid & members


def _reranked_ranks(
    d: np.ndarray,
    members: np.ndarray,
    positive: np.ndarray,
    jaccard_rows: Any,
    n_query: int,
    n_candidates: int,
    lam: float,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the true matches when each query's top candidates are re-ranked and ranked first.

    ``jaccard_rows`` holds the block's rows of the union Jaccard matrix (gallery columns after
    the ``n_query`` query columns). The candidates are ranked by the blended distance, then the
    other members follow in original-distance order.
    """
    b, n_gallery = d.shape
    cand = _stable_top(d, n_candidates)
    r_c, c_c = np.nonzero(cand)
    jac = _lookup_csr(jaccard_rows, r_c, n_query + c_c, missing=1.0)
    reranked = np.full((b, n_gallery), np.inf)
    reranked[r_c, c_c] = (1.0 - lam) * jac + lam * d[r_c, c_c].astype(np.float64)
    rows0, ranks0 = _positive_ranks(reranked, members & cand, positive & cand, chunk)
    del reranked
    rest = members & ~cand
    rows1, ranks1 = _positive_ranks(d, rest, positive & ~cand, chunk)
    ranks1 += np.count_nonzero(members & cand, axis=1)[rows1]
    return np.concatenate([rows0, rows1]), np.concatenate([ranks0, ranks1])


def _block_scores(rows: np.ndarray, ranks: np.ndarray, b: int) -> tuple[np.ndarray, ...]:
    """Per query of a block: (matches, AP, first match rank, INP) from the ranks of its matches."""
    order = np.lexsort((ranks, rows))  # per query: matches in rank order
    rows, ranks = rows[order], ranks[order]
    counts = np.bincount(rows, minlength=b)
    starts = np.cumsum(counts) - counts
    position = np.arange(rows.size) - starts[rows] + 1
    valid = counts > 0
    ap = np.bincount(rows, weights=position / ranks, minlength=b) / np.maximum(counts, 1)
    first = np.where(valid, ranks[np.minimum(starts, rows.size - 1)] if rows.size else 0, 0)
    last = ranks[np.minimum(starts + counts - 1, rows.size - 1)] if rows.size else np.ones(b, dtype=np.int64)
    inp = np.where(valid, counts / np.maximum(last, 1), 0.0)
    return counts, ap, first, inp


def _summarize(
    n_pos: np.ndarray,
    first: np.ndarray,
    ap: np.ndarray,
    inp: np.ndarray,
    n_gallery: int,
    max_rank: int,
    protocol: Protocol,
    rerank: bool,
) -> RetrievalResult:
    """Mean AP and INP and the CMC curve over the queries with a match."""
    n_query = n_pos.shape[0]
    valid = n_pos > 0
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        raise ValueError(
            f"no query identity has a match in the gallery under protocol {protocol.name!r} "
            f"({n_query} queries, {n_gallery} gallery samples)"
        )
    length = min(max_rank, n_gallery)
    hits = np.bincount(np.minimum(first[valid], length + 1) - 1, minlength=length + 1)[:length]
    cmc = np.cumsum(hits) / n_valid
    return RetrievalResult(
        mAP=float(ap[valid].mean()),
        cmc=cmc,
        mINP=float(inp[valid].mean()),
        n_valid_queries=n_valid,
        n_skipped_queries=n_query - n_valid,
        protocol=protocol,
        reranked=rerank,
    )


# ---------------------------------------------------------------- public API


def evaluate_retrieval(
    query_pids: Any,
    gallery_pids: Any,
    *,
    query_cams: Any = None,
    gallery_cams: Any = None,
    query_feats: Any = None,
    gallery_feats: Any = None,
    distmat: Any = None,
    protocol: Protocol | None = None,
    max_rank: int = 50,
    block_size: int | None = None,
    rerank: bool = False,
    rerank_candidates: int = 100,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    progress: Progress | None = None,
) -> RetrievalResult:
    """Evaluate Re-ID retrieval: mAP, CMC and mINP of queries against a gallery.

    Parameters
    ----------
    query_pids, gallery_pids : array-like of int, shapes (Q,) and (G,)
        Identities (integers >= -1); the only positional arguments.
    query_cams, gallery_cams : array-like, shapes (Q,) and (G,), optional
        Camera ids (any hashable), both or neither. Without them there is no same-camera
        removal and the default protocol is :meth:`Protocol.no_camera`.
    query_feats, gallery_feats : array-like of float, shapes (Q, D) and (G, D), optional
        Features (numpy arrays, lists or CPU/CUDA torch tensors). They are L2-normalised inside
        (never in place) and compared by cosine distance ``1 - cos``, which ranks like the
        squared Euclidean distance of normalised features. Give these or ``distmat``.
    distmat : array-like of float, shape (Q, G), optional
        A precomputed distance matrix (smaller = more similar) instead of features; it may be
        a ``numpy.memmap``, it is read one block of rows at a time.
    protocol : Protocol, optional
        The evaluation rules. Default: :meth:`Protocol.market1501` with cameras,
        :meth:`Protocol.no_camera` without.
    max_rank : int, default 50
        Length of the CMC curve (cut to the gallery size when the gallery is smaller, as
        torchreid does).
    block_size : int, optional
        Queries per block; memory is a few ``block_size x G`` arrays. Default: about 16 M
        distances per block (64 MiB per float32 array).
    rerank : bool, default False
        Apply k-reciprocal re-ranking (Zhong et al., CVPR 2017) restricted to each query's
        top ``rerank_candidates`` gallery samples. Needs features (not ``distmat``).
    rerank_candidates : int, default 100
        Gallery samples per query whose distance is re-ranked.
    k1, k2 : int, default 20 and 6
        Neighbourhood sizes of the k-reciprocal Jaccard distance.
    lambda_value : float in [0, 1], default 0.3
        Weight of the original distance in the re-ranked distance.
    progress : callable, optional
        ``progress(step, done, total)``: the ``"evaluation"`` step counts queries, reported
        after each block (see :func:`labelrefine.console_progress`).

    Returns
    -------
    RetrievalResult
        ``mAP``, ``cmc``, ``mINP``, valid and skipped query counts, the protocol and the
        re-ranking flag.

    Raises
    ------
    ValueError
        Mismatched lengths or dimensions, features and ``distmat`` both or neither given, one
        camera array without the other, a protocol that removes same-camera matches without
        cameras, re-ranking without features, non-finite values, out-of-range integers, or no
        query with a match in the gallery.
    TypeError
        Non-integer identities, non-float features or distances, a ``protocol`` that is not a
        :class:`Protocol`, a non-bool ``rerank``.

    Notes
    -----
    - Ranking: gallery samples sorted by distance ascending, **ties broken by gallery index**
      (a stable sort). torchreid uses NumPy's default (unstable) argsort, so the two agree
      exactly on inputs without tied distances.
    - Per valid query with matches at ranks ``r_1 < ... < r_m`` (among the gallery samples
      left by the protocol): ``AP = mean_i(i / r_i)``, first match ``r_1`` (CMC), ``INP = m /
      r_m``. ``cmc[k]`` counts queries with ``r_1 <= k + 1``; a query with fewer gallery samples
      left than ``max_rank`` still counts as matched at every rank after ``r_1``.
    - Re-ranking: the sparse Jaccard distance :func:`labelrefine.neighbors.jaccard_distance`
      over the union of query and gallery features (``k1``, ``k2``; distance 1 where not
      stored). For each query, its ``rerank_candidates`` nearest gallery samples by original
      distance (over the whole gallery, before the protocol's removals; ties by index) get
      ``(1 - lambda_value) * jaccard + lambda_value * original`` and are ranked first by it; the
      others follow in original-distance order.
    - Cost: one matrix product per block and a sort of its distances by value (no argsort);
      memory O(block_size x G) besides the inputs, O(G) for the normalised gallery norms.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(10, 32))
    >>> gallery_pids = np.repeat(np.arange(10), 6)
    >>> gallery_cams = np.tile(np.arange(3), 20)
    >>> gallery = centers[gallery_pids] + 0.3 * rng.normal(size=(60, 32))
    >>> query_pids, query_cams = np.arange(10), np.full(10, 3)
    >>> query = centers + 0.3 * rng.normal(size=(10, 32))
    >>> result = evaluate_retrieval(
    ...     query_pids, gallery_pids, query_cams=query_cams, gallery_cams=gallery_cams,
    ...     query_feats=query, gallery_feats=gallery,
    ... )
    >>> result.rank(1), result.mAP, result.n_valid_queries
    (1.0, 1.0, 10)
    >>> result.protocol.name
    'market1501'
    """
    qp, gp = _check_pids(query_pids, gallery_pids)
    n_query, n_gallery = qp.shape[0], gp.shape[0]
    cams = _check_camera_pair(query_cams, gallery_cams, qp, gp)
    protocol = _check_protocol(protocol, cams is not None)
    max_rank = check_int(max_rank, "max_rank", low=1)
    if block_size is not None:
        block_size = check_int(block_size, "block_size", low=1)
    progress = check_progress(progress)
    rerank = _check_rerank(rerank)
    n_candidates = check_int(rerank_candidates, "rerank_candidates", low=1)
    lam = check_probability(lambda_value, "lambda_value")
    source = _distance_source(query_feats, gallery_feats, distmat, rerank, qp, gp)

    junk = np.isin(gp, np.asarray(protocol.junk_pids, dtype=np.int64))
    removal = cams if protocol.remove_same_camera else None
    # (rerank with a distmat was refused above; the isinstance only narrows the type)
    jaccard = source.union_jaccard(k1, k2) if rerank and isinstance(source, _CosineRows) else None

    rows_per_block = block_size or max(1, min(n_query, _BLOCK_ELEMENTS // n_gallery))
    n_pos = np.zeros(n_query, dtype=np.int64)
    first = np.zeros(n_query, dtype=np.int64)
    ap = np.zeros(n_query, dtype=np.float64)
    inp = np.zeros(n_query, dtype=np.float64)

    for start, stop in ranges(progress, "evaluation", n_query, rows_per_block):  # loop over query blocks
        block = slice(start, stop)
        d = source.block(start, stop)
        members, positive = _protocol_masks(
            qp[block], gp, junk, None if removal is None else (removal[0][block], removal[1])
        )
        if jaccard is None:
            rows, ranks = _positive_ranks(d, members, positive, rows_per_block)
        else:
            rows, ranks = _reranked_ranks(
                d, members, positive, jaccard[block], n_query, n_candidates, lam, rows_per_block
            )
        n_pos[block], ap[block], first[block], inp[block] = _block_scores(rows, ranks, stop - start)

    return _summarize(n_pos, first, ap, inp, n_gallery, max_rank, protocol, rerank)
