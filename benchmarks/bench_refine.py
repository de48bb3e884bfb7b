"""refine() (default rule) with features and a kNN graph at N = 1e4, 1e5, 1e6 (k = 15) against a loop; cluster_report.

Usage: python benchmarks/bench_refine.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import numpy as np
from _common import machine, measure, parser, table
from bench_metrics import HEADERS as REPORT_HEADERS
from bench_metrics import cluster_report_rows

from labelrefine import refine
from labelrefine.agreement import DEFAULT_MAX_DEVIATION
from labelrefine.pivots import DEFAULT_RULE


def make_inputs(n: int, k: int = 15, dim: int = 32, seed: int = 0):
    """Features, a random graph (self in column 0, rows sorted) and labels with ~10 images per cluster."""
    rng = np.random.default_rng(seed)
    others = rng.integers(0, n - 1, size=(n, k))
    others += others >= np.arange(n)[:, None]  # never the sample itself
    indices = np.concatenate([np.arange(n)[:, None], others], axis=1)
    distances = np.concatenate([np.zeros((n, 1)), np.sort(rng.uniform(0.05, 0.6, size=(n, k)), axis=1)], axis=1)
    cams = rng.integers(0, 6, n)
    pids = rng.integers(0, n // 10, n)
    global_labels = np.where(rng.random(n) < 0.1, -1, pids // 2)  # look-alikes merged, 10% outliers
    local_labels = pids * 6 + cams
    centres = rng.normal(size=(n // 10, dim)).astype(np.float32)
    feats = centres[pids] + rng.normal(scale=0.5, size=(n, dim)).astype(np.float32)
    return global_labels, local_labels, cams, feats, (indices, distances.astype(np.float32))


def loop_refine(global_labels, local_labels, cams, feats, graph, k=15, max_deviation=DEFAULT_MAX_DEVIATION):  # noqa: C901  (a slow reference transcribed from the rule's definition, kept in one piece so it reads against it)
    """Straightforward reference of the default rule ("cross-camera"): Python loops and dictionaries."""
    indices, distances = graph
    n = len(global_labels)
    # Eq. 4 scores and the "all" rule, for clusters that one camera sees
    rows = [[d for j, d in zip(indices[i], distances[i], strict=True) if j != i][:k] for i in range(n)]
    mean = sum(d for row in rows for d in row) / (n * k)
    scores = [sum(1.0 / (d + mean) for d in row) for row in rows]
    mean_score = sum(scores) / n
    group = [(global_labels[i], cams[i]) if global_labels[i] >= 0 else None for i in range(n)]
    kept: dict = {}
    for i in range(n):
        if group[i] is not None and scores[i] > mean_score and local_labels[i] >= 0:
            kept.setdefault(group[i], set()).add(local_labels[i])
    out = [-1 if group[i] in kept and local_labels[i] not in kept[group[i]] else global_labels[i] for i in range(n)]
    # camera-centred unit features
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    camera_sum: dict = {}
    camera_count: dict = {}
    for i in range(n):
        camera_sum[cams[i]] = camera_sum.get(cams[i], 0.0) + unit[i]
        camera_count[cams[i]] = camera_count.get(cams[i], 0) + 1
    z = [unit[i] - camera_sum[cams[i]] / camera_count[cams[i]] for i in range(n)]
    z = [v / np.linalg.norm(v) for v in z]
    cameras_of: dict = {}
    for i in range(n):
        if group[i] is not None:
            cameras_of.setdefault(global_labels[i], set()).add(cams[i])

    def outliers(ignored):
        group_sum: dict = {}
        cluster_sum: dict = {}
        for i in range(n):
            if group[i] is not None and i not in ignored:
                group_sum[group[i]] = group_sum.get(group[i], 0.0) + z[i]
                cluster_sum[global_labels[i]] = cluster_sum.get(global_labels[i], 0.0) + z[i]
        agreement = {}
        for i in range(n):
            if group[i] is not None and len(cameras_of[global_labels[i]]) > 1:
                other = cluster_sum.get(global_labels[i], 0.0) - group_sum.get(group[i], 0.0)
                norm = float(np.linalg.norm(other))
                agreement[i] = float(z[i] @ other) / norm if norm > 1e-9 else 0.0
        by_cluster: dict = {}
        for i, a in agreement.items():
            by_cluster.setdefault(global_labels[i], []).append(a)
        level = {c: sorted(v)[int(0.75 * (len(v) - 1))] for c, v in by_cluster.items()}
        deviation = {i: a - level[global_labels[i]] for i, a in agreement.items()}
        sigma = max(1.4826 * float(np.median([abs(d) for d in deviation.values()])), 1e-6)
        fragments: dict = {}
        for i, d in deviation.items():
            fragments.setdefault((group[i], local_labels[i]) if local_labels[i] >= 0 else i, []).append(d)
        found = set()
        for i in deviation:
            key = (group[i], local_labels[i]) if local_labels[i] >= 0 else i
            if sum(fragments[key]) / len(fragments[key]) < -max_deviation * sigma and deviation[i] < -2.0 * sigma:
                found.add(i)
        return found, set(agreement)

    found, known = outliers(outliers(set())[0])
    for i in known:
        out[i] = -1 if i in found else global_labels[i]
    return np.array(out)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        g, local, cams, feats, graph = make_inputs(n)
        seconds, peak, result = measure(lambda: refine(g, local, cams, feats, knn=graph), args.repeats)
        input_mib = sum(a.nbytes for a in (g, local, cams, feats, *graph)) / 2**20
        row = [f"{n:,}", f"{seconds:.3f}", f"{peak:.0f}", f"{input_mib:.0f}"]
        if n <= 100_000:
            ref_seconds, _, expected = measure(
                lambda: loop_refine(g.tolist(), local.tolist(), cams.tolist(), feats, graph), 1
            )
            assert np.array_equal(expected, result.labels), "vectorised refine disagrees with the loop"
            row += [f"{ref_seconds:.2f}", f"{ref_seconds / seconds:.0f}x"]
        else:
            row += ["-", "-"]
        rows.append(row)
    print(f"refine(feats, knn=graph, k=15, p=1), default rule '{DEFAULT_RULE}', D = 32, on {machine()}\n")
    headers = ["N", "seconds (median)", "peak MiB beyond inputs", "input MiB", "loop seconds", "speed-up"]
    print(table(headers, rows))
    print("\ncluster_report(true, pred) against scikit-learn's pair_confusion_matrix and a BCubed loop\n")
    print(table(REPORT_HEADERS, cluster_report_rows(sizes, args.repeats)))


if __name__ == "__main__":
    main()
