"""refine() given a kNN graph at N = 1e4, 1e5, 1e6 (k = 15), against a per-sample loop; then cluster_report.

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


def loop_refine(global_labels, local_labels, cams, graph, k=15):
    """Straightforward reference: Python loops over samples and neighbours, dictionaries for groups."""
    indices, distances = graph
    n = len(global_labels)
    rows = [[d for j, d in zip(indices[i], distances[i], strict=True) if j != i][:k] for i in range(n)]
    mean = sum(map(sum, rows)) / (n * k)
    scores = [sum(1.0 / (d + mean) for d in row) for row in rows]
    mean_score = sum(scores) / n
    best: dict = {}
    for i in range(n):
        if global_labels[i] >= 0 and scores[i] > mean_score:
            key = (global_labels[i], cams[i])
            if key not in best or scores[i] > scores[best[key]]:
                best[key] = i
    out = list(global_labels)
    for i in range(n):
        pivot = best.get((global_labels[i], cams[i]))
        if pivot is not None and local_labels[pivot] >= 0 and local_labels[i] != local_labels[pivot]:
            out[i] = -1
    return np.array(out)


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
    print(f"refine(knn=graph, k=15, p=1) on {machine()}\n")
    headers = ["N", "seconds (median)", "peak MiB beyond inputs", "input MiB", "loop seconds", "speed-up"]
    print(table(headers, rows))
    print("\ncluster_report(true, pred) against scikit-learn's pair_confusion_matrix and a BCubed loop\n")
    print(table(REPORT_HEADERS, cluster_report_rows(sizes, args.repeats)))


if __name__ == "__main__":
    main()
