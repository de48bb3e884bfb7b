"""Which refinement rule makes pseudo labels better? Every rule on three kinds of stage-1 local labels.

Cells (each the mean over seeds):

- ``profile``: local labels from ``make_stage1_like`` with the statistics of the authors' released
  stage-1 labels (Market-1501 and DukeMTMC-reID profiles), at three camera strengths;
- ``released``: the released local labels themselves (``benchmarks/data/*-stage1.npz``, and any
  ``--stage1 FILE.npz`` with the same arrays ``pid``, ``cam``, ``local``), features simulated from
  ``pid`` and ``cam`` by ``simulate_features`` at the two camera strengths that make the Infomap
  global clusters about 0.8 and about 0.5 pairwise-precise;
- ``fragments``: the earlier sweep, ``make_camera_biased`` with 1, 2, 4, 8 local clusters per
  identity-in-camera, 0 or 10 % impure local clusters, camera strength 0.7 and 0.9.

Global labels come from Infomap on the k = 15 kNN graph (the paper's clustering); every rule refines
the same labels on the same graph. Reported per cell and rule (``labelrefine.metrics.impurity_report``):
impurities removed, discard precision, true members cut, change of pairwise precision (retained
images) and of pairwise recall (-1 as singletons), coverage; and the ceiling: the share of the
impurities whose local cluster holds no member of their cluster's majority identity in that camera.

The bar (per cell): discard precision >= 0.85, precision gain >= +0.04, recall change >= -0.04. The
default rule is the one with the highest mean impurity removal among those that hold it in every cell.

Usage: python benchmarks/refine_quality.py [--quick] [--seeds 3] [--stage1 FILE.npz ...] [--figure PNG]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, table

from labelrefine import impurity_report, infomap_cluster, knn, refine
from labelrefine.metrics import majority_identity, pairwise_scores
from labelrefine.pivots import DEFAULT_RULE, PIVOT_RULES
from labelrefine.synthetic import make_camera_biased, make_stage1_like, simulate_features

DATA = Path(__file__).parent / "data"
RELEASED = (DATA / "market-stage1.npz", DATA / "duke-stage1.npz")
PROFILE_PRECISIONS = (0.8, 0.65, 0.5)  # global pairwise precision the profile cells are calibrated to
RELEASED_PRECISIONS = (0.8, 0.5)
SWEEP = [(bias, impurity, fragments) for bias in (0.7, 0.9) for impurity in (0.0, 0.1) for fragments in (1, 2, 4, 8)]
DEVIATIONS = (3.0, 4.0, 4.5, 5.0, 6.0)  # max_deviation values of the "cross-camera" sweep
BAR = {"discard_precision": 0.85, "precision_gain": 0.04, "recall_change": -0.04}
METRICS = (
    "impurities_removed",
    "discard_precision",
    "true_members_cut",
    "precision_gain",
    "recall_change",
    "coverage",
    "ceiling",
)


def global_labels(feats: np.ndarray, seed: int) -> tuple[np.ndarray, Any]:
    graph = knn(feats, 15)  # self + the k = 15 neighbours of Eq. 4
    return infomap_cluster(graph, min_sim=0.5, rng=seed + 1), graph  # Infomap seeds are >= 1


def ceiling(pids: np.ndarray, labels: np.ndarray, local: np.ndarray, cams: np.ndarray) -> float:
    """Share of impurities whose (cluster, camera, local cluster) fragment holds no majority member."""
    majority = majority_identity(pids, labels)
    codes = np.unique(pids, return_inverse=True)[1].reshape(-1)
    clustered = labels >= 0
    impurity = clustered & (codes != majority)
    fragment = np.unique(np.stack([labels, cams, local], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    holds_majority = np.bincount(fragment, weights=clustered & ~impurity) > 0
    return float((impurity & ~holds_majority[fragment]).sum() / max(impurity.sum(), 1))


def evaluate(pids, cams, local, feats, seed: int, variants: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Metrics of every variant ({name: refine options}) on one data set."""
    labels, graph = global_labels(feats, seed)
    top = ceiling(pids, labels, local, cams)
    out = {}
    for name, options in variants.items():
        refined = refine(labels, local, cams, feats, knn=graph, **options).labels
        out[name] = {**impurity_report(pids, labels, refined)._asdict(), "ceiling": top}
    return out


@functools.cache
def calibrated_strength(name: str, target: float) -> float:
    """Camera strength whose Infomap clusters (seed 0) come closest to pairwise precision ``target``."""
    pids, cams, _ = stage1_arrays(name)

    def precision(strength: float) -> float:
        labels, _ = global_labels(simulate_features(pids, cams, camera_strength=strength, rng=0), 0)
        return pairwise_scores(pids, labels).precision

    low, high = 0.0, 1.5
    for _ in range(8):  # precision falls as the camera strength grows
        middle = (low + high) / 2
        low, high = (middle, high) if precision(middle) > target else (low, middle)
    return round((low + high) / 2, 3)


@functools.cache
def stage1_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pid, cam, local) of a released-labels file, or of a profile's generated set (seed 0) for calibration."""
    if name.endswith(".npz"):
        with np.load(name) as arrays:
            return arrays["pid"], arrays["cam"], arrays["local"]
    data = make_stage1_like(name, rng=0)
    return data.pids, data.cams, data.local_labels


def mean_over_seeds(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {name: {m: statistics.fmean(r[name][m] for r in rows) for m in METRICS} for name in rows[0]}


def run(seeds: int, quick: bool, extra: list[str], variants: dict[str, dict], progress) -> dict[tuple, dict]:
    """{(kind, data, setting): {variant: mean metrics}}."""
    cells: dict[tuple, dict] = {}
    scale = 0.3 if quick else 1.0
    for profile in ("market", "duke"):
        for target in PROFILE_PRECISIONS:
            strength = calibrated_strength(profile, target)
            rows = []
            for seed in range(seeds):
                data = make_stage1_like(profile, camera_strength=strength, scale=scale, rng=seed)
                rows.append(evaluate(data.pids, data.cams, data.local_labels, data.feats, seed, variants))
            cells[("profile", profile, f"P~{target} (strength {strength})")] = mean_over_seeds(rows)
            progress()
    for path in [*map(str, RELEASED), *extra]:
        pids, cams, local = stage1_arrays(path)
        for target in RELEASED_PRECISIONS:
            strength = calibrated_strength(path, target)
            rows = []
            for seed in range(seeds):
                feats = simulate_features(pids, cams, camera_strength=strength, rng=seed)
                rows.append(evaluate(pids, cams, local, feats, seed, variants))
            cells[("released", Path(path).stem, f"P~{target} (strength {strength})")] = mean_over_seeds(rows)
            progress()
    for bias, impurity, fragments in SWEEP:
        rows = []
        for seed in range(seeds):
            data = make_camera_biased(
                100 if quick else 200,
                6,
                images_per_camera=(4, 16),
                camera_strength=bias,
                local_fragments=fragments,
                local_impurity=impurity,
                local_noise=0.0,
                rng=seed,
            )
            rows.append(evaluate(data.pids, data.cams, data.local_labels, data.feats, seed, variants))
        cells[("fragments", f"{fragments} per id-in-camera, impurity {impurity}", f"strength {bias}")] = (
            mean_over_seeds(rows)
        )
        progress()
    return cells


def passes(m: dict[str, float]) -> bool:
    return (
        m["discard_precision"] >= BAR["discard_precision"]
        and m["precision_gain"] >= BAR["precision_gain"]
        and m["recall_change"] >= BAR["recall_change"]
    )


def summary(cells: dict[tuple, dict], names: list[str]) -> tuple[str, dict[str, tuple[int, float]]]:
    headers = [
        "rule",
        "cells passing",
        "mean removed",
        "worst discard precision",
        "worst precision gain",
        "worst recall change",
        "true members cut (mean)",
        "coverage",
    ]
    rows, scores = [], {}
    for name in names:
        ms = [cell[name] for cell in cells.values()]
        n_pass = sum(map(passes, ms))
        mean_removed = statistics.fmean(m["impurities_removed"] for m in ms)
        scores[name] = (n_pass, mean_removed)
        rows.append(
            [
                f"`{name}`",
                f"{n_pass}/{len(ms)}",
                f"{mean_removed:.1%}",
                f"{min(m['discard_precision'] for m in ms):.3f}",
                f"{min(m['precision_gain'] for m in ms):+.3f}",
                f"{min(m['recall_change'] for m in ms):+.3f}",
                f"{statistics.fmean(m['true_members_cut'] for m in ms):.0f}",
                f"{statistics.fmean(m['coverage'] for m in ms):.3f}",
            ]
        )
    return table(headers, rows), scores


def verdict(scores: dict[str, tuple[int, float]], n_cells: int, what: str) -> str:
    """The rule the study picks: highest mean removal among those that hold the bar in every cell."""
    holding = [name for name, (n_pass, _) in scores.items() if n_pass == n_cells]
    if not holding:
        most = max(n_pass for n_pass, _ in scores.values())
        return f"No rule holds the bar in every {what}; the most {what}s held by one rule: {most}/{n_cells}."
    best = max(holding, key=lambda name: scores[name][1])
    return f"Highest mean removal among the rules that hold the bar in every {what}: `{best}` ({scores[best][1]:.1%})."


def cell_table(cells: dict[tuple, dict], names: list[str]) -> str:
    headers = ["kind", "data", "setting", "ceiling", *(f"`{n}` removed / precision / dP / dR" for n in names)]
    rows = []
    for (kind, data, setting), per in cells.items():
        marks = [
            f"{m['impurities_removed']:.0%} / {m['discard_precision']:.2f} / {m['precision_gain']:+.3f} / "
            f"{m['recall_change']:+.3f}{'' if passes(m) else ' ✗'}"
            for m in (per[n] for n in names)
        ]
        rows.append([kind, data, setting, f"{next(iter(per.values()))['ceiling']:.0%}", *marks])
    return table(headers, rows)


def plot(cells: dict[tuple, dict], names: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in names:
        ms = [cell[name] for cell in cells.values()]
        ax.scatter(
            [m["impurities_removed"] for m in ms], [m["discard_precision"] for m in ms], label=name, s=18, alpha=0.8
        )
    ax.axhline(BAR["discard_precision"], color="black", linewidth=0.8)
    ax.set_xlabel("impurities removed (per cell)")
    ax.set_ylabel("discard precision (per cell)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Every rule on every cell: up and to the right is better\nline: the bar on discard precision")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and smaller sets (about a minute)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    parser.add_argument("--stage1", nargs="*", default=[], metavar="NPZ", help="more released-label files")
    parser.add_argument("--figure", metavar="PNG", help="save the removed / discard-precision figure here")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    variants: dict[str, dict] = {rule: {"rule": rule} for rule in PIVOT_RULES}
    variants.update({f"cross-camera, max_deviation={d}": {"max_deviation": d} for d in DEVIATIONS})
    start = time.perf_counter()
    done = [0]
    n_cells = 2 * len(PROFILE_PRECISIONS) + len(RELEASED_PRECISIONS) * (len(RELEASED) + len(args.stage1)) + len(SWEEP)

    def progress() -> None:
        done[0] += 1
        print(f"  cell {done[0]}/{n_cells} ({time.perf_counter() - start:.0f} s)", flush=True)

    cells = run(seeds, args.quick, args.stage1, variants, progress)
    print(f"\n# refine quality: {len(cells)} cells, {seeds} seed(s) each; {machine()}\n")
    rules = list(PIVOT_RULES)
    text, scores = summary(cells, rules)
    print("## Every rule (the bar per cell: discard precision >= 0.85, precision gain >= +0.04, recall >= -0.04)\n")
    print(text)
    print(f"\n{verdict(scores, len(cells), 'cell')}\nThe library default is `{DEFAULT_RULE}`.\n")
    print("## The cross-camera threshold (max_deviation)\n")
    print(summary(cells, [n for n in variants if n.startswith("cross-camera,")])[0])
    released = {key: cell for key, cell in cells.items() if key[0] == "released"}
    print(f"\n## The released stage-1 labels only ({len(released)} cells: the data the bar is judged on)\n")
    text, released_scores = summary(released, list(variants))
    print(text)
    print(f"\n{verdict(released_scores, len(released), 'released cell')}")
    print("\n## Per cell: impurities removed / discard precision / precision gain / recall change\n")
    print("(✗: the cell misses the bar)\n")
    print(cell_table(cells, ["cross-camera", "algorithm1", "all", "linked", "camera", "reference"]))
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.figure:
        plot(cells, rules, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
