"""Pivot scores (paper Eq. 4) and pivot selection on a kNN graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._types import KnnGraph, check_knn_graph
from ._validation import (
    check_bool,
    check_cameras,
    check_choice,
    check_features,
    check_int,
    check_labels,
    check_probability,
    check_real,
    to_numpy,
)

__all__ = [
    "DEFAULT_RULE",
    "EVERY_PIVOT_RULES",
    "LINKED_RULES",
    "PIVOT_RULES",
    "RuleInput",
    "RulePlan",
    "neighbours_without_self",
    "pivot_rules",
    "pivot_scores",
    "register_pivot_rule",
    "select_pivots",
    "unregister_pivot_rule",
]

PivotRule = Literal["cross-camera", "algorithm1", "all", "linked", "camera-linked", "camera", "cluster", "reference"]
PIVOT_RULES: tuple[str, ...] = (
    "cross-camera",
    "algorithm1",
    "all",
    "linked",
    "camera-linked",
    "camera",
    "cluster",
    "reference",
)
"""The built-in rules, every ``rule`` that :func:`select_pivots` accepts.

:func:`labelrefine.refine` also takes the rules added with :func:`register_pivot_rule` (all
names: :func:`pivot_rules`)."""
# the library's default, chosen by the measured study (benchmarks/refine_quality.py, docs "Choosing a pivot rule")
DEFAULT_RULE = "cross-camera"
# rules whose pivots are every sample above the mean score (Sec. III-C); they differ in what pivots vouch for
EVERY_PIVOT_RULES: tuple[str, ...] = ("cross-camera", "algorithm1", "all", "linked")
# rules whose pivots also vouch for local clusters linked to theirs by mutual nearest neighbours
LINKED_RULES: tuple[str, ...] = ("linked", "camera-linked")
ScoreFormula = Literal["eq4", "reference"]

# Keeps Eq. 4 finite when every distance is 0 (all features identical).
_EPS = 1e-12


def graph_from(feats: Any, knn: Any, k: int, neighbours: int) -> tuple[KnnGraph, np.ndarray | None]:
    """The kNN graph and the features checked on the way (None when only ``knn`` was read).

    ``knn`` is checked, or the graph computed from ``feats`` (``neighbours`` others) when ``knn`` is None.
    """
    if feats is None and knn is None:
        raise ValueError("give feats (to compute the kNN graph) or knn (a precomputed graph); got neither")
    if knn is None:
        x = check_features(feats)
        _check_k(k, x.shape[0], "feats")
        from .neighbors import _knn, _resolve_backend

        return _knn(x, neighbours, _resolve_backend("auto", x)), x
    graph = check_knn_graph(knn)
    _check_k(k, graph.indices.shape[0], "knn")
    return graph, None


def _check_k(k: int, n: int, source: str) -> None:
    """``2 <= k <= n - 1``, with a message that says so when n is too small for any k."""
    if n < 3:
        raise ValueError(
            f"pivot scores need at least 3 samples (k >= 2 neighbours other than the sample itself); "
            f"{source} has {n} rows"
        )
    check_int(k, "k", low=2, high=n - 1)


def neighbours_without_self(indices: np.ndarray, distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances of the first k neighbours of each row other than the row's own sample."""
    n, m = indices.shape
    is_self = indices == np.arange(n)[:, None]
    if is_self[:, 0].all() and m > k:  # the usual layout, self first: views, no copy
        return indices[:, 1 : k + 1], distances[:, 1 : k + 1]
    n_self = is_self.sum(axis=1)
    if n_self.max() > 1:
        raise ValueError(f"knn lists sample {int(n_self.argmax())} more than once as its own neighbour")
    if m - n_self.max() < k:
        raise ValueError(
            f"knn has {m} columns but some rows have only {m - n_self.max()} neighbours other than the "
            f"sample itself; k={k} needs at least {k} (compute the graph with knn(feats, k))"
        )
    # skip the self column where a row has one (wherever it sits), otherwise take the first k
    self_at = np.where(n_self > 0, is_self.argmax(axis=1), m)[:, None]
    columns = np.arange(k)[None, :]
    columns = columns + (columns >= self_at)
    return np.take_along_axis(indices, columns, axis=1), np.take_along_axis(distances, columns, axis=1)


def _eq4(distances: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Sum over each row of ``1 / (dist + mean(dist))``, in float64, optionally over ``counted`` entries only."""
    d = np.maximum(distances, 0.0, dtype=np.float64)  # clips float rounding below 0; a new array we may overwrite
    d += max(d.mean(), _EPS)
    np.reciprocal(d, out=d)
    if counted is not None:
        d *= counted
    return d.sum(axis=1)


def pivot_scores(
    feats: Any = None,
    *,
    knn: KnnGraph | tuple[Any, Any] | None = None,
    k: int = 15,
    formula: ScoreFormula = "eq4",
    min_sim: float = 0.5,
) -> np.ndarray:
    """Neighbourhood density scores of paper Eq. 4.

    ``score(i) = sum_{j in top_k(i)} 1 / (dist(i, j) + mean(dist))`` with ``dist = 1 - cosine similarity``.

    The paper (Sec. III-C) defines ``mean(dist)`` as "the mean distance across all pairs"; the
    authors' released code, and this function, take the mean over the kNN pairs only (the
    N x k distances of the graph), which needs no N x N matrix.

    Parameters
    ----------
    feats : array-like of shape (N, D), optional
        Features; L2-normalised internally (not in place) to build the kNN graph with
        :func:`labelrefine.neighbors.knn`. Give either ``feats`` or ``knn``.
    knn : KnnGraph or tuple (indices, distances) of arrays of shape (N, m), optional
        Precomputed kNN graph in cosine distance, rows sorted by distance, the sample itself
        present or not (as returned by :func:`labelrefine.neighbors.knn`, which puts it first);
        ``knn(feats, k)`` or wider.
    k : int, default 15
        Number of neighbours, ``2 <= k < N``.
    formula : {"eq4", "reference"}, default "eq4"
        ``"eq4"``: the k nearest neighbours other than ``i`` itself; ``mean(dist)`` is the
        mean of those N x k distances (not of all pairs, see above). ``"reference"``: what the
        authors' released code does: the first k columns of the graph *including* the sample itself, ``mean(dist)`` over
        that whole (N, k) matrix, and each row's sum stops at the first neighbour whose
        similarity ``1 - dist`` is below ``min_sim``.
    min_sim : float, default 0.5
        Similarity cut-off of the ``"reference"`` formula; ignored by ``"eq4"``.

    Returns
    -------
    numpy.ndarray of shape (N,), float64
        The scores. Pivots are samples whose score is above the mean score.

    Raises
    ------
    ValueError
        If both or neither of ``feats`` and ``knn`` are given, ``k`` is out of range, or the
        graph has too few neighbours per row.

    Examples
    --------
    >>> import numpy as np
    >>> indices = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
    >>> distances = np.array([[0.0, 0.1, 0.3], [0.0, 0.1, 0.2], [0.0, 0.2, 0.3]])
    >>> pivot_scores(knn=(indices, distances), k=2).round(3)
    array([5.333, 5.833, 4.5  ])
    """
    eq4 = check_choice(formula, "formula", ("eq4", "reference")) == "eq4"
    if feats is not None and knn is not None:
        raise ValueError("give exactly one of feats (to compute the kNN graph) or knn (a precomputed graph)")
    if not eq4:
        min_sim = check_probability(min_sim, "min_sim")
    indices, distances = graph_from(feats, knn, k, neighbours=k if eq4 else k - 1)[0]
    return scores_from_graph(indices, distances, k, "eq4" if eq4 else "reference", min_sim)


def scores_from_graph(indices: np.ndarray, distances: np.ndarray, k: int, formula: str, min_sim: float) -> np.ndarray:
    """:func:`pivot_scores` on a graph that :func:`graph_from` has checked (so that callers check it once)."""
    if formula == "eq4":
        return _eq4(neighbours_without_self(indices, distances, k)[1])
    if distances.shape[1] < k:
        raise ValueError(f"knn has {distances.shape[1]} columns; the reference formula with k={k} needs at least {k}")
    if not bool((indices[:, 0] == np.arange(indices.shape[0])).all()):
        raise ValueError(
            f"knn has no self column: the reference formula (the authors' code) counts each sample itself among its "
            f"k={k} columns, so it needs a graph with the sample first, e.g. knn(feats, {k - 1}) (includes_self=True)"
        )
    distances = distances[:, :k]
    # leading run of neighbours with similarity >= min_sim: the authors' loop breaks at the first one below
    return _eq4(distances, counted=np.logical_and.accumulate(1.0 - distances >= min_sim, axis=1))


def select_pivots(
    scores: Any,
    global_labels: Any,
    cams: Any,
    *,
    rule: PivotRule = "cross-camera",
) -> np.ndarray:
    """Choose pivots among samples whose score is above the mean score.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Scores from :func:`pivot_scores`.
    global_labels : array-like of int, shape (N,)
        Global cluster ids, -1 = outlier (outliers are never pivots).
    cams : array-like of shape (N,)
        Camera of each sample (any hashable ids).
    rule : str, default "cross-camera"
        One of :data:`PIVOT_RULES`. ``"cross-camera"``, ``"algorithm1"``, ``"all"`` and
        ``"linked"``: every eligible sample is a pivot, as Sec. III-C selects them ("we select
        samples with score higher than the mean of all score values as the pivots"); they
        differ in what a pivot vouches for, see :func:`labelrefine.refine`. Only
        ``"algorithm1"`` reads Algorithm 1 literally (Eq. 5 once per pivot); ``"all"`` and
        ``"linked"`` are other readings, and ``"cross-camera"`` (the default) is the library's
        own rule, chosen by measurement (docs "Choosing a pivot rule"), not the paper's.
        ``"camera"`` and ``"camera-linked"``: in each (global cluster, camera) group, the
        eligible member with the highest score (ties: lowest index). ``"cluster"``: one pivot
        per global cluster, the eligible member with the highest score. ``"reference"``: one
        pivot per global cluster, the *last* eligible member in sample order (the authors'
        released code).

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the pivots; groups without an eligible member have none.

    Examples
    --------
    >>> select_pivots([3.0, 1.0, 2.5, 0.1], [0, 0, 0, 0], ["a", "a", "b", "b"], rule="camera")
    array([0, 2])
    >>> select_pivots([3.0, 1.0, 2.5, 0.1], [0, 0, 0, 0], ["a", "a", "b", "b"], rule="reference")
    array([2])
    """
    check_choice(rule, "rule", PIVOT_RULES)
    scores = to_numpy(scores, "scores")
    if scores.ndim != 1 or scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must be a 1-D real array, got shape {scores.shape} and dtype {scores.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite, got NaN or infinity")
    labels = check_labels(global_labels, "global_labels", n=scores.shape[0])
    return _select_pivots(scores, labels, check_cameras(cams, "cams", n=scores.shape[0]), rule)


def _select_pivots(scores: np.ndarray, labels: np.ndarray, cam_codes: np.ndarray, rule: str) -> np.ndarray:
    """:func:`select_pivots` on checked arrays (``cam_codes`` 0..C-1) and a built-in ``rule``."""
    if scores.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    eligible = np.flatnonzero((scores > scores.mean()) & (labels >= 0))
    if rule in EVERY_PIVOT_RULES:
        return eligible
    # Sort each group's eligible members best first and keep the first of each group. lexsort is
    # stable and `eligible` ascends, so equal scores keep the lowest index first.
    per_camera = rule in ("camera", "camera-linked")
    groups = [labels[eligible], cam_codes[eligible]] if per_camera else [labels[eligible]]
    best_first = -eligible if rule == "reference" else -scores[eligible]
    order = np.lexsort([best_first, *groups[::-1]])
    sorted_groups = np.stack(groups)[:, order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = (sorted_groups[:, 1:] != sorted_groups[:, :-1]).any(axis=0)
    return np.sort(eligible[order[first]])


# ----------------------------------------------------------------------------------------------
# the registry of pivot rules: what refine(rule=...) dispatches on
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    """What a pivot rule sees in one :func:`labelrefine.refine` call; every array is already checked.

    Attributes
    ----------
    global_labels, local_labels : numpy.ndarray of int64, shape (N,)
        Global and local cluster ids, -1 = none.
    cams : numpy.ndarray of int64, shape (N,)
        Camera codes ``0..C-1``.
    scores : numpy.ndarray of float64, shape (N,)
        Pivot scores by the rule's formula (paper Eq. 4 unless registered with ``formula="reference"``).
    graph : KnnGraph
        The kNN graph the scores came from (at least ``k`` neighbours besides each sample).
    feats : numpy.ndarray or None
        The checked features: always given to a rule registered with ``needs_feats=True``.
    k : int
        Neighbours of the score.
    link_k, max_deviation :
        ``refine``'s options as the caller passed them, unchecked: a rule that reads one checks it.
    """

    global_labels: np.ndarray
    local_labels: np.ndarray
    cams: np.ndarray
    scores: np.ndarray
    graph: KnnGraph
    feats: np.ndarray | None
    k: int
    link_k: Any
    max_deviation: Any


@dataclass(frozen=True)
class RulePlan:
    """What a pivot rule decides; :func:`labelrefine.refine` applies it (paper Eq. 5).

    Attributes
    ----------
    pivots : numpy.ndarray of int
        Indices of the pivots; a member of a refined group is kept when a pivot vouches for it.
    links : numpy.ndarray of int64, shape (N, m), optional
        Each sample's neighbours (itself excluded): local clusters joined to a vouched one by
        mutual neighbours are vouched for too (the ``"linked"`` rules).
    every : bool, default False
        Keep a member only when every pivot of its group vouches for it (``"algorithm1"``).
    evidence : tuple (features, max_deviation), optional
        Let the other cameras decide where they can (the ``"cross-camera"`` rule).
    """

    pivots: np.ndarray
    links: np.ndarray | None = None
    every: bool = False
    evidence: tuple[np.ndarray, float] | None = None


@dataclass(frozen=True)
class _Rule:
    plan: Callable[[RuleInput], RulePlan]
    formula: ScoreFormula
    needs_feats: bool


_RULES: dict[str, _Rule] = {}


def register_pivot_rule(
    name: str, *, formula: ScoreFormula = "eq4", needs_feats: bool = False
) -> Callable[[Callable[[RuleInput], RulePlan]], Callable[[RuleInput], RulePlan]]:
    """Decorator that makes ``refine(..., rule=name)`` call the decorated ``plan(inputs) -> RulePlan``.

    Parameters
    ----------
    name : str
        The rule's name; a name already registered is refused (:func:`unregister_pivot_rule` first).
    formula : {"eq4", "reference"}, default "eq4"
        Score formula of :func:`pivot_scores` that fills ``RuleInput.scores``.
    needs_feats : bool, default False
        The rule reads ``RuleInput.feats``: ``refine`` then refuses a call without features.

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine import refine
    >>> @register_pivot_rule("best-only")
    ... def best_only(inputs):
    ...     return RulePlan(pivots=np.array([int(np.argmax(inputs.scores))]))
    >>> "best-only" in pivot_rules()
    True
    >>> unregister_pivot_rule("best-only")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if name in _RULES:
        raise ValueError(f"name must be a new pivot rule, got {name!r}, which is registered already")
    check_choice(formula, "formula", ("eq4", "reference"))
    needs_feats = check_bool(needs_feats, "needs_feats")

    def register(plan: Callable[[RuleInput], RulePlan]) -> Callable[[RuleInput], RulePlan]:
        _RULES[name] = _Rule(plan, formula, needs_feats)
        return plan

    return register


def unregister_pivot_rule(name: str) -> None:
    """Remove a rule added with :func:`register_pivot_rule` (the built-in rules cannot be removed)."""
    if name in PIVOT_RULES or name not in _RULES:
        raise ValueError(f"name must be a rule added with register_pivot_rule, got {name!r}")
    del _RULES[name]


def pivot_rules() -> tuple[str, ...]:
    """Names of every rule that :func:`labelrefine.refine` accepts now: :data:`PIVOT_RULES` and those registered."""
    return tuple(_RULES)


def rule_entry(rule: Any) -> _Rule:
    """The registered rule named ``rule`` (``ValueError`` listing the names otherwise)."""
    return _RULES[check_choice(rule, "rule", pivot_rules())]


def _links(inputs: RuleInput) -> np.ndarray:
    """Each sample's first ``link_k`` neighbours other than itself (default ``min(10, k)``)."""
    link_k = min(10, inputs.k) if inputs.link_k is None else check_int(inputs.link_k, "link_k", low=1, high=inputs.k)
    return neighbours_without_self(inputs.graph.indices, inputs.graph.distances, link_k)[0]


def _pivots(inputs: RuleInput, rule: str) -> np.ndarray:
    return _select_pivots(inputs.scores, inputs.global_labels, inputs.cams, rule)


@register_pivot_rule("cross-camera", needs_feats=True)
def _cross_camera(inputs: RuleInput) -> RulePlan:
    max_deviation = check_real(inputs.max_deviation, "max_deviation", low=0.0, high=np.inf, open_low=True)
    assert inputs.feats is not None  # needs_feats
    return RulePlan(_pivots(inputs, "cross-camera"), evidence=(inputs.feats, max_deviation))


@register_pivot_rule("algorithm1")
def _algorithm1(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "algorithm1"), every=True)


@register_pivot_rule("all")
def _all(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "all"))


@register_pivot_rule("linked")
def _linked(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "linked"), links=_links(inputs))


@register_pivot_rule("camera-linked")
def _camera_linked(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "camera-linked"), links=_links(inputs))


@register_pivot_rule("camera")
def _camera(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "camera"))


@register_pivot_rule("cluster")
def _cluster(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "cluster"))


@register_pivot_rule("reference", formula="reference")
def _reference(inputs: RuleInput) -> RulePlan:
    return RulePlan(_pivots(inputs, "reference"))
