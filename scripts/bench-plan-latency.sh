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
python3 scripts/doc-section.py docs/PERFORMANCE.md plan-latency <<DOC
## Plan latency

Whole process, \`run-fit plan MODEL\` on this machine (its RAM probed; a CPU-only build does not start
llama.cpp) against a process that runs llama.cpp's own fit (\`common_fit_params\` through llama-cpp-2,
\`run-fit-dev llama-fit MODEL\`) on the same file, side by side in one hyperfine run each (3 warm-ups,
30 runs). Target: run-fit ≥ 20× faster.

Reproduce: \`scripts/bench-plan-latency.sh\` (it rewrites this section). Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM,
$(date -u +%Y-%m-%d). llama3-8b-Q4_K_M.gguf is the synthetic Llama-3-8B shape (sparse file, 4.9 GB).

| command | mean [ms] | min [ms] | max [ms] | relative |
|:---|---:|---:|---:|---:|
$(cat "$out.rows")

Where run-fit's time goes (callgrind and in-process timers, default model): process start-up and
llama.cpp's static initialisers ~3 ms, reading the GGUF header ~1.4 ms (two 49k-entry string arrays:
the vocabulary and the merges), planning ~0.1 ms. llama.cpp's fit re-reads the model with
\`no_alloc\` and builds compute graphs several times; its cost grows with the vocabulary and the
number of fitting steps.
DOC
echo "wrote the plan-latency section of docs/PERFORMANCE.md" >&2
cat docs/PERFORMANCE.md
