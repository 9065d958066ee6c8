#!/usr/bin/env bash
# There (the GPU machine, no Rust, no network): build one ggml backend module from the staged source,
# put it beside run-fit, and run the checks; results under $OUT (default ./out).
#   BACKEND=cuda (default; CUDA_ARCH=90 for H100/H200) — or cpu / rpc to rehearse the procedure anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
backend=${BACKEND:-cuda}
out=${OUT:-$here/out}
mkdir -p "$out"
build="$here/build-$backend"
flags=(-DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release
  -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF)
case "$backend" in
  cuda) flags+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}") ;;
  rpc) flags+=(-DGGML_RPC=ON) ;;
  cpu) flags+=(-DGGML_CPU=ON) ;;
  *) echo "BACKEND=$backend: use cuda, rpc or cpu" >&2; exit 2 ;;
esac
start=$(date +%s)
cmake -S "$here/ggml" -B "$build" "${flags[@]}" > "$out/cmake-configure.log" 2>&1
cmake --build "$build" --target "ggml-$backend" -j "$(nproc)" > "$out/cmake-build.log" 2>&1
echo "built ggml-$backend in $(( $(date +%s) - start )) s" | tee "$out/build-time.txt"
module=$(find "$build" -name "libggml-$backend.so" | head -1)
cp "$module" "$here/bin/"
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
