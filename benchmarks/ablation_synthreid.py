"""Ablation of the CALR recipe on SynthReID images with a tiny CNN (analogue of the paper's Table III).

Both stages of :mod:`labelrefine.recipes.calr` run with the ``synthreid`` preset: generated
person images in the Market-1501 layout (:func:`labelrefine.data.make_synthreid`), read from
JPEG files, the usual train transforms, the PK sampler, a small CNN from random weights with a
BN neck, cluster memory, gradient reversal, feature extraction and evaluation, on the CPU. For
each seed (data seed = training seed): the dataset is generated, stage 1 runs once, then stage 2
for every variant with the same local labels:

- baseline (Infomap, no refinement, no alignment), + alignment (camera-domain loss through
  gradient reversal), + refinement, both (CALR).

Reported per variant, mean ± std over seeds: retrieval mAP and rank-1 on the held-out
identities after the last epoch, pairwise precision and recall of the last epoch's training
labels, the discarded fraction, the mAP ratio against the baseline, and the wall and CPU
(user + system, all threads of the process) seconds of a stage-2 run; the stage-1 times are in
the caption. On a shared machine wall times grow with the load; CPU times do not.

Usage: ``python benchmarks/ablation_synthreid.py [--seeds N] [--variants NAME ...] [--keep DIR]``.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ABLATION_HEADERS, TABLE_III, ablation_cells, collect, machine, parser, progress, table

from labelrefine.recipes.calr import resolve_config, train_inter, train_intra


def _timed(fn: object) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(seeds: list[int], variants: list[str], root: Path, sets: dict[str, str]) -> tuple[dict, dict]:
    logging.getLogger("labelrefine.recipes.calr").disabled = True
    results: dict[str, dict[str, list[float]]] = {}
    stage1: dict[str, list[float]] = {"wall": [], "cpu": [], "precision": [], "recall": []}
    for seed in seeds:
        common = {"runtime.progress": "false", "seed": str(seed), "synthetic.seed": str(seed), **sets}
        common["data.root"] = str(root / f"data-{seed}")
        intra_dir = root / f"intra-{seed}"
        config = resolve_config("intra", preset="synthreid", sets={**common, "runtime.run_dir": str(intra_dir)})
        progress(f"seed {seed}: stage 1 ...")
        result, wall, cpu = _timed(lambda c=config: train_intra(c))
        stage1["wall"].append(wall)
        stage1["cpu"].append(cpu)
        stage1["precision"].append(result.metrics["pairwise_precision"])  # type: ignore[attr-defined]
        stage1["recall"].append(result.metrics["pairwise_recall"])  # type: ignore[attr-defined]
        progress(f"seed {seed}: stage 1 {wall:.0f} s wall, {cpu:.0f} s CPU")
        for name in variants:
            run_dir = root / f"{name}-{seed}".replace(" ", "_")
            cfg = resolve_config(
                "inter",
                preset="synthreid",
                sets={
                    **common,
                    "runtime.run_dir": str(run_dir),
                    "refinement.local_labels": str(intra_dir),
                    **TABLE_III[name],
                },
            )
            result, wall, cpu = _timed(lambda c=cfg: train_inter(c))
            last = result.history[-1]  # type: ignore[attr-defined]
            collect(results, name, last, wall=wall, cpu=cpu)
            progress(
                f"seed {seed} {name}: mAP {100 * last['mAP']:.1f} rank-1 {100 * last['rank1']:.1f}, "
                f"{wall:.0f} s wall, {cpu:.0f} s CPU"
            )
    return results, stage1


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (1..N; default 3)")
    p.add_argument(
        "--variants", nargs="+", default=list(TABLE_III), choices=list(TABLE_III), help="variants to run (default all)"
    )
    p.add_argument("--keep", type=Path, default=None, help="keep data and runs in this folder (default: a temp folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra setting for both stages")
    args = p.parse_args()
    sets = dict(item.split("=", 1) for item in args.set)
    root = args.keep or Path(tempfile.mkdtemp(prefix="calr-synthreid-ablation-"))
    variants = [v for v in TABLE_III if v in args.variants]
    tic = time.perf_counter()
    try:
        results, stage1 = run(list(range(1, args.seeds + 1)), variants, root, sets)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    reference = "baseline" if "baseline" in results else variants[0]
    headers = ["variant", *ABLATION_HEADERS, "wall s", "CPU s"]
    rows = [
        [
            name,
            *ablation_cells(results, name, reference),
            f"{statistics.fmean(results[name]['wall']):.0f}",
            f"{statistics.fmean(results[name]['cpu']):.0f}",
        ]
        for name in variants
    ]
    config = resolve_config("inter", preset="synthreid", sets=sets)
    print(f"# CALR ablation on SynthReID images, tiny CNN ({machine()})\n")
    print(
        f"{args.seeds} seeds, preset synthreid{''.join(f' --set {s}' for s in args.set)}: "
        f"{config.synthetic.reid_ids} identities (half for training), {config.synthetic.reid_cams} cameras, "
        f"{config.optim.epochs} stage-2 epochs of {config.optim.iters_per_epoch} iterations; mean ± std over seeds. "
        f"Stage 1 (once per seed): {statistics.fmean(stage1['wall']):.0f} s wall, "
        f"{statistics.fmean(stage1['cpu']):.0f} s CPU, local labels pairwise precision "
        f"{100 * statistics.fmean(stage1['precision']):.1f}%, recall {100 * statistics.fmean(stage1['recall']):.1f}%. "
        f"wall s / CPU s: mean stage-2 run; mAP ratio: against the {reference}.\n"
    )
    print(table(headers, rows))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
