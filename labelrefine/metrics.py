"""Cluster-quality metrics: pairwise and BCubed precision/recall/F, expansion, NMI, coverage.

Every score is computed from one sparse contingency table between the ground-truth identities
and the predicted clusters, so the cost is O(N) memory and O(N log N) time with no loop over
identities or clusters.

Conventions
-----------
- ``true_labels`` are ground-truth identities: any hashable ids (ints of any sign, strings);
  ``-1`` there is an ordinary identity.
- ``pred_labels`` are cluster ids with the library convention ``-1`` = no cluster. How these
  outliers are scored is the explicit ``outliers`` option:

  ``"drop"`` (default)
      samples with ``pred == -1`` are removed before scoring; ``coverage`` reports the
      fraction kept.
  ``"singleton"``
      each ``-1`` sample is a cluster of its own.
  ``"cluster"``
      all ``-1`` samples form one cluster. Without ``-1`` in ``pred`` (or with this option)
      the pairwise and BCubed numbers are those of the learn-to-cluster evaluation code that
      Re-ID papers report.
- Degenerate inputs return defined values and never warn: with no pair of samples in a
  predicted cluster pairwise precision is 1.0, with no pair in a true identity pairwise
  recall is 1.0; an F score whose precision and recall are both 0 is 0.0. When nothing is
  left to score (empty input, or every prediction -1 with ``outliers="drop"``) every score,
  ``expansion`` and ``nmi`` are 0.0.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp

from ._arrays import dense_codes, unique_sorted
from ._validation import check_cameras, check_choice, check_labels, check_same_length

__all__ = [
    "OUTLIER_MODES",
    "ClusterReport",
    "ImpurityReport",
    "PrecisionRecallF",
    "bcubed_scores",
    "cluster_report",
    "expansion",
    "impurity_report",
    "majority_identity",
    "nmi",
    "pairwise_scores",
]

OutlierMode = Literal["drop", "singleton", "cluster"]
OUTLIER_MODES: tuple[str, ...] = ("drop", "singleton", "cluster")


class PrecisionRecallF(NamedTuple):
    """Precision, recall and their harmonic mean, as Python floats."""

    precision: float
    recall: float
    f: float


class ClusterReport(NamedTuple):
    """All cluster-quality numbers of :func:`cluster_report` (Python floats and ints).

    Attributes
    ----------
    pairwise_precision, pairwise_recall, pairwise_f : float
        Pairwise scores, see :func:`pairwise_scores`.
    bcubed_precision, bcubed_recall, bcubed_f : float
        BCubed scores, see :func:`bcubed_scores`.
    expansion : float
        Mean number of predicted clusters per true identity, see :func:`expansion`.
    nmi : float
        Normalised mutual information (arithmetic-mean normalisation, as scikit-learn).
    n_clusters : int
        Number of distinct predicted clusters with id >= 0 (outliers are not counted, whatever
        ``outliers`` says).
    coverage : float
        Fraction of samples with a predicted cluster (``pred != -1``); 0.0 for empty input.
    n_samples : int
        Number of samples given (before any dropping).
    """

    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    expansion: float
    nmi: float
    n_clusters: int
    coverage: float
    n_samples: int


class _Table(NamedTuple):
    """Sparse contingency table of the scored samples and its margins."""

    counts: np.ndarray  # nonzero cells n_ij (int64)
    rows: np.ndarray  # true code of each cell
    cols: np.ndarray  # pred code of each cell
    true_sizes: np.ndarray  # a_i, zeros allowed
    pred_sizes: np.ndarray  # b_j, all > 0
    n_scored: int
    n_samples: int
    n_clusters: int
    coverage: float


def _table(true_labels: Any, pred_labels: Any, outliers: str) -> _Table:
    """Validate the inputs and build the contingency table of the samples to be scored."""
    mode = check_choice(outliers, "outliers", OUTLIER_MODES)
    pred = check_labels(pred_labels, "pred_labels")
    true = check_cameras(true_labels, "true_labels")  # any hashable identity -> codes 0..T-1
    n = check_same_length(true_labels=true, pred_labels=pred)
    noise = pred == -1
    n_noise = int(np.count_nonzero(noise))
    n_clusters = int(unique_sorted(pred[~noise]).size)
    coverage = (n - n_noise) / n if n else 0.0
    n_true = int(true.max()) + 1 if n else 0

    if mode == "drop" and n_noise:
        true, pred = true[~noise], pred[~noise]
    elif mode == "singleton" and n_noise:
        pred = pred.copy()
        pred[noise] = pred.max(initial=-1) + 1 + np.arange(n_noise)
    # mode == "cluster": -1 is an ordinary cluster id.
    pred_ids, pred_codes = np.unique(pred, return_inverse=True)
    table = sp.coo_matrix(
        (np.ones(true.shape[0], dtype=np.int64), (true, pred_codes.reshape(-1))),
        shape=(n_true, pred_ids.size),
    ).tocsr()
    table.sum_duplicates()
    counts = table.data.astype(np.int64, copy=False)
    rows = np.repeat(np.arange(n_true), np.diff(table.indptr))
    return _Table(
        counts=counts,
        rows=rows,
        cols=table.indices.astype(np.int64, copy=False),
        true_sizes=np.bincount(rows, weights=counts, minlength=n_true).astype(np.int64),
        pred_sizes=np.bincount(pred_codes.reshape(-1), minlength=pred_ids.size).astype(np.int64),
        n_scored=int(true.shape[0]),
        n_samples=n,
        n_clusters=n_clusters,
        coverage=float(coverage),
    )


def _f(precision: float, recall: float) -> float:
    total = precision + recall
    return 2.0 * precision * recall / total if total > 0 else 0.0


def _pairs(sizes: np.ndarray) -> int:
    """Number of unordered pairs inside groups of the given sizes (exact integer arithmetic)."""
    return int((sizes * (sizes - 1)).sum()) // 2


def _pairwise(t: _Table) -> PrecisionRecallF:
    if t.n_scored == 0:
        return PrecisionRecallF(0.0, 0.0, 0.0)
    together = _pairs(t.counts)
    pred_pairs = _pairs(t.pred_sizes)
    true_pairs = _pairs(t.true_sizes)
    precision = together / pred_pairs if pred_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    return PrecisionRecallF(float(precision), float(recall), float(_f(precision, recall)))


def _bcubed(t: _Table) -> PrecisionRecallF:
    if t.n_scored == 0:
        return PrecisionRecallF(0.0, 0.0, 0.0)
    squared = t.counts.astype(np.float64) ** 2
    precision = float((squared / t.pred_sizes[t.cols]).sum() / t.n_scored)
    recall = float((squared / t.true_sizes[t.rows]).sum() / t.n_scored)
    return PrecisionRecallF(precision, recall, float(_f(precision, recall)))


def _expansion(t: _Table) -> float:
    n_ids = int(np.count_nonzero(t.true_sizes))
    return t.counts.size / n_ids if n_ids else 0.0


def _entropy(sizes: np.ndarray, n: int) -> float:
    sizes = sizes[sizes > 0].astype(np.float64)
    return float(-((sizes / n) * (np.log(sizes) - np.log(n))).sum())


def _nmi(t: _Table) -> float:
    n = t.n_scored
    if n == 0:
        return 0.0
    n_true_ids = int(np.count_nonzero(t.true_sizes))
    n_pred_ids = t.pred_sizes.size
    if n_true_ids == n_pred_ids == 1:  # one cluster against one identity: perfect (scikit-learn's rule)
        return 1.0
    if n_true_ids == 1 or n_pred_ids == 1:  # one side has zero entropy: no shared information
        return 0.0
    c = t.counts.astype(np.float64)
    share = c / n
    log_n = np.log(n)
    outer = t.true_sizes[t.rows] * t.pred_sizes[t.cols]  # int64: at most N^2
    cells = share * (np.log(c) - log_n) + share * (2.0 * log_n - np.log(outer))
    cells[np.abs(cells) < np.finfo(np.float64).eps] = 0.0
    mi = float(cells.sum())
    if mi <= 0.0:
        return 0.0
    normaliser = max(0.5 * (_entropy(t.true_sizes, n) + _entropy(t.pred_sizes, n)), np.finfo(np.float64).eps)
    return float(min(mi / normaliser, 1.0))


def pairwise_scores(true_labels: Any, pred_labels: Any, *, outliers: OutlierMode = "drop") -> PrecisionRecallF:
    """Pairwise precision, recall and F score of a clustering.

    Over all unordered pairs of scored samples: precision = pairs in the same predicted
    cluster *and* the same identity / pairs in the same predicted cluster; recall = the same
    numerator / pairs in the same identity; F = their harmonic mean.

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids; -1 is an ordinary identity).
    pred_labels : array-like of int, shape (N,)
        Predicted cluster ids, -1 = no cluster.
    outliers : {"drop", "singleton", "cluster"}, default "drop"
        How ``pred == -1`` is scored (see the module notes). ``"cluster"`` reproduces the
        learn-to-cluster ``pairwise`` evaluation.

    Returns
    -------
    PrecisionRecallF
        ``(precision, recall, f)`` as Python floats.

    Raises
    ------
    ValueError
        If the lengths differ, ``pred_labels`` holds values below -1, an array is not 1-D, or
        ``outliers`` is unknown.
    TypeError
        If ``pred_labels`` is not an integer array.

    Notes
    -----
    Computed from the sparse contingency table ``n_ij`` (identity i, cluster j) with margins
    ``a_i`` and ``b_j``: precision = sum C(n_ij, 2) / sum C(b_j, 2), recall = sum C(n_ij, 2) /
    sum C(a_i, 2). No pair in a predicted cluster (all singletons) gives precision 1.0; no
    pair in an identity gives recall 1.0. ``sqrt(precision * recall)`` is scikit-learn's
    ``fowlkes_mallows_score`` whenever both denominators are nonzero.

    Examples
    --------
    >>> pairwise_scores([0, 0, 0, 1, 1], [5, 5, 7, 7, 7])
    PrecisionRecallF(precision=0.5, recall=0.5, f=0.5)
    >>> pairwise_scores([0, 0, 1, 1], [3, 3, -1, 4]).precision  # the -1 sample is dropped
    1.0
    """
    return _pairwise(_table(true_labels, pred_labels, outliers))


def bcubed_scores(true_labels: Any, pred_labels: Any, *, outliers: OutlierMode = "drop") -> PrecisionRecallF:
    """BCubed precision, recall and F score of a clustering (Bagga and Baldwin).

    Per scored sample s: precision(s) = |cluster(s) ∩ identity(s)| / |cluster(s)|, recall(s) =
    |cluster(s) ∩ identity(s)| / |identity(s)|, both counted among scored samples (s itself
    included); the scores are their means over samples and F is the harmonic mean.

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids; -1 is an ordinary identity).
    pred_labels : array-like of int, shape (N,)
        Predicted cluster ids, -1 = no cluster.
    outliers : {"drop", "singleton", "cluster"}, default "drop"
        How ``pred == -1`` is scored (see the module notes). ``"cluster"`` reproduces the
        learn-to-cluster ``bcubed`` evaluation.

    Returns
    -------
    PrecisionRecallF
        ``(precision, recall, f)`` as Python floats.

    Raises
    ------
    ValueError
        If the lengths differ, ``pred_labels`` holds values below -1, an array is not 1-D, or
        ``outliers`` is unknown.
    TypeError
        If ``pred_labels`` is not an integer array.

    Notes
    -----
    From the contingency table: precision = sum n_ij^2 / b_j / N, recall = sum n_ij^2 / a_i / N.
    With nothing left to score all three are 0.0.

    Examples
    --------
    >>> p, r, f = bcubed_scores([0, 0, 1, 1], [0, 0, 0, 1])
    >>> round(p, 4), round(r, 4)
    (0.6667, 0.75)
    """
    return _bcubed(_table(true_labels, pred_labels, outliers))


def expansion(true_labels: Any, pred_labels: Any, *, outliers: OutlierMode = "drop") -> float:
    """Mean number of distinct predicted clusters per true identity.

    1.0 means no identity is split; larger values mean identities are spread over several
    clusters (with ``outliers="singleton"`` every outlier counts as its own cluster).

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids).
    pred_labels : array-like of int, shape (N,)
        Predicted cluster ids, -1 = no cluster.
    outliers : {"drop", "singleton", "cluster"}, default "drop"
        How ``pred == -1`` is scored. With ``"drop"`` the mean is over the identities that
        keep at least one sample.

    Returns
    -------
    float
        The mean over identities of the number of clusters they meet; 0.0 when nothing is
        left to score.

    Raises
    ------
    ValueError
        If the lengths differ, ``pred_labels`` holds values below -1, an array is not 1-D, or
        ``outliers`` is unknown.
    TypeError
        If ``pred_labels`` is not an integer array.

    Notes
    -----
    Equal to the number of nonzero cells of the contingency table divided by the number of
    nonempty identities.

    Examples
    --------
    >>> expansion([0, 0, 0, 1, 1], [4, 4, 5, 6, 6])
    1.5
    >>> expansion([0, 0, 0, 1, 1], [4, -1, -1, 6, 6], outliers="singleton")
    2.0
    """
    return float(_expansion(_table(true_labels, pred_labels, outliers)))


def nmi(true_labels: Any, pred_labels: Any, *, outliers: OutlierMode = "drop") -> float:
    """Normalised mutual information between identities and clusters.

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids).
    pred_labels : array-like of int, shape (N,)
        Predicted cluster ids, -1 = no cluster.
    outliers : {"drop", "singleton", "cluster"}, default "drop"
        How ``pred == -1`` is scored.

    Returns
    -------
    float
        Mutual information divided by the arithmetic mean of the two entropies, in [0, 1].

    Raises
    ------
    ValueError
        If the lengths differ, ``pred_labels`` holds values below -1, an array is not 1-D, or
        ``outliers`` is unknown.
    TypeError
        If ``pred_labels`` is not an integer array.

    Notes
    -----
    Equals scikit-learn's ``normalized_mutual_info_score`` (default arithmetic normalisation)
    on the scored samples, including its conventions: one identity against one cluster gives
    1.0, zero mutual information gives 0.0. Nothing to score gives 0.0.

    Examples
    --------
    >>> nmi([0, 0, 1, 1], [7, 7, 3, 3])
    1.0
    >>> nmi([0, 0, 1, 1], [7, 3, 7, 3])
    0.0
    """
    return _nmi(_table(true_labels, pred_labels, outliers))


def cluster_report(true_labels: Any, pred_labels: Any, *, outliers: OutlierMode = "drop") -> ClusterReport:
    """Every cluster-quality number at once, from a single contingency table.

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids; -1 is an ordinary identity).
    pred_labels : array-like of int, shape (N,)
        Predicted cluster ids (pseudo labels), -1 = no cluster.
    outliers : {"drop", "singleton", "cluster"}, default "drop"
        How ``pred == -1`` is scored, see the module notes. ``n_clusters`` and ``coverage``
        do not depend on it.

    Returns
    -------
    ClusterReport
        Named tuple of Python numbers: ``pairwise_precision``, ``pairwise_recall``,
        ``pairwise_f``, ``bcubed_precision``, ``bcubed_recall``, ``bcubed_f``, ``expansion``,
        ``nmi``, ``n_clusters``, ``coverage``, ``n_samples``.

    Raises
    ------
    ValueError
        If the lengths differ, ``pred_labels`` holds values below -1, an array is not 1-D, or
        ``outliers`` is unknown.
    TypeError
        If ``pred_labels`` is not an integer array.

    Notes
    -----
    See :func:`pairwise_scores`, :func:`bcubed_scores`, :func:`expansion` and :func:`nmi` for
    the definitions and the values of degenerate cases. Inputs are not modified.

    Examples
    --------
    >>> report = cluster_report([0, 0, 0, 1, 1, 1], [0, 0, -1, 1, 1, 2])
    >>> report.coverage, report.n_clusters, report.expansion
    (0.8333333333333334, 3, 1.5)
    >>> round(report.pairwise_precision, 4), round(report.pairwise_recall, 4)
    (1.0, 0.5)
    """
    t = _table(true_labels, pred_labels, outliers)
    pw = _pairwise(t)
    bc = _bcubed(t)
    return ClusterReport(
        pairwise_precision=pw.precision,
        pairwise_recall=pw.recall,
        pairwise_f=pw.f,
        bcubed_precision=bc.precision,
        bcubed_recall=bc.recall,
        bcubed_f=bc.f,
        expansion=float(_expansion(t)),
        nmi=_nmi(t),
        n_clusters=t.n_clusters,
        coverage=t.coverage,
        n_samples=t.n_samples,
    )


class ImpurityReport(NamedTuple):
    """What a refinement did to the impurities of the global clusters (:func:`impurity_report`).

    An *impurity* is an image with a global cluster whose identity differs from the majority
    identity of that cluster (:func:`majority_identity`). Every count is over the images that had a
    global cluster (global -1 never counts).

    Attributes
    ----------
    n_impurities : int
        Impurities in the global labels.
    n_discarded : int
        Images with a global cluster that the refined labels set to -1.
    impurities_removed : float
        Share of the impurities that were discarded (1.0 when there is none).
    discard_precision : float
        Share of the discarded images that are impurities (1.0 when nothing was discarded).
    true_members_cut : int
        Discarded images of their cluster's majority identity.
    precision_gain : float
        Pairwise precision of the refined labels minus that of the global ones, -1 dropped
        (the retained images).
    recall_change : float
        Pairwise recall of the refined labels minus that of the global ones, each -1 a singleton
        (what the discarded true members cost).
    coverage : float
        Share of all images that keep a cluster after refinement.
    """

    n_impurities: int
    n_discarded: int
    impurities_removed: float
    discard_precision: float
    true_members_cut: int
    precision_gain: float
    recall_change: float
    coverage: float


def majority_identity(true_labels: Any, pred_labels: Any) -> np.ndarray:
    """The most frequent true identity of each sample's predicted cluster.

    Ties go to the identity that sorts first. Samples with ``pred == -1`` get -1; identities are
    returned as codes ``0..T-1`` of the sorted distinct true labels.

    Examples
    --------
    >>> majority_identity(["b", "a", "a", "c", "c"], [0, 0, 0, 1, 1])
    array([0, 0, 0, 2, 2])
    """
    t = _table(true_labels, pred_labels, "cluster")
    pred = check_labels(pred_labels, "pred_labels")
    if pred.size == 0:
        return np.zeros(0, dtype=np.int64)
    # best cell of each column: sort cells by (column, -count, row) and keep each column's first
    order = np.lexsort((t.rows, -t.counts, t.cols))
    first = order[np.r_[True, t.cols[order][1:] != t.cols[order][:-1]]]
    best = np.empty(t.pred_sizes.size, dtype=np.int64)
    best[t.cols[first]] = t.rows[first]
    pred_codes = dense_codes(pred)
    return np.where(pred >= 0, best[pred_codes], -1)


def impurity_report(true_labels: Any, global_labels: Any, refined_labels: Any) -> ImpurityReport:
    """How many impurities a refinement removed and how many true members it cut.

    Parameters
    ----------
    true_labels : array-like, shape (N,)
        Ground-truth identity of each sample (any hashable ids), e.g. from a labelled validation
        split.
    global_labels : array-like of int, shape (N,)
        Cluster ids before refinement, -1 = no cluster.
    refined_labels : array-like of int, shape (N,)
        The same ids after refinement: each is the global id or -1 (what
        :func:`labelrefine.refine` returns).

    Returns
    -------
    ImpurityReport

    Raises
    ------
    ValueError
        If the lengths differ, or a refined label is neither the global label nor -1.

    Examples
    --------
    >>> r = impurity_report([0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, -1, 1, -1])
    >>> r.n_impurities, r.impurities_removed, r.discard_precision, r.true_members_cut
    (1, 1.0, 0.5, 1)
    """
    g = check_labels(global_labels, "global_labels")
    refined = check_labels(refined_labels, "refined_labels")
    true = check_cameras(true_labels, "true_labels")
    check_same_length(true_labels=true, global_labels=g, refined_labels=refined)
    moved = (refined != g) & (refined != -1)
    if moved.any():
        i = int(np.flatnonzero(moved)[0])
        raise ValueError(
            f"refined_labels must hold each sample's global label or -1; sample {i} has {refined[i]}, "
            f"its global label is {g[i]}"
        )
    clustered = g >= 0
    impurity = clustered & (true != majority_identity(true, g))
    discarded = clustered & (refined < 0)
    n_impurities, n_discarded = int(impurity.sum()), int(discarded.sum())
    removed = int((impurity & discarded).sum())
    before_kept, after_kept = _pairwise(_table(true, g, "drop")), _pairwise(_table(true, refined, "drop"))
    before_all, after_all = _pairwise(_table(true, g, "singleton")), _pairwise(_table(true, refined, "singleton"))
    return ImpurityReport(
        n_impurities=n_impurities,
        n_discarded=n_discarded,
        impurities_removed=removed / n_impurities if n_impurities else 1.0,
        discard_precision=removed / n_discarded if n_discarded else 1.0,
        true_members_cut=n_discarded - removed,
        precision_gain=after_kept.precision - before_kept.precision,
        recall_change=after_all.recall - before_all.recall,
        coverage=float((refined >= 0).mean()) if refined.size else 0.0,
    )
