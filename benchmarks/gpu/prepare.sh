#!/usr/bin/env bash
# Builds what benchmarks/gpu/run.py needs on a machine with Python 3.12 and JAX (CUDA)
# but nothing of ours: keras-dance, Keras and the pure-Python or small binary packages
# they import, as wheels for CPython 3.12 manylinux, into benchmarks/gpu/wheels/ (19 MB),
# and pyarrow, which only the dataset rate needs, into benchmarks/gpu/pyarrow/ (54 MB):
# the device tool carries 64 MiB per call, so carry wheels/ with the run and pyarrow/ in
# an earlier call on the same warm machine (run.sh installs it when it is there; without
# it the dataset rate is skipped and says so).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=benchmarks/gpu/wheels
rm -rf "$out" benchmarks/gpu/pyarrow && mkdir -p "$out" benchmarks/gpu/pyarrow
.venv/bin/python -m pip wheel --quiet --no-deps --wheel-dir "$out" .
.venv/bin/python -m pip download --quiet --no-deps --dest "$out" --only-binary=:all: \
  --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 \
  keras absl-py namex optree h5py rich markdown-it-py mdurl pygments pillow
.venv/bin/python -m pip download --quiet --no-deps --dest benchmarks/gpu/pyarrow \
  --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 pyarrow
du -sh "$out" benchmarks/gpu/pyarrow
