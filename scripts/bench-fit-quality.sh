#!/usr/bin/env bash
# Fit quality on two devices that are not the host: two loopback `run-fit rpc-server`s, budgets of
# several sizes, and for each: run-fit's choice (and what llama.cpp really allocated for it), llama.cpp's
# own fit on the same devices and margins, and the true maximum — the most layers whose real
# allocation on both devices stays inside the budgets, each count and split loaded in its own process.
# Writes its section of docs/FIT-QUALITY.md (scripts/bench-moe.sh writes the MoE one). About 3 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source scripts/rpc-servers.sh

$dev synth SmolLM2-360M Q4_0 "$work/SmolLM2-360M-Q4_0.gguf" --random 7 >/dev/null
rows=$(
  for b0 in 40MiB 60MiB 90MiB 150MiB; do
    $dev fit-quality models/SmolLM2-135M-Instruct.Q4_1.gguf "$ab" "$b0,150MiB" 2048
  done
  for b0 in 40MiB 60MiB 90MiB 150MiB; do
    $dev fit-quality models/gemma-3-270m-q4_k_m.gguf "$ab" "$b0,800MiB" 2048
  done
  for b0 in 40MiB 60MiB 90MiB 150MiB; do
    $dev fit-quality "$work/SmolLM2-360M-Q4_0.gguf" "$ab" "$b0,200MiB" 2048
  done
)

python3 scripts/doc-section.py docs/FIT-QUALITY.md dense <<DOC
# Fit quality on devices that are not the host

Two loopback \`run-fit rpc-server\`s (llama.cpp's RPC server, CPU-backed) make a real three-device
machine: RPC0, RPC1 and the host. Each row gives both remote devices a budget (\`--vram-budget\`) and
compares, at a 2048-token context:

- **run-fit**: the layers it places (RPC0, RPC1), and what llama.cpp really allocated on each device
  when that plan was loaded (model + KV + compute buffers, from llama.cpp's own log);
- **llama.cpp's fit** (\`common_fit_params\`, via \`run-fit plan --compare-llama\`) on the same devices,
  with margins that leave it the same room (each device's reported free memory minus its budget);
- **true maximum**: the most layers whose real allocation stays inside both budgets. Every count from
  all layers down, and every split of it whose prediction is not 20 % or more over a budget, is
  loaded for real in its own process; the first that fits is the maximum. "loads" counts them.

Target: run-fit = the true maximum (at worst one layer fewer), never over a budget, never fewer layers
than llama.cpp's fit. The third model is generated: SmolLM2-360M's shape at Q4_0 with random weights.
RPC1 holds the output layer, whose logits buffer alone is 96 MiB (SmolLM2) or 512 MiB (Gemma 3), so
its budget is the larger one.

| model | n_ctx | budgets MiB (RPC0 + RPC1) | run-fit: layers (split), real MiB | llama.cpp fit | true maximum | verdict |
|---|---|---|---|---|---|---|
$rows

Made by \`scripts/bench-fit-quality.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, llama-cpp-sys-2 0.1.161).
DOC
echo "wrote docs/FIT-QUALITY.md"
