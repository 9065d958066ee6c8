#!/usr/bin/env bash
# Time to a working answer after backoff, against a clean start: `run-fit MODEL -p hi -n 1` whole
# process, under address-space limits that make llama.cpp really fail (as in tests/it/run_model.rs), and
# with the kernel's OOM killer simulated (RUN_FIT_FAULT). Writes the backoff section of
# docs/PERFORMANCE.md. Target: one backoff step <= 1.5x a clean start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# The simulated OOM kill needs the test hooks (the `fault-injection` feature; users' builds have none).
cargo build --release --locked --features fault-injection --bin run-fit
command -v hyperfine >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq hyperfine >/dev/null; }
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
bin=target/release/run-fit
ask="$bin $model -p hi -n 1 --temp 0"
once=$(mktemp -u)
out=$(mktemp -d)
trap 'rm -rf "$out" "$once"' EXIT

# name | limit KiB (0: none) | extra args | environment
scenarios=(
  "clean|0||"
  "allocation error (1 step, weights kept)|400000||"
  "abort in llama.cpp + allocation error (2 steps)|340000||"
  "SIGKILL at first decode, simulated (1 step)|0||RUN_FIT_FAULT=sigkill@warmup RUN_FIT_FAULT_ONCE=$once"
  "clean, 24 threads|0|-t 24|"
  "libgomp exit (1 step), 24 threads|600000|-t 24|"
)
commands=()
steps=""
for s in "${scenarios[@]}"; do
  IFS='|' read -r name limit extra env <<<"$s"
  limit_cmd=""; [ "$limit" != 0 ] && limit_cmd="ulimit -v $limit; "
  cmd="bash -c '${limit_cmd}rm -f $once; exec env $env $ask $extra'"
  # Run once, loudly: the steps it took go into the record, and a scenario that no longer fails as
  # named (the address-space layout moved) stops the benchmark instead of measuring the wrong thing.
  log=$(eval "$cmd" 2>&1 >/dev/null) || { echo "$name: run-fit failed:"; echo "$log"; exit 1; }
  taken=$(grep -o "out of memory while .*" <<<"$log" | sed 's/^/    /' || true)
  if [[ "$name" != clean* && -z "$taken" ]]; then echo "$name: no backoff happened; adjust the limit" >&2; exit 1; fi
  if [ -n "$taken" ]; then steps+="- **$name**:"$'\n'"$taken"$'\n'; else steps+="- **$name**: no backoff"$'\n'; fi
  commands+=(-n "$name" "$cmd -q")
done
hyperfine -N --warmup 2 --runs "${RUNS:-20}" --export-markdown "$out/table.md" "${commands[@]}" >/dev/null

python3 scripts/doc-section.py docs/PERFORMANCE.md backoff <<DOC
## Time to a working answer after backoff

Whole process, \`run-fit $model -p hi -n 1 --temp 0\` (load, first decode, a one-token answer), clean and
after real out-of-memory failures: \`ulimit -v\` makes llama.cpp's allocations fail (an error value from
context creation, an abort on \`GGML_ASSERT(ctx->mem_buffer != NULL)\`, libgomp's \`exit(1)\` when thread
stacks do not fit), and the kernel's OOM killer is simulated (\`RUN_FIT_FAULT=sigkill@warmup\`, the worker
kills itself with SIGKILL once). hyperfine, 2 warm-ups, ${RUNS:-20} runs. Target: one backoff step ≤ 1.5× a
clean start (compare each row with the clean row of the same thread count).

A context that fails with an error value keeps the worker and its weights: only the context is made
again. A worker that died (abort, exit, SIGKILL) is replaced, so the weights are read again (from the
page cache here; on a GPU machine that read is the expensive part).

Reproduce: \`scripts/bench-backoff.sh\` (it rewrites this section). Machine: $(nproc) cores, $(date -u +%Y-%m-%d).

$(cat "$out/table.md")

What each scenario did (first run, printed by run-fit):

$steps
DOC
echo "wrote the backoff section of docs/PERFORMANCE.md" >&2
