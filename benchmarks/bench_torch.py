"""Benchmark of the torch backend of labelrefine.neighbors against numpy (and faiss-gpu on CUDA).

Usage::

    python benchmarks/bench_torch.py                              # CPU, N = 12,936 x 2048
    python benchmarks/bench_torch.py --device cuda --sizes 12936 32621
    python benchmarks/bench_torch.py --quick                      # CPU, small sizes (a minute)

Three tables, one row per (N, implementation), the same features for every row (camera-biased
identity features from ``bench_cluster.make_features``, float32, unit length, generated before
timing; on CUDA copied to the device before timing):

- ``knn(feats, 30)``: torch backend on ``--device`` against the numpy backend (and faiss on
  the GPU when faiss-gpu is installed and sees one);
- ``jaccard_distance(feats, knn=graph, k1=30, k2=6)`` from a precomputed graph (every pair
  below 1 stored): torch backend against numpy/scipy;
- one pseudo-label epoch: ``knn(feats, 15)`` + ``infomap_cluster`` + ``refine`` (what the
  recipe's stage 2 does between two training epochs), the kNN by each implementation.

Columns (the shared helper of ``benchmarks/_common.py``): seconds (median over ``--repeats``),
peak MiB traced by tracemalloc (numpy/scipy buffers; torch's own allocator is not traced, so
the torch rows show only what they hand back), peak CUDA MiB (``torch.cuda.max_memory_allocated``
during the call), ratio = numpy seconds / seconds of the row, and agreement with numpy (same
neighbours: fraction of identical indices; Jaccard: max abs difference; epoch: same labels).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import machine, measure, parser, table
from bench_cluster import make_features

MARKET = {"per_id": 17, "n_cams": 6}


def _cuda_peak(torch, device: str, fn):
    """Peak CUDA MiB allocated during one call (None on the CPU)."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(n, name, seconds, peak, cuda, ratio, agreement) -> list[str]:
    return [str(n), name, _fmt(seconds), _fmt(peak, 0), _fmt(cuda, 0), _fmt(ratio, 1), agreement]


def _faiss_gpu(device: str) -> bool:
    """faiss-gpu is installed and sees a GPU (only asked on a CUDA device)."""
    from labelrefine._optional import has_module

    if not (device.startswith("cuda") and has_module("faiss")):
        return False
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _knn_rows(torch, n: int, impls: dict, reps: int, device: str, rows: list) -> Any:
    """knn(feats, 30) by each implementation; returns the numpy graph (the reference of the next tables)."""
    from labelrefine.neighbors import knn

    ref_graph = None
    for name, (feats, backend) in impls.items():
        seconds, peak, graph = measure(lambda: knn(feats, 30, backend=backend), reps)
        cuda = _cuda_peak(torch, device, lambda: knn(feats, 30, backend=backend)) if backend == "torch" else None
        if ref_graph is None:
            ref_graph, ref_seconds = graph, seconds
        same = float(np.mean(graph[0] == ref_graph[0]))
        rows.append(_row(n, name, seconds, peak, cuda, ref_seconds / seconds, f"{same:.4f}"))
        print(f"knn N={n} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return ref_graph


def _jaccard_rows(torch, n: int, impls: dict, ref_graph: Any, reps: int, device: str, rows: list) -> None:
    """jaccard_distance from the numpy graph by numpy and torch (faiss has no Jaccard)."""
    from labelrefine.neighbors import jaccard_distance

    ref_jac = None
    for name, (feats, backend) in list(impls.items())[:2]:
        run = lambda: jaccard_distance(feats, knn=ref_graph, k1=30, k2=6, backend=backend)  # noqa: E731
        seconds, peak, jac = measure(run, reps)
        cuda = _cuda_peak(torch, device, run) if backend == "torch" else None
        if ref_jac is None:
            ref_jac, ref_seconds = jac, seconds
        diff = float(abs(jac - ref_jac).max()) if jac.nnz else 0.0
        rows.append(_row(n, name, seconds, peak, cuda, ref_seconds / seconds, f"{diff:.1e}"))
        print(f"jaccard N={n} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
        del jac


def _epoch_rows(n: int, impls: dict, local: np.ndarray, cams: np.ndarray, reps: int, rows: list) -> None:
    """One pseudo-label epoch (knn + infomap_cluster + refine), the kNN by each implementation."""
    from labelrefine.cluster import infomap_cluster
    from labelrefine.neighbors import knn
    from labelrefine.refine import refine

    ref_labels = None
    for name, (feats, backend) in impls.items():

        def epoch():
            graph = knn(feats, 15, backend=backend)
            labels = infomap_cluster(graph, min_sim=0.5)
            return refine(labels, local, cams, feats, knn=graph, k=15, rng=0).labels

        t0 = time.perf_counter()
        seconds, peak, labels = measure(epoch, reps)
        if ref_labels is None:
            ref_labels, ref_seconds = labels, seconds
        same = bool(np.array_equal(labels, ref_labels))
        rows.append(_row(n, name, seconds, peak, None, ref_seconds / seconds, f"same labels: {same}"))
        total = time.perf_counter() - t0
        print(f"epoch N={n} {name}: {seconds:.2f} s ({total:.0f} s with the memory run)", file=sys.stderr)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="device of the torch backend: cpu, cuda, cuda:N")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="N values (default 12936; quick: 2000)")
    p.add_argument("--dim", type=int, default=None, help="feature dimension (default 2048; quick: 256)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args()

    import torch

    from labelrefine.neighbors import jaccard_distance, knn

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda needs a CUDA device; torch sees none")
    sizes = args.sizes or ([2000] if args.quick else [12936])
    dim = args.dim or (256 if args.quick else 2048)
    faiss_gpu = _faiss_gpu(device)
    gpu_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "none"
    print(f"# torch backend benchmark ({machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads,")
    fg = "yes" if faiss_gpu else "no"
    print(f"# device {device}, GPU {gpu_name}, faiss-gpu {fg}, D={dim}, repeats {args.repeats})")

    headers = ["N", "implementation", "seconds", "peak MiB (tracemalloc)", "peak CUDA MiB", "ratio", "agreement"]
    tables: dict[str, list] = {"knn": [], "jaccard": [], "epoch": []}
    for n in sizes:
        x = make_features(n, dim, **MARKET)
        cams = np.random.default_rng(1).integers(MARKET["n_cams"], size=n)
        local = np.arange(n) // 3  # fragments of 3 samples, unique within each camera
        t = torch.from_numpy(x).to(device)
        if device.startswith("cuda"):  # warm up CUDA, cuBLAS and the kernels outside the timing
            knn(t[:512], 8, backend="torch")
            jaccard_distance(t[:512], k1=8, k2=3, backend="torch")
        reps = args.repeats if n <= 20000 else 1
        impls = {"numpy": (x, "numpy"), f"torch ({device})": (t, "torch")}
        if faiss_gpu:
            impls["faiss-gpu"] = (x, "faiss")
        ref_graph = _knn_rows(torch, n, impls, reps, device, tables["knn"])
        _jaccard_rows(torch, n, impls, ref_graph, reps, device, tables["jaccard"])
        _epoch_rows(n, impls, local, cams, reps, tables["epoch"])

    print("\n## knn(feats, k=30)\n")
    print(table(headers, tables["knn"]))
    print("\n## jaccard_distance(feats, knn=graph, k1=30, k2=6)\n")
    print(table(headers, tables["jaccard"]))
    print("\n## one pseudo-label epoch: knn(feats, 15) + infomap_cluster(min_sim=0.5) + refine(k=15)\n")
    print(table(headers, tables["epoch"]))


if __name__ == "__main__":
    main()
