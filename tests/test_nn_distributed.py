"""Two CPU processes on the gloo backend: gathers, memory replicas, sharded extraction and kNN search."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")
dist = pytest.importorskip("torch.distributed", reason="torch extra not installed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available in this torch build", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from labelrefine.neighbors import knn  # noqa: E402
from labelrefine.nn import (  # noqa: E402
    ClusterMemory,
    all_gather_tensor,
    broadcast_object,
    extract_features,
    gather_tensor,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    sharded_knn,
)

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md

WORLD = 2
SIZES = (5, 8)  # unequal per-rank batch sizes
N_IMAGES = 13  # shards of 6 and 7


def rank_batch(rank):
    g = torch.Generator().manual_seed(100 + rank)
    feats = torch.randn(SIZES[rank], 4, generator=g, dtype=torch.float64)
    targets = torch.randint(-1, 3, (SIZES[rank],), generator=g)
    return feats, targets


def fresh_memory(mode):
    memory = ClusterMemory(4, 3, momentum=0.3, mode=mode).double()
    memory.reset(torch.randn(3, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    return memory


def image_data():
    g = torch.Generator().manual_seed(3)
    return TensorDataset(torch.randn(N_IMAGES, 3, 6, 4, generator=g), torch.arange(N_IMAGES))


def embedder():
    torch.manual_seed(5)
    return nn.Sequential(nn.Flatten(), nn.Linear(72, 6), nn.BatchNorm1d(6))


def knn_data():
    """101 samples (shards of 50 and 51 rows) without tied distances."""
    return np.random.default_rng(11).normal(size=(101, 8)).astype(np.float32)


def _worker(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        result = {"rank": get_rank(), "world": get_world_size(), "dist": is_distributed(), "main": is_main_process()}
        feats, targets = rank_batch(rank)
        result["all_gather"] = all_gather_tensor(feats)
        result["all_gather_targets"] = all_gather_tensor(targets)
        result["gather"] = gather_tensor(targets.unsqueeze(1), dst=0)
        result["broadcast"] = broadcast_object({"labels": [rank, 42]} if rank == 0 else None)
        for mode in ("mean", "hard"):
            memory = fresh_memory(mode)
            memory.update(feats, targets)
            result[f"memory_{mode}"] = memory.features.clone()
        model = embedder()
        ddp = nn.parallel.DistributedDataParallel(model)
        result["extract"] = extract_features(ddp, image_data(), batch_size=4, progress=False)
        result["extract_flip"] = extract_features(model, image_data(), batch_size=3, flip=True, progress=False)
        result["knn_numpy"] = sharded_knn(knn_data(), 7, backend="numpy")
        result["knn_torch"] = sharded_knn(torch.from_numpy(knn_data()), 7, backend="torch")
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def concatenated():
    parts = [rank_batch(r) for r in range(WORLD)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def test_rank_helpers(results):
    for r, res in enumerate(results):
        assert (res["rank"], res["world"], res["dist"], res["main"]) == (r, WORLD, True, r == 0)
    assert (get_rank(), get_world_size(), is_distributed(), is_main_process()) == (0, 1, False, True)


def test_all_gather_unequal_sizes_in_rank_order(results):
    feats, targets = concatenated()
    for res in results:
        assert torch.equal(res["all_gather"], feats) and torch.equal(res["all_gather_targets"], targets)


def test_gather_to_rank_zero_only(results):
    _, targets = concatenated()
    assert torch.equal(results[0]["gather"], targets.unsqueeze(1))
    assert results[1]["gather"] is None


def test_broadcast_object(results):
    assert results[0]["broadcast"] == results[1]["broadcast"] == {"labels": [0, 42]}


@pytest.mark.parametrize("mode", ["mean", "hard"])
def test_memory_replicas_equal_single_process_on_concatenated_batch(results, mode):
    assert torch.equal(results[0][f"memory_{mode}"], results[1][f"memory_{mode}"])
    single = fresh_memory(mode)
    single.update(*concatenated())
    torch.testing.assert_close(results[0][f"memory_{mode}"], single.features, atol=1e-12, rtol=0)
    assert not torch.equal(single.features, fresh_memory(mode).features)  # the update did something


def test_sharded_extraction_equals_single_process(results):
    expected = extract_features(embedder(), image_data(), batch_size=5, progress=False)
    assert results[1]["extract"] is None and results[1]["extract_flip"] is None
    np.testing.assert_allclose(results[0]["extract"], expected, atol=1e-6)
    expected_flip = extract_features(embedder(), image_data(), batch_size=13, flip=True, progress=False)
    np.testing.assert_allclose(results[0]["extract_flip"], expected_flip, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sharded_knn_equals_single_process(results, backend):
    expected = knn(knn_data(), 7, backend=backend)
    graph = results[0][f"knn_{backend}"]
    assert results[1][f"knn_{backend}"] is None
    assert graph.includes_self and graph.recall is None
    np.testing.assert_array_equal(graph.indices, expected.indices)
    np.testing.assert_allclose(graph.distances, expected.distances, atol=1e-6)


def test_single_process_helpers_are_identities():
    t = torch.arange(6).reshape(3, 2)
    assert torch.equal(all_gather_tensor(t), t) and torch.equal(gather_tensor(t), t)
    assert broadcast_object([1, 2]) == [1, 2]


def test_error_gather_non_tensor():
    with pytest.raises(TypeError, match=r"t must be a torch.Tensor, got list"):
        all_gather_tensor([1, 2])


def test_error_gather_scalar():
    with pytest.raises(ValueError, match=r"t must have at least one dimension.*0-d"):
        gather_tensor(torch.tensor(1.0))


def test_error_gather_bad_dst():
    with pytest.raises(ValueError, match=r"dst \(a rank\) must be in \[0, 0\], got 1"):
        gather_tensor(torch.ones(2), dst=1)


def test_error_broadcast_bad_src():
    with pytest.raises(ValueError, match=r"src \(a rank\) must be in \[0, 0\], got -1"):
        broadcast_object(1, src=-1)
