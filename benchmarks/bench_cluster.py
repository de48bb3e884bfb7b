"""Benchmark of the clustering layer: knn, the sparse k-reciprocal Jaccard distance, Infomap and DBSCAN.

Usage::

    python benchmarks/bench_cluster.py            # Market-1501 / MSMT17 / 200k sizes (minutes)
    python benchmarks/bench_cluster.py --quick    # small sizes, under a minute

Every measurement runs in a fresh subprocess on synthetic camera-biased identity features
(float32, unit length, generated in the worker before timing; the features and, for Jaccard, the
precomputed kNN graph are excluded from the memory figures). Columns:

- seconds: median wall time over the repeats;
- peak MiB (tracemalloc): peak of memory allocated through Python/numpy/scipy during the call
  (does not see faiss's own C++ buffers);
- peak MiB (RSS): growth of the process's maximum resident set size during the first call
  (sees everything, including faiss and BLAS buffers);
- ratio: reference seconds / labelrefine seconds, against a straightforward dense reference
  written below (full N x N arrays and per-sample loops, the way the original Re-ID code does
  it), run where it fits in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

MiB = 2**20


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def make_features(
    n: int,
    dim: int,
    per_id: int,
    n_cams: int,
    seed: int | np.random.Generator = 0,
    latent: int = 32,
    camera_bias: float = 0.7,
    latent_noise: float = 0.5,
    feature_noise: float = 0.5,
    with_labels: bool = False,
) -> Any:
    """Camera-biased identity features, unit length, float32.

    Identity centre + camera bias + noise in a ``latent``-dimensional space, mapped to ``dim``
    dimensions by a fixed random projection, plus a little isotropic noise: the neighbourhood
    structure (and so the Jaccard sparsity) then does not depend on ``dim``. ``seed`` may be a
    generator to draw from (and go on drawing from); ``with_labels`` also returns the identities and
    cameras.
    """
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // per_id)
    centers = rng.standard_normal((n_ids, latent), dtype=np.float32)
    bias = camera_bias * rng.standard_normal((n_cams, latent), dtype=np.float32)
    projection = rng.standard_normal((latent, dim), dtype=np.float32) / np.float32(np.sqrt(latent))
    ids = rng.integers(n_ids, size=n)
    cams = rng.integers(n_cams, size=n)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):  # chunks keep the generator's own peak small
        stop = min(start + 8192, n)
        z = centers[ids[start:stop]] + bias[cams[start:stop]]
        z += latent_noise * rng.standard_normal(z.shape, dtype=np.float32)
        block = z @ projection
        block += feature_noise * rng.standard_normal(block.shape, dtype=np.float32) / np.float32(np.sqrt(dim / latent))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return (out, ids, cams) if with_labels else out


# ----------------------------------------------------------------------------------------------
# straightforward dense references
# ----------------------------------------------------------------------------------------------


def reference_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full N x N similarity matrix and a full argsort of every row."""
    sims = x @ x.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, 1.0 - np.take_along_axis(sims, order, axis=1)


def reference_jaccard(x: np.ndarray, rank: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Dense k-reciprocal Jaccard distance with per-sample loops and N x N float32 arrays.

    Same definition as labelrefine.neighbors.jaccard_distance (Cluster-Contrast's conventions):
    forward sets = first k1 entries of rank (self included), half sets with round(k1/2) + 1,
    2/3 expansion rule, softmax(-(2 - 2 cos)), query expansion over rank[:, :k2].
    """
    n = x.shape[0]
    rank = rank[:, :k1]

    def reciprocal(i: int, width: int) -> np.ndarray:
        forward = rank[i, :width]
        backward = rank[forward, :width]
        return forward[np.any(backward == i, axis=1)]

    half = int(np.around(k1 / 2))
    sets_k1 = [reciprocal(i, k1) for i in range(n)]
    sets_half = [reciprocal(i, half + 1) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        members = sets_k1[i]
        expansion = [members]
        for c in members:
            cand = sets_half[c]
            if len(np.intersect1d(cand, members)) > 2 / 3 * len(cand):
                expansion.append(cand)
        members = np.unique(np.concatenate(expansion))
        w = np.exp(-(2.0 - 2.0 * (x[members] @ x[i])))
        v[i, members] = w / w.sum()
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[rank[i, :k2]].mean(axis=0)
        v = v_qe
        del v_qe
    columns = [np.flatnonzero(col) for col in v.T]  # inverted index: rows using each column
    dist = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        acc = np.zeros(n, dtype=np.float32)
        for col in np.flatnonzero(v[i]):
            rows = columns[col]
            acc[rows] += np.minimum(v[i, col], v[rows, col])
        dist[i] = 1.0 - acc / (2.0 - acc)
    dist[dist < 0] = 0.0
    return dist


# ----------------------------------------------------------------------------------------------
# worker (one measurement in a fresh process)
# ----------------------------------------------------------------------------------------------


def dense_dbscan(jaccard, eps: float) -> np.ndarray:
    """The Cluster-Contrast baseline: DBSCAN on the dense N x N Jaccard matrix."""
    from sklearn.cluster import DBSCAN

    stored = jaccard.tocoo()
    dense = np.ones(jaccard.shape, dtype=np.float32)
    dense[stored.row, stored.col] = stored.data
    return DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(dense)


def _rss_now() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def _max_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


_GRAPH_TASKS = ("jaccard", "jaccard_ref", "infomap", "dbscan", "dbscan_ref")


def _write_graph(spec: dict, x: np.ndarray) -> None:
    """The "graph" task: the kNN graph the graph tasks read (k1 columns: the sample and its k1 - 1 nearest)."""
    from labelrefine.neighbors import knn

    idx, dist = knn(x, spec["k1"] - 1)
    np.save(spec["graph_file"] + ".idx.npy", idx)
    np.save(spec["graph_file"] + ".dist.npy", dist)


def _runner(spec: dict, x: np.ndarray, graph: Any) -> Callable[[], Any]:
    """The timed call of a task, without arguments."""
    from labelrefine.cluster import dbscan_cluster, infomap_cluster
    from labelrefine.neighbors import jaccard_distance, knn

    k1, k2 = spec["k1"], spec["k2"]
    runners = {
        "knn": lambda: knn(x, k1 - 1, backend=spec["backend"]),  # k1 columns, self included
        "knn_ref": lambda: reference_knn(x, k1),
        "jaccard": lambda: jaccard_distance(x, knn=graph, k1=k1, k2=k2, max_distance=spec.get("max_distance")),
        "jaccard_ref": lambda: reference_jaccard(x, graph[0], k1, k2),
        "infomap": lambda: infomap_cluster((graph[0][:, :16], graph[1][:, :16]), min_sim=0.5, rng=1),
        # what an epoch of the Cluster-Contrast baseline does after the kNN
        "dbscan": lambda: dbscan_cluster(jaccard_distance(x, knn=graph, k1=k1, k2=k2, max_distance=0.6), eps=0.6),
        "dbscan_ref": lambda: dense_dbscan(jaccard_distance(x, knn=graph, k1=k1, k2=k2), eps=0.6),
    }
    if spec["task"] not in runners:
        raise ValueError(spec["task"])
    return runners[spec["task"]]


def _extra(spec: dict, x: np.ndarray, graph: Any, out: Any) -> dict:
    """What a task reports beside time and memory: size of the result, or agreement with labelrefine (not timed)."""
    from labelrefine.cluster import dbscan_cluster
    from labelrefine.neighbors import jaccard_distance, knn

    k1, k2 = spec["k1"], spec["k2"]
    extra = {}
    if spec["task"] == "jaccard":
        extra["stored_per_row"] = out.nnz / spec["n"]
    elif spec["task"] == "jaccard_ref":
        ours = jaccard_distance(x, knn=graph, k1=k1, k2=k2).tocoo()
        dense = np.ones(out.shape, dtype=np.float32)
        dense[ours.row, ours.col] = ours.data
        extra["max_abs_diff"] = float(np.abs(dense - out).max())
    elif spec["task"] in ("infomap", "dbscan"):
        extra["clusters"] = int(out.max()) + 1
    elif spec["task"] == "dbscan_ref":
        from sklearn.metrics import adjusted_rand_score

        ours = dbscan_cluster(jaccard_distance(x, knn=graph, k1=k1, k2=k2, max_distance=0.6), eps=0.6)
        extra["same_partition"] = bool(adjusted_rand_score(out, ours) == 1.0 and ((out < 0) == (ours < 0)).all())
    elif spec["task"] == "knn_ref":
        extra["same_neighbours"] = float(np.mean(knn(x, k1 - 1)[0][:, 1:] == out[0][:, 1:]))
    return extra


def _seconds(run: Callable[[], Any]) -> float:
    """Wall seconds of one call, its result dropped at once."""
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    del out
    return seconds


def _traced_mib(run: Callable[[], Any]) -> float:
    """Peak MiB tracemalloc sees during one call."""
    tracemalloc.start()
    out = run()
    traced = tracemalloc.get_traced_memory()[1] / MiB
    tracemalloc.stop()
    del out
    return traced


def worker(spec: dict) -> dict:
    x = make_features(spec["n"], spec["dim"], spec["per_id"], spec["n_cams"])
    if spec["task"] == "graph":
        _write_graph(spec, x)
        return {}
    graph = None
    if spec["task"] in _GRAPH_TASKS:
        graph = (np.load(spec["graph_file"] + ".idx.npy"), np.load(spec["graph_file"] + ".dist.npy"))
    run = _runner(spec, x, graph)

    # the first call gives the RSS growth and the result the extras are computed from
    base = _rss_now()
    t0 = time.perf_counter()
    out = run()
    times = [time.perf_counter() - t0]
    rss_peak = _max_rss() - base
    extra = _extra(spec, x, graph, out)
    del out
    times += [_seconds(run) for _ in range(spec["repeats"] - 1)]
    return {
        "seconds": statistics.median(times),
        "rss_mib": rss_peak,
        "traced_mib": _traced_mib(run) if spec["trace"] else None,
        **extra,
    }


def measure(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _knn_table(knn_cases: list, backend: str, k1: int, k2: int, repeats: int) -> None:
    print("## knn(feats, k=30): exact cosine kNN graph\n")
    print("Reference: full N x N similarity matrix and a full argsort per row (same neighbours: fraction")
    print("of the k-1 non-self columns identical to labelrefine's, ties and rounding aside).\n")
    print(
        "| data | N | D | backend | seconds | peak MiB (tracemalloc) | peak MiB (RSS) | reference s "
        "| reference peak MiB (RSS) | same neighbours | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, n, dim, data, with_ref in knn_cases:
        for bk in dict.fromkeys([backend, "numpy"]):
            reps = 1 if n > 20000 else repeats
            spec = {"task": "knn", "n": n, "dim": dim, **data, "k1": k1, "k2": k2, "backend": bk, "repeats": reps}
            res = measure({**spec, "trace": bk == "numpy"})
            ref = measure({**spec, "task": "knn_ref", "trace": False, "repeats": 1}) if with_ref else {}
            if "error" in res:
                print(f"| {name} | {n} | {dim} | {bk} | error: {res['error']} | | | | | | |")
                continue
            ratio = ref["seconds"] / res["seconds"] if "seconds" in ref else None
            print(
                f"| {name} | {n} | {dim} | {bk} | {fmt(res['seconds'])} | {fmt(res['traced_mib'], 0)} | "
                f"{fmt(res['rss_mib'], 0)} | {fmt(ref.get('seconds'))} | {fmt(ref.get('rss_mib'), 0)} | "
                f"{fmt(ref.get('same_neighbours'), 4)} | {fmt(ratio, 1)} |",
                flush=True,
            )


def _jaccard_rows(name: str, n: int, dim: int, spec: dict, ref: dict, repeats: int) -> None:
    """One row per max_distance (none, and 0.7 from N = 10,000); the reference only beside "none"."""
    reps = 1 if n > 20000 else repeats
    for max_distance in [None, 0.7] if n >= 10000 else [None]:
        res = measure({**spec, "task": "jaccard", "repeats": reps, "trace": n <= 50000, "max_distance": max_distance})
        md = "none" if max_distance is None else max_distance
        if "error" in res:
            print(f"| {name} | {n} | {dim} | {md} | error: {res['error']} | | | | | | | |")
            continue
        ratio = ref["seconds"] / res["seconds"] if "seconds" in ref and max_distance is None else None
        print(
            f"| {name} | {n} | {dim} | {md} | {fmt(res['seconds'])} | {fmt(res['traced_mib'], 0)} | "
            f"{fmt(res['rss_mib'], 0)} | {fmt(res.get('stored_per_row'), 0)} | "
            f"{fmt(ref.get('seconds') if max_distance is None else None)} | "
            f"{fmt(ref.get('rss_mib') if max_distance is None else None, 0)} | "
            f"{fmt(ref.get('max_abs_diff') if max_distance is None else None, 7)} | {fmt(ratio, 1)} |",
            flush=True,
        )


def _jaccard_table(jac_cases: list, k1: int, k2: int, repeats: int) -> None:
    print("\n## jaccard_distance(feats, knn=graph, k1=30, k2=6): sparse k-reciprocal Jaccard distance\n")
    print("The kNN graph is computed beforehand (one graph per epoch serves everything); add the knn row")
    print("above for the cost from features alone. max_distance: none = every pair below 1 (the default);")
    print("0.7 = only pairs a DBSCAN with eps <= 0.7 can use. Reference: dense N x N arrays, per-sample loops.\n")
    print(
        "| data | N | D | max_distance | seconds | peak MiB (tracemalloc) | peak MiB (RSS) | stored pairs / row "
        "| reference s | reference peak MiB (RSS) | max abs diff | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, dim, data, with_ref in jac_cases:
            graph_file = os.path.join(tmp, f"graph_{n}_{dim}")
            spec = {"n": n, "dim": dim, **data, "k1": k1, "k2": k2, "graph_file": graph_file}
            measure({**spec, "task": "graph", "repeats": 1, "trace": False})
            ref = measure({**spec, "task": "jaccard_ref", "repeats": 1, "trace": False}) if with_ref else {}
            _jaccard_rows(name, n, dim, spec, ref, repeats)


def _cluster_table(cluster_cases: list, k1: int, k2: int, repeats: int) -> None:
    print("\n## Clustering one epoch from the kNN graph\n")
    print("infomap_cluster: the first 16 columns of the graph, min_sim=0.5. dbscan: jaccard_distance with")
    print("max_distance=eps=0.6, then dbscan_cluster; reference: DBSCAN on the dense N x N Jaccard matrix.\n")
    print("| data | N | D | method | seconds | peak MiB (RSS) | clusters | reference s | same partition | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, dim, data, with_ref in cluster_cases:
            graph_file = os.path.join(tmp, f"graph_{n}_{dim}")
            spec = {"n": n, "dim": dim, **data, "k1": k1, "k2": k2, "graph_file": graph_file, "trace": False}
            measure({**spec, "task": "graph", "repeats": 1})
            for method in ("infomap", "dbscan") if n < 100_000 else ("dbscan",):
                res = measure({**spec, "task": method, "repeats": 1 if n > 20000 else repeats})
                ref = measure({**spec, "task": "dbscan_ref", "repeats": 1}) if with_ref and method == "dbscan" else {}
                if "error" in res:
                    print(f"| {name} | {n} | {dim} | {method} | error: {res['error']} | | | | | |")
                    continue
                ratio = ref["seconds"] / res["seconds"] if "seconds" in ref else None
                print(
                    f"| {name} | {n} | {dim} | {method} | {fmt(res['seconds'])} | {fmt(res['rss_mib'], 0)} | "
                    f"{res['clusters']} | {fmt(ref.get('seconds'))} | {ref.get('same_partition', 'n/a')} | "
                    f"{fmt(ratio, 1)} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 3, quick 2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from labelrefine._optional import has_module

    backend = "faiss" if has_module("faiss") else "numpy"
    repeats = args.repeats or (2 if args.quick else 3)
    market = {"per_id": 17, "n_cams": 6}
    msmt = {"per_id": 31, "n_cams": 15}
    k1, k2 = 30, 6
    if args.quick:
        # (name, n, dim, data, run the dense reference?)
        knn_cases = [("quick", 4000, 512, market, True)]
        jac_cases = [("quick", 3000, 512, market, True), ("quick", 12000, 256, msmt, False)]
    else:
        knn_cases = [("Market-1501", 12936, 2048, market, True), ("MSMT17", 32621, 2048, msmt, False)]
        jac_cases = [
            ("Market-1501", 12936, 2048, market, True),
            ("MSMT17", 32621, 2048, msmt, False),
            ("200k", 200_000, 256, msmt, False),
        ]
    cluster_cases = jac_cases[:1] if args.quick else [*jac_cases[:2], ("200k", 200_000, 256, msmt, False)]

    print(f"# labelrefine clustering benchmark ({os.cpu_count()} CPUs, kNN backend {backend}, k1={k1}, k2={k2})\n")
    _knn_table(knn_cases, backend, k1, k2, repeats)
    _jaccard_table(jac_cases, k1, k2, repeats)
    _cluster_table(cluster_cases, k1, k2, repeats)


if __name__ == "__main__":
    main()
