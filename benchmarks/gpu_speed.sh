#!/usr/bin/env bash
# The speed figures of one CUDA GPU in one run, sized for a short lease: bench.py's released settings, this
# project's defaults and the defaults on packed crops, side by side at 299 px and batch 64, each profiled
# (stages of a training step and the operators that take the most). Writes the log and the profile tables to
# $OUT (the device tool's folder) or runs/gpu_speed; the Chrome traces stay in runs/gpu_speed/profiles.
# Extra arguments go to bench.py (DEVICE=cpu benchmarks/gpu_speed.sh --steps 1 checks the script on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_speed}
mkdir -p "$out" runs/gpu_speed
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
fi
python bench.py --device "${DEVICE:-cuda}" --workers 15 --packed --profile --out runs/gpu_speed/profiles "$@" \
    2>&1 | tee "$out/bench.log"
if [ "$out" != runs/gpu_speed ]; then
    cp runs/gpu_speed/profiles/*.txt "$out/"
fi
