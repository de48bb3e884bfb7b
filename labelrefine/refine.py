"""Camera-aware label refinement (paper Eq. 5) and label helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import contiguous_labels, dense_codes, is_member, unique_sorted
from ._types import KnnGraph
from ._validation import (
    as_rng,
    check_bool,
    check_cameras,
    check_features,
    check_labels,
    check_probability,
    check_same_length,
    to_numpy,
)
from .agreement import DEFAULT_MAX_DEVIATION, cross_camera_outliers
from .pivots import (
    DEFAULT_RULE,
    RuleInput,
    RulePlan,
    graph_from,
    rule_entry,
    scores_from_graph,
)

__all__ = ["RefineResult", "refine", "refine_with_pivots", "relabel"]


@dataclass(frozen=True, repr=False)
class RefineResult:
    """Outcome of :func:`refine`.

    Its arrays are its own (never views of the inputs) and writeable, so
    ``torch.from_numpy(result.labels)`` shares them without a copy or a warning.

    Attributes
    ----------
    labels : numpy.ndarray of int64, shape (N,)
        Refined labels: the input global labels with discarded samples set to -1. Cluster ids
        are the ones given (use :func:`relabel` for contiguous ids).
    discarded : numpy.ndarray of bool, shape (N,)
        Samples that this call moved to -1 (global outliers are not counted).
    pivots : numpy.ndarray of int64
        Sorted indices of the pivots that were selected (including those whose local label is
        -1, which refine nothing).
    scores : numpy.ndarray of float64, shape (N,)
        Pivot scores (paper Eq. 4) used for the selection.
    p : float
        Discard probability that was applied.
    n_groups : int
        Number of (global cluster, camera) groups.
    n_refined_groups : int
        Groups that hold a pivot with a local cluster, i.e. that refinement looked into.
    n_fragments : int
        Number of (group, local cluster) pairs: how many local clusters the groups are split
        into. ``n_fragments / n_groups`` well above 1 means fragmented local labels, where a
        rule that keeps one local cluster per group cuts true members.
    """

    labels: np.ndarray
    discarded: np.ndarray
    pivots: np.ndarray
    scores: np.ndarray
    p: float
    n_groups: int
    n_refined_groups: int
    n_fragments: int

    @property
    def n_samples(self) -> int:
        """Number of samples N."""
        return int(self.labels.shape[0])

    @property
    def n_discarded(self) -> int:
        """Number of samples moved to -1 by this refinement."""
        return int(self.discarded.sum())

    @property
    def n_pivots(self) -> int:
        """Number of pivots selected."""
        return int(self.pivots.shape[0])

    @property
    def n_outliers(self) -> int:
        """Number of samples labelled -1 after refinement (global outliers plus discarded)."""
        return int((self.labels < 0).sum())

    @property
    def discard_ratio(self) -> float:
        """Discarded samples as a fraction of the samples that had a global cluster."""
        clustered = self.n_discarded + int((self.labels >= 0).sum())
        return self.n_discarded / clustered if clustered else 0.0

    @property
    def refined_group_ratio(self) -> float:
        """Share of (cluster, camera) groups that hold a pivot with a local cluster."""
        return self.n_refined_groups / self.n_groups if self.n_groups else 0.0

    @property
    def fragments_per_group(self) -> float:
        """Mean number of local clusters per (cluster, camera) group (local -1 not counted)."""
        return self.n_fragments / self.n_groups if self.n_groups else 0.0

    def __repr__(self) -> str:
        return (
            f"RefineResult(n_samples={self.n_samples}, n_pivots={self.n_pivots}, n_discarded={self.n_discarded}, "
            f"discard_ratio={self.discard_ratio:.4f}, refined_group_ratio={self.refined_group_ratio:.4f}, "
            f"fragments_per_group={self.fragments_per_group:.2f}, p={self.p})"
        )


def relabel(labels: Any) -> np.ndarray:
    """Map cluster ids to contiguous ``0..K-1`` in increasing order of the original ids; -1 stays -1.

    Examples
    --------
    >>> relabel([7, -1, 3, 7, 10])
    array([ 1, -1,  0,  1,  2])
    """
    return contiguous_labels(check_labels(labels, "labels"))


def refine(
    global_labels: Any,
    local_labels: Any,
    cams: Any,
    feats: Any = None,
    *,
    knn: KnnGraph | tuple[Any, Any] | None = None,
    k: int = 15,
    p: float = 1.0,
    rule: str = DEFAULT_RULE,
    max_deviation: float = DEFAULT_MAX_DEVIATION,
    link_k: int | None = None,
    min_sim: float = 0.5,
    rng: int | np.random.Generator | None = None,
) -> RefineResult:
    """Refine global pseudo labels with camera-local ones (CALR, paper Eq. 4-5).

    Samples are grouped by (global cluster, camera); a *fragment* is the members of one group
    that share a local cluster. Pivots are the samples whose Eq. 4 score is above the mean score
    (``rule`` says which of them, and what they vouch for). A member that refinement rejects
    becomes -1, each independently with probability ``p``. Members from other cameras than the
    evidence against them, groups that refinement does not look into and global outliers are
    untouched; labels only ever move to -1.

    Parameters
    ----------
    global_labels : array-like of int, shape (N,)
        Global (inter-camera) cluster ids; -1 = outlier, left as it is. Whole-number floats are
        accepted.
    local_labels : array-like of int, shape (N,)
        Local (intra-camera) cluster ids, meaningful within a camera only: the same integer in
        two cameras names two different clusters. -1 = not clustered locally.
    cams : array-like of shape (N,)
        Camera of each sample (ints, strings, any hashable).
    feats : array-like of shape (N, D), optional
        Features (cosine geometry, L2-normalised internally, never in place). They build the kNN
        graph when ``knn`` is not given, and the ``"cross-camera"`` rule needs them.
    knn : KnnGraph or tuple (indices, distances), optional
        Precomputed kNN graph in cosine distance, as returned by
        :func:`labelrefine.neighbors.knn`, so that one graph per epoch serves clustering and
        refinement. It needs ``k`` neighbours per row other than the sample itself
        (``knn(feats, k)`` or wider). Give ``feats``, ``knn`` or both.
    k : int, default 15
        Neighbours in the pivot score, ``2 <= k < N``.
    p : float in [0, 1], default 1.0
        Discard probability (decay it over epochs with :mod:`labelrefine.schedules`). ``p = 0``
        returns the labels unchanged; ``p = 1`` is deterministic.
    rule : str, default "cross-camera"
        One of :func:`labelrefine.pivots.pivot_rules`: a built-in rule below or one registered with
        :func:`labelrefine.pivots.register_pivot_rule`.

        - ``"cross-camera"`` (default, chosen by the measured study of
          ``benchmarks/refine_quality.py``, docs "Choosing a pivot rule"): in a global cluster
          that two or more cameras see, a fragment is rejected when its agreement with the
          cluster's members *from the other cameras* (:func:`labelrefine.agreement.camera_agreement`,
          camera bias removed) is more than ``max_deviation`` robust standard deviations below the
          cluster's own level (:func:`labelrefine.agreement.agreement_outliers`), except its
          images that agree on their own (members an impure local cluster mixed with intruders);
          a local -1 image is a fragment of its own. In a cluster that one camera sees there is no other camera to
          ask, and ``"all"`` applies. Needs ``feats``.
        - ``"algorithm1"``: the closest reading of the paper's text (Algorithm 1 applies Eq. 5
          once per pivot, ``for i in pivots``): a member is kept only when it lies in the local
          cluster of *every* pivot of its group (a group whose pivots sit in two local clusters
          keeps none of its members). It is still a reading: every pivot is applied to the
          original labels, because applying them in sequence to the updated labels would make
          the result depend on sample order. Used by the paper-row recipe presets.
        - ``"all"``: a member is kept when *any* pivot of its group vouches for it (its local
          cluster holds a pivot of the group): another reading of Sec. III-C, not its text.
        - ``"linked"``: as ``"all"``, and a local cluster is also kept when one of its members and
          a member of a kept local cluster of the same group are mutual nearest neighbours (each
          among the other's first ``link_k`` neighbours), transitively.
        - ``"camera"``: one pivot per group, the best score. ``"camera-linked"``: those pivots,
          vouching like ``"linked"``. ``"cluster"``: one pivot per global cluster, the best score,
          refining its camera only.
        - ``"reference"``: the authors' released code (its scores, its pivot choice, see
          :func:`labelrefine.pivots.select_pivots`). Used by the ``-authors`` recipe presets.

        In the pivot rules a group is refined when it holds a pivot with a local label, and a
        member its pivots do not vouch for (local -1 included) is rejected.
    max_deviation : float > 0, default 5.0
        Threshold of the ``"cross-camera"`` rule in robust standard deviations
        (:data:`labelrefine.agreement.DEFAULT_MAX_DEVIATION`, measured in
        ``benchmarks/refine_quality.py``); ignored by the other rules.
    link_k : int, optional
        Neighbours (other than the sample) in which the ``"linked"`` rules look for mutual
        neighbours, ``1 <= link_k <= k``; default ``min(10, k)`` (our choice: not measured
        against other values). Used by ``"linked"`` and ``"camera-linked"`` only.
    min_sim : float, default 0.5
        Similarity cut-off of the ``"reference"`` score; ignored by the other rules.
    rng : int, numpy.random.Generator or None
        Source of the discard draws (one uniform draw per candidate, in sample order).

    Returns
    -------
    RefineResult
        Refined labels, discarded mask, pivots, scores and ``p``.

    Raises
    ------
    ValueError, TypeError
        On mismatched lengths, non-integer or 2-D labels, NaN features, ``p`` outside
        [0, 1], ``k`` or ``link_k`` out of range, an unknown rule, neither ``feats`` nor ``knn``,
        or ``rule="cross-camera"`` without ``feats``.

    See Also
    --------
    refine_with_pivots : the Eq. 5 step with pivots of your own.
    labelrefine.metrics.impurity_report : how much a refinement removed and cut, given identities.

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine import refine
    >>> from labelrefine.synthetic import make_camera_biased
    >>> data = make_camera_biased(n_ids=20, n_cams=3, rng=0)
    >>> result = refine(data.pids, data.local_labels, data.cams, data.feats, k=5)
    >>> bool((result.labels[~result.discarded] == data.pids[~result.discarded]).all())
    True
    """
    g = check_labels(global_labels, "global_labels")
    entry = rule_entry(rule)
    if entry.needs_feats and feats is None:
        raise ValueError(
            f"rule={rule!r} needs feats (the features; a kNN graph alone is not enough): pass "
            "feats=..., with knn=... as well to reuse a graph, or choose a graph-only rule such as rule='all'"
        )
    reference = entry.formula == "reference"
    graph, x = graph_from(feats, knn, k, neighbours=k - 1 if reference else k)
    n = g.shape[0]
    if graph.n != n:
        raise ValueError(f"{'knn' if knn is not None else 'feats'} must have {n} rows (one per sample), got {graph.n}")
    min_sim = check_probability(min_sim, "min_sim") if reference else min_sim
    scores = scores_from_graph(graph.indices, graph.distances, k, entry.formula, min_sim)
    cam_codes = check_cameras(cams, "cams", n=n)
    local = check_labels(local_labels, "local_labels")
    check_same_length(global_labels=g, local_labels=local, cams=cam_codes)
    if entry.needs_feats and x is None:
        x = check_features(feats, "feats", n=n)
    p = check_probability(p, "p")
    generator = as_rng(rng)
    plan = entry.plan(RuleInput(g, local, cam_codes, scores, graph, x, k, link_k, max_deviation))
    return _refine(g, local, cam_codes, plan, p=p, generator=generator, scores=scores)


def refine_with_pivots(
    global_labels: Any,
    local_labels: Any,
    cams: Any,
    pivots: Any,
    *,
    links: Any = None,
    every: bool = False,
    p: float = 1.0,
    rng: int | np.random.Generator | None = None,
    scores: Any = None,
) -> RefineResult:
    """The refinement step of paper Eq. 5, with pivots chosen by the caller.

    Samples are grouped by (global cluster, camera). A group that holds a pivot whose local
    label is not -1 is *refined*: each of its members that its pivots do not vouch for (local
    label -1 included) becomes -1, independently with probability ``p``. Groups without such a
    pivot, global outliers and the other cameras' members are left as they are. With one pivot
    per group this is Eq. 5, ``G_k^c ∩ L_i ∪ (G_k \\ G_k^c)``; with several, a member is kept
    when any pivot of its group vouches for it (its local cluster holds the pivot), or with
    ``every=True`` only when every pivot of its group does.

    Parameters
    ----------
    global_labels, local_labels, cams : array-like of shape (N,)
        As in :func:`refine`.
    pivots : array-like of int
        Indices of the pivots (any order; global outliers among them vouch for nothing).
    links : array-like of int, shape (N, m), optional
        Each sample's nearest neighbours, the sample itself excluded. When given, a local
        cluster that holds no pivot is kept too when one of its members and a member of a
        pivot's local cluster in the same group are mutual neighbours (each in the other's
        row), the ``"linked"`` rule of :func:`refine`.
    every : bool, default False
        Keep a member only when every pivot of its group vouches for it: Eq. 5 applied once per
        pivot, each to the original labels (a reading of Algorithm 1), the ``"algorithm1"`` rule
        of :func:`refine`. Not combined with ``links``.
    p : float in [0, 1], default 1.0
        Discard probability; ``p = 0`` returns the labels unchanged, ``p = 1`` is deterministic.
    rng : int, numpy.random.Generator or None
        Source of the discard draws (one uniform draw per candidate, in sample order).
    scores : array-like of shape (N,), optional
        Scores the pivots were chosen by, stored in the result; NaN when not given.

    Returns
    -------
    RefineResult

    Examples
    --------
    >>> result = refine_with_pivots([0, 0, 0, 0, 1], [5, 5, 6, 7, 8], ["a", "a", "a", "b", "a"], [0])
    >>> result.labels
    array([ 0,  0, -1,  0,  1])
    >>> refine_with_pivots([0, 0, 0, 0], [5, 5, 6, 6], ["a"] * 4, [0, 2], every=True).labels
    array([-1, -1, -1, -1])
    """
    g = check_labels(global_labels, "global_labels")
    local = check_labels(local_labels, "local_labels")
    cam_codes = check_cameras(cams, "cams")
    n = check_same_length(global_labels=g, local_labels=local, cams=cam_codes)
    chosen = to_numpy(pivots, "pivots")
    if chosen.size == 0:
        chosen = np.zeros(0, dtype=np.int64)
    if chosen.ndim != 1 or chosen.dtype == bool or not np.issubdtype(chosen.dtype, np.integer):
        raise TypeError(
            f"pivots must be a 1-D array of sample indices (integers), got shape {chosen.shape}, dtype {chosen.dtype}"
        )
    if chosen.size and (chosen.min() < 0 or chosen.max() >= n):
        raise ValueError(f"pivots must be sample indices in [0, {n}), got values in [{chosen.min()}, {chosen.max()}]")
    every = check_bool(every, "every")
    if every and links is not None:
        raise ValueError("give links (any pivot vouches, extended by links) or every=True, not both")
    p = check_probability(p, "p")
    generator = as_rng(rng)
    score_array = np.full(n, np.nan)
    if scores is not None:
        score_array = to_numpy(scores, "scores").astype(np.float64)  # a copy: the result owns its arrays
        if score_array.shape != (n,):
            raise ValueError(f"scores must have shape ({n},) (one per sample), got {score_array.shape}")
    plan = RulePlan(chosen, links=None if links is None else _check_links(links, n), every=every)
    return _refine(g, local, cam_codes, plan, p=p, generator=generator, scores=score_array)


def _check_links(links: Any, n: int) -> np.ndarray:
    """Neighbour rows of ``refine_with_pivots``: integers of shape (N, m) in ``[0, N)``."""
    neighbours = to_numpy(links, "links")
    if neighbours.ndim != 2 or neighbours.shape[0] != n or neighbours.dtype.kind not in "iu":
        raise ValueError(f"links must be an integer array of shape ({n}, m), got {neighbours.dtype} {neighbours.shape}")
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n):
        raise ValueError(f"links must hold sample indices in [0, {n}), got [{neighbours.min()}, {neighbours.max()}]")
    return neighbours


def _refine(
    g: np.ndarray,
    local: np.ndarray,
    cam_codes: np.ndarray,
    plan: RulePlan,
    *,
    p: float,
    generator: np.random.Generator,
    scores: np.ndarray,
) -> RefineResult:
    """Eq. 5 on checked arrays, as ``plan`` says: its pivots vouch, its evidence lets the other cameras decide."""
    n = g.shape[0]
    chosen = unique_sorted(plan.pivots.astype(np.int64))

    # Dense codes of (cluster, camera) groups and of local clusters; -1 stays -1.
    clustered = g >= 0
    n_cams = int(cam_codes.max()) + 1 if n else 1
    cluster = contiguous_labels(g)
    group = np.full(n, -1, dtype=np.int64)
    group[clustered] = dense_codes(cluster[clustered] * n_cams + cam_codes[clustered])
    local_code = contiguous_labels(local)
    vouching = chosen[(group[chosen] >= 0) & (local_code[chosen] >= 0)]
    refined_group = np.zeros(int(group.max(initial=-1)) + 2, dtype=bool)  # last slot: group -1 is never refined
    refined_group[group[vouching]] = True
    # local ids are unique per camera, so (group, local cluster) pairs name the fragments
    width = int(local_code.max(initial=-1)) + 2
    pair = group * width + local_code
    vouched = is_member(pair, pair[vouching]) & (local_code >= 0)
    if plan.every:  # a group whose pivots sit in two or more local clusters vouches for nothing
        fragments_vouched = np.bincount(unique_sorted(pair[vouching]) // width, minlength=refined_group.size)
        vouched &= fragments_vouched[group] == 1
    if plan.links is not None:
        vouched = _join_linked(plan.links, group, pair, vouched, refined_group, local_code >= 0)
    candidate = refined_group[group] & ~vouched
    if plan.evidence is not None:
        feats, max_deviation = plan.evidence
        # a local -1 image is a fragment of its own: code it past every (group, local) pair
        fragment = np.where(local_code >= 0, pair, int(pair.max(initial=0)) + 1 + np.arange(n))
        known, outlier = cross_camera_outliers(g, cam_codes, feats, fragment, max_deviation)
        candidate = np.where(known, outlier, candidate)
        refined_group[group[known]] = True
    discarded = candidate.copy()
    if p < 1.0:
        idx = np.flatnonzero(candidate)
        discarded[idx] = generator.random(idx.size) < p if p > 0.0 else False
    labels = np.where(discarded, -1, g)
    return RefineResult(
        labels=labels,
        discarded=discarded,
        pivots=chosen,
        scores=scores,
        p=p,
        n_groups=int(refined_group.size - 1),
        n_refined_groups=int(refined_group[:-1].sum()),
        n_fragments=int(unique_sorted(pair[(group >= 0) & (local_code >= 0)]).size),
    )


def _join_linked(
    neighbours: np.ndarray,
    group: np.ndarray,
    pair: np.ndarray,
    vouched: np.ndarray,
    refined: np.ndarray,
    local_ok: np.ndarray,
) -> np.ndarray:
    """``vouched`` grown by every local cluster joined to a vouched one of its group through mutual neighbours."""
    # mutual-neighbour edges (a, b) inside refined groups with a not vouched yet, found once
    rows = np.flatnonzero(refined[group] & local_ok & ~vouched)
    row_of, column = np.nonzero(group[neighbours[rows]] == group[rows, None])
    a, b = rows[row_of], neighbours[rows[row_of], column]
    mutual = (neighbours[b] == a[:, None]).any(axis=1)
    a, b = a[mutual], b[mutual]
    # grow until no edge joins an unvouched local cluster to a vouched one: a few rounds, one per link in a chain
    while True:
        joined = a[vouched[b] & ~vouched[a]]
        if joined.size == 0:
            return vouched
        vouched = vouched | (is_member(pair, pair[joined]) & local_ok)
