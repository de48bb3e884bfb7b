"""ClusterMemory and cluster_centroids against plain loops written from the definitions."""

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from labelrefine.nn import ClusterMemory, cluster_centroids  # noqa: E402

# ----------------------------------------------------------------------------- references


def ref_centroids(feats, labels):
    """Mean of the unit-normalised features of each label 0..max, normalised; -1 ignored."""
    feats = [list(map(float, row)) for row in feats]
    labels = [int(v) for v in labels]
    out = []
    for c in range(max(labels) + 1):
        members = []
        for row, lab in zip(feats, labels, strict=True):
            if lab == c:
                norm = math.sqrt(sum(v * v for v in row))
                members.append([v / norm for v in row])
        mean = [sum(col) / len(members) for col in zip(*members, strict=True)]
        norm = math.sqrt(sum(v * v for v in mean))
        out.append([v / norm for v in mean])
    return np.array(out)


def ref_loss(feats, targets, memory, temperature, weights):
    """sum_i w[t_i] * -log softmax(q_i . u / tau)[t_i] / sum_i w[t_i] over targets != -1."""
    num, den = 0.0, 0.0
    for row, t in zip(feats.tolist(), targets.tolist(), strict=True):
        if t < 0:
            continue
        norm = math.sqrt(sum(v * v for v in row))
        q = [v / norm for v in row]
        logits = [sum(a * b for a, b in zip(q, u, strict=True)) / temperature for u in memory.tolist()]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        num += weights[t] * (log_z - logits[t])
        den += weights[t]
    return num / den


def _unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def ref_update_mean(memory, feats, targets, m):
    memory = memory.tolist()
    rows = [_unit(r) for r in feats.tolist()]
    for c in sorted({t for t in targets.tolist() if t >= 0}):
        members = [r for r, t in zip(rows, targets.tolist(), strict=True) if t == c]
        q = [sum(col) / len(members) for col in zip(*members, strict=True)]
        memory[c] = _unit([m * u + (1 - m) * v for u, v in zip(memory[c], q, strict=True)])
    return np.array(memory)


def ref_update_sequential(memory, feats, targets, m):
    """Cluster-Contrast's rule: one step per sample, in batch order."""
    memory = memory.tolist()
    for r, t in zip(feats.tolist(), targets.tolist(), strict=True):
        if t >= 0:
            memory[t] = _unit([m * u + (1 - m) * v for u, v in zip(memory[t], _unit(r), strict=True)])
    return np.array(memory)


def ref_update_hard(memory, feats, targets, m):
    memory = memory.tolist()
    rows = [_unit(r) for r in feats.tolist()]
    new = [list(u) for u in memory]
    for c in sorted({t for t in targets.tolist() if t >= 0}):
        best, best_sim = None, math.inf
        for r, t in zip(rows, targets.tolist(), strict=True):
            if t == c:
                sim = sum(a * b for a, b in zip(r, memory[c], strict=True))
                if sim < best_sim:  # strict: the first sample wins ties
                    best, best_sim = r, sim
        new[c] = _unit([m * u + (1 - m) * v for u, v in zip(memory[c], best, strict=True)])
    return np.array(new)


def make_memory(num_clusters=5, dim=4, seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    memory = ClusterMemory(dim, num_clusters, **kwargs).double()
    memory.reset(torch.randn(num_clusters, dim, generator=g, dtype=torch.float64))
    return memory


def batch(n=12, dim=4, num_clusters=5, seed=1, with_outliers=True):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, dim, generator=g, dtype=torch.float64)
    low = -1 if with_outliers else 0
    targets = torch.randint(low, num_clusters, (n,), generator=g)
    return feats, targets


# ----------------------------------------------------------------------------- cluster_centroids


def test_centroids_match_loop():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(30, 6, generator=g, dtype=torch.float64)
    labels = torch.tensor([-1, 0, 1, 2, 3] * 6)
    out = cluster_centroids(feats, labels)
    assert out.shape == (4, 6) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref_centroids(feats.numpy(), labels.numpy()), atol=1e-12)


def test_centroids_accept_numpy_and_keep_inputs():
    feats = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, -1, -1, 0])
    f0, l0 = feats.copy(), labels.copy()
    out = cluster_centroids(feats, labels)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref_centroids(feats, labels), atol=1e-6)
    np.testing.assert_array_equal(feats, f0)
    np.testing.assert_array_equal(labels, l0)


def test_centroids_all_outliers_give_empty():
    assert cluster_centroids(torch.ones(3, 2), torch.tensor([-1, -1, -1])).shape == (0, 2)


def test_centroids_reject_non_contiguous_labels():
    with pytest.raises(ValueError, match=r"labels must be contiguous.*\[1\].*relabel"):
        cluster_centroids(torch.ones(3, 2), torch.tensor([0, 2, 2]))


def test_centroids_reject_labels_below_minus_one():
    with pytest.raises(ValueError, match=r"labels must be >= -1.*-2"):
        cluster_centroids(torch.ones(3, 2), torch.tensor([0, -2, 0]))


def test_centroids_reject_float_labels():
    with pytest.raises(TypeError, match=r"labels must hold integers.*float.*0.5 at index 1"):
        cluster_centroids(torch.ones(3, 2), torch.tensor([0.0, 0.5, 0.0]))


def test_centroids_reject_length_mismatch():
    with pytest.raises(ValueError, match=r"labels must have length 3.*got 2"):
        cluster_centroids(torch.ones(3, 2), torch.tensor([0, 1]))


def test_centroids_reject_1d_feats():
    with pytest.raises(ValueError, match=r"feats must be 2-D.*\(3,\)"):
        cluster_centroids(torch.ones(3), torch.tensor([0, 1, 0]))


def test_centroids_reject_integer_feats():
    with pytest.raises(TypeError, match=r"feats must be a floating-point tensor.*int64"):
        cluster_centroids(torch.ones(3, 2, dtype=torch.int64), torch.tensor([0, 1, 0]))


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_matches_loop(weighted):
    memory = make_memory(temperature=0.1)
    feats, targets = batch()
    weights = np.linspace(0.5, 2.0, 5) if weighted else np.ones(5)
    if weighted:
        memory.set_weights(weights)
    loss = memory(feats, targets)
    expected = ref_loss(feats, targets, memory.features, 0.1, weights)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_loss_ignores_outliers():
    memory = make_memory()
    feats, targets = batch(with_outliers=False)
    extra = torch.cat([feats, torch.randn(3, 4, dtype=torch.float64)])
    extra_targets = torch.cat([targets, torch.tensor([-1, -1, -1])])
    assert memory(extra, extra_targets).item() == pytest.approx(memory(feats, targets).item(), rel=1e-12)


def test_loss_all_outliers_is_zero_with_grad():
    memory = make_memory()
    feats = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    loss = memory(feats, torch.full((4,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert feats.grad is not None and torch.all(feats.grad == 0)


def test_loss_zero_weights_is_zero():
    memory = make_memory()
    memory.set_weights(torch.zeros(5))
    feats, targets = batch()
    assert memory(feats, targets).item() == 0.0


def test_loss_gradient_reaches_feats_not_memory():
    memory = make_memory()
    feats, targets = batch()
    feats.requires_grad_(True)
    memory(feats, targets).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert not memory.features.requires_grad and memory.features.grad is None
    assert list(memory.parameters()) == []


def test_loss_under_autocast_is_float32():
    memory = ClusterMemory(4, 3)
    memory.reset(torch.randn(3, 4))
    feats = torch.randn(5, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = memory(feats.to(torch.bfloat16), torch.tensor([0, 1, 2, 0, -1]))
    assert loss.dtype == torch.float32
    ref = memory(feats.detach().to(torch.bfloat16).float(), torch.tensor([0, 1, 2, 0, -1]))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_forward_and_update_do_not_modify_inputs():
    memory = make_memory()
    feats, targets = batch()
    f0, t0 = feats.clone(), targets.clone()
    memory(feats, targets)
    memory.update(feats, targets)
    assert torch.equal(feats, f0) and torch.equal(targets, t0)


def test_documented_order_forward_backward_update():
    memory = make_memory(momentum=0.5)
    before = memory.features.clone()
    feats, targets = batch()
    feats.requires_grad_(True)
    memory(feats, targets).backward()
    memory.update(feats, targets)
    # the gradient was computed against the memory as it was in the forward pass
    check = feats.detach().clone().requires_grad_(True)
    reference = ClusterMemory(4, 5, temperature=memory.temperature).double()
    reference.reset(before)
    reference(check, targets).backward()
    torch.testing.assert_close(feats.grad, check.grad)
    assert not torch.equal(memory.features, before)


# ----------------------------------------------------------------------------- update


@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.9, 1.0])
def test_mean_update_matches_loop(momentum):
    memory = make_memory(momentum=momentum)
    start = memory.features.clone()
    feats, targets = batch(n=20)
    memory.update(feats, targets)
    expected = ref_update_mean(start, feats, targets, momentum)
    np.testing.assert_allclose(memory.features.numpy(), expected, atol=1e-12)


def test_mean_update_equals_sequential_rule_when_clusters_appear_once():
    memory = make_memory(num_clusters=8, momentum=0.3)
    start = memory.features.clone()
    feats = torch.randn(6, 4, dtype=torch.float64)
    targets = torch.tensor([5, 0, -1, 7, 2, 3])
    memory.update(feats, targets)
    np.testing.assert_allclose(memory.features.numpy(), ref_update_sequential(start, feats, targets, 0.3), atol=1e-12)


def test_mean_update_differs_from_sequential_rule_on_repeated_clusters():
    memory = make_memory(num_clusters=2, momentum=0.3)
    start = memory.features.clone()
    feats = torch.randn(4, 4, dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 1])
    memory.update(feats, targets)
    sequential = ref_update_sequential(start, feats, targets, 0.3)
    assert not np.allclose(memory.features.numpy()[0], sequential[0], atol=1e-6)
    np.testing.assert_allclose(memory.features.numpy()[1], sequential[1], atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.7, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sample_update_matches_cluster_contrast_loop(momentum, seed):
    memory = make_memory(momentum=momentum, mode="sample")
    start = memory.features.clone()
    feats, targets = batch(n=30, seed=seed)  # clusters repeat up to ~10 times, outliers included
    memory.update(feats, targets)
    expected = ref_update_sequential(start, feats, targets, momentum)
    np.testing.assert_allclose(memory.features.numpy(), expected, atol=1e-12)


def test_sample_update_depends_on_batch_order():
    memory = make_memory(num_clusters=1, momentum=0.5, mode="sample")
    start = memory.features.clone()
    feats = torch.randn(3, 4, dtype=torch.float64)
    targets = torch.zeros(3, dtype=torch.int64)
    memory.update(feats, targets)
    reversed_order = ref_update_sequential(start, feats.flip(0), targets, 0.5)
    assert not np.allclose(memory.features.numpy(), reversed_order, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.7])
def test_hard_update_matches_loop(momentum):
    memory = make_memory(momentum=momentum, mode="hard")
    start = memory.features.clone()
    feats, targets = batch(n=25)
    memory.update(feats, targets)
    expected = ref_update_hard(start, feats, targets, momentum)
    np.testing.assert_allclose(memory.features.numpy(), expected, atol=1e-12)


def test_hard_update_ties_take_first_sample():
    memory = ClusterMemory(2, 1, momentum=0.5, mode="hard").double()
    memory.reset(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    feats = torch.tensor([[0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)  # both similarity 0
    memory.update(feats, torch.tensor([0, 0]))
    expected = np.array([[1.0, 1.0]]) / math.sqrt(2.0)
    np.testing.assert_allclose(memory.features.numpy(), expected, atol=1e-12)


def test_update_all_outliers_is_a_no_op():
    memory = make_memory()
    start = memory.features.clone()
    memory.update(torch.randn(3, 4, dtype=torch.float64), torch.tensor([-1, -1, -1]))
    assert torch.equal(memory.features, start)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 30),
    mode=st.sampled_from(["mean", "sample", "hard"]),
    momentum=st.floats(0.0, 1.0),
)
def test_update_invariants(seed, n, mode, momentum):
    g = torch.Generator().manual_seed(seed)
    memory = ClusterMemory(3, 6, momentum=momentum, mode=mode).double()
    memory.reset(torch.randn(6, 3, generator=g, dtype=torch.float64))
    start = memory.features.clone()
    feats = torch.randn(n, 3, generator=g, dtype=torch.float64)
    targets = torch.randint(-1, 6, (n,), generator=g)
    memory.update(feats, targets)
    touched = torch.zeros(6, dtype=torch.bool)
    touched[targets[targets >= 0]] = True
    # rows of clusters absent from the batch are untouched, the others stay unit-norm
    assert torch.equal(memory.features[~touched], start[~touched])
    torch.testing.assert_close(memory.features.norm(dim=1), torch.ones(6, dtype=torch.float64))
    if mode == "mean":  # the mean rule does not depend on the batch order
        perm = torch.randperm(n, generator=g)
        other = ClusterMemory(3, 6, momentum=momentum).double()
        other.reset(start)
        other.update(feats[perm], targets[perm])
        torch.testing.assert_close(other.features, memory.features, atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- state


def test_reset_normalises_and_resizes():
    memory = ClusterMemory(3, 2)
    centroids = torch.tensor([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    c0 = centroids.clone()
    memory.reset(centroids, weights=[1.0, 0.5, 2.0])
    assert memory.num_clusters == 3 and memory.features.dtype == torch.float32
    torch.testing.assert_close(memory.features[0], torch.tensor([0.6, 0.0, 0.8]))
    torch.testing.assert_close(memory.cluster_weights, torch.tensor([1.0, 0.5, 2.0]))
    assert torch.equal(centroids, c0)
    state = memory.state_dict()
    assert set(state) == {"features", "cluster_weights"} and state["features"].shape == (3, 3)
    memory.set_weights(None)
    assert torch.equal(memory.cluster_weights, torch.ones(3))


def test_reset_keeps_memory_dtype():
    memory = ClusterMemory(2, 1).double()
    memory.reset(np.array([[1.0, 1.0]], dtype=np.float32))
    assert memory.features.dtype == torch.float64


def test_loss_is_translation_of_definition_with_float32_default():
    memory = ClusterMemory(4, 3)
    memory.reset(torch.randn(3, 4))
    feats = torch.randn(5, 4)
    targets = torch.tensor([0, 1, 2, 1, 0])
    expected = ref_loss(feats.double(), targets, memory.features.double(), 0.05, np.ones(3))
    assert memory(feats, targets).item() == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- errors


def test_error_targets_out_of_range():
    memory = make_memory()
    with pytest.raises(ValueError, match=r"targets must lie in \[-1, 4\].*got values in \[0, 5\]"):
        memory(torch.randn(2, 4, dtype=torch.float64), torch.tensor([0, 5]))


def test_error_targets_out_of_range_in_update():
    memory = make_memory()
    with pytest.raises(ValueError, match=r"targets must lie in \[-1, 4\].*got values in \[-3, 0\]"):
        memory.update(torch.randn(2, 4, dtype=torch.float64), torch.tensor([0, -3]))


def test_error_float_targets():
    with pytest.raises(TypeError, match=r"targets must hold integers.*float32"):
        make_memory()(torch.randn(2, 4, dtype=torch.float64), torch.tensor([0.0, 1.0]))


def test_error_targets_length():
    with pytest.raises(ValueError, match=r"targets must have length 2.*got 3"):
        make_memory()(torch.randn(2, 4, dtype=torch.float64), torch.tensor([0, 1, 1]))


def test_error_feats_width():
    with pytest.raises(ValueError, match=r"feats must have 4 columns, got 3"):
        make_memory().update(torch.randn(2, 3, dtype=torch.float64), torch.tensor([0, 1]))


def test_error_feats_ndim():
    with pytest.raises(ValueError, match=r"feats must be 2-D.*\(2, 4, 1\)"):
        make_memory()(torch.randn(2, 4, 1, dtype=torch.float64), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"num_features": 0, "num_clusters": 3}, ValueError, r"num_features must be in \[1, inf\], got 0"),
        ({"num_features": 4, "num_clusters": 2.5}, TypeError, r"num_clusters must be an integer, got 2.5"),
        (
            {"num_features": 4, "num_clusters": 3, "temperature": 0},
            ValueError,
            r"temperature must be in \(0, inf\), got 0",
        ),
        ({"num_features": 4, "num_clusters": 3, "momentum": 1.5}, ValueError, r"momentum must be in \[0, 1\], got 1.5"),
        ({"num_features": 4, "num_clusters": 3, "momentum": "0.2"}, TypeError, r"momentum must be a real number in"),
        (
            {"num_features": 4, "num_clusters": 3, "mode": "median"},
            ValueError,
            r"mode must be one of 'mean', 'sample', 'hard'; got 'median'",
        ),
    ],
)
def test_error_constructor(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        ClusterMemory(**kwargs)


def test_error_reset_shape():
    with pytest.raises(ValueError, match=r"centroids must have shape \(C, 4\) with C >= 1, got \(3, 5\)"):
        make_memory().reset(torch.randn(3, 5))


def test_error_weights_negative():
    with pytest.raises(ValueError, match=r"weights must be finite and >= 0, got minimum -1.0"):
        make_memory().set_weights([1.0, 1.0, -1.0, 1.0, 1.0])


def test_error_weights_shape():
    with pytest.raises(ValueError, match=r"weights must have shape \(5,\) \(one per cluster\), got \(4,\)"):
        make_memory().set_weights(torch.ones(4))


def test_error_weights_dtype():
    with pytest.raises(TypeError, match=r"weights must be real numbers, got dtype torch.bool"):
        make_memory().set_weights(torch.ones(5, dtype=torch.bool))


# ----------------------------------------------------------------------------- Cluster-Contrast swap


def cluster_contrast_step(centroids, feats, targets, temp, momentum):
    """One step of Cluster-Contrast's memory written from its definition: loss, gradient, then update."""
    x = feats.detach().clone().requires_grad_(True)
    q = torch.nn.functional.normalize(x, dim=1)
    loss = torch.nn.functional.cross_entropy(q @ centroids.T / temp, targets)
    loss.backward()
    updated = ref_update_sequential(centroids, q.detach(), targets, momentum)
    return loss.item(), x.grad, updated


@pytest.mark.parametrize("seed", [0, 1])
def test_from_cluster_contrast_trains_like_cluster_contrast(seed):
    g = torch.Generator().manual_seed(seed)
    centroids = torch.nn.functional.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    feats = torch.randn(16, 4, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (16,), generator=g)
    memory = ClusterMemory.from_cluster_contrast(4, 5, temp=0.1, momentum=0.3).double()
    memory.features = centroids.clone()  # as Cluster-Contrast's script sets them
    loss = memory(feats, targets)
    loss.backward()  # no update() call: the centroids move inside backward
    expected_loss, expected_grad, expected_memory = cluster_contrast_step(centroids, feats, targets, 0.1, 0.3)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    torch.testing.assert_close(feats.grad, expected_grad)  # gradient against the centroids before the update
    np.testing.assert_allclose(memory.features.numpy(), expected_memory, atol=1e-12)


@pytest.mark.parametrize("mode", ["mean", "sample", "hard"])
def test_update_in_backward_equals_explicit_update(mode):
    explicit = make_memory(mode=mode, momentum=0.4)
    inside = make_memory(mode=mode, momentum=0.4, update_in_backward=True)
    feats, targets = batch(n=20)
    a, b = feats.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    explicit(a, targets).backward()
    explicit.update(a.detach(), targets)
    inside(b, targets).backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(inside.features, explicit.features, atol=1e-12, rtol=0)


def test_from_cluster_contrast_maps_arguments():
    memory = ClusterMemory.from_cluster_contrast(8, 3, temp=0.07, momentum=0.1, use_hard=True)
    assert (memory.num_features, memory.num_clusters, memory.temperature, memory.momentum) == (8, 3, 0.07, 0.1)
    assert memory.mode == "hard" and memory.update_in_backward
    assert ClusterMemory.from_cluster_contrast(8, 3).mode == "sample"
    with pytest.raises(TypeError, match=r"use_hard must be a bool, got 1"):
        ClusterMemory.from_cluster_contrast(8, 3, use_hard=1)


def test_update_refused_when_it_runs_in_backward():
    memory = make_memory(update_in_backward=True)
    with pytest.raises(RuntimeError, match=r"inside loss.backward\(\).*twice"):
        memory.update(*batch())


def _train_steps(memory, steps, *, update):
    for seed in range(steps):
        feats, targets = batch(seed=seed)
        feats.requires_grad_(True)
        memory(feats, targets).backward()
        if update:
            memory.update(feats.detach(), targets)


def test_warns_once_when_training_without_update():
    memory = make_memory()
    with pytest.warns(UserWarning, match=r"10 training steps without any update.*memory.update") as record:
        _train_steps(memory, 25, update=False)
    assert len([w for w in record if "without any update" in str(w.message)]) == 1


@pytest.mark.parametrize(
    "kwargs", [{"update": True}, {"update": False, "eval": True}, {"update": False, "inside": True}]
)
def test_no_frozen_warning_when_updated_or_not_training(kwargs):
    memory = make_memory(update_in_backward=kwargs.get("inside", False))
    if kwargs.get("eval"):
        memory.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train_steps(memory, 25, update=kwargs["update"])


def test_warns_when_forward_runs_before_centroids_are_set():
    memory = ClusterMemory(4, 5).double()
    feats, targets = batch()
    with pytest.warns(UserWarning, match=r"before the centroids were set.*memory.reset"):
        memory(feats, targets)
    set_by_assignment = ClusterMemory.from_cluster_contrast(4, 5).double()
    set_by_assignment.features = torch.randn(5, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_by_assignment(feats, targets)
        make_memory()(feats, targets)


@pytest.mark.parametrize("inside", [False, True])
def test_nan_features_refused_in_update(inside):
    memory = make_memory(update_in_backward=inside)
    start = memory.features.clone()
    feats, targets = batch(with_outliers=False)
    feats[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"feats must be finite to update the memory.*row 3"):
        if inside:
            memory(feats.requires_grad_(True), targets).backward()
        else:
            memory.update(feats, targets)
    assert torch.equal(memory.features, start)
