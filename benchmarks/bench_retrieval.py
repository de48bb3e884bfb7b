"""Benchmark of labelrefine.retrieval.evaluate_retrieval at Market-1501 and MSMT17 test scale.

Data: synthetic 2048-d float32 features, identity centre + camera bias + noise, with the test-set
sizes of Market-1501 (3,368 queries x 15,913 gallery, 751 identities, 6 cameras) and MSMT17
(11,659 x 82,161, 3,060 identities, 15 cameras). Timings include the distance computation.

Reference (same process, same inputs): the straightforward evaluation as Re-ID code bases write it
(full Q x G distance matrix, full argsort, a Python loop over queries, mAP/CMC/mINP per query).
It needs several Q x G arrays, so it is run at Market scale only (MSMT17 would need > 11 GiB).
Ratio = reference seconds / labelrefine seconds.

Peak MiB is the tracemalloc peak during the call (numpy buffers, BLAS output included), not
counting the input features, whose size is listed separately; the process's RSS high-water mark is
printed at the end.

Usage: python benchmarks/bench_retrieval.py [--quick] [--rerank]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np

from labelrefine.retrieval import evaluate_retrieval

SCALES = {
    "Market-1501": dict(n_query=3368, n_gallery=15913, n_ids=751, n_cams=6),
    "MSMT17": dict(n_query=11659, n_gallery=82161, n_ids=3060, n_cams=15),
}


def make_data(n_query: int, n_gallery: int, n_ids: int, n_cams: int, dim: int = 2048, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_ids, dim), dtype=np.float32)
    cam_bias = 0.8 * rng.standard_normal((n_cams, dim), dtype=np.float32)
    qp, gp = rng.integers(0, n_ids, n_query), rng.integers(0, n_ids, n_gallery)
    qc, gc = rng.integers(0, n_cams, n_query), rng.integers(0, n_cams, n_gallery)

    def feats(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        x = rng.standard_normal((pids.size, dim), dtype=np.float32)
        x *= 2.4
        x += centers[pids]
        x += cam_bias[cams]
        return x

    return feats(qp, qc), feats(gp, gc), qp, gp, qc, gc


def reference(qf, gf, qp, gp, qc, gc, max_rank=50):
    """Full distance matrix, full argsort, one query at a time."""
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    distmat = 1.0 - qn @ gn.T
    indices = np.argsort(distmat, axis=1)
    cmc_sum, aps, inps = np.zeros(max_rank), [], []
    for i in range(len(qp)):
        order = indices[i]
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        raw = gp[order][keep] == qp[i]
        if not raw.any():
            continue
        cum = np.cumsum(raw)
        hits = np.flatnonzero(raw)
        aps.append(np.mean(cum[hits] / (hits + 1.0)))
        inps.append(cum[hits[-1]] / (hits[-1] + 1.0))
        cmc_sum += np.minimum(cum[:max_rank], 1)
    return float(np.mean(aps)), cmc_sum / len(aps), float(np.mean(inps))


def timed(fn, repeats: int):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def bench_scale(name: str, repeats: int, rerank: bool) -> None:
    qf, gf, qp, gp, qc, gc = make_data(**SCALES[name])
    input_mib = (qf.nbytes + gf.nbytes) / 2**20

    def run(**kw):
        return evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, **kw)

    secs, result = timed(run, repeats)
    peak = peak_mib(run)
    row = (
        f"| {name} | {len(qp):,} x {len(gp):,} | {secs:.2f} | {peak:.0f} | {input_mib:.0f} | "
        f"{result.mAP:.4f} | {result.rank(1):.4f} |"
    )
    if name == "Market-1501":
        ref_secs, (ref_map, ref_cmc, ref_minp) = timed(lambda: reference(qf, gf, qp, gp, qc, gc), 1)
        assert abs(ref_map - result.mAP) < 1e-5 and abs(ref_minp - result.mINP) < 1e-5
        assert np.allclose(ref_cmc, result.cmc, atol=1e-5)
        row += f" {ref_secs:.2f} | {ref_secs / secs:.1f} |"
    else:
        row += " - | - |"
    print(row, flush=True)
    if rerank and name == "Market-1501":
        secs, result = timed(lambda: run(rerank=True), 1)
        print(
            f"| {name} re-ranked (100 candidates) | {len(qp):,} x {len(gp):,} | {secs:.2f} | - | {input_mib:.0f} | "
            f"{result.mAP:.4f} | {result.rank(1):.4f} | - | - |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Market-1501 scale only, one repeat (< 60 s)")
    parser.add_argument("--rerank", action="store_true", help="add a re-ranking row at Market-1501 scale")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    scales = ["Market-1501"] if args.quick else ["Market-1501", "MSMT17"]

    print("| data | Q x G | seconds | peak MiB (tracemalloc) | input MiB | mAP | rank-1 | ref seconds | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in scales:
        bench_scale(name, repeats=repeats if name == "Market-1501" else 1, rerank=args.rerank)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess RSS high-water mark: {rss:.0f} MiB (data generation and reference included)")


if __name__ == "__main__":
    main()
