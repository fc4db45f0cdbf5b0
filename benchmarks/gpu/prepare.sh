#!/usr/bin/env bash
# Builds what benchmarks/gpu/run.py needs on a machine with Python 3.12 and JAX (CUDA)
# but nothing of ours: keras-dance, Keras and the pure-Python or small binary packages
# they import, as wheels for CPython 3.12 manylinux, into benchmarks/gpu/wheels/
# (about 45 MB with pyarrow, which the dataset rate needs). Run here, then carry
# benchmarks/gpu/wheels to the device and run benchmarks/gpu/run.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=benchmarks/gpu/wheels
rm -rf "$out" && mkdir -p "$out"
.venv/bin/python -m pip wheel --quiet --no-deps --wheel-dir "$out" .
.venv/bin/python -m pip download --quiet --no-deps --dest "$out" --only-binary=:all: \
  --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 \
  keras absl-py namex optree h5py rich markdown-it-py mdurl pygments pyarrow pillow
du -sh "$out"
