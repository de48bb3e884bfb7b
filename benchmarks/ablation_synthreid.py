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

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ABLATION_HEADERS, TABLE_III, ablation_cells, machine, parser, synthreid_runs, table

from labelrefine.recipes.calr import resolve_config


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
        results, stage1, _ = synthreid_runs(
            list(range(1, args.seeds + 1)), {name: TABLE_III[name] for name in variants}, root, sets
        )
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
