#!/usr/bin/env bash
# The main job on the default model: set up (once), then show how SmolLM2-135M fits this machine.
# Extra arguments go to `run-fit plan`, e.g. scripts/run.sh --profile rtx3060-12g
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec target/release/run-fit plan models/SmolLM2-135M-Instruct.Q4_1.gguf "$@"
