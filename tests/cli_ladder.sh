#!/bin/sh
# A two-rung micro ladder end to end (issue 14): `freelunch list presets`,
# a grid whose model dimension names two presets (micro, micro-4) that the
# study builds into its cache, the per-rung memory prediction of --dry-run,
# the model size columns of results.csv, and the report's ladder section and
# plots. The corpora come from the ordinary cache (linked, never fetched).
# Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
SRC=${FL_CACHE:-$HOME/.cache/freelunch}

"$FL" list presets >"$T/p" 2>&1
for r in tiny ladder-2 ladder-6 ladder-8 ladder-2-long tiny-long micro micro-4; do
  check "list presets: $r" "grep -q '^$r ' '$T/p'"
done
check "list presets: tiny's row (4 layers, d=192, 2361024 parameters, 1574592 non-embedding, 1.6 tokens per)" \
  "grep -Eq '^tiny +llama +4 +192 +2361024 +1574592 +2457600 +1.6$' '$T/p'"
check "list presets: no tiny-gpt2" "! grep -q tiny-gpt2 '$T/p'"
expect 2 "unexpected argument" "list with a bad argument" "$FL" list bogus
expect 2 "unknown preset" "pretrain of an unknown preset" "$FL" pretrain --preset bogus --out "$T/x"
expect 2 "lr-scale" "pretrain --lr-scale 0: one line" "$FL" pretrain --preset micro --lr-scale 0 --out "$T/x"
# --lr-scale: the rule's check on sotu-val trains a rung at a multiple of
# its rate; micro's is 5e-3, and freelunch.json records the rate used
"$FL" pretrain --preset micro --steps 3 --lr-scale 2 --threads 2 --out "$T/lr2" >"$T/lr2.log" 2>&1 && ok "pretrain --lr-scale 2" || notok "pretrain --lr-scale 2: $(tail -1 "$T/lr2.log")"
check "... freelunch.json: lr 1e-2, twice micro's" \
  "/usr/bin/python3 -c \"import json,sys; sys.exit(abs(json.load(open('$T/lr2/freelunch.json'))['lr'] - 1e-2) > 1e-8)\""

# a cache with the corpora and no models
mkdir -p "$T/c/models"
for f in "$SRC"/*; do case "$(basename "$f")" in models) ;; *) ln -s "$f" "$T/c/$(basename "$f")" ;; esac; done

cat >"$T/grid.ini" <<EOF
[grid]
model       = micro, micro-4
criterion   = magnitude, wanda, sparsegpt
reconstruct = none, block
[fixed]
sparsity      = 0.5
calib-samples = 4
eval          = sotu-test
eval-windows  = 2
EOF

"$FL" study --grid "$T/grid.ini" --out "$T/st" --cache "$T/c" --dry-run >"$T/dry" 2>&1
check "dry run: 12 cells" "grep -q '^12 cells' '$T/dry'"
check "dry run: predicted peak of each rung before it is built" \
  "grep -Eq '^ +[0-9.]+ +$T/c/models/micro \(preset micro\)' '$T/dry' && grep -Eq '^ +[0-9.]+ +$T/c/models/micro-4 \(preset micro-4\)' '$T/dry'"
check "dry run built nothing" "[ ! -e '$T/c/models/micro' ]"

"$FL" study --grid "$T/grid.ini" --out "$T/st" --cache "$T/c" --threads 2 >"$T/run" 2>&1 && ok "the micro ladder runs" \
  || notok "the micro ladder runs: $(tail -3 "$T/run")"
check "both rungs built into the cache" "[ -f '$T/c/models/micro/model.safetensors' ] && [ -f '$T/c/models/micro-4/freelunch.json' ]"
check "one tokenizer for both rungs (the second took the first's)" \
  "cmp -s '$T/c/models/micro/merges.txt' '$T/c/models/micro-4/merges.txt' && grep -q 'tokenizer of 512 entries taken from $T/c/models/micro ' '$T/run'"
check "the study said it built them" "grep -q 'building base model .*preset micro-4' '$T/run'"
cols() { /usr/bin/python3 -c "import csv,sys; print(sorted({(r['model'].rsplit('/',1)[1], r['model_nonemb_params'], r['model_layers']) for r in csv.DictReader(open(sys.argv[1]))}))" "$1"; }
check "results.csv: each rung's size columns (74048 and 148032 non-embedding parameters)" \
  "[ \"\$(cols '$T/st/results.csv')\" = \"[('micro', '74048', '2'), ('micro-4', '148032', '4')]\" ]"
tt() { /usr/bin/python3 -c "import csv,sys; print(sorted({r['model_train_tokens'] for r in csv.DictReader(open(sys.argv[1]))}))" "$1"; }
check "results.csv: each rung's pretraining tokens (30720 for both, steps x batch x seqlen of its freelunch.json)" \
  "[ \"\$(tt '$T/st/results.csv')\" = \"['30720']\" ]"
check "report: each rung's regime, from the results (0.4 and 0.2 tokens per parameter: undertrained)" \
  "[ \$(grep -c '^| $T/c/models/micro[-4]* | .* | undertrained (below 20 tokens per parameter) |\$' '$T/st/report.md') -eq 2 ]"
check "report: the ladder section" "grep -q '^## The ladder: the scale claims across model size' '$T/st/report.md'"
check "report: the scale caveat" "grep -q '0.125 to 72 billion' '$T/st/report.md'"
check "report: a claim 3 trend sentence" "grep -q 'ppl(wanda) − ppl(sparsegpt) with each criterion.s best reconstruction: .* the gap' '$T/st/report.md'"
check "report: a drift against depth sentence" "grep -q 'drift at the last block with .none.: .* at 2 layers, .* at 4 layers' '$T/st/report.md'"
for p in gap rel drift peak; do
  check "plot ladder_${p}_s0.5" "[ -s '$T/st/plots/ladder_${p}_s0.5.png' ] && [ -s '$T/st/plots/ladder_${p}_s0.5.svg' ]"
done
"$FL" study --grid "$T/grid.ini" --out "$T/st" --cache "$T/c" --threads 2 >"$T/run2" 2>&1 && ok "a second run" || notok "a second run"
check "a second run builds nothing and runs nothing" "! grep -q 'building base model' '$T/run2' && grep -q '0 to run' '$T/run2'"
[ $bad -eq 0 ] || cp -r "$T" /tmp/cli_ladder_fail 2>/dev/null
exit $bad
