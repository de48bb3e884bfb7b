"""Benchmark ClusterMemory.update against Cluster-Contrast's per-sample loop on the same batch.

Usage: python benchmarks/bench_memory.py [--quick] [--device cpu|cuda]

Two batch layouts per size N:

* ``distinct``: every sample has its own cluster. The vectorised "mean" rule and the sequential
  per-sample rule are then the same update; the table reports their max abs difference (~1e-7).
* ``PK``: 16 samples per cluster (a P x K Re-ID sampler). The rules differ by design (one step
  towards the batch mean vs 16 sequential steps); the table reports that difference.

Columns: seconds = median over repeats; peak MiB = growth of the process's peak resident set
during one call (Linux VmHWM after resetting it through /proc/self/clear_refs, with glibc's
mmap threshold fixed at 128 KiB, after all timings, so freed temporaries leave the resident set; on other systems
the growth of ru_maxrss, which only shows new highs). Linux syncs RSS counters per thread in
steps of 64 pages, so values under ~0.5 MiB read as 0. ratio = loop seconds /
vectorised seconds.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from labelrefine.nn import ClusterMemory


def reference_update(features: torch.Tensor, feats: torch.Tensor, targets: torch.Tensor, m: float) -> None:
    """Cluster-Contrast's rule, written plainly: one step per sample, in batch order."""
    x = F.normalize(feats, dim=1)
    for row, t in zip(x, targets.tolist(), strict=True):
        if t < 0:
            continue
        features[t] = m * features[t] + (1.0 - m) * row
        features[t] /= features[t].norm()


def _fixed_mmap_threshold() -> None:
    """Make glibc return freed large blocks to the OS so RSS peaks show temporaries.

    glibc raises its mmap threshold after the first free of a large block and then keeps
    such blocks in the heap; a fixed threshold (128 KiB) keeps every large temporary visible
    in the resident set. A no-op where glibc is not the C library.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _rss_peak_reset() -> int | None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _vm("VmRSS")
    except OSError:
        return None


def _vm(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def peak_mib(fn) -> float:
    gc.collect()
    base = _rss_peak_reset()
    if base is None:  # no clear_refs: growth of the all-time high only
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
    fn()
    return max(_vm("VmHWM") - base, 0) / 2**20


def timed(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def setup(n: int, layout: str, dim: int, num_clusters: int, device: torch.device):
    """Inputs and the two update callables (vectorised, loop) for one table row."""
    g = torch.Generator().manual_seed(n)
    start = F.normalize(torch.randn(num_clusters, dim, generator=g), dim=1).to(device)
    feats = torch.randn(n, dim, generator=g).to(device)
    if layout == "distinct":
        targets = torch.randperm(num_clusters, generator=g)[:n]
    else:  # P x K: K = 16 samples per cluster
        targets = torch.randperm(num_clusters, generator=g)[: n // 16].repeat_interleave(16)
    targets = targets.to(device)
    memory = ClusterMemory(dim, num_clusters, momentum=0.2).to(device)
    memory.reset(start)
    ref = start.clone()

    def fast():
        memory.update(feats, targets)

    def slow():
        reference_update(ref, feats, targets, 0.2)

    return fast, slow, memory, ref


def run(n: int, layout: str, dim: int, num_clusters: int, repeats: int, device: torch.device) -> dict:
    fast, slow, memory, ref = setup(n, layout, dim, num_clusters, device)
    fast()
    slow()  # one update each from the same start: the results compared below (then timings)
    diff = (memory.features - ref).abs().max().item()
    return {
        "N": n,
        "layout": layout,
        "fast_s": timed(fast, repeats, device),
        "slow_s": timed(slow, repeats, device),
        "diff": diff,
    }


def add_peaks(row: dict, dim: int, num_clusters: int, device: torch.device) -> None:
    fast, slow, _, _ = setup(row["N"], row["layout"], dim, num_clusters, device)
    if device.type == "cpu":
        row["fast_mib"], row["slow_mib"] = peak_mib(fast), peak_mib(slow)
        return
    for key, fn in (("fast_mib", fast), ("slow_mib", slow)):
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        row[key] = (torch.cuda.max_memory_allocated(device) - base) / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: stable timings)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    if args.quick:
        sizes, dim, num_clusters, repeats = (64, 256, 1024), 512, 4096, 9
    else:
        sizes, dim, num_clusters, repeats = (64, 256, 1024, 4096), 2048, 8192, 9
    peak = "CUDA max_memory_allocated growth" if device.type == "cuda" else "peak RSS growth (VmHWM reset)"
    print(
        f"ClusterMemory.update (mode='mean', m=0.2), D={dim}, C={num_clusters}, device={device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; peak MiB = {peak}\n"
    )
    print(
        "| N | layout | seconds (vectorised) | seconds (per-sample loop) | ratio loop/vectorised "
        "| peak MiB (vectorised) | peak MiB (loop) | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [run(n, layout, dim, num_clusters, repeats, device) for n in sizes for layout in ("distinct", "PK")]
    if device.type == "cpu":
        _fixed_mmap_threshold()  # after the timings: it slows large allocations down
    for r in rows:
        add_peaks(r, dim, num_clusters, device)
        print(
            f"| {r['N']} | {r['layout']} | {r['fast_s']:.5f} | {r['slow_s']:.5f} | "
            f"{r['slow_s'] / r['fast_s']:.1f} | {r['fast_mib']:.1f} | {r['slow_mib']:.1f} | {r['diff']:.1e} |"
        )
    print("\ndistinct: one sample per cluster, both rules are the same update (diff ~ float32 rounding).")
    print("PK: 16 samples per cluster; the vectorised mean rule and the sequential rule differ by design.")


if __name__ == "__main__":
    main()
