"""refine() (default rule) on a kNN graph at N = 1e4, 1e5, 1e6 (k = 15) against a per-sample loop; cluster_report.

Usage: python benchmarks/bench_refine.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import numpy as np
from _common import machine, measure, parser, table
from bench_metrics import HEADERS as REPORT_HEADERS
from bench_metrics import cluster_report_rows

from labelrefine import refine


def make_inputs(n: int, k: int = 15, seed: int = 0):
    """A random graph (self in column 0, rows sorted) and labels with ~10 images per cluster."""
    rng = np.random.default_rng(seed)
    others = rng.integers(0, n - 1, size=(n, k))
    others += others >= np.arange(n)[:, None]  # never the sample itself
    indices = np.concatenate([np.arange(n)[:, None], others], axis=1)
    distances = np.concatenate([np.zeros((n, 1)), np.sort(rng.uniform(0.05, 0.6, size=(n, k)), axis=1)], axis=1)
    cams = rng.integers(0, 6, n)
    pids = rng.integers(0, n // 10, n)
    global_labels = np.where(rng.random(n) < 0.1, -1, pids // 2)  # look-alikes merged, 10% outliers
    local_labels = pids * 6 + cams
    return global_labels, local_labels, cams, (indices, distances.astype(np.float32))


def loop_refine(global_labels, local_labels, cams, graph, k=15, link_k=10):
    """Straightforward reference of the default rule ("linked"): Python loops, sets and dictionaries."""
    indices, distances = graph
    n = len(global_labels)
    rows = [[(j, d) for j, d in zip(indices[i], distances[i], strict=True) if j != i][:k] for i in range(n)]
    mean = sum(d for row in rows for _, d in row) / (n * k)
    scores = [sum(1.0 / (d + mean) for _, d in row) for row in rows]
    mean_score = sum(scores) / n
    group = [(global_labels[i], cams[i]) if global_labels[i] >= 0 else None for i in range(n)]
    kept: dict = {}
    for i in range(n):
        if group[i] is not None and scores[i] > mean_score and local_labels[i] >= 0:
            kept.setdefault(group[i], set()).add(local_labels[i])
    near = [{j for j, _ in row[:link_k]} for row in rows]
    edges = [
        (a, b)
        for a in range(n)
        if group[a] in kept and local_labels[a] >= 0
        for b in near[a]
        if group[b] == group[a] and a in near[b]
    ]
    grown = True
    while grown:
        grown = False
        for a, b in edges:
            if local_labels[b] in kept[group[a]] and local_labels[a] not in kept[group[a]]:
                kept[group[a]].add(local_labels[a])
                grown = True
    return np.array([-1 if group[i] in kept and local_labels[i] not in kept[group[i]] else global_labels[i]
                     for i in range(n)])


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        g, local, cams, graph = make_inputs(n)
        seconds, peak, result = measure(lambda: refine(g, local, cams, knn=graph), args.repeats)
        input_mib = sum(a.nbytes for a in (g, local, cams, *graph)) / 2**20
        row = [f"{n:,}", f"{seconds:.3f}", f"{peak:.0f}", f"{input_mib:.0f}"]
        if n <= 100_000:
            ref_seconds, _, expected = measure(lambda: loop_refine(g.tolist(), local.tolist(), cams.tolist(), graph), 1)
            assert np.array_equal(expected, result.labels), "vectorised refine disagrees with the loop"
            row += [f"{ref_seconds:.2f}", f"{ref_seconds / seconds:.0f}x"]
        else:
            row += ["-", "-"]
        rows.append(row)
    print(f"refine(knn=graph, k=15, p=1, rule='linked') on {machine()}\n")
    headers = ["N", "seconds (median)", "peak MiB beyond inputs", "input MiB", "loop seconds", "speed-up"]
    print(table(headers, rows))
    print("\ncluster_report(true, pred) against scikit-learn's pair_confusion_matrix and a BCubed loop\n")
    print(table(REPORT_HEADERS, cluster_report_rows(sizes, args.repeats)))


if __name__ == "__main__":
    main()
