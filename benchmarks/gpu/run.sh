#!/usr/bin/env bash
# On the GPU machine (JAX and/or PyTorch with CUDA installed): installs the carried wheels
# without dependencies into a fresh virtual environment that sees the system's JAX and
# PyTorch, then runs the benchmark on each backend named in BACKENDS (default: jax torch);
# results go to ${OUT:-.}/gpu_results_<backend>.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m venv --system-site-packages /tmp/kd-gpu
/tmp/kd-gpu/bin/pip install --quiet --no-deps benchmarks/gpu/wheels/*.whl \
  $(ls benchmarks/gpu/pyarrow/*.whl 2>/dev/null || true)
for backend in ${BACKENDS:-jax torch}; do
  KERAS_BACKEND=$backend /tmp/kd-gpu/bin/python benchmarks/gpu/run.py \
    --out "${OUT:-.}/gpu_results_$backend.json" "$@"
done
