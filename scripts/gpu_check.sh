#!/usr/bin/env bash
# Every GPU check of docs/benchmarks.md "On a GPU", in one command, for a session lent a CUDA
# machine (one short lease: each step has its own time limit and writes its own file).
#
#   scripts/gpu_check.sh MODEL_DIR OUT_DIR
#
# MODEL_DIR: a safetensors text model (scripts/shaped_model.py makes a MiniLM-shaped one with
# random weights where the weights cannot be fetched). Needs python3 with a CUDA build of torch
# and warmgate's dependencies importable, and `hey` on PATH.
set -uo pipefail
model=$1
out=$2
mkdir -p "$out"
step() { # step NAME SECONDS COMMAND...: run one check, its output to $out/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "== $name: exit $? after ${SECONDS}s in all"
    tail -n 40 "$out/$name.txt"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, torch.cuda.is_available())'
step pytest-gpu 120 python3 -m pytest -p no:cacheprovider -q tests/gpu tests/unit/bench
step cuda-graphs 60 python3 scripts/bench_load.py --model-dir "$model" --cuda-only --repeat 50
step bench 180 python3 -m warmgate bench --device cuda --model-dir "$model" --seconds 8 \
    --raw-seconds 1.5 --batches 1,8,32,64,128,256
step first 180 env WARMGATE_BENCH_MODEL="$model" WARMGATE_BENCH_ARGS="--device cuda" \
    python3 scripts/bench_server.py first --backends torch --trials 2
