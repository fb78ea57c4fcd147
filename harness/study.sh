#!/bin/sh
# The main job on the embedded default. Until the corpora, pruning criteria
# and reconstructors land (issues 3-6), it exercises the model core end to
# end on a real text every Debian machine has: trains a small byte-level
# llama-family model, saves it as an HF directory, reloads it, evaluates
# validation perplexity, and prints the model's description.
set -e
OUT=${FL_OUT:-runs/demo}
TEXT=${FL_TEXT:-/usr/share/common-licenses/GPL-3}
mkdir -p "$OUT"
./freelunch demo --text "$TEXT" --out "$OUT" --steps "${FL_STEPS:-300}"
./freelunch info --model "$OUT/model" | head -14
./freelunch eval --model "$OUT/model" --data "$OUT/val.bin" --seqlen 128 --json
