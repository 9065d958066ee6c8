#!/usr/bin/env bash
# llama.cpp's RPC backend on loopback: two `run-fit rpc-server`s on this machine. Measures generation
# and prompt speed with one and two remote devices against all local (median of 3 runs, each a
# 409-token prompt and 128 forced tokens, SmolLM2 at -c 2048), beside run-fit's prediction; and the
# memory model on the remote devices (predicted vs llama.cpp's logged buffers per device). Rewrites the
# `rpc-speed` and `rpc-accuracy` sections of docs/RPC.md. About 2 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source scripts/rpc-servers.sh
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
prompt=$(python3 -c "print(' '.join(['The quick brown fox jumps over the lazy dog.']*40))")

speed_row() { # label, then run-fit's flags
  local label=$1
  shift
  local runs=()
  for _ in 1 2 3; do
    runs+=("$("$bin" "$model" "$@" -c 2048 -p "$prompt" -n 128 --ignore-eos --temp 0 --json 2>/dev/null)")
  done
  local plan
  plan=$("$bin" plan "$model" "$@" -c 2048 --json 2>/dev/null)
  python3 - "$label" "$*" "$plan" "${runs[@]}" <<'PY'
import json, statistics, sys
label, flags, plan, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), [json.loads(r) for r in sys.argv[4:]]
gen = statistics.median(r["generation_tok_per_s"] for r in runs)
pp = statistics.median(r["prompt_tok_per_s"] for r in runs)
s = plan.get("speed") or {}
pg, ppp = s.get("generation_tok_per_s"), s.get("prompt_tok_per_s")
err = lambda p, m: f"{(p / m - 1) * 100:+.0f} %" if p else "–"
fmt = lambda v: f"{v:.0f}" if v else "–"
flags = flags.replace(flags.split("--rpc ")[-1].split(" ")[0], "…") if "--rpc" in flags else flags
print(f"| {label} | `{flags or '(none)'}` | {gen:.1f} | {fmt(pg)} ({err(pg, gen)}) | {pp:.0f} | {fmt(ppp)} ({err(ppp, pp)}) |")
PY
}

speed=$(
  speed_row "all local (CPU)"
  speed_row "one remote device, every layer" --rpc "$a" -ngl 31
  speed_row "one remote device, half the layers" --rpc "$a" -ngl 16
  speed_row "two remote devices, every layer" --rpc "$ab" -ngl 31 -ts 16,15
  speed_row "two remote devices and the host" --rpc "$ab" -ngl 20 -ts 10,10
)
python3 scripts/doc-section.py docs/RPC.md rpc-speed <<DOC
| setup | flags | generation tok/s | predicted | prompt tok/s | predicted |
|---|---|---|---|---|---|
$speed

Made by \`scripts/bench-rpc.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, llama-cpp-sys-2 0.1.161): the
servers run on this machine and use its cores, which the host's layers need too.
DOC

acc() { "$dev" rpc-accuracy "$@" | grep '^|'; }
rows=$(
  acc "$model" "$ab" 31:1024:25,6 31:4096:25,6 20:1024:10,10 20:4096:10,10
  acc "$model" "$a" 31:1024 31:4096 12:1024 12:4096
  acc models/gemma-3-270m-q4_k_m.gguf "$ab" 19:1024:10,9 19:4096:10,9 12:1024:6,6 12:4096:6,6
  acc models/gemma-3-270m-q4_k_m.gguf "$a" 19:1024 19:4096 10:1024 10:4096
)
python3 scripts/doc-section.py docs/RPC.md rpc-accuracy <<DOC
| model | -ngl:-c[:-ts] | device | weights MiB | KV cache MiB | compute MiB | total MiB |
|---|---|---|---|---|---|---|
$rows

Cells are \`predicted / llama.cpp (error)\`. Made by \`scripts/bench-rpc.sh\` ($(date -u +%Y-%m-%d));
\`tests/it/rpc.rs\` holds the same matrix to the targets.
DOC
echo "wrote docs/RPC.md"
