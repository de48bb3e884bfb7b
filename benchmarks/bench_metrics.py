"""Benchmark of labelrefine.metrics.cluster_report against straightforward references.

Data: N samples, random ground-truth ids with about N/10 identities; predictions are a noisy copy
(20% of samples moved to a random cluster) with 10% of them set to -1.

References, run in the same process on the same inputs (outliers dropped first, as
``cluster_report`` does by default):
- pairwise: scikit-learn's ``pair_confusion_matrix`` -> precision, recall;
- BCubed: a plain dict-of-sets loop over samples (only for N <= 1e5, it is slow).
The ratio is reference seconds / labelrefine seconds (> 1 means labelrefine is faster).
Peak memory is the tracemalloc peak of the call (numpy allocations are traced).

Usage: python benchmarks/bench_metrics.py [--quick]
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from _common import machine, measure, parser, table
from sklearn.metrics.cluster import pair_confusion_matrix

from labelrefine.metrics import cluster_report


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, max(n // 10, 1), n)
    pred = true.copy()
    moved = rng.random(n) < 0.2
    pred[moved] = rng.integers(0, max(n // 10, 1), int(moved.sum()))
    pred[rng.random(n) < 0.1] = -1
    return true, pred


def reference_pairwise(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    keep = pred != -1
    (_, fp), (fn, tp) = pair_confusion_matrix(true[keep], pred[keep])
    return tp / (tp + fp), tp / (tp + fn)


def reference_bcubed(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    keep = pred != -1
    t, p = true[keep].tolist(), pred[keep].tolist()
    clusters: dict[int, set[int]] = defaultdict(set)
    identities: dict[int, set[int]] = defaultdict(set)
    for i, (a, b) in enumerate(zip(t, p, strict=True)):
        identities[a].add(i)
        clusters[b].add(i)
    precision = recall = 0.0
    for a, b in zip(t, p, strict=True):
        inter = len(clusters[b] & identities[a])
        precision += inter / len(clusters[b])
        recall += inter / len(identities[a])
    return precision / len(t), recall / len(t)


HEADERS = ["N", "seconds (median)", "peak MiB (tracemalloc)", "ref pairwise s", "ratio", "ref BCubed s", "ratio"]


def cluster_report_rows(sizes: list[int], repeats: int) -> list[list[str]]:
    """One table row per N: cluster_report against the references, results asserted equal."""
    rows = []
    for n in sizes:
        true, pred = make_data(n)
        secs, peak, report = measure(lambda t=true, p=pred: cluster_report(t, p), repeats)
        ref_secs, _, (p, r) = measure(lambda t=true, q=pred: reference_pairwise(t, q), repeats)
        assert np.isclose(p, report.pairwise_precision) and np.isclose(r, report.pairwise_recall)
        row = [f"{n:,}", f"{secs:.4f}", f"{peak:.1f}", f"{ref_secs:.4f}", f"{ref_secs / secs:.1f}x"]
        if n <= 100_000:
            bc_secs, _, (bp, br) = measure(lambda t=true, q=pred: reference_bcubed(t, q), 1)
            assert np.isclose(bp, report.bcubed_precision) and np.isclose(br, report.bcubed_recall)
            row += [f"{bc_secs:.3f}", f"{bc_secs / secs:.1f}x"]
        else:
            row += ["-", "-"]
        rows.append(row)
    return rows


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    print(f"cluster_report on {machine()}\n")
    print(table(HEADERS, cluster_report_rows(sizes, args.repeats)))


if __name__ == "__main__":
    main()
