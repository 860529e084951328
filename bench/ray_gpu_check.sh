#!/usr/bin/env bash
# The Ray checks a session with a lent CUDA GPU runs there once: two jobs sharing the GPU
# (fractional num_gpus) equal the local executor's, and the Ray overhead bench on the GPU.
# Usage, from the repo root on the GPU machine: OUT=DIR bash bench/ray_gpu_check.sh
# Ray is not installed there: its wheel (and jsonschema's, mnist1d's) come in .whl/; the Ray
# wheel is carried without ray/jars and ray/rllib (Java and RLlib; 79 MB -> 43 MB) to fit.
set -uo pipefail
OUT=${OUT:-/tmp/ray-gpu-check}
mkdir -p "$OUT"
[ -f rotelab/executors/ray.py ] || { echo "this tree has no Ray executor"; git log --oneline -1; exit 3; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 ROTELAB_CACHE=/tmp/rotelab-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, torch.cuda.is_available(), 'ray', ray.__version__)" \
  2>&1 | tee -a "$OUT/gpu.txt"
s=$SECONDS
timeout 240 python3 -m pytest -p no:cacheprovider -q -s -rs tests/executors/test_ray_gpu.py 2>&1 \
  | tee "$OUT/pytest_ray_gpu.txt" | grep -v "^$" | tail -12
echo "ray gpu tests: $((SECONDS - s)) s"
s=$SECONDS
timeout 300 python3 -m bench.ray_overhead --device cuda --workers 2 --gpus-per-job 0.5 --out "$OUT" \
  2>"$OUT/ray_overhead.log"
echo "bench rc=$? $((SECONDS - s)) s"
