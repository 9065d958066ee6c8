#!/usr/bin/env bash
# Mixture-of-experts placement, three ways (writes docs/MOE.md and the MoE section of
# docs/FIT-QUALITY.md; about 3 minutes here):
#  1. the planner on the profiles, for real MoE shapes named but not on disk: every layer's attention on
#     the GPU with some layers' routed experts in RAM, against whole layers (--whole-layers);
#  2. real bytes on a loopback RPC device: generated Mixtral- and Qwen-MoE-like models (random
#     weights), predicted vs what llama.cpp allocated, for the planner's choice and the user's pins;
#  3. against llama.cpp's own fit on the same device and budgets (`plan --compare-llama`);
#  4. speed on loopback: `run-fit bench --n-cpu-moe`, measured against predicted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source scripts/rpc-servers.sh

planner_rows=$(
  for model in Qwen3-30B-A3B-Q4_K_M gpt-oss-20b-MXFP4 gpt-oss-120b-MXFP4 Mixtral-8x7B-Q4_K_M GLM-4.5-Air-Q4_K_M Llama-4-Scout-17B-16E-Q4_K_M; do
    for profile in rtx3060-12g rtx4090-64g 2x-rtx3090-128g; do
      split=$("$bin" plan "$model" --profile "$profile" --json 2>/dev/null || echo '{}')
      whole=$("$bin" plan "$model" --profile "$profile" --json --whole-layers 2>/dev/null || echo '{}')
      python3 - "$model" "$profile" "$split" "$whole" <<'PY'
import json, sys
model, profile, split, whole = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
def cells(r):
    if "plan" not in r:
        return "does not fit", "", ""
    p = r["plan"]
    layers = f'{p["config"]["n_gpu_layers"] if "n_gpu_layers" in p["config"] else sum(p["config"]["gpu_layers"])}/{p["max_layers"]}'
    moe = " ".join(p["tensor_args"]) or "—"
    tg = f'{r["speed"]["generation_tok_per_s"]:.0f}' if r.get("speed") else "?"
    return f'{layers}, {moe}, c {p["config"]["n_ctx_tokens"]}', tg, f'{p["host"]["bytes"]["experts"] / 2**30:.1f}'
s, w = cells(split), cells(whole)
print(f"| {model} | {profile} | {s[0]} | {s[2]} | {s[1]} | {w[0]} | {w[1]} |")
PY
    done
  done
)

$dev synth moe-qwen-mini Q8_0 "$work/moe-qwen-mini.gguf" --random 3 >/dev/null
$dev synth moe-mixtral-mini Q8_0 "$work/moe-mixtral-mini.gguf" --random 3 >/dev/null
accuracy_rows=$(
  for m in moe-qwen-mini moe-mixtral-mini; do
    $dev rpc-accuracy "$work/$m.gguf" "$a" 99:1024::--vram-budget+60MiB -:1024::--vram-budget+40MiB \
      -:1024::--n-cpu-moe+2 -:2048::--cpu-moe -:4096::--n-cpu-moe+4 '7:1024::-ot+blk\.[0-2]\.ffn_.*_exps=CPU' \
      '0:1024::-ot+blk\.0\.ffn_down_exps=RPC0' | grep '^|'
  done
)

llama_rows=$(
  for m in moe-qwen-mini moe-mixtral-mini; do
    for b in 30MiB 40MiB 60MiB 80MiB; do
      for pin in "" "-ngl 99"; do
        # shellcheck disable=SC2086 # $pin is zero or two words
        r=$("$bin" plan "$work/$m.gguf" --rpc "$a" --rpc-link 1Gbit/0.2ms --vram-budget "$b" -c 1024 $pin --json --compare-llama 2>/dev/null || echo '{}')
        python3 - "$m" "$b" "$pin" "$r" <<'PY'
import json, sys
m, b, pin, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if "plan" not in r:
    print(f"| {m} | {b} | {pin or 'as planned'}: does not fit | | | | | | |")
    sys.exit()
c, f, p = r["llama_fit_costed"], r["llama_fit"], r["plan"]
mib = lambda x: f"{x / 2**20:.1f}"
ours = f'{pin or "as planned"}: {sum(p["config"]["gpu_layers"])} layers, {" ".join(p["tensor_args"]) or "no overrides"}'
theirs = f'-ngl {f["n_gpu_layers"]}, {len(f["tensor_overrides"])} overrides'
more_bytes = c["ours_non_expert_device_bytes"] >= c["llama_non_expert_device_bytes"]
faster = c["ours_generation_tok_per_s"] >= 0.99 * c["llama_generation_tok_per_s"]
verdict = {(True, True): "≥ on both", (True, False): "≥ bytes", (False, True): "≥ speed", (False, False): "BELOW"}[(more_bytes, faster)]
print(f'| {m} | {b} | {ours} | {mib(c["ours_non_expert_device_bytes"])} | {c["ours_generation_tok_per_s"]:.0f} | {theirs} | {mib(c["llama_non_expert_device_bytes"])} | {c["llama_generation_tok_per_s"]:.0f} | {verdict} |')
PY
      done
    done
  done
)

speed_table=$("$bin" bench "$work/moe-qwen-mini.gguf" --rpc "$a" --rpc-link 1Gbit/0.2ms -ngl 7 --n-cpu-moe 0,1,2,4,6 -p 128 -n 64 -r 3 2>/dev/null | grep '^|')

cat > docs/MOE.md <<DOC
# Mixtures of experts

A token reads every layer's attention, norms, router and shared experts, but only \`n_expert_used\` of
its routed experts. So run-fit keeps every layer's non-expert part — and the whole KV cache — on the
GPUs and lets the routed experts of the first N layers overflow to RAM (\`--n-cpu-moe N\` in llama.cpp's
terms); only when even the non-expert part does not fit does it fall back to whole layers. Which
tensors are experts comes from the tensor table (\`ffn_{gate,up,down,gate_up}_exps\`, \`_chexps\`; shared:
\`_shexp\`), as llama.cpp's own \`LLM_FFN_EXPS_REGEX\` tells them apart. The user's \`-ot\`, \`--cpu-moe\`
and \`--n-cpu-moe\` are honoured exactly and everything else is fitted around them (llama.cpp's fit
gives up on any of them). After a real out-of-memory, backoff moves more experts to RAM before any
layer's attention leaves a GPU.

## 1. The planner on the profiles (models named, not on disk)

Experts in RAM: run-fit's plan (layers on the GPUs, tensor arguments, context), the GiB of routed experts
it keeps in RAM, and predicted generation; whole layers: the same model placed layer by layer
(\`--whole-layers\`, what \`-ngl\` alone does).

| model | profile | experts in RAM: layers, args, context | experts in RAM GiB | tok/s | whole layers: layers, args, context | tok/s |
|---|---|---|---|---|---|---|
$planner_rows

## 2. Real bytes on a device that is not the host

One loopback \`run-fit rpc-server\` (RPC0). Models generated with random weights: \`moe-qwen-mini\`
(Qwen-MoE layout, \`qwen2moe\`: 16 routed experts, 4 used, a shared expert) and \`moe-mixtral-mini\`
(Mixtral layout: 8 experts, 2 used), 6 layers, Q8_0. Each cell: predicted / llama.cpp's own log (MiB).
Config: \`NGL:CTX::FLAGS\` (\`-\`: the planner chose the layers; \`99\` with a budget: every layer on RPC0 and
the planner chose which experts stay in RAM). Targets: weights and KV 0.5 %, compute 10 %, total 2 %.

| model | config | device | weights | KV | compute | total |
|---|---|---|---|---|---|---|
$accuracy_rows

The last configuration of each model (one tensor of a CPU layer sent alone to RPC0) is outside the
compute target for the Mixtral layout; it is the one placement measured so, and not one the planner
makes.

## 3. Speed on loopback: measured against predicted

\`run-fit bench moe-qwen-mini.gguf --rpc … -ngl 7 --n-cpu-moe 0,1,2,4,6 -p 128 -n 64 -r 3\`: every layer on
RPC0, the routed experts of N layers on the host. On this 2-core machine the server and the host share
the cores: every hand-over inside a layer costs a few milliseconds (docs/SPEED.md), and the measurements
vary by a factor of two between runs.

$speed_table

Made by \`scripts/bench-moe.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, llama-cpp-sys-2 0.1.161).
DOC

python3 scripts/doc-section.py docs/FIT-QUALITY.md moe <<DOC
## Mixtures of experts: against llama.cpp's fit

One loopback RPC device with a budget, generated MoE models (docs/MOE.md), 1024 tokens. run-fit's plan
and llama.cpp's own fit (\`common_fit_params\`, via \`plan --compare-llama\`, same margins), both costed by
run-fit's memory and speed model (exact for these placements, docs/MOE.md §2): the bytes of non-expert
weights each keeps on the device (what every token reads from fast memory), and predicted generation
(each server as a machine of its own). run-fit twice: as planned, and with \`-ngl 99\` (every layer's
attention on the device, as a GPU user asks). Target: at least llama.cpp's bytes and speed.

On these CPU-backed devices the device is no faster than RAM, so a layer split between them pays a
round trip per layer for nothing: as planned, run-fit predicts (and §3 of docs/MOE.md measures) whole
layers faster and takes those — at least llama.cpp's speed, fewer bytes on the device. With \`-ngl 99\`
it keeps at least llama.cpp's non-expert bytes there. On a GPU, where attention on the device is what
makes a token fast, the two coincide; that is checked by the planner tests on the profiles (§1 there).

| model | budget | run-fit | non-expert MiB on RPC0 | tok/s | llama.cpp's fit | non-expert MiB on RPC0 | tok/s | verdict |
|---|---|---|---|---|---|---|---|---|
$llama_rows

Made by \`scripts/bench-moe.sh\` ($(date -u +%Y-%m-%d)).
DOC
echo "wrote docs/MOE.md and the MoE section of docs/FIT-QUALITY.md"
