#!/usr/bin/env bash
# The checks a session with a lent CUDA GPU runs there once, in at most 8 minutes (see README, "On a GPU"):
#   1. the CUDA tests (engine on cuda vs cpu, BatchNorm K-at-once, bf16, memory splitting, CUDA graph);
#   2. the MNIST-1D MLP's step time at K = 64, fp32 and bf16, eager and replayed from a CUDA graph
#      (ROTELAB_CUDA_GRAPH=1; goal: <= 0.5 ms), and torch.profiler's table of each fp32 step;
#   3. the CIFAR-shaped bench: engine vs the best per-model loop (fp32 or bf16 + channels_last) at
#      K = 1, 8, 16, 64 for cnn, resnet and a 64-128-256 BatchNorm net, engine fp32 and bf16, and the
#      ceiling (one model at 16x the batch);
#   4. bf16 vs fp32 accuracy over the same members (bench part 6), for the default-precision rule;
#   5. the Ray tests on the GPU, when Ray is there (two jobs sharing the card with fractional GPUs).
# Usage, from the repo root on the GPU machine: OUT=DIR bash bench/gpu_check.sh
# Every step has its own timeout, and a step that could overrun BUDGET seconds (default 450) in all is
# skipped and says so, so the run ends inside 8 minutes whatever happens.
# DEVICE=cpu runs the same steps at the smallest sizes on a CPU: a dry run of the script's plumbing
# (wheels, imports, arguments, output files) before a GPU is spent on it.
# FULL=1 also runs `python -m bench --device cuda` and the whole suite (takes longer than 8 minutes).
# Expects torch (with CUDA, unless DEVICE=cpu); the project's other packages missing there come as
# wheels in WHEELS (default .whl/; make them here with `make gpu-wheels`).
# Everything it writes lands in one archive, $OUT/gpu_check.tgz (the device tool brings back at most
# 8 files), plus $OUT/summary.txt, this script's own output.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check-out}
DEVICE=${DEVICE:-cuda}
WHEELS=${WHEELS:-.whl}
BUDGET=${BUDGET:-450}
mkdir -p "$OUT"
FINAL=$OUT OUT=$(mktemp -d /tmp/gpu-check.XXXX)
trap 'tar czf "$FINAL/gpu_check.tgz" -C "$OUT" .' EXIT
exec > >(tee "$FINAL/summary.txt") 2>&1
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 ROTELAB_CACHE=/tmp/rotelab-cache
if [ "$DEVICE" = cpu ]; then  # dry-run sizes
  STEP_K=4 CIFAR_ARGS="--size quick --ks 1,2 --models cnn,resnet,convbn" PRECISION_ARGS="repeats=1, folds=2, epochs=1"
else
  STEP_K=64 CIFAR_ARGS="--ks 1,8,16,64" PRECISION_ARGS="repeats=2"
fi
# fits SECONDS: true when a step that may take SECONDS still ends inside BUDGET; else says it is skipped.
fits() { if [ $((SECONDS + $1)) -le "$BUDGET" ]; then return 0; fi; echo "== skipped (would pass the ${BUDGET} s budget at ${SECONDS} s): $2"; return 1; }
step() { echo "== $1: $2 s (${SECONDS} s in all)"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, rotelab, kornia, mnist1d, typer, rich; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 | tee -a "$OUT/gpu.txt"

if fits 100 "cuda tests"; then
  s=$SECONDS
  timeout 100 python3 -m pytest -p no:cacheprovider -rs tests/engine/test_engine_devices.py tests/engine/test_engine_batchnorm.py \
    tests/engine/test_engine_precision.py tests/engine/test_engine_memory.py tests/engine/test_engine_fast_path.py \
    tests/engine/test_graph_step.py \
    2>&1 | tee "$OUT/pytest_cuda.txt" | tail -6
  step "cuda tests" $((SECONDS - s))
fi

if fits 100 "MLP step time"; then
  s=$SECONDS
  for g in 0 1; do
    ROTELAB_CUDA_GRAPH=$g timeout 30 python3 -m bench.step_time --device "$DEVICE" --k $STEP_K --profile "$OUT/profile_graph$g.txt" \
      | tee -a "$OUT/step_time.jsonl"
    ROTELAB_CUDA_GRAPH=$g timeout 20 python3 -m bench.step_time --device "$DEVICE" --k $STEP_K --precision bf16 | tee -a "$OUT/step_time.jsonl"
  done
  head -16 "$OUT/profile_graph0.txt" 2>/dev/null
  step "MLP step time" $((SECONDS - s))
fi

for p in fp32 bf16; do
  if fits 100 "cifar-shaped ($p)"; then
    s=$SECONDS
    timeout 100 python3 -m bench.cifar_shaped --device "$DEVICE" $CIFAR_ARGS --precision $p --out "$OUT/cifar_$p" \
      2>"$OUT/cifar_$p.log" >/dev/null
    echo "cifar-shaped ($p) rc=$?"; tail -14 "$OUT/cifar_$p"/cifar_shaped_*.md 2>/dev/null
    step "cifar-shaped ($p)" $((SECONDS - s))
  fi
done

if fits 70 "bf16 vs fp32"; then
  s=$SECONDS
  timeout 70 python3 -c "
from bench import precision
rows = precision.run('$DEVICE', $PRECISION_ARGS)
open('$OUT/precision_$DEVICE.md', 'w').write('\n'.join(precision.markdown(rows, '$DEVICE')))
" 2>"$OUT/precision.log"; echo "bf16 vs fp32 rc=$?"; tail -8 "$OUT/precision_$DEVICE.md" 2>/dev/null
  step "bf16 vs fp32" $((SECONDS - s))
fi

if python3 -c "import ray" 2>/dev/null && fits 60 "ray on the gpu"; then
  s=$SECONDS
  timeout 60 python3 -m pytest -p no:cacheprovider -rs tests/executors -k "gpu or cuda" 2>&1 | tee "$OUT/pytest_ray_gpu.txt" | tail -4
  step "ray on the gpu" $((SECONDS - s))
fi

if [ "${FULL:-0}" = 1 ]; then
  s=$SECONDS
  timeout 260 python3 -m bench --device "$DEVICE" --parts 1,2,3,4 --loop-max 32 --out "$OUT" 2>"$OUT/bench.log" >/dev/null
  echo "bench rc=$?"; tail -20 "$OUT/results.md" 2>/dev/null
  timeout 200 python3 -m pytest -p no:cacheprovider -x --ignore=tests/report tests 2>&1 | tee "$OUT/pytest_all.txt" | tail -6
  step "full bench and suite" $((SECONDS - s))
fi
