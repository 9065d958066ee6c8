#!/usr/bin/env bash
# Throughput parity: run-fit's prompt and generation tok/s against llama.cpp driven directly through its
# C API (run-fit-dev direct: the `simple` example's loop, llama.cpp's own perf counters), same build,
# same threads, context, prompt (chat template applied by both) and forced token count, alternating
# in one run. Writes the throughput section of docs/PERFORMANCE.md. Target: run-fit >= 0.97x.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
rounds=${ROUNDS:-15}
threads=$(nproc)
ctx=2048
n_gen=128
prompt="$(printf 'The quick brown fox jumps over the lazy dog near the river bank. %.0s' $(seq 40))Summarise this text."
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for model in models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf; do
  for i in $(seq "$rounds"); do
    # alternate which goes first, so neither always runs on a warmer machine
    for who in $( ((i % 2)) && echo "direct run-fit" || echo "run-fit direct"); do
      if [ "$who" = direct ]; then
        line=$(target/release/run-fit-dev direct "$model" "$prompt" "$n_gen" "$threads" "$ctx")
      else
        line=$(target/release/run-fit "$model" -p "$prompt" -n "$n_gen" --ignore-eos --temp 0 \
          -t "$threads" -c "$ctx" --json -q 2>/dev/null)
      fi
      echo "$(basename "$model") $who $line" >> "$raw"
    done
  done
done
python3 - "$raw" "$rounds" "$threads" "$ctx" "$n_gen" <<'PY' | python3 scripts/doc-section.py docs/PERFORMANCE.md throughput
import json, statistics, sys, datetime
raw, rounds, threads, ctx, n_gen = sys.argv[1], *sys.argv[2:]
runs = {}
for line in open(raw):
    model, who, js = line.split(" ", 2)
    v = json.loads(js)
    if who == "direct":
        row = (v["prompt_tokens"], v["prompt_tok_per_s"], v["generation_tok_per_s"])
    else:
        row = (v["stats"]["prompt_tokens"], v["prompt_tok_per_s"], v["generation_tok_per_s"])
    runs.setdefault(model, {}).setdefault(who, []).append(row)
print("## Throughput parity\n")
print(f"`run-fit MODEL -p PROMPT -n {n_gen} --ignore-eos --temp 0 -t {threads} -c {ctx}` against llama.cpp driven")
print("directly through its C API with the same build and settings (`run-fit-dev direct`: load, one batch for")
print("the prompt, greedy tokens; llama.cpp's own perf counters). The prompt is the same text with the model's")
print(f"chat template for both. {rounds} alternating rounds per model: medians, and the best round (this shared")
print("2-core machine moves single runs by ±15 %; the best round is the least disturbed). run-fit's rates are wall-clock in")
print("the worker and include sampling and streaming each token to the supervisor; llama.cpp's counters time")
print("only the decode calls. Target: run-fit ≥ 0.97× on both rates.\n")
print(f"Reproduce: `scripts/bench-throughput.sh` (it rewrites this section). Machine: {threads} cores, {datetime.date.today()}.\n")
print("| model | prompt tokens | statistic | llama.cpp prompt tok/s | run-fit prompt tok/s | ratio | llama.cpp gen tok/s | run-fit gen tok/s | ratio |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for model, who in runs.items():
    d, r = who["direct"], who["run-fit"]
    med = lambda rows, i: statistics.median(x[i] for x in rows)
    assert {x[0] for x in d} == {x[0] for x in r}, f"{model}: prompt token counts differ: {d[0][0]} vs {r[0][0]}"
    best = lambda rows, i: max(x[i] for x in rows)
    for name, f in [("median", med), ("best", best)]:
        pp_d, pp_r, tg_d, tg_r = f(d, 1), f(r, 1), f(d, 2), f(r, 2)
        print(f"| {model} | {d[0][0]} | {name} | {pp_d:.1f} | {pp_r:.1f} | **{pp_r/pp_d:.3f}** | {tg_d:.1f} | {tg_r:.1f} | **{tg_r/tg_d:.3f}** |")
PY
echo "wrote the throughput section of docs/PERFORMANCE.md" >&2
