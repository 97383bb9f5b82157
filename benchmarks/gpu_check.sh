#!/usr/bin/env bash
# GPU check of the attention backends, for a machine with one NVIDIA GPU (no network needed).
#
#   PYTHONPATH=$PWD benchmarks/gpu_check.sh OUT_DIR        (from the repository root)
#
# 1. CUDA equivalence tests: flex and blocked vs the dense oracle, fp32 and bf16, outputs and
#    input gradients, block sizes 64 and 128 (tests/model/test_attention_gpu.py; through
#    pytest when installed, else the file runs as a script).
# 2. The attention benchmark in bf16 with CUDA-event timing after warm-up: block size 64
#    (1k..32k tokens) and 128 (4k, 16k), attention alone and one encoder layer.
# 3. One MLM training step, ours vs HF (benchmarks/train_step.py).
# 4. Prediction throughput, ours vs HF (benchmarks/predict.py, base model, 1/8/17 kbp).
# 5. The long-range benchmark (benchmarks/long_range.py, issue 14): generated 8 kbp sequences
#    (i.i.d. background: the GPU machine has neither the shared data nor pyfaidx), 24 bp
#    motifs planted 16 times in 1,600 bp zones (the design that learnt a conjunction on the
#    CPU), the tiny model widened to 128 with 8 heads, trained with a 4,096- and a 512-token window (padded
#    to the longest row), the first's training fitted into 100 s and the second trained as
#    many steps; on failure (the compiled kernel, say) once
#    more with the blocked_explicit backend in the stage's time left.
# Writes OUT_DIR/gpu_check.log, gpu_tests.json (or .xml), attention_b64.json,
# attention_b128.json, train_step.json, predict.json, long_range.json. Every stage runs under
# `timeout` (80 + 260 + 70 + 40 + 45 + 90 s), so the whole script ends within 9 minutes and 45
# seconds; a stage cut short keeps what it measured (the attention benchmark writes its JSON
# after every length). The long-range stage runs second, right after the tests.
# Exit status: 0 when the tests passed, 1 otherwise.
# Set CHECK_DEVICE=cpu for a dry run of the plumbing on a CPU machine (blocked only, short).
set -u -o pipefail

out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out"
log="$out/gpu_check.log"
py=${PYTHON:-python}
device=${CHECK_DEVICE:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false

say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$log"; }

say "gpu_check in $PWD -> $out (device $device)"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true; } >>"$log"
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'transformers', transformers.__version__, 'device',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')" 2>&1 | tee -a "$log"

status=0
if [ "$device" = cuda ]; then
    say "1/3 CUDA equivalence tests"
    if "$py" -c "import pytest" 2>/dev/null; then
        timeout 80 "$py" -m pytest tests/model/test_attention_gpu.py -q -m gpu \
            -p no:cacheprovider --junitxml "$out/gpu_tests.xml" 2>&1 | tee -a "$log" || status=1
    else
        timeout 80 "$py" tests/model/test_attention_gpu.py "$out/gpu_tests.json" 2>&1 \
            | tee -a "$log" || status=1
    fi
    bench=(--device cuda --dtype bfloat16 --repeats 10 --warmup 2 --slow-call-s 30)
    lengths64=(1024 2048 4096 8192 16384 32768)
    lengths128=(4096 16384)
    limit64=70
    limit128=40
    long_range=(--train 16000 --test 1024 --seq-bp 8000 --copies 16 --motif-bp 24 --zone-bp 1600
        --batch-size 64 --steps 30000 --windows 4096 512 --trim-padding --log-every 250)
    long_range_s=100
    long_range_limit=260
else
    say "1/3 CPU dry run of the equivalence checks (blocked backend)"
    timeout 150 "$py" -c "
import sys; sys.path.insert(0, 'tests/model')
from test_attention_gpu import check_case
results = [check_case('blocked', d, 64, m, device='cpu') for d in ('float32', 'bfloat16') for m in ('itc', 'etc')]
print(*results, sep='\n'); sys.exit(0 if all(r['ok'] for r in results) else 1)" 2>&1 \
        | tee -a "$log" || status=1
    bench=(--device cpu --repeats 1 --warmup 1 --contenders ours-blocked dense-sdpa --no-memory
        --what attention)
    lengths64=(1024)
    lengths128=(1024)
    limit64=120
    limit128=60
    long_range=(--train 300 --test 100 --seq-bp 4000 --batch-size 4 --steps 40 --windows 1024 256
        --log-every 20 --threads 2)
    long_range_s=20
    long_range_limit=240
fi

# --- long-range benchmark (issue 14): does the 4,096-token window learn two-motif labels? -
# The examples (hundreds of MB) stay in LONG_RANGE_DIR; only the results come back. The model
# is the tiny preset widened to 128 with 8 heads: the width that learnt a two-motif label on
# the CPU where the 2 x 64 model did not (benchmarks/RESULTS.md, long-range section).
say "extra: long-range benchmark (4,096 vs 512 tokens)"
model='"hidden_size": 128, "num_attention_heads": 8, "intermediate_size": 256'
long_range_run() {  # extra arguments; the examples (hundreds of MB) stay out of OUT_DIR
    timeout "$1" "$py" benchmarks/long_range.py "${long_range[@]}" "${@:2}" --background random \
        --device "$device" --out "${LONG_RANGE_DIR:-/tmp/dnabird_long_range}" --overwrite \
        --json "$out/long_range.json" 2>&1 | tee -a "$log"
}
started=$SECONDS
long_range_run "$long_range_limit" --max-train-s "$long_range_s" --model "{$model}"
status_lr=$?
left=$((long_range_limit - (SECONDS - started)))
if [ "$status_lr" -ne 0 ] && [ "$left" -gt 60 ]; then  # e.g. the compiled kernel failed
    say "long-range exit status $status_lr; again with the blocked_explicit backend (${left} s)"
    long_range_run "$left" --max-train-s $(((left - 30) / 3)) \
        --model "{$model, \"attention_backend\": \"blocked_explicit\"}"
    status_lr=$?
fi
say "long-range benchmark exit status $status_lr"
# --- end of long-range block ---------------------------------------------------------

say "2/3 attention benchmark, block 64"
timeout "$limit64" "$py" benchmarks/attention.py "${bench[@]}" --block-sizes 64 \
    --lengths "${lengths64[@]}" --json "$out/attention_b64.json" 2>&1 | tee -a "$log"
say "block 64 benchmark exit status $?"

say "3/3 attention benchmark, block 128"
timeout "$limit128" "$py" benchmarks/attention.py "${bench[@]}" --block-sizes 128 \
    --lengths "${lengths128[@]}" --json "$out/attention_b128.json" 2>&1 | tee -a "$log"
say "block 128 benchmark exit status $?"

# --- MLM training step, ours vs HF BigBirdForMaskedLM block_sparse (issue 6) ---------
# base preset, 4096 tokens, bf16 autocast on GPU; tokens/s, ratio and peak memory.
# Writes OUT_DIR/train_step.json. On the CPU dry run: tiny preset, 1024 tokens.
say "extra: MLM training step, ours vs HF"
if [ "$device" = cuda ]; then
    step_args=(--preset base --length 4096 --batch 1 --steps 5 --warmup 2 --device cuda)
    step_limit=45
else
    step_args=(--preset tiny --length 1024 --batch 1 --steps 1 --warmup 1 --device cpu)
    step_limit=90
fi
timeout "$step_limit" "$py" benchmarks/train_step.py "${step_args[@]}" --json "$out/train_step.json" \
    2>&1 | tee -a "$log"
say "train step benchmark exit status $?"
# --- end of MLM training step block ------------------------------------------------------

# --- prediction throughput, ours vs HF BigBirdModel block_sparse (issue 15) -------------
# base preset, 1 / 8 / 17 kbp windows of random DNA (the GPU machine has neither the shared
# data nor pyfaidx), fp32, synchronised calls; windows/s and the ratio. Writes
# OUT_DIR/predict.json. On the CPU dry run: tiny preset, 1 and 2 kbp.
say "extra: prediction throughput, ours vs HF"
if [ "$device" = cuda ]; then
    predict_args=(--preset base --windows 1000,8000,17000 --batch-size 8 --repeats 5)
else
    predict_args=(--preset tiny --windows 1000,2000 --batch-size 2 --repeats 1)
fi
timeout 90 "$py" benchmarks/predict.py "${predict_args[@]}" --device "$device" --random-dna \
    --vocab-size 4096 --no-memory --no-stream --out "$out/predict.json" 2>&1 | tee -a "$log"
say "prediction benchmark exit status $?"
# --- end of prediction block ---------------------------------------------------------

say "done, tests status $status"
exit "$status"
