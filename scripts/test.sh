#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, formatting, lints, then every test against the
# real llama.cpp build and the real models. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# The GPU path too, on Mesa's software Vulkan device (no machine here has a GPU): Debian's Vulkan
# toolchain, then the same set-up command, which now finds it and builds the one binary with its
# Vulkan module (target-gpu/release) exactly as it does for a user with an AMD or Intel card.
bash scripts/apt-install.sh glslc libvulkan-dev spirv-headers mesa-vulkan-drivers
RUN_FIT_BACKENDS=vulkan bash scripts/setup.sh >/dev/null
# The tests of that build fail, rather than skip, when it is missing.
export RUN_FIT_TEST_GPU_BUILD=target-gpu/release
cargo fmt --all -- --check
cargo clippy --release --locked --all-targets --features fault-injection -- -D warnings
# One test at a time: each integration test runs llama.cpp on both cores, and two of them at once
# starve each other's spinning threads (a pty test then misses its timeouts).
cargo test --release --locked --features fault-injection -- --test-threads=1
