"""Checks that need a CUDA device (marker ``cuda``; skipped without one).

Run them with ``pytest -m cuda`` (``benchmarks/gpu_check.sh`` does, with the rest of the GPU
check). They compare the CUDA paths with the CPU ones on small inputs:

- the torch backend of :mod:`labelrefine.neighbors` on CUDA tensors against the numpy backend
  (every float dtype, a block smaller than N, Jaccard with and without a graph), and ``"auto"``
  picking it for CUDA tensors;
- ClusterMemory and the gradient reversal layer (labelrefine.nn) on CUDA under float16 autocast
  with gradient scaling, against the same steps in float32 on the CPU;
- extract_features with a model on CUDA against the same model on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labelrefine.neighbors import jaccard_distance, knn, knn_search  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def entangled(seed: int, n: int = 600, dim: int = 32, per_id: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) // per_id
    centers = rng.normal(size=(ids.max() + 1, dim))
    bias = 0.6 * rng.normal(size=(3, dim))
    return (centers[ids] + bias[rng.integers(3, size=n)] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)


def assert_same_neighbours(got, ref, x: np.ndarray, q: np.ndarray | None = None, tol: float = 1e-5) -> None:
    (idx, dist), (ref_idx, ref_dist) = got, ref
    q = x if q is None else q
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(dist, ref_dist, atol=tol)
    rows, cols = np.nonzero(idx != ref_idx)
    a = 1.0 - np.einsum("ij,ij->i", qn[rows], xn[idx[rows, cols]])
    b = 1.0 - np.einsum("ij,ij->i", qn[rows], xn[ref_idx[rows, cols]])
    assert np.all(np.abs(a - b) < tol) and rows.size <= 0.01 * idx.size


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("k", "block_size"), [(16, None), (30, 77)])
def test_knn_torch_on_cuda_matches_numpy(dtype, k, block_size):
    cpu = torch.from_numpy(entangled(0)).to(dtype)
    t = cpu.cuda()
    before = t.clone()
    got = knn(t, k, backend="torch", block_size=block_size)
    assert isinstance(got[0], np.ndarray)
    assert_same_neighbours(got, knn(cpu, k, backend="numpy"), cpu.double().numpy())
    auto = knn(t, k, block_size=block_size)  # "auto" picks torch for CUDA tensors
    np.testing.assert_array_equal(auto[0], got[0])
    assert torch.equal(t, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_knn_search_torch_on_cuda_matches_numpy(dtype):
    x, q = torch.from_numpy(entangled(1)).to(dtype), torch.from_numpy(entangled(2, n=100)).to(dtype)
    got = knn_search(q.cuda(), x.cuda(), 10, backend="torch", block_size=33)
    ref = knn_search(q, x, 10, backend="numpy")
    assert_same_neighbours(got, ref, x.double().numpy(), q.double().numpy())


def test_tf32_setting_is_restored_and_not_used():
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed: the kNN must still be exact
        x = torch.from_numpy(entangled(3))
        got = knn(x.cuda(), 12, backend="torch")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(old)
    assert_same_neighbours(got, knn(x, 12, backend="numpy"), x.double().numpy())


@pytest.mark.parametrize("inputs", ["feats", "graph", "feats+graph"])
@pytest.mark.parametrize("options", [{}, {"dtype": np.float16}, {"max_distance": 0.6, "block_size": 50}])
def test_jaccard_torch_on_cuda_equals_numpy(inputs, options):
    x = entangled(4)
    graph = knn(x, 24, backend="numpy")
    kw = {"k1": 20, "k2": 6, **options}
    ref = jaccard_distance(x if "feats" in inputs else None, knn=graph if "graph" in inputs else None, **kw)
    t = torch.from_numpy(x).cuda()
    tgraph = (torch.from_numpy(graph[0]).cuda(), torch.from_numpy(graph[1]).cuda())
    got = jaccard_distance(
        t if "feats" in inputs else None, knn=tgraph if "graph" in inputs else None, backend="auto", **kw
    )
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    # float16 storage: sums of the expansion in another order can round one ulp apart (4.9e-4)
    tol = 1e-3 if options.get("dtype") == np.float16 else 1e-5
    np.testing.assert_allclose(got.data, ref.data, atol=tol)


def test_pseudo_label_epoch_on_cuda_features():
    pytest.importorskip("infomap")
    from labelrefine.cluster import infomap_cluster
    from labelrefine.refine import refine

    x = entangled(5)
    cams = np.arange(len(x)) % 3
    local = np.arange(len(x)) // 2
    graph = knn(torch.from_numpy(x).cuda(), 15)
    labels = infomap_cluster(graph, min_sim=0.3)
    ref_graph = knn(x, 16, backend="numpy")
    np.testing.assert_array_equal(labels, infomap_cluster(ref_graph, min_sim=0.3))
    result = refine(labels, local, cams, x, knn=graph, k=15, rng=0)
    np.testing.assert_array_equal(result.labels, refine(labels, local, cams, x, knn=ref_graph, k=15, rng=0).labels)


def _memory_steps(device: str, amp: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three steps of encoder -> ClusterMemory + GRL camera loss; returns memory, encoder weight, loss."""
    from labelrefine.nn import CameraClassifier, ClusterMemory, camera_domain_loss, cluster_centroids

    torch.manual_seed(0)
    encoder = torch.nn.Linear(32, 16).to(device)
    classifier = CameraClassifier(16, num_cameras=3).to(device)
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(64, 32, generator=gen)
    labels = torch.arange(64) % 8
    cams = torch.arange(64) % 3
    memory = ClusterMemory(16, 8, momentum=0.2).to(device)
    with torch.no_grad():
        memory.reset(cluster_centroids(encoder(data.to(device)).float(), labels.to(device)))
    params = list(encoder.parameters()) + list(classifier.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    scaler = torch.amp.GradScaler(device, enabled=amp)
    loss = torch.zeros(())
    for step in range(3):  # loop over training steps
        idx = torch.arange(step * 16, step * 16 + 16)
        xb, yb, cb = data[idx].to(device), labels[idx].to(device), cams[idx].to(device)
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=amp):
            feats = encoder(xb)
            loss = memory(feats, yb) + camera_domain_loss(classifier(feats), cb)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        memory.update(feats.detach().float(), yb)
    return memory.features.float().cpu(), encoder.weight.detach().float().cpu(), loss.detach().float().cpu()


def test_cluster_memory_and_grl_on_cuda_with_amp():
    mem_cpu, w_cpu, loss_cpu = _memory_steps("cpu", amp=False)
    mem_cuda, w_cuda, loss_cuda = _memory_steps("cuda", amp=False)
    torch.testing.assert_close(mem_cuda, mem_cpu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w_cuda, w_cpu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss_cuda, loss_cpu, rtol=1e-4, atol=1e-5)
    mem_amp, w_amp, loss_amp = _memory_steps("cuda", amp=True)
    assert torch.isfinite(loss_amp) and loss_amp.dtype == torch.float32
    torch.testing.assert_close(loss_amp, loss_cpu, rtol=2e-2, atol=2e-2)  # float16 products
    torch.testing.assert_close(mem_amp, mem_cpu, rtol=0, atol=2e-2)
    torch.testing.assert_close(w_amp, w_cpu, rtol=0, atol=2e-2)
    assert torch.allclose(mem_amp.norm(dim=1), torch.ones(8), atol=1e-3)


def test_gradient_reversal_on_cuda_under_autocast():
    from labelrefine.nn import gradient_reversal

    x = torch.randn(8, 16, device="cuda", requires_grad=True)
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        y = torch.nn.functional.linear(gradient_reversal(x, 0.5), torch.eye(16, device="cuda"))
    y.float().sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, -0.5))


def test_extract_features_on_cuda_matches_cpu():
    from torch.utils.data import TensorDataset

    from labelrefine.nn import extract_features

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(72, 16), torch.nn.BatchNorm1d(16))
    images = torch.randn(40, 3, 6, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(images)
    cpu = extract_features(model, data, batch_size=8, progress=False, flip=True)
    gpu = extract_features(model.cuda(), data, batch_size=8, progress=False, flip=True)
    assert isinstance(gpu, np.ndarray) and gpu.dtype == np.float32
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)
