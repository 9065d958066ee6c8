#!/usr/bin/env bash
# Plan latency: the whole \`run-fit plan\` process vs a process that runs llama.cpp's own fit
# (common_fit_params via llama-cpp-2) on the same file and machine, side by side in one hyperfine run.
# Writes docs/PERFORMANCE.md's plan-latency section.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
command -v hyperfine >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq hyperfine >/dev/null; }
synth=$(mktemp -d)
trap 'rm -rf "$synth"' EXIT
target/release/run-fit-dev synth llama3-8b Q4_K_M "$synth/llama3-8b-Q4_K_M.gguf" >/dev/null
out=$(mktemp)
for model in models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf "$synth/llama3-8b-Q4_K_M.gguf"; do
  name=$(basename "$model")
  hyperfine -N --warmup 3 --runs 30 --export-markdown "$out" \
    -n "run-fit plan $name" "target/release/run-fit plan $model" \
    -n "llama.cpp fit $name" "target/release/run-fit-dev llama-fit $model" >/dev/null
  tail -n +3 "$out"
done > "$out.rows"
{
  echo "| command | mean [ms] | min [ms] | max [ms] | relative |"
  echo "|:---|---:|---:|---:|---:|"
  cat "$out.rows"
} > docs/plan-latency.md
echo "wrote docs/plan-latency.md" >&2
cat docs/plan-latency.md
