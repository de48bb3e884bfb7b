"""One pseudo-labelling epoch at 1e5, 3e5 and 1e6 images: approximate against exact kNN, step by step.

Usage::

    python benchmarks/bench_scale.py                        # N = 1e5, 3e5, 1e6 at D = 256 (about 30 min)
    python benchmarks/bench_scale.py --quick                # N = 2e4 and 5e4 (a minute or two)
    python benchmarks/bench_scale.py --sizes 300000 --exact-max 300000
    python benchmarks/bench_scale.py --crossover            # exact vs approximate knn at 1e4 .. 1e5
    python benchmarks/bench_scale.py --side-by-side 300000  # the bar: knn(x, 15, exact=False) vs knn(x, 15)

Data: clustered, camera-biased features of low intrinsic dimension, as embeddings are: 20
images per identity on average over 6 cameras, identity centre + camera offset + noise in a
16-dimensional latent space, mapped to D = 256 by a fixed random projection, plus a little
isotropic noise, unit length, float32. Stage-1 local labels are the true (identity, camera)
groups with 5 % of the images moved to a random other group of their camera.

Each size runs in a fresh subprocess, which holds the features (N x D float32) throughout. The
epoch is the recipe's: one kNN graph (k = 15, the sample itself in column 0) feeds Infomap
(min_sim), refine (pivot scores, Eq. 5) and the k-reciprocal Jaccard distance (k1 = 16: the
graph's 15 neighbours and the sample; k2 = 6; ``max_distance=eps``) + DBSCAN. It runs once on
the approximate graph (``knn(x, 15, exact=False)``) and, up to ``--exact-max`` images, once on
the exact one (``knn(x, 15, exact=True)``), so the cost of approximation shows in the label
quality: pairwise and BCubed F of the Infomap + refine labels and of the DBSCAN labels.

Columns: seconds (one run, wall clock); traced MiB (tracemalloc peak of the step's
Python/numpy allocations; faiss's and Infomap's C++ memory is not traced); RSS MiB (the
process's peak resident memory once the step has ended: everything, features included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, peak_rss_mib, table
from bench_cluster import make_features

K = 15
K2 = 6
MIN_SIM = 0.7
EPS = 0.5
N_CAMS = 6
PER_ID = 20


def make_data(n: int, dim: int, seed: int = 0, latent: int = 16) -> dict[str, np.ndarray]:
    """Features (unit float32), identities, cameras and noisy stage-1 local labels."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // PER_ID)
    # feature noise 0.1 after the projection: bench_cluster scales it by sqrt(latent / dim)
    feats, pids, cams = make_features(
        n,
        dim,
        PER_ID,
        N_CAMS,
        rng,
        latent,
        camera_bias=0.3,
        latent_noise=0.3,
        feature_noise=0.1 * np.sqrt(dim / latent),
        with_labels=True,
    )
    local = pids * N_CAMS + cams
    moved = rng.random(n) < 0.05
    local[moved] = rng.integers(n_ids, size=int(moved.sum())) * N_CAMS + cams[moved]
    return {"feats": feats, "pids": pids, "cams": cams, "local": local}


class Steps:
    """Times each step, its traced peak and the process's peak RSS after it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, name: str, fn, *args, **kwargs):
        tracemalloc.start()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        self.rows.append({"step": name, "seconds": seconds, "traced": traced, "rss": peak_rss_mib()})
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return out


def epoch(steps: Steps, tag: str, data: dict[str, np.ndarray], graph) -> dict[str, float]:
    """Infomap, refine, Jaccard + DBSCAN on one graph; their cluster quality."""
    from labelrefine import cluster_report, dbscan_cluster, infomap_cluster, jaccard_distance, refine

    labels = steps(f"infomap ({tag})", infomap_cluster, graph, min_sim=MIN_SIM, rng=1)
    refined = steps(f"refine ({tag})", refine, labels, data["local"], data["cams"], knn=graph, k=K, rng=0).labels
    jaccard = steps(
        f"jaccard ({tag})", jaccard_distance, knn=graph, feats=data["feats"], k1=K + 1, k2=K2, max_distance=EPS
    )
    dbscan = steps(f"dbscan ({tag})", dbscan_cluster, jaccard, eps=EPS)
    del jaccard
    quality = {}
    for name, pred in (("infomap+refine", refined), ("dbscan", dbscan)):
        report = steps(f"evaluation ({tag}, {name})", cluster_report, data["pids"], pred)
        quality[f"{name} pairwise F"] = report.pairwise_f
        quality[f"{name} BCubed F"] = report.bcubed_f
    return quality


def measured_recall(approx, exact) -> float:
    """Share of the exact k nearest others (all rows) within the approximate rows' distances."""
    kth = exact.distances[:, -1:]
    return float((approx.distances[:, 1:] <= kth + 1e-5).mean())


def worker(n: int, dim: int, exact: bool) -> dict[str, Any]:
    from labelrefine import knn

    data = make_data(n, dim)
    steps = Steps()
    approx = steps("knn approximate", knn, data["feats"], K, exact=False, rng=0)
    out: dict[str, Any] = {"n": n, "dim": dim, "reported_recall": approx.recall}
    out["approx"] = epoch(steps, "approximate", data, approx)
    if exact:
        graph = steps("knn exact", knn, data["feats"], K, exact=True)
        out["measured_recall"] = measured_recall(approx, graph)
        out["exact"] = epoch(steps, "exact", data, graph)
    out["steps"] = steps.rows
    out["peak_rss"] = peak_rss_mib()
    return out


def crossover(dim: int, sizes: list[int]) -> None:
    """Exact against approximate knn(x, 15) at small sizes: where approximate search starts to pay."""
    from labelrefine import knn

    rows = []
    for n in sizes:  # loop over sizes
        x = make_data(n, dim)["feats"]
        times = {}
        for exact in (True, False):
            start = time.perf_counter()
            graph = knn(x, K, exact=exact, rng=0)
            times[exact] = time.perf_counter() - start
        rows.append(
            [
                f"{n:,}",
                f"{times[True]:.1f}",
                f"{times[False]:.1f}",
                f"{times[True] / times[False]:.2f}",
                f"{graph.recall:.3f}",
            ]
        )
    print(table(["N", "exact s", "approximate s", "exact / approximate", "recall"], rows))


def side_by_side(n: int, dim: int) -> None:
    """knn(x, 15, exact=False) timed before and after knn(x, 15) in one process: speed-up and recall.

    The approximate search runs twice, around the exact one, so that a change of load on a shared
    machine shows as a spread instead of a biased ratio; the ratio uses the slower approximate run.
    """
    from labelrefine import knn

    x = make_data(n, dim)["feats"]
    seconds, graphs = [], []
    for exact in (False, True, False):
        start = time.perf_counter()
        graphs.append(knn(x, K, exact=exact, rng=0))
        seconds.append(time.perf_counter() - start)
    approx, exact_graph = graphs[0], graphs[1]
    slower = max(seconds[0], seconds[2])
    rows = [
        [
            f"{n:,} x {dim}",
            f"{seconds[1]:.1f}",
            f"{seconds[0]:.1f} / {seconds[2]:.1f}",
            f"{seconds[1] / slower:.1f}x",
            f"{approx.recall:.4f}",
            f"{measured_recall(approx, exact_graph):.4f}",
        ]
    ]
    headers = ["N x D", "exact s", "approximate s (before / after)", "speed-up (slower run)", "reported", "measured"]
    print(table(headers, rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--exact-max", type=int, default=300_000, help="run the exact epoch up to this N")
    p.add_argument("--quick", action="store_true", help="N = 20,000 and 50,000")
    p.add_argument("--crossover", action="store_true", help="exact vs approximate knn at N = 1e4 .. 1e5")
    p.add_argument("--side-by-side", type=int, metavar="N", help="exact vs approximate knn at N, one process")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dim, args.worker <= args.exact_max)))
        return
    if args.crossover:
        crossover(args.dim, [10_000, 25_000, 50_000, 100_000])
        return
    if args.side_by_side:
        print(f"bench_scale --side-by-side: {machine()}", flush=True)
        side_by_side(args.side_by_side, args.dim)
        return
    sizes = [20_000, 50_000] if args.quick else args.sizes
    print(f"bench_scale: D = {args.dim}; {machine()}", flush=True)
    results = []
    for n in sizes:  # loop over sizes: one fresh process each
        print(f"N = {n:,}", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--worker", str(n), "--dim", str(args.dim), "--exact-max", str(args.exact_max)]
        proc = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(r: dict[str, Any]) -> None:
    """The tables of one size: steps, then recall and cluster quality."""
    n = r["n"]
    print(f"\n### N = {n:,} x {r['dim']}: peak RSS {r['peak_rss'] / 1024:.1f} GiB\n")
    rows = [[s["step"], f"{s['seconds']:.1f}", f"{s['traced']:.0f}", f"{s['rss']:.0f}"] for s in r["steps"]]
    print(table(["step", "seconds", "traced MiB", "RSS MiB"], rows))
    total = {tag: sum(s["seconds"] for s in r["steps"] if tag in s["step"]) for tag in ("approximate", "exact")}
    measured = r.get("measured_recall")
    print(
        f"\nrecall of the approximate graph: reported {r['reported_recall']:.4f}"
        + ("" if measured is None else f", measured on all rows {measured:.4f}")
        + f"; epoch seconds: approximate {total['approximate']:.0f}"
        + ("" if "exact" not in r else f", exact {total['exact']:.0f}")
    )
    keys = list(r["approx"])
    rows = [["approximate", *(f"{r['approx'][key]:.4f}" for key in keys)]]
    if "exact" in r:
        rows.append(["exact", *(f"{r['exact'][key]:.4f}" for key in keys)])
        rows.append(["difference", *(f"{r['approx'][key] - r['exact'][key]:+.4f}" for key in keys)])
    print()
    print(table(["graph", *keys], rows), flush=True)


if __name__ == "__main__":
    main()
