#!/usr/bin/env bash
# Fuzz the GGUF header reader, facts extraction and planner with arbitrary bytes (cargo-fuzz,
# libFuzzer). Runs on the stable toolchain through RUSTC_BOOTSTRAP. Usage: scripts/fuzz.sh [SECONDS]
# New corpus entries go to fuzz/corpus-local/ (git-ignored); fuzz/corpus/ holds the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus-local
RUSTC_BOOTSTRAP=1 cargo fuzz run gguf_header corpus-local corpus/gguf_header -- \
  -max_total_time="${1:-600}" -max_len=262144 -rss_limit_mb=2048
