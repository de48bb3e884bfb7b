"""Does the refinement rule change what training learns? CALR on SynthReID images with each rule.

Both recipe stages run with the ``synthreid`` preset (generated person images, a tiny CNN, CPU) as in
``ablation_synthreid.py``; for each seed stage 1 runs once and stage 2 (refinement and camera
alignment on) runs once per rule with the same local labels:

- ``cross-camera``: the library's default;
- ``linked``: the previous default;
- ``all``: every above-mean pivot vouches for its local cluster;
- ``camera``: one pivot per (cluster, camera) group.

Reported per rule, mean ± std over seeds: final retrieval mAP and rank-1, the last epoch's label
precision and recall and share of impurities removed; and the pairwise precision of the training
labels after refinement at every epoch (mean over seeds), the quantity refinement exists to raise.

Usage: python benchmarks/refine_endtoend.py [--seeds 3] [--rules cross-camera linked ...] [--max-deviation 3.0 ...]
[--keep DIR]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, mean_std, parser, synthreid_runs, table

from labelrefine.recipes.calr import resolve_config

RULES = ("cross-camera", "linked", "all", "camera")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (1..N; default 3)")
    p.add_argument("--rules", nargs="+", default=list(RULES), help="rules to compare (default: %(default)s)")
    p.add_argument(
        "--max-deviation",
        type=float,
        nargs="+",
        default=[],
        metavar="D",
        help="also run the cross-camera rule at these thresholds (stage 2's refinement.max_deviation)",
    )
    p.add_argument("--keep", type=Path, default=None, help="keep data and runs in this folder (default: a temp folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra setting for both stages")
    args = p.parse_args()
    sets = dict(item.split("=", 1) for item in args.set)
    root = args.keep or Path(tempfile.mkdtemp(prefix="calr-refine-endtoend-"))
    tic = time.perf_counter()
    variants = {rule: {"refinement.rule": rule} for rule in args.rules}
    variants.update(
        {
            f"cross-camera, max_deviation={d}": {"refinement.rule": "cross-camera", "refinement.max_deviation": str(d)}
            for d in args.max_deviation
        }
    )
    try:
        results, stage1, histories = synthreid_runs(list(range(1, args.seeds + 1)), variants, root, sets)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    config = resolve_config("inter", preset="synthreid", sets=sets)
    print(f"# Refinement rules in training: SynthReID images, tiny CNN ({machine()})\n")
    print(
        f"{args.seeds} seeds, preset synthreid{''.join(f' --set {s}' for s in args.set)}: "
        f"{config.synthetic.reid_ids} identities (half for training), {config.synthetic.reid_cams} cameras, "
        f"{config.optim.epochs} stage-2 epochs with refinement and alignment; mean ± std over seeds. Stage-1 local "
        f"labels: pairwise precision {100 * statistics.fmean(stage1['precision']):.1f}%, recall "
        f"{100 * statistics.fmean(stage1['recall']):.1f}%.\n"
    )
    headers = ["rule", "mAP (%)", "rank-1 (%)", "label precision (%)", "label recall (%)", "impurities removed (%)"]
    rows = []
    for rule in variants:
        r = results[rule]
        removed = [h[-1]["impurity"]["impurities_removed"] for h in histories[rule]]
        rows.append(
            [
                f"`{rule}`",
                mean_std(r["mAP"]),
                mean_std(r["rank1"]),
                mean_std(r["precision"]),
                mean_std(r["recall"]),
                mean_std(removed),
            ]
        )
    print(table(headers, rows))
    print("\nPairwise precision (%) of the training labels after refinement, per epoch (mean over seeds):\n")
    epochs = len(histories[next(iter(variants))][0])
    per_epoch = [
        [f"`{rule}`"]
        + [
            f"{100 * statistics.fmean(h[e]['quality']['refined']['pairwise_precision'] for h in histories[rule]):.1f}"
            for e in range(epochs)
        ]
        for rule in variants
    ]
    print(table(["rule", *(str(e) for e in range(epochs))], per_epoch))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
