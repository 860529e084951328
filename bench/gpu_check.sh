#!/usr/bin/env bash
# The checks a session with a lent CUDA GPU runs there once, in at most 8 minutes (see README, "On a GPU"):
#   1. the CUDA tests (engine on cuda vs cpu, BatchNorm K-at-once, bf16, memory splitting, techniques);
#   2. the MNIST-1D MLP's step time at K = 64, fp32 and bf16, eager and replayed from a CUDA graph
#      (ROTELAB_CUDA_GRAPH=1; goal: <= 0.5 ms), and torch.profiler's table of each fp32 step;
#   3. the CIFAR-shaped bench: engine vs the best per-model loop (fp32 or bf16 + channels_last) at
#      K = 1, 8, 16, 64 for cnn, resnet and a 64-128-256 BatchNorm net, engine fp32 and bf16, and the
#      ceiling (one model at 16x the batch);
#   4. bf16 vs fp32 accuracy over the same members (bench part 6), for the default-precision rule;
#   5. the Ray tests on the GPU, when Ray is there (two jobs sharing the card with fractional GPUs).
# Usage, from the repo root on the GPU machine: OUT=DIR bash bench/gpu_check.sh
# FULL=1 also runs `python -m bench --device cuda` and the whole suite (takes longer than 8 minutes).
# Expects torch with CUDA; the project's other packages missing there come as wheels in .whl/
# (make them here with: pip download -d .whl --only-binary=:all: typer rich kornia mnist1d pydantic ...).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 ROTELAB_CACHE=/tmp/rotelab-cache
step() { echo "== $1: $2 s"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, rotelab, kornia, mnist1d; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 | tee -a "$OUT/gpu.txt"

s=$SECONDS
timeout 110 python3 -m pytest -p no:cacheprovider -q -rs tests/engine/test_engine_devices.py tests/engine/test_engine_batchnorm.py \
  tests/engine/test_engine_precision.py tests/engine/test_engine_memory.py tests/engine/test_engine_fast_path.py \
  tests/engine/test_graph_step.py \
  2>&1 | tee "$OUT/pytest_cuda.txt" | tail -6
step "cuda tests" $((SECONDS - s))

s=$SECONDS
for g in 0 1; do
  ROTELAB_CUDA_GRAPH=$g timeout 40 python3 -m bench.step_time --device cuda --k 64 --profile "$OUT/profile_graph$g.txt" \
    | tee -a "$OUT/step_time.jsonl"
  ROTELAB_CUDA_GRAPH=$g timeout 30 python3 -m bench.step_time --device cuda --k 64 --precision bf16 | tee -a "$OUT/step_time.jsonl"
done
head -16 "$OUT/profile_graph0.txt" 2>/dev/null
step "MLP step time" $((SECONDS - s))

s=$SECONDS
for p in fp32 bf16; do
  timeout 110 python3 -m bench.cifar_shaped --device cuda --ks 1,8,16,64 --precision $p --out "$OUT/cifar_$p" \
    2>"$OUT/cifar_$p.log" >/dev/null
  echo "cifar-shaped ($p) rc=$?"; tail -14 "$OUT/cifar_$p/cifar_shaped_cuda.md" 2>/dev/null
done
step "cifar-shaped" $((SECONDS - s))

s=$SECONDS
timeout 90 python3 -c "
from bench import precision
rows = precision.run('cuda', repeats=2)
open('$OUT/precision_cuda.md', 'w').write('\n'.join(precision.markdown(rows, 'cuda')))
" 2>"$OUT/precision.log"; tail -8 "$OUT/precision_cuda.md" 2>/dev/null
step "bf16 vs fp32" $((SECONDS - s))

if python3 -c "import ray" 2>/dev/null; then
  s=$SECONDS
  timeout 90 python3 -m pytest -p no:cacheprovider -q -rs tests/executors -k "gpu or cuda" 2>&1 | tee "$OUT/pytest_ray_gpu.txt" | tail -4
  step "ray on the gpu" $((SECONDS - s))
fi

if [ "${FULL:-0}" = 1 ]; then
  s=$SECONDS
  timeout 260 python3 -m bench --device cuda --parts 1,2,3,4 --loop-max 32 --out "$OUT" 2>"$OUT/bench.log" >/dev/null
  echo "bench rc=$?"; tail -20 "$OUT/results.md" 2>/dev/null
  timeout 200 python3 -m pytest -p no:cacheprovider -x -q --ignore=tests/report tests 2>&1 | tee "$OUT/pytest_all.txt" | tail -6
  step "full bench and suite" $((SECONDS - s))
fi
