#!/bin/sh
# The main job on the embedded default: fetch the corpora, build (once, then
# cached) the dense `tiny` base model, prune it with Wanda and SparseGPT at
# 50% with and without reconstruction, and print the perplexities. The full
# grid, plots and report come with the study harness (issue 6).
set -e
FL=./freelunch
CACHE=${FL_CACHE:-$HOME/.cache/freelunch}
OUT=${FL_OUT:-runs/study}
PRESET=${FL_PRESET:-tiny}
MODEL="$CACHE/models/$PRESET"
mkdir -p "$OUT"
$FL data fetch
$FL pretrain --preset "$PRESET" --resume
$FL info --model "$MODEL" | head -14
for crit in wanda sparsegpt; do
  for rec in none sublayer; do
    echo "== $crit 0.5 --reconstruct $rec"
    $FL prune --model "$MODEL" --criterion "$crit" --sparsity 0.5 --reconstruct "$rec" \
        --calib-samples "${FL_CALIB:-64}" --seed 0 --eval sotu-test --eval-windows "${FL_EVAL_WINDOWS:-100}" \
        --out "$OUT/$crit-$rec"
  done
done
echo "dense model:"
$FL eval --model "$MODEL" --split sotu-test --max-windows "${FL_EVAL_WINDOWS:-100}"
