#!/usr/bin/env bash
# Every GPU check in one call that ends within a time budget (default 540 s), most important
# first, each step under its own limit so that one that hangs cannot starve the rest:
#   1. the GPU tests (tests/test_gpu.py: the model, compiled cells, TF32/bf16, training, resume,
#      torchrun (on two GPUs, where there are) and checkpointed memory on CUDA, each against the CPU or float32);
#   2. `neuralgpu bench` at the paper's size (length 41, batch 32) against the eager reference;
#   3. inference at length 4,001 at a large batch, against the device's measured dense rate;
#   4. the shipped decimal `add` verified at 100x on the rest of its 1,024 random inputs, for the
#      time that is left (stopped by SIGTERM, it records what it scored; the card is then copied out).
# Usage, from the repository root of a machine with a CUDA GPU:
#   bash benchmarks/gpu_check.sh [OUT_DIR] [BUDGET_SECONDS]
# OUT_DIR (default $OUT, else gpu-check) gets gpu_check.log and cards.tgz (the shipped `add`'s
# files after step 4: `tar xzf cards.tgz` in the repository root keeps what was recorded).
set -uo pipefail
out="${1:-${OUT:-gpu-check}}"
budget="${2:-540}"
mkdir -p "$out"
log="$out/gpu_check.log"
export PYTHONUNBUFFERED=1

step() {  # step LIMIT_SECONDS COMMAND...: run it under a time limit, its output in the log
    local limit=$1
    shift
    local left=$((budget - SECONDS - 30)) # 30 s kept for packing the card
    ((limit > left)) && limit=$left
    if ((limit < 20)); then
        echo "== skipped (out of time): $*" | tee -a "$log"
        return
    fi
    echo "== $* (limit ${limit} s, at ${SECONDS} s)" | tee -a "$log"
    timeout --signal=TERM --kill-after=20 "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== exit ${PIPESTATUS[0]} at ${SECONDS} s" | tee -a "$log"
}

pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2 | tee -a "$log"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" # works even where that install did not
step 20 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
step 220 python -m pytest -q -rs tests/test_gpu.py --durations=10
step 100 python -m neuralgpu bench --device cuda --recipe paper --length 41 --batch 32 --compile --repeats 7
step 80 python -m neuralgpu bench --device cuda --recipe fast --compile --no-reference --infer-length 4001 --infer-batch 64 --repeats 3
step 600 python -m neuralgpu eval add --device cuda --lengths 4001 --suite random --samples 1024 --extend
tar czf "$out/cards.tgz" src/neuralgpu/pretrained/add.json src/neuralgpu/pretrained/add.safetensors
echo "== done at ${SECONDS} s" | tee -a "$log"
