#!/usr/bin/env bash
# Accuracy of the memory model: run-fit's predicted bytes vs the buffer sizes llama.cpp itself reports
# when it really loads the model (CPU backend, mmap, weight repacking off) and creates a context.
# Writes docs/ACCURACY.md. The 70B case maps 41 GB of a sparse file and takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
dev=target/release/run-fit-dev
synth=$(mktemp -d)
trap 'rm -rf "$synth"' EXIT
for shape in llama3-8b llama2-70b mixtral-8x7b; do
  $dev synth "$shape" Q4_K_M "$synth/$shape-Q4_K_M.gguf" >/dev/null
done

rows=$(
  $dev accuracy models/SmolLM2-135M-Instruct.Q4_1.gguf 2048 8192 2048n 8192n
  $dev accuracy models/gemma-3-270m-q4_k_m.gguf 2048 8192 32768 8192f 8192n
  $dev accuracy "$synth/llama3-8b-Q4_K_M.gguf" 2048 8192
  $dev accuracy "$synth/llama2-70b-Q4_K_M.gguf" 2048 8192
  $dev accuracy "$synth/mixtral-8x7b-Q4_K_M.gguf" 2048 8192 4096n
)

cat > docs/ACCURACY.md <<DOC
# Memory-model accuracy

run-fit's predicted bytes against what llama.cpp (llama-cpp-sys-2 0.1.161) reports when it really loads
the model on the CPU backend and creates a context: the \`model\`, \`KV\` and \`compute buffer size\`
lines of its log, which have 10 KiB resolution. Cells are \`predicted / llama.cpp (error)\` in MiB.
n_ubatch 512, one sequence, f16 KV cache, flash attention on unless the context is written \`2048n\`.
A context written \`8192f\` uses a full-size sliding-window cache (\`swa_full\`, llama.cpp's library
default); the others use the window-sized cache run-fit loads with (as llama-server does). The compute
column includes llama.cpp's host output (logits) buffer.

Targets: weights and KV within 0.5 %, compute within 10 %, total within 2 %.

Reproduce: \`scripts/bench-accuracy.sh\` (it rewrites this file). Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(date -u +%Y-%m-%d).

The synthetic models are written by \`run-fit-dev synth\` as sparse files: real Llama-3-8B, Llama-2-70B and
Mixtral-8x7B shapes at Q4_K_M (the quantizer's Q6_K layers included), with a vocabulary llama.cpp accepts.

| model | n_ctx | weights MiB | KV cache MiB | compute MiB | total MiB |
|---|---|---|---|---|---|
$rows

## What is not measured here

- GPU compute buffers: the CPU backend is the only one on this machine. The GPU side of the compute
  estimate (op offload copies of CPU-resident weights during prompt processing, CUDA's own buffer
  layout) is unverified until an issue with the GPU machine measures it.
DOC
echo "wrote docs/ACCURACY.md" >&2
