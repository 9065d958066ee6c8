#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, formatting, lints, then every test against the
# real llama.cpp build and the real models. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --locked --all-targets --features fault-injection -- -D warnings
# One test at a time: each integration test runs llama.cpp on both cores, and two of them at once
# starve each other's spinning threads (a pty test then misses its timeouts).
cargo test --release --locked --features fault-injection -- --test-threads=1
