#!/usr/bin/env bash
# Accuracy of the memory model: run-fit's predicted bytes vs the buffer sizes llama.cpp itself reports
# when it really loads the model as users run it (CPU backend, mmap, weight repacking on) and creates
# a context. Writes docs/ACCURACY.md. The Llama-3-8B shape repacks 3.1 GiB for real (about 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
dev=target/release/run-fit-dev
synth=$(mktemp -d)
trap 'rm -rf "$synth"' EXIT
$dev synth llama3-8b Q4_K_M "$synth/llama3-8b-Q4_K_M.gguf" >/dev/null
$dev synth llama3-8b Q4_0 "$synth/llama3-8b-Q4_0.gguf" >/dev/null
$dev synth llama-3.2-1b Q4_0 "$synth/llama-3.2-1b-Q4_0.gguf" >/dev/null
$dev synth moe-tiny Q4_K_M "$synth/moe-tiny-Q4_K_M.gguf" --random 1 >/dev/null

rows=$(
  $dev accuracy models/SmolLM2-135M-Instruct.Q4_1.gguf 2048 8192 2048n 8192n 8192m
  $dev accuracy models/gemma-3-270m-q4_k_m.gguf 2048 8192 32768 8192f 8192n 8192m
  $dev accuracy "$synth/llama3-8b-Q4_K_M.gguf" 2048 8192
  $dev accuracy "$synth/llama3-8b-Q4_0.gguf" 4096 4096m
  $dev accuracy "$synth/llama-3.2-1b-Q4_0.gguf" 2048 2048m
  $dev accuracy "$synth/moe-tiny-Q4_K_M.gguf" 2048 2048m 4096n
)

cat > docs/ACCURACY.md <<DOC
# Memory-model accuracy

run-fit's predicted bytes against what llama.cpp (llama-cpp-sys-2 0.1.161) reports when it really loads
the model on the CPU backend and creates a context: the \`model\`, \`KV\` and \`compute buffer size\`
lines of its log, which have 10 KiB resolution. Cells are \`predicted / llama.cpp (error)\` in MiB.
The load is the one users get: the file mapped, and the CPU backend's weight repacking on — the
\`weights\` column is llama.cpp's \`CPU_Mapped\` plus \`CPU_REPACK\` model buffers (the repacked copy of
the Q4_0/Q4_K/IQ4_NL/MXFP4 matrices comes on top of the mapping). A context written \`8192m\` reads the
file instead (\`--no-mmap\`: the repacked tensors go straight into the repack buffer, nothing twice).
n_ubatch 512, one sequence, f16 KV cache, flash attention on unless the context is written \`2048n\`.
A context written \`8192f\` uses a full-size sliding-window cache (\`swa_full\`, llama.cpp's library
default); the others use the window-sized cache run-fit loads with (as llama-server does). The compute
column includes llama.cpp's host output (logits) buffer.

Targets: weights and KV within 0.5 %, compute within 10 %, total within 2 %.

Reproduce: \`scripts/bench-accuracy.sh\` (it rewrites this file). Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(date -u +%Y-%m-%d).

The synthetic models are written by \`run-fit-dev synth\`: the real Llama-3-8B shape at Q4_K_M (the
quantizer's Q6_K layers included) and Q4_0, and Llama-3.2-1B at Q4_0 (a tied embedding: llama.cpp repacks
a copy of it for the output matrix) as sparse files, and \`moe-tiny\` (8 experts, 2 used, random
valid weights: its 3-D expert tensors are repacked too). The Llama-2-70B and Mixtral-8x7B shapes of
earlier versions of this table are gone: with repacking on, llama.cpp makes a second copy of ~30 and
~20 GiB of their weights, more than this 24 GB machine has. Where run-fit plans them, the same
per-tensor rule applies (\`src/model/facts.rs\`, \`repacked_on_x86\`).

| model | n_ctx | weights MiB | KV cache MiB | compute MiB | total MiB |
|---|---|---|---|---|---|
$rows

## What is not measured here

- Offload devices: this table is the host. The device side (each device's own graph inputs, pipeline
  parallelism with several devices) is measured on remote devices — loopback RPC servers, real ggml
  devices that are not the host — in [RPC.md](RPC.md) (\`scripts/bench-rpc.sh\`: weights and KV
  exact, compute within 2.1 %). What is still unmeasured is a GPU backend's own layout (CUDA's,
  Vulkan's) and op offload, which RPC devices do not have.
DOC
echo "wrote docs/ACCURACY.md" >&2
