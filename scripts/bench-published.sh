#!/usr/bin/env bash
# The speed prediction against published llama.cpp results (src/fit/speed.rs, PUBLISHED): every row
# with its source, the fixed split (constants fitted on two thirds, the third marked "held out" never
# used to fit them), and the median errors by split and device class. Pure arithmetic, seconds.
# Writes the "published" section of docs/SPEED.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
{
  echo "## Checked on published results (held out)"
  echo
  echo "Reproduce: \`scripts/bench-published.sh\` (\`run-fit-dev speed-published\`; $(date -u +%Y-%m-%d))."
  echo "Targets on the held-out third: median |error| ≤ 15 % generation, ≤ 20 % prompt, no device class"
  echo "beyond 30 %. Each row's set is fixed in src/fit/speed.rs."
  echo
  target/release/run-fit-dev speed-published
} | python3 scripts/doc-section.py docs/SPEED.md published
echo "wrote the published section of docs/SPEED.md"
