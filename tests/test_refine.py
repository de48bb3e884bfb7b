"""refine(), pivot scores and pivot selection against loops written from the rules' definitions (docs: pivot-rules)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import brute_knn
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine import knn, refine, refine_with_pivots, relabel
from labelrefine.metrics import impurity_report
from labelrefine.pivots import PIVOT_RULES, pivot_scores, select_pivots
from labelrefine.synthetic import make_camera_biased

# ---------------------------------------------------------------- slow references from the definition


def loop_scores(indices, distances, k):
    """Eq. 4: the k nearest neighbours other than i; mean(dist) over those N x k distances."""
    rows = []
    for i in range(len(indices)):
        rows.append([d for j, d in zip(indices[i], distances[i], strict=True) if j != i][:k])
    mean = sum(sum(r) for r in rows) / (len(rows) * k)
    return np.array([sum(1.0 / (d + mean) for d in r) for r in rows])


def loop_reference_scores(indices, distances, k, min_sim):
    """The authors' loop: first k columns (self included), break at the first similarity below min_sim."""
    d = np.asarray(distances)[:, :k]
    mean = d.mean()
    scores = []
    for i in range(len(d)):
        total = 0.0
        for j in range(k):
            if 1.0 - d[i, j] < min_sim:
                break
            total += 1.0 / (d[i, j] + mean)
        scores.append(total)
    return np.array(scores)


def loop_refine(g, local, cams, scores, rule):
    """Eq. 5 with p = 1, one group at a time."""
    n = len(g)
    mean = np.mean(scores)  # the library's rounding: when all scores are equal no sample is above the mean
    groups: dict = {}
    for i in range(n):
        if g[i] != -1:
            groups.setdefault((g[i], cams[i]) if rule == "camera" else g[i], []).append(i)
    out = list(g)
    for members in groups.values():
        eligible = [i for i in members if scores[i] > mean]
        if not eligible:
            continue
        if rule == "reference":
            pivot = max(eligible)
        else:
            pivot = min(eligible, key=lambda i: (-scores[i], i))
        if local[pivot] == -1:
            continue
        for j in range(n):
            if g[j] == g[pivot] and cams[j] == cams[pivot] and local[j] != local[pivot]:
                out[j] = -1
    return np.array(out)


def loop_algorithm1(g, local, cams, scores):
    """Algorithm 1 read literally: Eq. 5 once for every above-mean pivot, each on the original labels, so
    a member of a group survives only when it lies in the local cluster of every pivot of its group."""
    n = len(g)
    mean = np.mean(scores)
    out = list(g)
    for i in range(n):
        if g[i] == -1 or scores[i] <= mean or local[i] == -1:
            continue
        for j in range(n):
            if g[j] == g[i] and cams[j] == cams[i] and local[j] != local[i]:
                out[j] = -1
    return np.array(out)


def loop_cross_camera(g, local, cams, feats, scores, max_deviation):
    """The "cross-camera" rule from its definition (docs "Choosing a pivot rule"), one sample at a time."""
    n = len(g)
    unit = [np.asarray(f, dtype=float) / np.linalg.norm(f) for f in feats]
    camera_mean = {c: np.mean([unit[i] for i in range(n) if cams[i] == c], axis=0) for c in set(cams)}
    z = []
    for i in range(n):
        v = unit[i] - camera_mean[cams[i]]
        z.append(v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else np.zeros_like(v))
    fragments: dict = {}
    for i in range(n):
        fragments.setdefault((g[i], cams[i], local[i]) if local[i] != -1 else ("alone", i), []).append(i)

    def outliers(ignored):
        agreement = {}
        for i in range(n):
            others = [j for j in range(n) if g[i] != -1 and g[j] == g[i] and cams[j] != cams[i]]
            if others:
                total = sum((z[j] for j in others if j not in ignored), np.zeros_like(z[i]))
                norm = np.linalg.norm(total)
                agreement[i] = float(z[i] @ total / norm) if norm > 1e-9 else 0.0  # a sum that cancels: 0
        level = {}
        for c in {g[i] for i in agreement}:
            values = sorted(agreement[i] for i in agreement if g[i] == c)
            level[c] = values[int(np.floor(0.75 * (len(values) - 1)))]
        deviation = {i: agreement[i] - level[g[i]] for i in agreement}
        sigma = max(1.4826 * float(np.median([abs(d) for d in deviation.values()])), 1e-6) if deviation else 0
        found = set()
        for members in fragments.values():
            if members[0] in deviation and np.mean([deviation[i] for i in members]) < -max_deviation * sigma:
                found |= {i for i in members if deviation[i] < -2.0 * sigma}  # members that agree alone stay
        return found, set(agreement)

    first, _ = outliers(set())  # the first pass's outliers leave the other-camera sums of the second
    found, known = outliers(first)
    out = loop_refine_all(g, local, cams, scores)  # clusters that one camera sees: the "all" rule
    for i in known:
        out[i] = -1 if i in found else g[i]
    return out


def loop_refine_all(g, local, cams, scores, links=None, one_pivot=False):
    """Every above-mean sample a pivot; a member is kept when its local cluster holds a pivot of its
    (cluster, camera) group, or, given ``links`` (each row: the sample's neighbours), when one of its
    members and a member of a kept local cluster of the group are in each other's rows (repeated
    until nothing changes). With ``one_pivot``, only the best above-mean member of each group is a pivot
    (ties: lowest index), as in the "camera" rule."""
    n = len(g)
    mean = np.mean(scores)
    out = list(g)
    for key in {(g[i], cams[i]) for i in range(n) if g[i] != -1}:
        members = [i for i in range(n) if (g[i], cams[i]) == key]
        pivots = [i for i in members if scores[i] > mean]
        if one_pivot and pivots:
            pivots = [min(pivots, key=lambda i: (-scores[i], i))]
        kept = {local[i] for i in pivots if local[i] != -1}
        if not kept:
            continue
        while links is not None:
            vouched = [b for b in members if local[b] in kept]
            grown = kept | {
                local[a] for a in members if local[a] != -1 and any(b in links[a] and a in links[b] for b in vouched)
            }
            if grown == kept:
                break
            kept = grown
        for j in members:
            if local[j] not in kept:
                out[j] = -1
    return np.array(out)


# ---------------------------------------------------------------- strategies


@st.composite
def problems(draw, min_n=6, max_n=40):
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_cams = draw(st.integers(1, 4))
    g = rng.integers(-1, draw(st.integers(1, 6)), n)
    local = rng.integers(-1, draw(st.integers(1, 6)), n)
    cams = rng.integers(0, n_cams, n)
    feats = rng.normal(size=(n, 4))
    k = draw(st.integers(2, min(8, n - 1)))
    return g, local, cams, feats, k


# ---------------------------------------------------------------- equality with the loops


@settings(max_examples=60, deadline=None)
@given(problems(), st.sampled_from(["camera", "cluster"]))
def test_refine_equals_loop(problem, rule):
    g, local, cams, feats, k = problem
    graph = brute_knn(feats, k + 1)
    result = refine(g, local, cams, feats, knn=graph, k=k, rule=rule)
    expected_scores = loop_scores(*graph, k)
    np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-12)
    np.testing.assert_array_equal(result.labels, loop_refine(g, local, cams, expected_scores, rule))


@settings(max_examples=80, deadline=None)
@given(problems(), st.floats(0.5, 4.0))
def test_cross_camera_and_algorithm1_rules_equal_loop(problem, max_deviation):
    g, local, cams, feats, k = problem
    graph = brute_knn(feats, k + 1)
    scores = loop_scores(*graph, k)
    result = refine(g, local, cams, feats, knn=graph, k=k, rule="cross-camera", max_deviation=max_deviation)
    np.testing.assert_array_equal(result.labels, loop_cross_camera(g, local, cams, feats, scores, max_deviation))
    algorithm1 = refine(g, local, cams, feats, knn=graph, k=k, rule="algorithm1")
    np.testing.assert_array_equal(algorithm1.labels, loop_algorithm1(g, local, cams, scores))


def test_cross_camera_rule_on_a_hand_made_cluster():
    # person a seen by cameras 0, 1 and 2 (two local clusters in each), with two images of look-alike b
    # merged into a's cluster in camera 0 (local cluster 99); b's other images form cluster 1 in cameras
    # 1 and 2; twenty other people, four images per camera each, set the noise level
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(22, 8))
    a, b = centres[0], centres[1]
    rows = []  # (centre, camera, local cluster, global cluster)
    for cam in range(3):
        rows += [(a, cam, 100 * cam + 1, 0)] * 3 + [(a, cam, 100 * cam + 2, 0)] * 3
        rows += [(centres[p], cam, 100 * cam + p, p + 1) for p in range(2, 22) for _ in range(4)]
    rows += [(b, 0, 99, 0)] * 2 + [(b, 1, 199, 1)] * 3 + [(b, 2, 299, 1)] * 3
    feats = np.array([r[0] / np.linalg.norm(r[0]) for r in rows]) + 0.05 * rng.normal(size=(len(rows), 8))
    cams, local, g = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    expected = g.copy()
    expected[-8:-6] = -1  # only b's images in a's cluster
    result = refine(g, local, cams, feats)
    np.testing.assert_array_equal(result.labels, expected)
    np.testing.assert_array_equal(result.labels, loop_cross_camera(g, local, cams, feats, result.scores, 3.0))
    # a cluster that one camera sees has no other camera to ask: the "all" rule decides
    single = [0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(
        refine(single, local[:8], [0] * 8, feats[:8], k=3).labels,
        refine(single, local[:8], [0] * 8, feats[:8], k=3, rule="all").labels,
    )


def test_cross_camera_rule_removes_impurities_that_camera_bias_merged():
    from labelrefine import infomap_cluster, knn

    pytest.importorskip("infomap")
    data = make_camera_biased(150, 5, images_per_camera=(3, 8), camera_strength=0.8, local_fragments=2, rng=2)
    graph = knn(data.feats, 15)
    g = infomap_cluster(graph, min_sim=0.5, rng=1)
    new = impurity_report(data.pids, g, refine(g, data.local_labels, data.cams, data.feats, knn=graph).labels)
    old = impurity_report(data.pids, g, refine(g, data.local_labels, data.cams, knn=graph, rule="linked").labels)
    assert new.n_impurities > 100
    assert new.impurities_removed > max(0.4, 2 * old.impurities_removed)
    assert new.discard_precision > 0.85


@settings(max_examples=80, deadline=None)
@given(problems(), st.integers(1, 8))
def test_all_and_linked_rules_equal_loop(problem, link_k):
    g, local, cams, feats, k = problem
    link_k = min(link_k, k)
    graph = brute_knn(feats, k + 1)
    scores = loop_scores(*graph, k)
    result = refine(g, local, cams, feats, knn=graph, k=k, rule="all")
    np.testing.assert_array_equal(result.labels, loop_refine_all(g, local, cams, scores))
    linked = refine(g, local, cams, feats, knn=graph, k=k, rule="linked", link_k=link_k)
    links = [set(row[1 : link_k + 1].tolist()) for row in graph[0]]
    np.testing.assert_array_equal(linked.labels, loop_refine_all(g, local, cams, scores, links))
    camera_linked = refine(g, local, cams, feats, knn=graph, k=k, rule="camera-linked", link_k=link_k)
    expected = loop_refine_all(g, local, cams, scores, links, one_pivot=True)
    np.testing.assert_array_equal(camera_linked.labels, expected)


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(0.0, 1.0))
def test_reference_rule_equals_authors_loop(problem, min_sim):
    g, local, cams, feats, k = problem
    graph = brute_knn(feats, k + 1)
    result = refine(g, local, cams, feats, knn=graph, k=k, rule="reference", min_sim=min_sim)
    expected_scores = loop_reference_scores(*graph, k, min_sim)
    np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-12)
    np.testing.assert_array_equal(result.labels, loop_refine(g, local, cams, expected_scores, "reference"))


def test_refine_equals_loop_on_synthetic_set():
    data = make_camera_biased(n_ids=60, n_cams=4, rng=3)
    graph = brute_knn(data.feats.astype(np.float64), 16)
    # global labels: truth with look-alike families merged, so there is something to refine
    g = data.pids // 3
    scores = loop_scores(*graph, 15)
    for rule in ("camera", "cluster"):
        result = refine(g, data.local_labels, data.cams, knn=graph, rule=rule)
        expected = loop_refine(g, data.local_labels, data.cams, scores, rule)
        np.testing.assert_array_equal(result.labels, expected)
        assert result.n_discarded > 0
    links = [set(row[1:11].tolist()) for row in graph[0]]
    for rule, rule_links in (("all", None), ("linked", links)):
        result = refine(g, data.local_labels, data.cams, knn=graph, rule=rule)
        np.testing.assert_array_equal(
            result.labels, loop_refine_all(g, data.local_labels, data.cams, scores, rule_links)
        )
        assert result.n_discarded > 0


def test_linked_rule_keeps_fragments_that_all_cuts():
    data = make_camera_biased(n_ids=60, n_cams=4, images_per_camera=(6, 12), local_fragments=4, local_noise=0.0, rng=3)
    graph = brute_knn(data.feats.astype(np.float64), 16)
    g = data.pids  # pure clusters: every discard cuts a true member
    everything = refine(g, data.local_labels, data.cams, knn=graph, rule="all")
    linked = refine(g, data.local_labels, data.cams, knn=graph, rule="linked")
    assert not (linked.discarded & ~everything.discarded).any()  # linking only ever keeps more
    assert linked.n_discarded < 0.3 * everything.n_discarded


def test_features_and_graph_give_the_same_result():
    data = make_camera_biased(n_ids=30, n_cams=3, rng=1)
    from labelrefine.neighbors import knn

    graph = knn(data.feats, 11)
    from_feats = refine(data.pids // 2, data.local_labels, data.cams, data.feats, k=10)
    both = refine(data.pids // 2, data.local_labels, data.cams, data.feats, knn=graph, k=10)
    np.testing.assert_array_equal(from_feats.labels, both.labels)
    from_feats = refine(data.pids // 2, data.local_labels, data.cams, data.feats, k=10, rule="all")
    from_graph = refine(data.pids // 2, data.local_labels, data.cams, knn=graph, k=10, rule="all")
    np.testing.assert_array_equal(from_feats.labels, from_graph.labels)


def test_graph_without_self_column_is_accepted():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(30, 3))
    indices, distances = brute_knn(feats, 6)
    g, local, cams = rng.integers(0, 3, 30), rng.integers(0, 3, 30), rng.integers(0, 2, 30)
    with_self = refine(g, local, cams, feats, knn=(indices, distances), k=5)
    without_self = refine(g, local, cams, feats, knn=(indices[:, 1:], distances[:, 1:]), k=5)
    np.testing.assert_array_equal(with_self.labels, without_self.labels)


def test_hand_made_case():
    # one global cluster seen by cameras a and b; camera a holds two local clusters
    g = [0, 0, 0, 0, 0, -1]
    local = [4, 4, 9, 7, -1, 4]
    cams = ["a", "a", "a", "b", "a", "a"]
    scores = np.array([5.0, 1.0, 1.0, 4.0, 1.0, 9.0])  # mean 3.5: eligible 0, 3 and the outlier 5
    np.testing.assert_array_equal(select_pivots(scores, g, cams, rule="camera"), [0, 3])
    expected = [0, 0, -1, 0, -1, -1]  # 2 (other local) and 4 (local -1) discarded; camera b untouched
    np.testing.assert_array_equal(loop_refine(np.array(g), local, cams, scores, "camera"), expected)
    result = refine_with_pivots(g, local, cams, [0, 3], scores=scores)
    np.testing.assert_array_equal(result.labels, expected)
    np.testing.assert_array_equal(result.discarded, [False, False, True, False, True, False])
    np.testing.assert_array_equal(result.scores, scores)
    # a second pivot in camera a's other local cluster vouches for it too
    np.testing.assert_array_equal(refine_with_pivots(g, local, cams, [0, 2, 3]).labels, [0, 0, 0, 0, -1, -1])
    # a pivot whose local label is -1 vouches for nothing, and an outlier pivot has no group
    np.testing.assert_array_equal(refine_with_pivots(g, local, cams, [4, 5]).labels, g)
    # links: sample 2 and pivot 0 are each other's neighbour, so local cluster 9 is kept
    links = np.array([[2], [0], [0], [0], [0], [0]])
    np.testing.assert_array_equal(refine_with_pivots(g, local, cams, [0], links=links).labels, [0, 0, 0, 0, -1, -1])
    # joined through a chain: 8 is linked to 9 only, 9 to the pivot's local cluster 4
    chain = refine_with_pivots(
        [0, 0, 0, 0], [4, 9, 8, 3], ["a"] * 4, [0], links=np.array([[1, 1], [0, 2], [1, 1], [0, 0]])
    )
    np.testing.assert_array_equal(chain.labels, [0, 0, 0, -1])
    one_way = np.array([[1], [0], [0], [0], [0], [0]])
    np.testing.assert_array_equal(refine_with_pivots(g, local, cams, [0], links=one_way).labels, expected)


def test_pivot_with_local_outlier_refines_nothing():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(12, 3))
    graph = brute_knn(feats, 4)
    g = np.zeros(12, dtype=int)
    cams = np.zeros(12, dtype=int)
    local = np.full(12, -1)
    result = refine(g, local, cams, feats, knn=graph, k=3, rule="camera")
    assert result.n_pivots == 1
    assert result.n_discarded == 0
    for rule in PIVOT_RULES:
        assert refine(g, local, cams, feats, knn=graph, k=3, rule=rule).n_discarded == 0


# ---------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(PIVOT_RULES))
def test_p_zero_is_identity_and_p_one_only_moves_to_minus_one(problem, rule):
    g, local, cams, feats, k = problem
    graph = brute_knn(feats, k + 1)
    np.testing.assert_array_equal(refine(g, local, cams, feats, knn=graph, k=k, p=0.0, rule=rule).labels, g)
    result = refine(g, local, cams, feats, knn=graph, k=k, p=1.0, rule=rule)
    changed = result.labels != g
    assert (result.labels[changed] == -1).all()
    np.testing.assert_array_equal(changed, result.discarded)
    assert set(result.labels.tolist()) <= set(g.tolist()) | {-1}


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(PIVOT_RULES), st.floats(0.05, 0.95))
def test_discards_stay_in_the_pivot_camera(problem, rule, p):
    g, local, cams, feats, k = problem
    result = refine(g, local, cams, feats, knn=brute_knn(feats, k + 1), k=k, rule=rule, p=p, rng=0)
    seen_by = {c: {cams[i] for i in range(len(g)) if g[i] == c} for c in set(g.tolist())}
    for j in np.flatnonzero(result.discarded):
        if rule == "cross-camera" and len(seen_by[g[j]]) > 1:
            continue  # decided by the other cameras' evidence, not by a pivot (test_cross_camera_..._equal_loop)
        same_group = [i for i in result.pivots if g[i] == g[j] and cams[i] == cams[j] and local[i] != -1]
        assert same_group, "a discarded sample must share cluster and camera with a pivot"
        if rule == "algorithm1":  # every pivot of the group must vouch: one that does not is enough
            assert any(local[j] != local[i] for i in same_group)
        else:
            assert all(local[j] != local[i] for i in same_group)


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(PIVOT_RULES), st.floats(0.0, 1.0))
def test_renaming_ids_does_not_change_what_is_discarded(problem, rule, p):
    g, local, cams, feats, k = problem
    graph = brute_knn(feats, k + 1)
    rng = np.random.default_rng(7)
    rename_g = rng.permutation(100)[: g.max() + 2] * 3 + 11
    rename_local = rng.permutation(100)[: local.max() + 2] + 1000
    rename_cam = np.array(["north", "south", "gate", "lobby"])[rng.permutation(4)]
    g2 = np.where(g >= 0, rename_g[g], -1)
    local2 = np.where(local >= 0, rename_local[local], -1)
    before = refine(g, local, cams, feats, knn=graph, k=k, rule=rule, p=p, rng=5)
    after = refine(g2, local2, rename_cam[cams], feats, knn=graph, k=k, rule=rule, p=p, rng=5)
    np.testing.assert_array_equal(before.discarded, after.discarded)


def test_inputs_are_not_modified_and_results_are_their_own_arrays():
    rng = np.random.default_rng(0)
    g, local, cams = rng.integers(-1, 3, 40), rng.integers(-1, 3, 40), rng.integers(0, 3, 40)
    feats = rng.normal(size=(40, 5))
    graph = brute_knn(feats, 6)
    copies = [a.copy() for a in (g, local, cams, feats, *graph)]
    result = refine(g, local, cams, feats, knn=graph, k=5)
    refine(g, local, cams, feats, k=5)
    for original, copy in zip((g, local, cams, feats, *graph), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
    inputs = (g, local, cams, feats, *graph)
    for array in (result.labels, result.discarded, result.pivots, result.scores):
        assert array.flags.writeable and not any(np.shares_memory(array, x) for x in inputs)


def test_result_arrays_convert_to_torch_without_warning():
    torch = pytest.importorskip("torch")
    data = make_camera_biased(n_ids=10, n_cams=3, rng=0)
    result = refine(data.pids, data.local_labels, data.cams, data.feats, k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = torch.from_numpy(result.labels)
        torch.from_numpy(result.discarded), torch.as_tensor(result.scores)
    assert labels.dtype == torch.int64 and labels.tolist() == result.labels.tolist()


def test_same_seed_same_result_and_p_half_discards_about_half():
    data = make_camera_biased(n_ids=80, n_cams=4, rng=0)
    graph = brute_knn(data.feats.astype(np.float64), 16)
    g = data.pids // 4
    full = refine(g, data.local_labels, data.cams, data.feats, knn=graph, p=1.0)
    a = refine(g, data.local_labels, data.cams, data.feats, knn=graph, p=0.5, rng=123)
    b = refine(g, data.local_labels, data.cams, data.feats, knn=graph, p=0.5, rng=np.random.default_rng(123))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not (a.discarded & ~full.discarded).any()
    assert 0.35 < a.n_discarded / full.n_discarded < 0.65


def test_torch_tensors_and_lists_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    g, local, cams = rng.integers(-1, 3, 30), rng.integers(-1, 3, 30), rng.integers(0, 3, 30)
    feats = rng.normal(size=(30, 4)).astype(np.float32)
    expected = refine(g, local, cams, feats, k=4)
    result = refine(torch.from_numpy(g), local.tolist(), list(cams), torch.from_numpy(feats), k=4)
    np.testing.assert_array_equal(result.labels, expected.labels)


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(PIVOT_RULES))
def test_group_counts_equal_loop(problem, rule):
    g, local, cams, feats, k = problem
    result = refine(g, local, cams, feats, knn=brute_knn(feats, k + 1), k=k, rule=rule)
    groups = {(g[i], cams[i]) for i in range(len(g)) if g[i] != -1}
    fragments = {(g[i], cams[i], local[i]) for i in range(len(g)) if g[i] != -1 and local[i] != -1}
    refined = {(g[i], cams[i]) for i in result.pivots if g[i] != -1 and local[i] != -1}
    if rule == "cross-camera":  # every group of a cluster that two or more cameras see is looked into
        refined |= {key for key in groups if len({c for c2, c in groups if c2 == key[0]}) > 1}
    assert (result.n_groups, result.n_fragments, result.n_refined_groups) == (len(groups), len(fragments), len(refined))
    if groups:
        assert result.fragments_per_group == len(fragments) / len(groups)


def test_result_counts():
    graph = brute_knn(np.eye(6) + 0.1, 4)
    result = refine([0, 0, 0, -1, 1, 1], [0, 1, 1, 0, 2, 2], [0] * 6, knn=graph, k=3, rule="all")
    assert result.n_samples == 6
    assert result.n_outliers == result.n_discarded + 1
    assert result.discard_ratio == result.n_discarded / 5
    assert "RefineResult(n_samples=6" in repr(result)


def test_relabel():
    np.testing.assert_array_equal(relabel([5, -1, 5, 2, 9]), [1, -1, 1, 0, 2])
    np.testing.assert_array_equal(relabel(np.array([], dtype=int)), [])


def test_pivot_scores_paper_rule_from_features_matches_graph():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(25, 6))
    np.testing.assert_allclose(pivot_scores(feats, k=4), pivot_scores(knn=brute_knn(feats, 5), k=4), rtol=1e-5)


# ---------------------------------------------------------------- bad inputs, one test per message

G, L, C = [0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1]
FEATS = np.random.default_rng(0).normal(size=(6, 3))


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same length.*global_labels=6, local_labels=5"):
        refine(G, L[:5], C, FEATS, k=2)


def test_two_dimensional_labels():
    with pytest.raises(ValueError, match=r"global_labels must be 1-D .* shape \(2, 3\)"):
        refine(np.array(G).reshape(2, 3), L, C, FEATS, k=2)


def test_non_integer_labels():
    fractional = np.array(L, dtype=float)
    fractional[4] = 2.5
    with pytest.raises(TypeError, match=r"local_labels must hold integers.*float64 with the non-integer value 2.5"):
        refine(G, fractional, C, FEATS, k=2)
    fractional[4] = np.nan
    with pytest.raises(TypeError, match=r"local_labels must hold integers.*value nan at index 4"):
        refine(G, fractional, C, FEATS, k=2)


def test_whole_number_float_labels_are_accepted():
    # released stage-1 labels are float64 arrays of whole numbers
    as_int = refine(G, L, C, FEATS, k=2)
    as_float = refine(np.array(G, dtype=np.float64), np.array(L, dtype=np.float64), C, FEATS, k=2)
    np.testing.assert_array_equal(as_float.labels, as_int.labels)
    assert as_float.labels.dtype == np.int64


def test_labels_below_minus_one():
    with pytest.raises(ValueError, match="global_labels must be >= -1.*-3"):
        refine([-3, 0, 1, 1, 2, 2], L, C, FEATS, k=2)


def test_nan_features():
    bad = FEATS.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"feats must be finite.*row 2"):
        refine(G, L, C, bad, k=2)


def test_feature_rows_must_match():
    with pytest.raises(ValueError, match="feats must have 6 rows"):
        refine(G, L, C, FEATS[:5], k=2)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=rf"p must be in \[0, 1\], got {p}"):
        refine(G, L, C, FEATS, k=2, p=p)


def test_p_not_a_number():
    with pytest.raises(TypeError, match="p must be a real number"):
        refine(G, L, C, FEATS, k=2, p="1")


@pytest.mark.parametrize("k", [1, 6])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match=rf"k must be in \[2, 5\], got {k}"):
        refine(G, L, C, FEATS, k=k)


def test_unknown_rule():
    with pytest.raises(
        ValueError,
        match="rule must be one of 'cross-camera', 'algorithm1', 'all', 'linked', 'camera-linked', 'camera', "
        "'cluster', 'reference'; got 'best'",
    ):
        refine(G, L, C, FEATS, k=2, rule="best")


def test_link_k_out_of_range():
    with pytest.raises(ValueError, match=r"link_k must be in \[1, 3\], got 4"):
        refine(G, L, C, FEATS, k=3, rule="linked", link_k=4)


def test_refine_with_pivots_bad_pivots():
    with pytest.raises(ValueError, match=r"pivots must be sample indices in \[0, 6\), got values in \[0, 6\]"):
        refine_with_pivots(G, L, C, [0, 6])
    with pytest.raises(TypeError, match=r"pivots must be a 1-D array of sample indices .* dtype float64"):
        refine_with_pivots(G, L, C, [0.5])
    with pytest.raises(TypeError, match=r"pivots must be a 1-D array of sample indices .* dtype bool"):
        refine_with_pivots(G, L, C, [True, False])


def test_refine_with_pivots_on_empty_input():
    result = refine_with_pivots([], [], [], [])
    assert (result.n_samples, result.n_groups, result.n_discarded) == (0, 0, 0)


@pytest.mark.parametrize("source", ["feats", "knn"])
def test_too_few_samples_for_any_k(source):
    feats = np.eye(2)
    inputs = {"feats": feats} if source == "feats" else {"knn": brute_knn(feats, 2)}
    with pytest.raises(ValueError, match=rf"pivot scores need at least 3 samples .*; {source} has 2 rows"):
        refine([0, 0], [1, 2], [0, 0], k=2, rule="all", **inputs)


def test_refine_with_pivots_bad_links_and_scores():
    with pytest.raises(ValueError, match=r"links must be an integer array of shape \(6, m\), got float64 \(6, 2\)"):
        refine_with_pivots(G, L, C, [0], links=np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"links must hold sample indices in \[0, 6\), got \[0, 9\]"):
        refine_with_pivots(G, L, C, [0], links=np.array([[9]] + [[0]] * 5))
    with pytest.raises(ValueError, match=r"scores must have shape \(6,\)"):
        refine_with_pivots(G, L, C, [0], scores=[1.0, 2.0])


def test_neither_feats_nor_knn():
    with pytest.raises(ValueError, match="give feats .* or knn .*; got neither"):
        refine(G, L, C, k=2, rule="all")
    with pytest.raises(ValueError, match="exactly one of feats"):
        pivot_scores(FEATS, knn=brute_knn(FEATS, 3), k=2)


def test_cross_camera_rule_needs_features():
    with pytest.raises(ValueError, match=r"rule='cross-camera' needs feats .* rule='all'"):
        refine(G, L, C, knn=brute_knn(FEATS, 3), k=2)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_max_deviation_must_be_positive(value):
    with pytest.raises(ValueError, match=r"max_deviation must be .*in \(0, inf\]"):
        refine(G, L, C, FEATS, k=2, max_deviation=value)


def test_refine_with_pivots_every_and_links_exclude_each_other():
    with pytest.raises(ValueError, match="not both"):
        refine_with_pivots(G, L, C, [0], links=np.zeros((6, 1), dtype=int), every=True)


def test_graph_too_narrow_for_k():
    with pytest.raises(ValueError, match=r"k=3 needs at least 3 .*knn\(feats, k\)"):
        refine(G, L, C, knn=brute_knn(FEATS, 3), k=3, rule="all")


def test_graph_with_bad_indices_or_distances():
    indices, distances = brute_knn(FEATS, 3)
    with pytest.raises(ValueError, match=r"knn indices must lie in \[0, 6\)"):
        refine(G, L, C, knn=(indices + 1, distances), k=2, rule="all")
    with pytest.raises(ValueError, match="knn distances must be >= 0"):
        refine(G, L, C, knn=(indices, distances - 1), k=2, rule="all")
    with pytest.raises(TypeError, match=r"knn must be a tuple \(indices, distances\)"):
        refine(G, L, C, knn=indices, k=2, rule="all")


def test_bad_rng():
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy.random.Generator"):
        refine(G, L, C, FEATS, k=2, rng="seed")


def test_reference_rule_refuses_a_graph_without_the_self_column():
    data = make_camera_biased(n_ids=10, n_cams=3, rng=0)
    graph = knn(data.feats, 20, backend="numpy")
    with_self = refine(data.pids, data.local_labels, data.cams, knn=graph, rule="reference")
    assert with_self.n_pivots > 0
    with pytest.raises(ValueError, match=r"knn has no self column: the reference formula .*knn\(feats, 14\)"):
        refine(data.pids, data.local_labels, data.cams, knn=graph.neighbors(), rule="reference")
    with pytest.raises(ValueError, match=r"knn has no self column"):
        pivot_scores(knn=graph.neighbors(), k=15, formula="reference")


@pytest.fixture
def mine_rule():
    """A pivot rule registered for one test: every clustered sample is a pivot, with its local cluster vouched."""
    from labelrefine.pivots import RulePlan, register_pivot_rule, unregister_pivot_rule

    seen = []

    @register_pivot_rule("mine")
    def mine(inputs):
        seen.append(inputs)
        return RulePlan(pivots=np.flatnonzero(inputs.global_labels == 0)[:1])

    yield seen
    unregister_pivot_rule("mine")


def test_a_registered_pivot_rule_is_what_refine_dispatches_on(mine_rule):
    from labelrefine.pivots import pivot_rules

    assert "mine" in pivot_rules()
    result = refine([0, 0, 0, 1], [5, 5, 6, 7], ["a", "a", "a", "a"], knn=_line_graph(4), k=2, rule="mine")
    assert len(mine_rule) == 1 and mine_rule[0].k == 2
    assert result.pivots.tolist() == [0] and result.labels.tolist() == [0, 0, -1, 1]


def test_registering_a_taken_name_or_removing_a_built_in_rule_is_refused():
    from labelrefine.pivots import register_pivot_rule, unregister_pivot_rule

    with pytest.raises(ValueError, match="name must be a new pivot rule, got 'all'"):
        register_pivot_rule("all")
    with pytest.raises(ValueError, match="name must be a rule added with register_pivot_rule, got 'camera'"):
        unregister_pivot_rule("camera")
    with pytest.raises(ValueError, match="rule must be one of .*got 'mine'"):
        refine([0, 0, 0], [1, 1, 1], [0, 0, 0], knn=_line_graph(3), k=2, rule="mine")


def _line_graph(n):
    """Samples on a line: each one's neighbours by distance, self first."""
    positions = np.arange(n, dtype=np.float64)
    gaps = np.abs(positions[:, None] - positions[None, :])
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), gaps), axis=1)
    return order, np.take_along_axis(gaps, order, axis=1) / (2 * n)
