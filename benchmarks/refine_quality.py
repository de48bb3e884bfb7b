"""Which pivot rule makes pseudo labels better? A sweep over local fragmentation, impurity and camera bias.

For every cell (camera bias x local impurity x local fragmentation) and seed: camera-biased features
(``make_camera_biased``), global labels from Infomap on the k = 15 kNN graph (the paper's clustering),
then ``refine`` with each rule on the same graph. Reported per rule, as the mean over seeds:

- dP: change in pairwise precision of the retained samples (-1 dropped), refined minus global;
- dR: change in pairwise recall with -1 counted as singletons (what a discarded true member costs);
- coverage (samples that keep a label), BCubed F (-1 as singletons) and expansion of the refined labels.

Fragmentation "agglo" takes the local labels from ``cluster_per_camera`` (Jaccard + agglomerative with
n_images / 5 clusters per camera) on the features themselves instead of generating them; its impurity is
whatever the clustering makes, so it appears once per bias.

Usage: python benchmarks/refine_quality.py [--quick] [--seeds 3] [--figure docs/img/refine-quality.png]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
from _common import machine, table

from labelrefine import cluster_per_camera, infomap_cluster, knn, refine
from labelrefine.metrics import cluster_report
from labelrefine.pivots import PIVOT_RULES
from labelrefine.synthetic import make_camera_biased

BIASES = (0.5, 0.7, 0.9)
IMPURITIES = (0.0, 0.1)
FRAGMENTS: tuple[int | str, ...] = (1, 2, 4, 8, "agglo")
# Bar of issue 10 / DESIGN.md section 4, per cell: precision never lower, recall at most 0.05 lower.
MIN_PRECISION_GAIN, MIN_RECALL_CHANGE = 0.0, -0.05


def make_cell(bias: float, impurity: float, fragments: int | str, seed: int, n_ids: int):
    """Features, identities, cameras, local labels, the kNN graph and the global labels of one cell."""
    options = {"local_fragments": 1} if fragments == "agglo" else {"local_fragments": fragments}
    data = make_camera_biased(
        n_ids,
        6,
        images_per_camera=(4, 16),
        camera_strength=bias,
        local_impurity=impurity,
        local_noise=0.0,
        rng=seed,
        **options,
    )
    local = cluster_per_camera(data.feats, data.cams) if fragments == "agglo" else data.local_labels
    graph = knn(data.feats, 15)  # self + the k = 15 neighbours of Eq. 4
    return data, local, graph, infomap_cluster(graph, min_sim=0.5, rng=seed + 1)  # Infomap seeds are >= 1


def scores(truth: np.ndarray, global_labels: np.ndarray, refined: np.ndarray) -> dict[str, float]:
    before_kept = cluster_report(truth, global_labels, outliers="drop")
    before_all = cluster_report(truth, global_labels, outliers="singleton")
    kept = cluster_report(truth, refined, outliers="drop")
    every = cluster_report(truth, refined, outliers="singleton")
    return {
        "dP": kept.pairwise_precision - before_kept.pairwise_precision,
        "dR": every.pairwise_recall - before_all.pairwise_recall,
        "coverage": kept.coverage,
        "bcubed_f": every.bcubed_f,
        "expansion": kept.expansion,
    }


def run(seeds: int, n_ids: int) -> dict[tuple, dict[str, dict[str, float]]]:
    """Mean scores over seeds, per cell and rule: {(bias, impurity, fragments): {rule: {metric: value}}}."""
    cells: dict[tuple, dict[str, dict[str, float]]] = {}
    for bias, impurity, fragments in itertools.product(BIASES, IMPURITIES, FRAGMENTS):
        if fragments == "agglo" and impurity != IMPURITIES[0]:
            continue
        per_rule: dict[str, list[dict[str, float]]] = {rule: [] for rule in PIVOT_RULES}
        for seed in range(seeds):
            data, local, graph, global_labels = make_cell(bias, impurity, fragments, seed, n_ids)
            for rule in PIVOT_RULES:
                result = refine(global_labels, local, data.cams, knn=graph, k=15, rule=rule)
                per_rule[rule].append(scores(data.pids, global_labels, result.labels))
        impurity_name = "inherent" if fragments == "agglo" else impurity
        cells[(bias, impurity_name, fragments)] = {
            rule: {key: statistics.fmean(row[key] for row in rows) for key in rows[0]}
            for rule, rows in per_rule.items()
        }
    return cells


def passes(cell: dict[str, float]) -> bool:
    return cell["dP"] >= MIN_PRECISION_GAIN and cell["dR"] >= MIN_RECALL_CHANGE


def cell_table(cells) -> str:
    headers = ["bias", "impurity", "fragments", *(f"{rule} dP / dR" for rule in PIVOT_RULES)]
    rows = []
    for (bias, impurity, fragments), per_rule in cells.items():
        marks = [f"{m['dP']:+.4f} / {m['dR']:+.3f}{'' if passes(m) else ' ✗'}" for m in per_rule.values()]
        rows.append([f"{bias}", f"{impurity}", f"{fragments}", *marks])
    return table(headers, rows)


def summary_table(cells) -> str:
    headers = [
        "rule",
        "cells passing",
        "worst dP",
        "worst dR",
        "mean dP",
        "mean dR",
        "coverage",
        "BCubed F",
        "expansion",
    ]
    rows = []
    for rule in PIVOT_RULES:
        metrics = [per_rule[rule] for per_rule in cells.values()]
        mean = {key: statistics.fmean(m[key] for m in metrics) for key in metrics[0]}
        rows.append(
            [
                rule,
                f"{sum(map(passes, metrics))}/{len(metrics)}",
                f"{min(m['dP'] for m in metrics):+.4f}",
                f"{min(m['dR'] for m in metrics):+.3f}",
                f"{mean['dP']:+.4f}",
                f"{mean['dR']:+.3f}",
                f"{mean['coverage']:.3f}",
                f"{mean['bcubed_f']:.4f}",
                f"{mean['expansion']:.2f}",
            ]
        )
    return table(headers, rows)


def plot(cells, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    positions = np.arange(len(FRAGMENTS))
    for rule in PIVOT_RULES:
        for ax, key in zip(axes, ("dP", "dR"), strict=True):
            values = [
                [per_rule[rule][key] for (_, _, f), per_rule in cells.items() if f == fragments]
                for fragments in FRAGMENTS
            ]
            mean = [statistics.fmean(v) for v in values]
            worst = [min(v) for v in values]
            line = ax.plot(positions, mean, marker="o", label=rule)[0]
            ax.plot(positions, worst, linestyle=":", color=line.get_color())
    for ax, title, bar in zip(
        axes,
        ("precision gain (retained samples)", "recall change (-1 as singletons)"),
        (MIN_PRECISION_GAIN, MIN_RECALL_CHANGE),
        strict=True,
    ):
        ax.axhline(bar, color="black", linewidth=0.8)
        ax.set_xticks(positions, [str(f) for f in FRAGMENTS])
        ax.set_xlabel("local clusters per identity-in-camera")
        ax.set_title(title + "\nsolid: mean over cells, dotted: worst cell", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and 100 identities (about 20 s)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    parser.add_argument("--figure", metavar="PNG", help="save the precision/recall figure here")
    args = parser.parse_args()
    seeds, n_ids = (1, 100) if args.quick else (args.seeds, 200)
    start = time.perf_counter()
    cells = run(seeds, n_ids)
    print(
        f"# refine quality: {n_ids} identities, 6 cameras, 4-16 images per identity-in-camera, {seeds} seeds;"
        f" {machine()}\n"
    )
    print("Mean over seeds per cell; ✗ marks a cell that fails dP >= 0 or dR >= -0.05.\n")
    print(cell_table(cells))
    print()
    print(summary_table(cells))
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.figure:
        plot(cells, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
