#!/usr/bin/env bash
# One prepared GPU check of labelrefine (under 8 minutes on one GPU).
#
# Usage (from the repository root):
#     bash benchmarks/gpu_check.sh
#     OUT=/some/dir bash benchmarks/gpu_check.sh      # log + run folders there
#
# Output goes to stdout and to $OUT/gpu_check.log ($OUT if set, else $GPU_CHECK_OUT, else
# ./gpu_check_out). Steps:
#   1. pytest -m cuda: torch backend vs numpy on CUDA, ClusterMemory + GRL with AMP, feature
#      extraction on CUDA (all skipped without CUDA; the CPU torch-backend tests run instead);
#   2. the recipe: one short epoch of stage 1 and of stage 2 (`--preset synthetic`) with
#      `--device cuda --amp` (on the CPU without CUDA, without --amp);
#   3. 2 processes with NCCL against 1 process (only with two or more GPUs);
#   4. timing table (benchmarks/bench_torch.py): torch backend vs faiss-gpu (if installed) vs
#      numpy for kNN, Jaccard and one pseudo-label epoch at N = 12,936 and 32,621 x 2048 on CUDA
#      (small sizes on the CPU);
#   5. the approximate epoch at N = 1e6 x 256 (benchmarks/bench_scale.py) and, with 2+ GPUs,
#      labelrefine.nn.sharded_knn over all of them against one process (prints "skip" otherwise).
# It can run again on the same machine: the run folders under $OUT are recreated each time.
# Every skipped part is named in the summary at the end. The exit status is 1 if a step failed.

set -u
OUT_DIR="${OUT:-${GPU_CHECK_OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
rm -rf "$OUT_DIR/recipe" "$OUT_DIR/ddp"  # a rerun starts from fresh run folders (run_dir refuses a used one)
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
SUMMARY=()
FAILED=0

note() { SUMMARY+=("$1"); }
step() { echo; echo "=== $1 ($(( $(date +%s) - START )) s) ==="; }
run() {  # run NAME TIMEOUT_S CMD...: record PASS/FAIL
    local name="$1" limit="$2"; shift 2
    if timeout "$limit" "$@"; then note "PASS    $name"; else note "FAIL    $name (exit $?)"; FAILED=1; fi
}

step "environment"
"$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA build", torch.version.cuda)
print("CUDA available:", torch.cuda.is_available(), "| GPUs:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB")
try:
    import faiss
    print("faiss", faiss.__version__, "| GPUs seen by faiss:", faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
except ImportError:
    print("faiss not installed")
EOF
N_GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
HAS_FAISS_GPU=$("$PY" -c "
try:
    import faiss; print(int(hasattr(faiss, 'StandardGpuResources') and faiss.get_num_gpus() > 0))
except ImportError:
    print(0)")

step "1. tests marked cuda"
if [ "$N_GPUS" -ge 1 ]; then
    run "pytest -m cuda (tests/test_cuda.py)" 240 "$PY" -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider -rs
else
    "$PY" -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider | tail -1
    note "SKIPPED pytest -m cuda: no CUDA device (all tests in tests/test_cuda.py skip)"
    run "CPU torch-backend tests (tests/test_neighbors_torch.py)" 240 \
        "$PY" -m pytest tests/test_neighbors_torch.py -q -p no:cacheprovider
fi

step "2. recipe: one short epoch of each stage on generated data"
if [ "$N_GPUS" -ge 1 ]; then
    DEV=(--device cuda --amp); DEVNAME="cuda --amp"
else
    DEV=(--device cpu); DEVNAME="cpu"
    note "SKIPPED recipe on CUDA with --amp: no CUDA device (ran on the CPU instead)"
fi
SHORT=(--no-progress --set optim.epochs=1 --set optim.iters_per_epoch=5 --set synthetic.ids=60 --set synthetic.cams=3)
run "labelrefine-calr intra --preset synthetic --device $DEVNAME (1 epoch)" 150 \
    "$PY" -m labelrefine.recipes.calr intra --preset synthetic "${DEV[@]}" "${SHORT[@]}" \
    --run-dir "$OUT_DIR/recipe/intra"
run "labelrefine-calr inter --preset synthetic --device $DEVNAME (1 epoch)" 150 \
    "$PY" -m labelrefine.recipes.calr inter --preset synthetic "${DEV[@]}" "${SHORT[@]}" \
    --run-dir "$OUT_DIR/recipe/inter" --local-labels "$OUT_DIR/recipe/intra/local_labels.npz"

step "3. 2-process NCCL run against 1 process"
if [ "$N_GPUS" -ge 2 ]; then
    run "DDP 2 x NCCL vs 1 process (benchmarks/ddp_check.py)" 240 \
        "$PY" benchmarks/ddp_check.py --backend nccl --device cuda --out "$OUT_DIR/ddp"
else
    echo "fewer than 2 GPUs ($N_GPUS): skipped (the CPU gloo version is tests/test_recipe_ddp.py, in the suite)"
    note "SKIPPED 2-process NCCL vs 1 process: needs 2 GPUs, found $N_GPUS"
fi

step "4. timing: torch backend vs faiss-gpu vs numpy"
if [ "$N_GPUS" -ge 1 ]; then
    [ "$HAS_FAISS_GPU" = 1 ] || note "SKIPPED faiss-gpu rows: faiss with GPU support not installed"
    run "bench_torch.py --device cuda, N = 12936 and 32621 x 2048" 300 \
        "$PY" benchmarks/bench_torch.py --device cuda --sizes 12936 32621 --dim 2048 --repeats 3
else
    note "SKIPPED CUDA timings at 12936 / 32621 x 2048 and faiss-gpu rows: no CUDA device"
    run "bench_torch.py --device cpu, N = 2000 and 4000 x 256 (small CPU sizes)" 300 \
        "$PY" benchmarks/bench_torch.py --device cpu --sizes 2000 4000 --dim 256 --repeats 1
fi

step "5. approximate search at N = 1e6 x 256 (CPU, faiss HNSW) and the sharded search on every GPU"
run "bench_scale.py --sizes 1000000 --exact-max 0 (approximate epoch, recall)" 420 \
    "$PY" benchmarks/bench_scale.py --sizes 1000000 --exact-max 0
if [ "$N_GPUS" -ge 2 ]; then
    run "sharded_knn over $N_GPUS GPUs (torchrun, NCCL) equals one process" 240 \
        torchrun --standalone --nproc_per_node "$N_GPUS" benchmarks/sharded_knn_check.py
else
    echo "skip: sharded search over several GPUs needs 2 GPUs, found $N_GPUS (tests/test_nn_distributed.py checks it with 2 gloo processes)"
    note "SKIPPED sharded_knn over several GPUs: needs 2 GPUs, found $N_GPUS"
fi

step "summary"
for line in "${SUMMARY[@]}"; do echo "$line"; done
echo "total $(( $(date +%s) - START )) s; log: $LOG"
exit "$FAILED"
