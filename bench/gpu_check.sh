#!/usr/bin/env bash
# The checks a session with a lent CUDA GPU runs there once (see README, "On a GPU"):
# the CUDA tests, the whole suite with CUDA present, and `python -m bench --device cuda`.
# Usage, from the repo root on the GPU machine: OUT=DIR bash bench/gpu_check.sh
# (CIFAR=0, DIAGNOSE=0 and FULL_SUITE=0 leave out the CIFAR-shaped bench, the cnn1d diagnose and the whole
# suite; LOOP_MAX=N as bench's --loop-max)
# Expects torch with CUDA; other packages missing there come as wheels in .whl/.
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, rotelab, kornia, mnist1d; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 | tee -a "$OUT/gpu.txt"
s=$SECONDS
timeout 200 python3 -m pytest -p no:cacheprovider -rs tests/engine/test_engine_devices.py tests/techniques \
  2>&1 | tee "$OUT/pytest_cuda.txt" | tail -8
echo "cuda tests: $((SECONDS - s)) s"
s=$SECONDS
timeout 260 python3 -m bench --device cuda --loop-max "${LOOP_MAX:-32}" --out "$OUT" 2>"$OUT/bench.log" >/dev/null
echo "bench rc=$? $((SECONDS - s)) s"; tail -20 "$OUT/results.md" 2>/dev/null
if [ "${CIFAR:-1}" = 1 ]; then  # engine vs best loop on CIFAR-shaped data, K = 1, 8, 16, 64; resnet on digits-32
s=$SECONDS
timeout 240 python3 -m bench.cifar_shaped --device cuda --digits 15 --out "$OUT" 2>"$OUT/cifar_shaped.log" >/dev/null
echo "cifar-shaped bench rc=$? $((SECONDS - s)) s"; tail -16 "$OUT/cifar_shaped_cuda.md" 2>/dev/null
fi
if [ "${DIAGNOSE:-1}" = 1 ]; then
s=$SECONDS
timeout 150 python3 -m rotelab diagnose --data mnist1d --model cnn1d --device cuda --runs-dir /tmp/runs \
  2>&1 | tee "$OUT/diagnose_cnn1d.txt" | tail -12
echo "diagnose cnn1d: $((SECONDS - s)) s"
fi
if [ "${FULL_SUITE:-1}" = 1 ]; then
  s=$SECONDS
  timeout 200 python3 -m pytest -p no:cacheprovider -x -q --ignore=tests/report tests 2>&1 | tee "$OUT/pytest_all.txt" | tail -6
  echo "whole suite with CUDA present: $((SECONDS - s)) s"
fi
