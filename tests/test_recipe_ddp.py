"""Multi-process training: 2 gloo processes on the CPU against one process with the same global batch.

What is equal and how:

- pseudo labels of every epoch (clustering on rank 0, broadcast): exactly equal;
- the global batches: exactly equal by construction (one sampler for the global batch, sliced per rank);
- BatchNorm: :class:`GlobalBatchNorm` over 2 x 16 samples equals BatchNorm over the 32 samples to float
  rounding (two-pass statistics through all-reduce), checked on outputs, running statistics and gradients;
- trained weights, BatchNorm statistics and the cluster memory: equal to float32 rounding (rtol 1e-4,
  atol 1e-5; measured differences are about 1e-7) with SGD. The test uses SGD because Adam's first
  steps move every coordinate by about +-lr whatever the size of its gradient: coordinates whose true
  gradient is zero (a bias in front of a BatchNorm) then move by the sign of rounding noise, which
  differs between a sum over 32 samples and two sums over 16 (differences of about lr, with Adam).
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")
pytest.importorskip("infomap")

import torch.distributed as dist  # noqa: E402

from labelrefine.nn import GlobalBatchNorm, convert_batchnorm  # noqa: E402
from labelrefine.recipes.calr import resolve_config, spawn, train_inter  # noqa: E402
from labelrefine.recipes.calr.runtime import read_log  # noqa: E402

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md


def _bn_worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        x = torch.randn(32, 6, 3, 3, dtype=torch.float64)
        bn = convert_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(6).double()), torch.device("cpu"))
        assert isinstance(bn[0], GlobalBatchNorm)
        with torch.no_grad():
            bn[0].weight.uniform_(0.5, 1.5)
            bn[0].bias.uniform_(-1, 1)
        part = x[rank * 16 : (rank + 1) * 16].clone().requires_grad_(True)
        y = bn(part)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).cos()).sum().backward()
        grads = torch.stack([bn[0].weight.grad, bn[0].bias.grad])
        dist.all_reduce(grads)
        torch.save(
            {
                "y": y.detach(),
                "grad_x": part.grad,
                "grads": grads,
                "mean": bn[0].running_mean,
                "var": bn[0].running_var,
            },
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_global_batchnorm_equals_batchnorm_over_the_whole_batch(tmp_path):
    init = os.path.join(tempfile.mkdtemp(), "init")
    torch.multiprocessing.spawn(_bn_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    x = torch.randn(32, 6, 3, 3, dtype=torch.float64).requires_grad_(True)
    bn = torch.nn.BatchNorm2d(6).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    y = bn(x)
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    weights = torch.cat([torch.arange(16 * 54, dtype=y.dtype).reshape(16, 6, 3, 3).cos() for _ in range(2)])
    (y * weights).sum().backward()
    torch.testing.assert_close(torch.cat([p["y"] for p in parts]), y.detach())
    torch.testing.assert_close(torch.cat([p["grad_x"] for p in parts]), x.grad)
    torch.testing.assert_close(parts[0]["grads"], torch.stack([bn.weight.grad, bn.bias.grad]))
    for p in parts:
        torch.testing.assert_close(p["mean"], bn.running_mean)
        torch.testing.assert_close(p["var"], bn.running_var)


def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tmp_path):
    logging.getLogger("labelrefine.recipes.calr").propagate = False
    sets = {
        "runtime.progress": "false",
        "synthetic.ids": "60",
        "synthetic.cams": "3",
        "optim.epochs": "2",
        "optim.iters_per_epoch": "4",
        "optim.batch_size": "32",
        "optim.num_instances": "4",
        "refinement.cacl_warmup": "1",
        "alignment.epochs": "null",
        "refinement.local_labels": "per-camera",
        "deterministic": "true",
        "optim.optimizer": "sgd",
        "optim.lr": "0.01",
    }
    one = resolve_config("inter", preset="synthetic", sets={**sets, "runtime.run_dir": str(tmp_path / "one")})
    two = resolve_config("inter", preset="synthetic", sets={**sets, "runtime.run_dir": str(tmp_path / "two")})
    try:
        train_inter(one)
        spawn("inter", two, 2)
    finally:
        logging.getLogger("labelrefine.recipes.calr").propagate = True
    a = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    for part in ("encoder", "classifier", "memory"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            torch.testing.assert_close(b[part][key], a[part][key], rtol=1e-4, atol=1e-5, msg=f"{part}.{key}")
    log_one, log_two = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["n_clusters"] for r in log_one] == [r["n_clusters"] for r in log_two]
    assert log_two[-1]["cacl"] is True and float(a["memory"]["cluster_weights"].max()) > 0  # weighted loss
    np.testing.assert_allclose([r["mAP"] for r in log_two], [r["mAP"] for r in log_one], rtol=1e-4)
    import json

    env = json.loads((tmp_path / "two" / "env.json").read_text())
    assert (env["world_size"], env["global_batch"], env["per_device_batch"], env["sync_bn"]) == (2, 32, 16, True)
