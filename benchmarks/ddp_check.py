"""Stage 2 in 2 processes (DistributedDataParallel) against 1 process with the same global batch.

Usage::

    python benchmarks/ddp_check.py --backend nccl --device cuda --out DIR   # needs 2 GPUs
    python benchmarks/ddp_check.py --backend gloo --device cpu --out DIR    # CPU (as tests/test_recipe_ddp.py)

Two short epochs of the synthetic preset (one process, then two spawned processes, one per GPU
with NCCL); prints the per-epoch cluster counts and mAP of both runs, the largest difference of
the trained weights and memory, and PASS/FAIL against the tolerances (labels equal, weights to
rtol 1e-3 / atol 1e-4: GPU reductions are not bitwise reproducible across batch splits). Exit
status 1 on FAIL.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="nccl", choices=["nccl", "gloo"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", required=True, help="folder for the two runs")
    args = p.parse_args()

    import torch

    from labelrefine.recipes.calr import resolve_config, spawn, train_inter
    from labelrefine.recipes.calr.runtime import read_log

    logging.getLogger("labelrefine.recipes.calr").propagate = False
    out = Path(args.out)
    sets = {
        "runtime.progress": "false",
        "runtime.device": args.device,
        "synthetic.ids": "60",
        "synthetic.cams": "3",
        "optim.epochs": "2",
        "optim.iters_per_epoch": "4",
        "optim.batch_size": "32",
        "optim.num_instances": "4",
        "refinement.cacl_warmup": "1",
        "alignment.epochs": "null",
        "refinement.local_labels": "per-camera",
        "optim.optimizer": "sgd",
        "optim.lr": "0.01",
    }
    one = resolve_config("inter", preset="synthetic", sets={**sets, "runtime.run_dir": str(out / "one")})
    two = resolve_config("inter", preset="synthetic", sets={**sets, "runtime.run_dir": str(out / "two")})
    train_inter(one)
    spawn("inter", two, 2, backend=args.backend)
    a = torch.load(out / "one" / "checkpoint.pt", weights_only=False, map_location="cpu")
    b = torch.load(out / "two" / "checkpoint.pt", weights_only=False, map_location="cpu")
    ok = bool(np.array_equal(a["labels"], b["labels"]))
    print(f"pseudo labels of the last epoch equal: {ok}")
    worst = 0.0
    for part in ("encoder", "classifier", "memory"):
        for key in a[part]:
            x, y = a[part][key], b[part][key]
            if not torch.is_floating_point(x):
                ok &= bool(torch.equal(x, y))
                continue
            worst = max(worst, float((x - y).abs().max()) if x.numel() else 0.0)
            ok &= bool(torch.allclose(y, x, rtol=1e-3, atol=1e-4))
    print(f"largest weight/memory difference 1 vs 2 processes: {worst:.2e} (tolerance rtol 1e-3, atol 1e-4)")
    log_one, log_two = read_log(out / "one"), read_log(out / "two")
    for r1, r2 in zip(log_one, log_two, strict=True):
        print(
            f"epoch {r1.get('epoch')}: clusters {r1['n_clusters']} vs {r2['n_clusters']}, "
            f"mAP {r1.get('mAP', float('nan')):.4f} vs {r2.get('mAP', float('nan')):.4f}"
        )
        ok &= r1["n_clusters"] == r2["n_clusters"]
    print("DDP check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
