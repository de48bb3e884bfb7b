"""Ablations of the CALR recipe on camera-biased synthetic features (analogues of the paper's Tables III and IV).

Both stages of :mod:`labelrefine.recipes.calr` run with the ``synthetic`` preset (a residual MLP over
feature vectors from :func:`labelrefine.synthetic.make_camera_biased`, CPU, one thread). For each seed:
stage 1 once, then stage 2 for every variant with the same local labels.

- Table III: baseline (Infomap, no refinement, no alignment), + alignment (camera-domain loss
  through gradient reversal), + refinement, both.
- Table IV: decay of the discard probability p with both components on: none (p = 1), linear,
  polynomial, exponential, cosine with the authors' span 3.

Reported per variant, mean +- std over seeds: retrieval mAP and rank-1 on the held-out identities
after the last epoch, pairwise precision and recall of the last epoch's training labels, and the
discarded fraction. "untrained" is the input features themselves (the MLP starts as the identity).
Columns N (training samples), seconds (median stage-2 run), peak MiB (growth of the process's peak
RSS after importing torch, ``resource.getrusage``, up to that row: torch allocations are not traced
by tracemalloc) and the mAP ratio against the baseline of the same seeds.

Usage: ``python benchmarks/ablation_synthetic.py [--quick] [--seeds N]``.
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

from _common import (
    ABLATION_HEADERS,
    TABLE_III,
    ablation_cells,
    collect,
    machine,
    parser,
    peak_rss_mib,
    progress,
    table,
)

from labelrefine.recipes.calr import resolve_config, train_inter, train_intra
from labelrefine.recipes.calr.data import synthetic_splits
from labelrefine.retrieval import evaluate_retrieval

TABLE_IV = {
    "none (p = 1)": {"refinement.schedule": "constant"},
    "linear": {"refinement.schedule": "linear"},
    "polynomial": {"refinement.schedule": "polynomial"},
    "exponential": {"refinement.schedule": "exponential"},
    "cosine (authors)": {},
}


def run(seeds: list[int], epochs: int, synth_ids: int, root: Path) -> tuple[dict, dict, float, int]:
    logging.getLogger("labelrefine.recipes.calr").disabled = True
    variants = {**TABLE_III, **{k: v for k, v in TABLE_IV.items() if k != "cosine (authors)"}}
    progress(
        f"{len(seeds)} seeds x (stage 1 + {len(variants)} stage-2 variants of {epochs} epochs); "
        "one line per run here, the tables at the end"
    )
    base = {"runtime.progress": "false", "synthetic.ids": str(synth_ids)}
    results: dict[str, dict[str, list[float]]] = {}
    untrained: list[float] = []
    n_train = 0
    import torch  # noqa: F401 - imported before the baseline so that the column counts training only

    start_rss = peak_rss_mib()
    peaks: dict[str, float] = {}
    for seed in seeds:
        common = {**base, "seed": str(seed), "synthetic.seed": str(seed)}
        intra_dir = root / f"intra-{seed}"
        progress(f"seed {seed}: stage 1 ...")
        tic = time.perf_counter()
        train_intra(resolve_config("intra", preset="synthetic", sets={**common, "runtime.run_dir": str(intra_dir)}))
        progress(f"seed {seed}: stage 1 done, {time.perf_counter() - tic:.0f} s")
        config = resolve_config("inter", preset="synthetic", sets={**common, "optim.epochs": str(epochs)})
        s = synthetic_splits(config)
        n_train = int(s["train_pids"].shape[0])
        untrained.append(
            evaluate_retrieval(
                s["query_pids"],
                s["gallery_pids"],
                query_cams=s["query_cams"],
                gallery_cams=s["gallery_cams"],
                query_feats=s["query_feats"],
                gallery_feats=s["gallery_feats"],
            ).mAP
        )
        for name, sets in variants.items():
            run_dir = root / f"{name}-{seed}".replace(" ", "_")
            cfg = resolve_config(
                "inter",
                preset="synthetic",
                sets={
                    **common,
                    "optim.epochs": str(epochs),
                    "runtime.run_dir": str(run_dir),
                    "refinement.local_labels": str(intra_dir),
                    **sets,
                },
            )
            tic = time.perf_counter()
            last = train_inter(cfg).history[-1]
            seconds = time.perf_counter() - tic
            collect(results, name, last, s=seconds)
            progress(f"seed {seed} {name}: mAP {100 * last['mAP']:.1f}, {seconds:.0f} s")
            peaks[name] = peak_rss_mib() - start_rss
            shutil.rmtree(run_dir, ignore_errors=True)
    results["cosine (authors)"] = results["both (CALR)"]
    return results, {"untrained": untrained, "peaks": peaks}, statistics.fmean(untrained), n_train


def _rows(names: list[str], results: dict, extra: dict, n_train: int, reference: str) -> list[list[str]]:
    rows = []
    for name in names:
        r = results[name]
        rows.append(
            [
                name,
                str(n_train),
                f"{statistics.median(r['s']):.2f}",
                f"{extra['peaks'].get(name, extra['peaks'].get('both (CALR)', 0.0)):.0f}",
                *ablation_cells(results, name, reference),
            ]
        )
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 2 with --quick, else 5)")
    args = p.parse_args()
    n_seeds = args.seeds or (2 if args.quick else 5)
    epochs, synth_ids = (4, 160) if args.quick else (6, 200)
    root = Path(tempfile.mkdtemp(prefix="calr-ablation-"))
    tic = time.perf_counter()
    try:
        results, extra, untrained, n_train = run(list(range(1, n_seeds + 1)), epochs, synth_ids, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    headers = ["variant", "N", "seconds", "peak MiB", *ABLATION_HEADERS]
    print(f"# CALR ablations on synthetic camera-biased features ({machine()})\n")
    print(
        f"{n_seeds} seeds, {epochs} stage-2 epochs, {synth_ids} identities (half for training); mean ± std over "
        f"seeds; untrained input features: mAP {100 * untrained:.1f}%. seconds: median stage-2 run; peak MiB: "
        "growth of the process's peak RSS; mAP ratio: against the row named in the title.\n"
    )
    print("## Table III analogue (components; ratio vs baseline)\n")
    print(table(headers, _rows(list(TABLE_III), results, extra, n_train, "baseline")))
    print("\n## Table IV analogue (decay of p, alignment and refinement on; ratio vs none)\n")
    print(table(headers, _rows(list(TABLE_IV), results, extra, n_train, "none (p = 1)")))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
