#!/usr/bin/env bash
# Here (no GPU needed): stage the GPU kit into .stage/gpu (git-ignored) — run-fit and run-fit-dev built with
# the dynamic-backends feature, their shared libraries, CPU backend variants, a pruned copy of the vendored
# ggml source, and scripts/gpu/run.sh — small enough for the device tool's 64 MiB door.
# Then: device run with carry [".stage/gpu"] and command `bash .stage/gpu/run.sh` (docs/GPU.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh >/dev/null
start=$(date +%s)
cargo build --release --locked --features dynamic-backends --target-dir target-gpu --bin run-fit --bin run-fit-dev
echo "build: $(( $(date +%s) - start )) s" >&2
out=$(dirname "$(ls -d target-gpu/release/build/llama-cpp-sys-2-*/out/lib | head -1)")
version=$(awk '/^name = "llama-cpp-sys-2"$/{getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"llama-cpp-sys-2-$version"/llama.cpp | head -1)
stage=.stage/gpu
rm -rf "$stage"
mkdir -p "$stage/bin"
cp target-gpu/release/run-fit target-gpu/release/run-fit-dev "$stage/bin/"
strip "$stage/bin/run-fit" "$stage/bin/run-fit-dev" 2>/dev/null || true
cp -L "$out"/lib/lib*.so.0 "$stage/bin/"
# CPU variants: the portable one and the one for this generation of x86 (the GPU machine's CPU picks the best)
for v in x64 haswell skylakex icelake sapphirerapids zen4; do
  f="$out/backends/libggml-cpu-$v.so"
  [ -f "$f" ] && cp "$f" "$stage/bin/"
done
# ggml's source without the backends the kit never builds
mkdir -p "$stage/ggml"
find "$src/ggml" -maxdepth 1 -type f -exec cp {} "$stage/ggml/" \;
cp -r "$src/ggml/cmake" "$src/ggml/include" "$stage/ggml/"
mkdir -p "$stage/ggml/src"
find "$src/ggml/src" -maxdepth 1 -type f -exec cp {} "$stage/ggml/src/" \;
for d in ggml-cpu ggml-cuda ggml-rpc ggml-blas; do
  [ -d "$src/ggml/src/$d" ] && cp -r "$src/ggml/src/$d" "$stage/ggml/src/"
done
# The one way backend modules are built, the user's (scripts/setup.sh) and the kit's alike.
cp scripts/gpu/run.sh scripts/build-backend.sh scripts/vulkan-headers.sh "$stage/"
du -sh "$stage" "$stage/bin" "$stage/ggml" >&2
echo "staged in $stage" >&2
