#!/usr/bin/env bash
# Every GPU measurement of a session, in one script that fits in 8 minutes on one GPU:
#   1. the fingerprint                         -> OUT/fingerprint.json
#   2. harness overhead vs a bare loop         -> OUT/benchmarks/overhead.json
#   3. data pipeline vs torchvision DataLoader -> OUT/benchmarks/pipeline.json
#   4. in-place memory, on vs off              -> OUT/benchmarks/inplace_memory.json
#   5. the lesson's Darknet: fp16 vs fp32, in-place on vs off (throughput, peak memory) and the
#      largest batch for in-place on and off    -> OUT/results (runs, maxbatch)
#   6. the `dawn` recipe to the target, as many seeds as the time budget allows, and the seed-0
#      model's DAWNBench inference latency (`bench infer`)  -> OUT/results
#   7. airbench's train94 on the same data, side by side -> OUT/results
#   8. the report of all of it                  -> OUT/report
#   9. the lesson's GANs: dcgan and wgan, fp16/fp32 x in-place on/off, and their report -> OUT/gan
# Usage: BENCH_DATA=path/to/cifar10-jpeg.tar.xz [SUITE_TARGET=0.90] [SUITE_BUDGET_S=420] [SUITE_STEPS=a,b,...] \
#          benchmarks/gpu_suite.sh OUT [--cpu-smoke]
# SUITE_STEPS picks some of: fingerprint overhead pipeline inplace-memory darknet maxbatch dawn infer airbench gan
# (default all; the report and verify always run), to redo part of the suite in a short session.
# --cpu-smoke runs every step with tiny sizes on the CPU (CI runs it); it measures nothing.
# A GPU machine without a registry needs airbench as a wheel (PyPI has 0.1.8 as an sdist only) and
# the data archive beside the checkout; both folders are git-ignored. Here, once:
#   pip wheel airbench==0.1.8 --no-deps -w .whl && mkdir -p .carry && cp ../shared/data/cifar10-jpeg.tar.xz .carry/
# There (carry .whl and .carry; its image has torch, pandas, pyarrow, rich, matplotlib and setuptools):
#   python3 -m pip install -q --no-deps --no-build-isolation -e . && BENCH_DATA=.carry/cifar10-jpeg.tar.xz \
#     benchmarks/gpu_suite.sh "$OUT/suite" 2>&1 | tee "$OUT/suite.log"
# The device tool brings back at most 8 files, 2 folders deep: write OUT outside $OUT and pack it,
#   ... timeout -k 5 470 benchmarks/gpu_suite.sh /tmp/suite > "$OUT/suite.log" 2>&1; tar czf "$OUT/suite.tgz" -C /tmp suite
# (results/h200/README.md has the two calls of 2026-11-26.) A copy of the tree whose .git is not its
# own (that tool's copy carried the session's first commit) records the wrong commit: set
# BENCH_GIT_COMMIT=<the commit you sent> in the command.
# Each step goes on when another fails; the last lines say which ones failed.
set -uo pipefail

OUT=${1:?usage: gpu_suite.sh OUT_DIR [--cpu-smoke]}
MODE=${2:-gpu}
: "${BENCH_DATA:?set BENCH_DATA to the CIFAR-10 source (e.g. cifar10-jpeg.tar.xz)}"
BUDGET_S=${SUITE_BUDGET_S:-420}
# The target both the dawn recipe and airbench are timed to. On cifar10-jpeg (JPEG quality 75) 94%
# is out of reach for fast schedules: on the CPU airbench's own train94 reached 90.63% of it and
# the dawn recipe 90.33% (results/cpu, README), so 0.90 is the default; use 0.94 on the original pixels.
TARGET=${SUITE_TARGET:-0.90}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
# `python -m bench`, not the `bench` script: an image may not put its venv's bin/ on PATH
bench() { "$PY" -m bench "$@"; }
mkdir -p "$OUT/benchmarks" "$OUT/results"
START=$(date +%s)
FAILED=()
export PYTHONUNBUFFERED=1

elapsed() { echo $(( $(date +%s) - START )); }
want() { [ -z "${SUITE_STEPS:-}" ] || [ "$1" = report ] || [ "$1" = verify ] || [[ ",$SUITE_STEPS," == *",$1,"* ]]; }
step() {  # step GROUP NAME CMD...: run it if GROUP is wanted, log it, remember a failure, never stop the suite
  local group=$1 name=$2; shift 2
  want "$group" || return 0
  echo "=== [$(elapsed)s] $name"
  if ! "$@"; then FAILED+=("$name"); echo "=== $name FAILED"; fi
}

if [ "$MODE" = "--cpu-smoke" ]; then
  DEV=(--device cpu); SMOKE=(--smoke); PREC=bf16
  DARKNET=(--model darknet --model-kwargs "blocks=1,1" nf=8 width=0.5)
  SHORT=(--epochs 1 --limit-train 512 --batch-size 128 --warmup-steps 1)
  DAWN=(--recipe dawn --device cpu --no-compile --warmup-steps 1 --epochs 1 --limit-train 1024 --batch-size 256
        --model-kwargs width=0.125 --target 0.2)
  MAXB=(--memory-limit 1.5GiB --start 32 --max 256 --granularity 32)
  DAWN_SEEDS=2; INFER=(--limit 200 --batch-size 500)
else
  DEV=(--device cuda); SMOKE=(); PREC=fp16
  DARKNET=(--model darknet --model-kwargs "blocks=1,2,4,6,3" nf=32 width=0.5)
  # warm-up steps keep cuDNN's autotuning (and its workspace, 18 GB at fp32 on an H200) out of the
  # timed steps; two epochs of 50 steps, so the second epoch's throughput and peak are steady state
  SHORT=(--epochs 2 --limit-train 25600 --batch-size 512 --channels-last --warmup-steps 10)
  DAWN=(--recipe dawn --device cuda --target "$TARGET")
  MAXB=(--memory-limit 8GiB --start 1024 --max 8192 --granularity 256)
  DAWN_SEEDS=20; INFER=()
fi
R="$OUT/results"
# the checkpoint stays outside OUT: OUT is packed and brought back, a 26 MB checkpoint need not be
CKPT="$(mktemp -d)/dawn-seed0.pt"

fingerprint() { bench env > "$OUT/fingerprint.json" && cat "$OUT/fingerprint.json"; }
step fingerprint fingerprint fingerprint
step overhead overhead "$PY" "$HERE/overhead.py" "${DEV[@]}" "${SMOKE[@]}" --reps 2 --out "$OUT/benchmarks/overhead.json"
step pipeline pipeline "$PY" "$HERE/pipeline.py" "${DEV[@]}" "${SMOKE[@]}" --out "$OUT/benchmarks/pipeline.json"
step inplace-memory inplace-memory "$PY" "$HERE/inplace_memory.py" "${DEV[@]}" "${SMOKE[@]}" --out "$OUT/benchmarks/inplace_memory.json"

for prec in "$PREC" fp32; do
  for ip in --inplace --no-inplace; do
    step darknet "darknet-$prec$ip" bench run "${DARKNET[@]}" "${SHORT[@]}" "${DEV[@]}" --precision "$prec" "$ip" \
      --lr 0.2 --target 0.5 --results "$R" --no-progress-bar
  done
done
for ip in --inplace --no-inplace; do
  step maxbatch "maxbatch$ip" bench maxbatch "${DARKNET[@]}" "${DEV[@]}" --precision fp32 "$ip" "${MAXB[@]}" --results "$R"
done

# the dawn recipe: leave ~60 s for airbench (if wanted; 10 runs took 43 s on an H200) and ~40 s for the report
RESERVE=40; want airbench && RESERVE=100
for seed in $(seq 0 $((DAWN_SEEDS - 1))); do
  want dawn || break
  if [ "$seed" -gt 0 ] && [ "$(elapsed)" -gt $((BUDGET_S - RESERVE)) ]; then
    echo "=== time budget: stopping dawn seeds at $seed"; break
  fi
  SAVE=(); [ "$seed" -eq 0 ] && SAVE=(--save "$CKPT")
  step dawn "dawn-seed$seed" bench run "${DAWN[@]}" --seed "$seed" --results "$R" --no-progress-bar "${SAVE[@]}"
done
# DAWNBench's inference latency of the seed-0 model (10,000 test images one at a time)
[ -f "$CKPT" ] && step infer infer bench infer --checkpoint "$CKPT" "${DEV[@]}" "${INFER[@]}" --results "$R"

if [ "$MODE" = "--cpu-smoke" ]; then
  step airbench airbench-export "$PY" "$HERE/airbench_side_by_side.py" --export-only --results "$R"
  want airbench && echo "=== airbench: its GPU run needs CUDA; its CPU port (--device cpu, ~30 min) is tested in tests/test_benchmarks.py"
else
  if want airbench && ! "$PY" -c "import airbench" 2>/dev/null && ls .whl/airbench-*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/airbench-site .whl/airbench-*.whl \
      && export PYTHONPATH=/tmp/airbench-site${PYTHONPATH:+:$PYTHONPATH}
  fi
  left=$(( BUDGET_S - $(elapsed) - 30 ))
  step airbench airbench "$PY" "$HERE/airbench_side_by_side.py" "${DEV[@]}" --results "$R" --target "$TARGET" --runs 10 --budget-s "$(( left > 20 ? left : 20 ))"
fi

step report report bench report "$R" --out "$OUT/report"
step verify verify bench verify "$R"

# 9. the lesson's GANs (issue #15): dcgan and wgan, fp16/fp32 x in-place on/off: generator steps/s,
#    peak memory, FD per epoch and samples -> OUT/gan (results, report). Their own results folder, so
#    the boards above stay the classifiers'. The FD judge (bench/judge.py) comes from the cache
#    ($BENCH_CACHE): carry judge-*.pt/.json from the machine that trained it to keep one judge
#    across machines; without it the GPU trains its own (a new checksum, in every row).
G="$OUT/gan/results"
if [ "$MODE" = "--cpu-smoke" ]; then
  GAN=(--model-kwargs nf=8 nz=16 extra=1 --epochs 1 --limit-train 640 --batch-size 32 --warmup-steps 1)
  GAN_CELLS=("dcgan $PREC --inplace" "wgan $PREC --no-inplace")
  # a judge trained in seconds: the smoke measures nothing
  export BENCH_JUDGE='{"model_kwargs": {"width": 0.125}, "epochs": 1, "limit_train": 1000, "batch_size": 250, "tta": false}'
else
  GAN=(--model-kwargs nf=64 nz=100 extra=1 --epochs 2 --limit-train 25600 --channels-last --warmup-steps 10)
  GAN_CELLS=()
  for wl in dcgan wgan; do for prec in "$PREC" fp32; do for ip in --inplace --no-inplace; do
    GAN_CELLS+=("$wl $prec $ip"); done; done; done
fi
for cell in "${GAN_CELLS[@]}"; do
  read -r wl prec ip <<< "$cell"
  step gan "gan-$wl-$prec$ip" bench run --workload "$wl" --model dcgan "${GAN[@]}" "${DEV[@]}" \
    --precision "$prec" "$ip" --results "$G" --no-progress-bar
done
step gan gan-report bench report "$G" --out "$OUT/gan/report"
echo "=== done in $(elapsed)s; failed steps: ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
