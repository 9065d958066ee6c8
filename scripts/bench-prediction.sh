#!/usr/bin/env bash
# Prediction accuracy on this machine: run-fit's predicted prompt and generation tok/s against `run-fit
# bench` over a sweep of contexts and flash attention for both models (published results on hardware this
# project does not have are scripts/bench-published.sh's, in docs/SPEED.md). Writes the prediction
# section of docs/PERFORMANCE.md and the chart docs/bench-smollm2.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export RUN_FIT_CACHE_DIR="$tmp/cache"
sweep=(-c 1024,4096 -fa on,off -p 512 -n 128 -r "${REPS:-3}")
target/release/run-fit bench models/SmolLM2-135M-Instruct.Q4_1.gguf "${sweep[@]}" --json \
  --chart docs/bench-smollm2.svg -q > "$tmp/smollm2.json"
target/release/run-fit bench models/gemma-3-270m-q4_k_m.gguf "${sweep[@]}" --json -q > "$tmp/gemma3.json"
python3 - "$tmp" <<'PY' | python3 scripts/doc-section.py docs/PERFORMANCE.md prediction
import json, statistics, sys, datetime, os
tmp = sys.argv[1]
rows, errs = [], {"tg": [], "pp": []}
for name in ["smollm2", "gemma3"]:
    for o in json.load(open(os.path.join(tmp, name + ".json"))):
        s, p = o["setting"], o["predicted"]
        if not (o["prompt"] and o["generation"] and p):
            continue
        pp, tg = o["prompt"]["mean_tok_per_s"], o["generation"]["mean_tok_per_s"]
        e_pp, e_tg = p["prompt_tok_per_s"] / pp - 1, p["generation_tok_per_s"] / tg - 1
        errs["pp"].append(abs(e_pp)); errs["tg"].append(abs(e_tg))
        label = f"c {s['n_ctx_tokens']}, fa {'on' if s['flash_attn'] else 'off'}"
        rows.append(f"| {name} | {label} | {pp:.1f} | {p['prompt_tok_per_s']:.1f} | {e_pp*100:+.0f} % | {tg:.1f} | {p['generation_tok_per_s']:.1f} | {e_tg*100:+.0f} % |")
print("## Speed prediction accuracy\n")
print("Predicted (docs/SPEED.md) against measured tok/s. This machine: `run-fit bench MODEL -c 1024,4096 -fa on,off")
print(f"-p 512 -n 128 -r 3` (pp512 / tg128, llama-bench's measurement), {os.cpu_count()} cores, {datetime.date.today()}.\n")
print("Reproduce: `scripts/bench-prediction.sh` (it rewrites this section and docs/bench-smollm2.svg).\n")
print("| model | setting | measured pp tok/s | predicted | error | measured tg tok/s | predicted | error |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
print("\n".join(rows))
print(f"\nMedian absolute error on this machine: prompt {statistics.median(errs['pp'])*100:.0f} %, generation {statistics.median(errs['tg'])*100:.0f} %.")
print("The model has no term for flash attention; on this CPU it moves speeds by up to ±15 %, either way.\n")
print("![SmolLM2 sweep](bench-smollm2.svg)\n")
print("Published llama.cpp results on hardware this project does not have, against run-fit's prediction, with")
print("the fixed fit / held-out split and the errors by device class: [SPEED.md, \"Checked on published")
print("results\"](SPEED.md#checked-on-published-results-held-out) (`scripts/bench-published.sh`).")
PY
echo "wrote the prediction section of docs/PERFORMANCE.md" >&2
