#!/usr/bin/env bash
# There (the GPU machine, no Rust, no network): build one ggml backend module from the staged source,
# put it beside run-fit, and run the checks; results under $OUT (default ./out).
#   BACKEND=cuda (default; CUDA_ARCH=90 for H100/H200) — or cpu / rpc to rehearse the procedure anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
backend=${BACKEND:-cuda}
out=${OUT:-$here/out}
mkdir -p "$out"
# The same build as a user's scripts/setup.sh: scripts/build-backend.sh, staged beside this script.
archs=default
[ "$backend" = cuda ] && archs=${CUDA_ARCH:-90}
start=$(date +%s)
bash "$here/build-backend.sh" "$backend" "$here/ggml" "$here/bin" "$archs" 2>&1 | tee "$out/build.txt"
echo "built ggml-$backend in $(( $(date +%s) - start )) s" | tee "$out/build-time.txt"
cp "$here/bin/build-$backend.log" "$out/" 2>/dev/null || true
export LD_LIBRARY_PATH="$here/bin"
export RUN_FIT_CACHE_DIR="$out/cache"
bin="$here/bin"
# 1. the module loads and llama.cpp lists its devices
"$bin/run-fit" -v devices 2>&1 | tee "$out/devices.txt"
# 2. a generated model of a real shape (random weights) plans, loads and answers
"$bin/run-fit-dev" synth "${SHAPE:-tiny}" "${QUANT:-Q4_K_M}" "$here/model.gguf" --random 1 | tee "$out/synth.txt"
"$bin/run-fit" plan "$here/model.gguf" | tee "$out/plan.txt"
"$bin/run-fit" "$here/model.gguf" -p "Hello" -n 32 --ignore-eos --temp 0 --json 2> "$out/run.stderr" | tee "$out/run.json"
echo "done: results in $out" >&2
