#!/usr/bin/env bash
# The main job on the default model: set up (once), then `run-fit MODEL` — plan, load with automatic
# backoff, and chat. In a terminal this is an interactive chat; without one (CI, a pipe) it answers one
# question and prints its speed. Extra arguments go to run-fit, e.g. scripts/run.sh -c 4096 --temp 0
set -euo pipefail
cd "$(dirname "$0")/.."
# The run-fit setup built: target/release/run-fit, or target-gpu/release/run-fit with GPU modules.
bin=$(bash scripts/setup.sh)
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -t 0 ] || [[ " $* " == *" -p "* ]]; then
  exec "$bin" "$model" "$@"
fi
exec "$bin" "$model" -p "What is the capital of France?" "$@"
