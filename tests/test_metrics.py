"""Cluster-quality metrics against loops written from the definitions, scikit-learn and hand-made cases."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import fowlkes_mallows_score, normalized_mutual_info_score

from labelrefine.metrics import (
    ClusterReport,
    PrecisionRecallF,
    bcubed_scores,
    cluster_report,
    expansion,
    impurity_report,
    majority_identity,
    nmi,
    pairwise_scores,
)

# ---------------------------------------------------------------- slow references from the definitions


def apply_outliers(true, pred, mode):
    """The three outlier conventions, one sample at a time."""
    true, pred = np.asarray(true).tolist(), np.asarray(pred).tolist()
    out_true, out_pred = [], []
    fresh = 0
    for t, p in zip(true, pred, strict=True):
        if p == -1 and mode == "drop":
            continue
        if p == -1 and mode == "singleton":
            p = f"singleton {fresh}"  # never equal to an int cluster id
            fresh += 1
        out_true.append(t)
        out_pred.append(p)
    return out_true, out_pred


def f_score(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def loop_pairwise(true, pred, mode="drop"):
    """All unordered pairs, counted one by one."""
    true, pred = apply_outliers(true, pred, mode)
    if not true:
        return 0.0, 0.0, 0.0
    both = same_pred = same_true = 0
    for i, j in itertools.combinations(range(len(true)), 2):
        sp_ = pred[i] == pred[j]
        st_ = true[i] == true[j]
        both += sp_ and st_
        same_pred += sp_
        same_true += st_
    p = both / same_pred if same_pred else 1.0
    r = both / same_true if same_true else 1.0
    return p, r, f_score(p, r)


def loop_bcubed(true, pred, mode="drop"):
    """Per-sample precision and recall, averaged."""
    true, pred = apply_outliers(true, pred, mode)
    n = len(true)
    if not n:
        return 0.0, 0.0, 0.0
    ps, rs = [], []
    for s in range(n):
        cluster = [i for i in range(n) if pred[i] == pred[s]]
        identity = [i for i in range(n) if true[i] == true[s]]
        inter = len(set(cluster) & set(identity))
        ps.append(inter / len(cluster))
        rs.append(inter / len(identity))
    p, r = sum(ps) / n, sum(rs) / n
    return p, r, f_score(p, r)


def loop_expansion(true, pred, mode="drop"):
    true, pred = apply_outliers(true, pred, mode)
    clusters = defaultdict(set)
    for t, p in zip(true, pred, strict=True):
        clusters[t].add(p)
    return sum(len(c) for c in clusters.values()) / len(clusters) if clusters else 0.0


def learn_to_cluster_pairwise(true, pred):
    """learn-to-cluster `pairwise`: (sum n_ij^2 - N) over (sum b_j^2 - N) and (sum a_i^2 - N), dense table."""
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(table, (t, p), 1)
    n = len(true)
    tk = (table**2).sum() - n
    pk = (table.sum(0) ** 2).sum() - n
    qk = (table.sum(1) ** 2).sum() - n
    return tk / pk, tk / qk


def learn_to_cluster_bcubed(true, pred):
    """learn-to-cluster `bcubed`: per identity, per cluster it meets, n^2 / |cluster| and n^2 / |identity|."""
    true, pred = np.asarray(true), np.asarray(pred)
    pre = rec = 0.0
    for t in np.unique(true):
        members = np.flatnonzero(true == t)
        for p in np.unique(pred[members]):
            n = np.count_nonzero(pred[members] == p)
            pre += n**2 / np.count_nonzero(pred == p)
            rec += n**2 / members.size
    return pre / len(true), rec / len(true)


def random_labels(rng, n, n_true, n_pred, noise):
    true = rng.integers(0, n_true, n)
    pred = np.where(rng.random(n) < 0.7, true * 3 % max(n_pred, 1), rng.integers(0, n_pred, n))
    pred[rng.random(n) < noise] = -1
    return true, pred


# ---------------------------------------------------------------- against the loops


@pytest.mark.parametrize("mode", ["drop", "singleton", "cluster"])
@pytest.mark.parametrize("seed", range(6))
def test_against_loops(mode, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    true, pred = random_labels(rng, n, int(rng.integers(1, 10)), int(rng.integers(1, 12)), noise=0.2)
    assert pairwise_scores(true, pred, outliers=mode) == pytest.approx(loop_pairwise(true, pred, mode))
    assert bcubed_scores(true, pred, outliers=mode) == pytest.approx(loop_bcubed(true, pred, mode))
    assert expansion(true, pred, outliers=mode) == pytest.approx(loop_expansion(true, pred, mode))
    report = cluster_report(true, pred, outliers=mode)
    assert report.pairwise_precision == pytest.approx(loop_pairwise(true, pred, mode)[0])
    assert report.bcubed_recall == pytest.approx(loop_bcubed(true, pred, mode)[1])
    assert report.coverage == pytest.approx(np.mean(pred != -1))
    assert report.n_clusters == len(set(pred.tolist()) - {-1})
    assert report.n_samples == n


@pytest.mark.parametrize("seed", range(4))
def test_cluster_mode_equals_learn_to_cluster(seed):
    rng = np.random.default_rng(seed)
    true, pred = random_labels(rng, 200, 20, 25, noise=0.15)
    assert (pred == -1).any()
    p, r = learn_to_cluster_pairwise(true, pred)
    assert pairwise_scores(true, pred, outliers="cluster") == pytest.approx((p, r, 2 * p * r / (p + r)), abs=1e-12)
    p, r = learn_to_cluster_bcubed(true, pred)
    assert bcubed_scores(true, pred, outliers="cluster") == pytest.approx((p, r, 2 * p * r / (p + r)), abs=1e-12)
    # without -1 the three modes agree
    clean = np.where(pred == -1, 99, pred)
    reports = {cluster_report(true, clean, outliers=m) for m in ("drop", "singleton", "cluster")}
    assert len(reports) == 1


@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    true, pred = random_labels(rng, 500, 40, 50, noise=0.0)
    p, r, _ = pairwise_scores(true, pred)
    assert math.sqrt(p * r) == pytest.approx(fowlkes_mallows_score(true, pred), abs=1e-12)
    assert nmi(true, pred) == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-12)
    assert cluster_report(true, pred).nmi == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-12)
    # with outliers dropped, sklearn on the kept samples
    noisy = pred.copy()
    noisy[rng.random(500) < 0.3] = -1
    keep = noisy != -1
    assert nmi(true, noisy) == pytest.approx(normalized_mutual_info_score(true[keep], noisy[keep]), abs=1e-12)
    p, r, _ = pairwise_scores(true, noisy)
    assert math.sqrt(p * r) == pytest.approx(fowlkes_mallows_score(true[keep], noisy[keep]), abs=1e-12)


@pytest.mark.parametrize(
    ("true", "pred"),
    [([0, 0, 0, 0], [0, 1, 2, 3]), ([0, 1, 2, 3], [5, 5, 5, 5]), ([0, 0, 1, 1], [0, 0, 1, 1]), ([3, 3], [1, 2])],
)
def test_nmi_degenerate_matches_sklearn(true, pred):
    assert nmi(true, pred) == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-12)


# ---------------------------------------------------------------- hand-computed cases


def test_hand_computed():
    # identity A = samples 0,1,2; B = 3,4. Clusters: {0,1}, {2,3,4}.
    true, pred = ["A", "A", "A", "B", "B"], [10, 10, 20, 20, 20]
    # pairs: same cluster {01, 23, 24, 34} = 4, same identity {01, 02, 12, 34} = 4, both {01, 34} = 2
    assert pairwise_scores(true, pred) == (0.5, 0.5, 0.5)
    # bcubed precision: 1, 1, 1/3, 2/3, 2/3 -> 11/15; recall: 2/3, 2/3, 1/3, 1, 1 -> 11/15
    p, r, f = bcubed_scores(true, pred)
    assert (p, r, f) == pytest.approx((11 / 15, 11 / 15, 11 / 15))
    assert expansion(true, pred) == 1.5  # A meets 2 clusters, B meets 1


def test_outlier_modes_hand_computed():
    true, pred = [0, 0, 0, 1], [5, 5, -1, -1]
    # drop: keeps samples 0, 1 (one cluster, one identity); identity 1 disappears entirely
    assert cluster_report(true, pred).coverage == 0.5
    assert pairwise_scores(true, pred) == (1.0, 1.0, 1.0)
    assert expansion(true, pred) == 1.0  # mean over the identities that keep a sample
    # singleton: clusters {0,1}, {2}, {3}; identity pairs 01, 02, 12 -> recall 1/3
    assert pairwise_scores(true, pred, outliers="singleton") == pytest.approx((1.0, 1 / 3, 0.5))
    # cluster: clusters {0,1}, {2,3}; same-cluster pairs 01, 23 -> both 01 -> precision 1/2, recall 1/3
    assert pairwise_scores(true, pred, outliers="cluster") == pytest.approx((0.5, 1 / 3, 0.4))
    assert expansion(true, pred, outliers="singleton") == 1.5
    assert expansion(true, pred, outliers="cluster") == 1.5


def test_negative_and_string_true_labels_are_identities():
    a = cluster_report([-1, -1, -7, -7], [0, 0, 1, 1])
    b = cluster_report(["x", "x", "y", "y"], [0, 0, 1, 1])
    assert a == b
    assert a.pairwise_f == a.bcubed_f == a.nmi == a.expansion == 1.0


# ---------------------------------------------------------------- degenerate inputs, no warnings


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        # one cluster over two identities: pairs together 1+1 of 6 -> precision 1/3, recall 1
        ([0, 0, 1, 1], [3, 3, 3, 3], {"pairwise_precision": 1 / 3, "pairwise_recall": 1.0, "expansion": 1.0}),
        # all singletons: no predicted pairs -> precision 1.0, recall 0.0
        ([0, 0, 1, 1], [0, 1, 2, 3], {"pairwise_precision": 1.0, "pairwise_recall": 0.0, "pairwise_f": 0.0}),
        # identities all distinct and clusters all distinct: no pairs anywhere -> 1.0
        ([0, 1, 2], [0, 1, 2], {"pairwise_precision": 1.0, "pairwise_recall": 1.0, "bcubed_f": 1.0}),
        # one sample
        ([4], [9], {"pairwise_f": 1.0, "bcubed_f": 1.0, "nmi": 1.0, "expansion": 1.0, "coverage": 1.0}),
        # all noise, dropped: nothing to score
        ([0, 1, 1], [-1, -1, -1], {"pairwise_f": 0.0, "bcubed_f": 0.0, "nmi": 0.0, "expansion": 0.0, "coverage": 0.0}),
        # empty input
        ([], [], {"pairwise_f": 0.0, "bcubed_precision": 0.0, "coverage": 0.0, "n_samples": 0, "n_clusters": 0}),
    ],
)
def test_degenerate_inputs_are_defined_and_silent(true, pred, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = cluster_report(true, pred)
        for mode in ("singleton", "cluster"):
            cluster_report(true, pred, outliers=mode)
    for field, value in expected.items():
        assert getattr(report, field) == pytest.approx(value), field
    assert all(isinstance(v, (int, float)) and not isinstance(v, np.generic) for v in report)
    assert all(math.isfinite(v) for v in report)


def test_all_noise_other_modes():
    true, pred = [0, 0, 1], [-1, -1, -1]
    single = cluster_report(true, pred, outliers="singleton")
    assert (single.pairwise_precision, single.pairwise_recall, single.expansion) == (1.0, 0.0, 1.5)
    one = cluster_report(true, pred, outliers="cluster")
    assert (one.pairwise_precision, one.pairwise_recall, one.expansion) == pytest.approx((1 / 3, 1.0, 1.0))
    assert single.n_clusters == one.n_clusters == 0


# ---------------------------------------------------------------- invariants


labels_strategy = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(-1, 6), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 2**16), mode=st.sampled_from(["drop", "singleton", "cluster"]))
def test_renaming_ids_changes_nothing(labels, seed, mode):
    true, pred = (np.array(x) for x in labels)
    rng = np.random.default_rng(seed)
    rename_true = rng.permutation(50)[:7] - 20  # any ints, negative included
    rename_pred = rng.permutation(100)[:7]  # cluster ids stay >= 0; -1 stays -1
    renamed_pred = np.where(pred == -1, -1, rename_pred[np.maximum(pred, 0)])
    a = cluster_report(true, pred, outliers=mode)
    b = cluster_report(rename_true[true], renamed_pred, outliers=mode)
    assert a == pytest.approx(b, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labels=labels_strategy)
def test_swapping_true_and_pred_swaps_precision_and_recall(labels):
    true, pred = np.array(labels[0]), np.abs(np.array(labels[1]))  # no -1: both are plain partitions
    pw, pw_swapped = pairwise_scores(true, pred), pairwise_scores(pred, true)
    assert (pw.precision, pw.recall) == pytest.approx((pw_swapped.recall, pw_swapped.precision))
    bc, bc_swapped = bcubed_scores(true, pred), bcubed_scores(pred, true)
    assert (bc.precision, bc.recall) == pytest.approx((bc_swapped.recall, bc_swapped.precision))
    assert nmi(true, pred) == pytest.approx(nmi(pred, true))
    assert 0.0 <= pw.f <= 1.0 and 0.0 <= bc.f <= 1.0 and 0.0 <= nmi(true, pred) <= 1.0
    assert bc.precision <= 1.0 + 1e-12 and pw.precision <= 1.0
    assert expansion(true, pred) >= 1.0


# ---------------------------------------------------------------- API and input handling


def test_return_types_and_inputs_untouched():
    true = np.array([1, 1, 2, 2, 2])
    pred = np.array([0, -1, 3, 3, -1])
    true_copy, pred_copy = true.copy(), pred.copy()
    for mode in ("drop", "singleton", "cluster"):
        report = cluster_report(true, pred, outliers=mode)
        assert isinstance(report, ClusterReport)
        assert isinstance(pairwise_scores(true, pred, outliers=mode), PrecisionRecallF)
        assert isinstance(bcubed_scores(true, pred, outliers=mode), PrecisionRecallF)
        assert type(expansion(true, pred, outliers=mode)) is float
        assert type(report.n_clusters) is int and type(report.n_samples) is int
    np.testing.assert_array_equal(true, true_copy)
    np.testing.assert_array_equal(pred, pred_copy)


def test_accepts_lists_and_other_int_dtypes():
    a = cluster_report([0, 0, 1], [2, 2, 2])
    b = cluster_report(np.array([0, 0, 1], dtype=np.uint8), np.array([2, 2, 2], dtype=np.int16))
    assert a == b


@pytest.mark.parametrize(
    ("true", "pred", "kwargs", "error", "match"),
    [
        ([0, 1], [0, 1, 2], {}, ValueError, r"same length.*true_labels=2, pred_labels=3"),
        ([0, 1], [0, -2], {}, ValueError, r"pred_labels must be >= -1.*got minimum -2"),
        ([0, 1], [0.5, 1.0], {}, TypeError, r"pred_labels must hold integers.*float64"),
        ([0, 1], [[0, 1]], {}, ValueError, r"pred_labels must be 1-D.*\(1, 2\)"),
        ([[0, 1]], [0, 1], {}, ValueError, r"true_labels must be 1-D.*\(1, 2\)"),
        ([0, 1], [0, 1], {"outliers": "ignore"}, ValueError, r"outliers must be one of 'drop'.*got 'ignore'"),
        ([0, np.nan], [0, 1], {}, ValueError, r"true_labels must not contain NaN"),
        (None, [0, 1], {}, TypeError, r"true_labels must be an array, got None"),
    ],
)
def test_bad_input_messages(true, pred, kwargs, error, match):
    for fn in (cluster_report, pairwise_scores, bcubed_scores, expansion, nmi):
        with pytest.raises(error, match=match):
            fn(true, pred, **kwargs)


# ---------------------------------------------------------------- impurity report


def loop_impurity_report(true, global_labels, refined):
    """Impurities and what the refinement did to them, image by image."""
    true, g, r = list(true), list(global_labels), list(refined)
    majority = {}
    for c in set(g) - {-1}:
        counts: dict = defaultdict(int)
        for t, label in zip(true, g, strict=True):
            if label == c:
                counts[t] += 1
        majority[c] = min(counts, key=lambda t: (-counts[t], t))  # ties: the identity that sorts first
    impurity = [label != -1 and t != majority[label] for t, label in zip(true, g, strict=True)]
    discarded = [label != -1 and after == -1 for label, after in zip(g, r, strict=True)]
    removed = sum(i and d for i, d in zip(impurity, discarded, strict=True))
    n_impurities, n_discarded = sum(impurity), sum(discarded)
    return (
        n_impurities,
        n_discarded,
        removed / n_impurities if n_impurities else 1.0,
        removed / n_discarded if n_discarded else 1.0,
        n_discarded - removed,
        loop_pairwise(true, r, "drop")[0] - loop_pairwise(true, g, "drop")[0],
        loop_pairwise(true, r, "singleton")[1] - loop_pairwise(true, g, "singleton")[1],
        sum(after != -1 for after in r) / len(r) if r else 0.0,
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_impurity_report_equals_loop(n, seed, discard):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, n)
    g = rng.integers(-1, 4, n)
    refined = np.where(rng.random(n) < discard, -1, g)
    report = impurity_report(true, g, refined)
    np.testing.assert_allclose(tuple(report), loop_impurity_report(true, g, refined), rtol=1e-12, atol=1e-12)


def test_impurity_report_hand_computed():
    # cluster 0: identity 7 three times, identity 8 once (the impurity); cluster 1: a tie, 3 sorts before 5
    true = [7, 7, 7, 8, 5, 3, 9]
    g = [0, 0, 0, 0, 1, 1, -1]
    np.testing.assert_array_equal(majority_identity(true, g), [2, 2, 2, 2, 0, 0, -1])  # codes of 3 5 7 8 9
    report = impurity_report(true, g, [0, 0, -1, -1, -1, 1, -1])
    assert (report.n_impurities, report.n_discarded, report.true_members_cut) == (2, 3, 1)
    assert (report.impurities_removed, report.discard_precision) == (1.0, 2 / 3)
    assert report.coverage == 3 / 7
    nothing = impurity_report(true, g, g)
    assert (nothing.impurities_removed, nothing.discard_precision, nothing.precision_gain) == (0.0, 1.0, 0.0)


def test_impurity_report_bad_input():
    with pytest.raises(ValueError, match="refined_labels must hold each sample's global label or -1; sample 1 has 2"):
        impurity_report([0, 0], [0, 1], [0, 2])
    with pytest.raises(ValueError, match="same length"):
        impurity_report([0, 0], [0, 1], [0])
