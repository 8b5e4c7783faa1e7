#!/usr/bin/env bash
# Measure `mamba-edge bench` on a random-init model with the mamba-130m config at F32, Q8_0
# and Q4_0, and print one JSON line per format.
#
# Usage: benches/compare/bench_mamba_edge.sh [WORK_DIR] [PYTHON]
#   WORK_DIR (default target/bench-130m) receives the checkpoint and the GGUF files.
#   PYTHON must have torch and transformers (see tests/reference/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-target/bench-130m}
python=${2:-python3}
threads=${THREADS:-2}

cargo build --release -p mamba-cli -p mamba-quantize
if [ ! -f "$work/hf/model.safetensors" ]; then
    "$python" benches/compare/make_mamba_130m.py "$work/hf"
fi
for type in f32 q8_0 q4_0; do
    gguf="$work/mamba-130m-$type.gguf"
    [ -f "$gguf" ] || target/release/mamba-quantize "$work/hf" "$gguf" --type "$type"
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date: $(date -u +%F); commit: $(git rev-parse --short HEAD)"
for type in f32 q8_0 q4_0; do
    gguf="$work/mamba-130m-$type.gguf"
    printf '%s %s bytes: ' "$type" "$(stat -c %s "$gguf")"
    target/release/mamba-edge bench --model "$gguf" -p 512 -n 128 --threads "$threads" --json
done
