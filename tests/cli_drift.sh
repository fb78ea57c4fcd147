#!/bin/sh
# Activation drift from the command line (eval/drift.h, --drift-windows,
# --drift-data): drift.bin with the windows asked for, freelunch.json's
# drift array and summaries, the same windows for every seed, clear errors
# for bad counts, nothing with 0, and the results.csv columns and plots of a
# study. Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
js() { /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
ntok() { /usr/bin/python3 -c "import struct,sys; print(struct.unpack_from('<3i', open(sys.argv[1],'rb').read())[2])" "$1"; }

"$FL" pretrain --preset micro --steps 30 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }
cell() { out=$1; shift; "$FL" prune --model "$T/m" --criterion magnitude --sparsity 0.5 --calib-samples 2 --seqlen 16 \
  --eval sotu-test --eval-windows 1 --no-model --threads 2 --out "$out" "$@"; }

expect 0 "" "a cell with --drift-windows 2 runs" cell "$T/c2" --drift-windows 2
check "drift.bin holds 2 windows of 16 tokens" "[ \"\$(ntok '$T/c2/drift.bin')\" = 32 ]"
L=$(js "$T/m/config.json" "j['num_hidden_layers']")
check "freelunch.json: one entry per linear and per block output, in depth order" \
  "[ \"\$(js '$T/c2/freelunch.json' 'len(j[\"drift\"])')\" = $((L * 8)) ] && [ \"\$(js '$T/c2/freelunch.json' 'j[\"drift\"][0][\"name\"] + \",\" + j[\"drift\"][7][\"name\"]')\" = layers.0.q,layers.0 ]"
check "linears have accumulated and local drift, block outputs accumulated only" \
  "[ \"\$(js '$T/c2/freelunch.json' 'all((\"local\" in e) != (e[\"name\"].count(\".\") == 1) and e[\"accumulated\"] > 0 for e in j[\"drift\"])')\" = True ]"
check "drift_mean, drift_max and drift_out are the summaries of the array" \
  "[ \"\$(js '$T/c2/freelunch.json' 'abs(j[\"drift_out\"] - j[\"drift\"][-1][\"accumulated\"]) < 1e-12 and j[\"drift_max\"] == max(e[\"accumulated\"] for e in j[\"drift\"] if \"local\" in e) and 0 < j[\"drift_mean\"] <= j[\"drift_max\"]')\" = True ]"
check "the drift phase is profiled" "[ \"\$(js '$T/c2/freelunch.json' 'j[\"profile\"][\"phases\"][\"drift\"][\"wall_seconds\"] > 0')\" = True ]"
check "the settings are recorded" "[ \"\$(js '$T/c2/freelunch.json' 'j[\"cell\"][\"drift_windows\"]')\" = 2 ]"

expect 0 "" "another seed" cell "$T/c2s" --drift-windows 2 --seed 5
check "every seed measures drift on the same windows" "cmp -s '$T/c2/drift.bin' '$T/c2s/drift.bin' && ! cmp -s '$T/c2/calib.bin' '$T/c2s/calib.bin'"
check "the default is 8 windows" "cell '$T/c8' >/dev/null 2>&1 && [ \"\$(ntok '$T/c8/drift.bin')\" = 128 ]"
expect 0 "" "--drift-data takes a token file" cell "$T/cf" --drift-windows 3 --drift-data "$T/c8/drift.bin"
check "... and draws its windows from it" "[ \"\$(ntok '$T/cf/drift.bin')\" = 48 ] && [ \"\$(js '$T/cf/freelunch.json' 'len(j[\"drift\"])')\" = $((L * 8)) ]"

expect 1 "drift-windows.*'-1' is not an integer" "--drift-windows -1: one error line" cell "$T/cn" --drift-windows -1
expect 1 "drift-windows.*'x' is not an integer" "--drift-windows x: one error line" cell "$T/cx" --drift-windows x
expect 1 "nothing.bin" "a missing --drift-data file: one error line naming it" cell "$T/cm" --drift-data "$T/nothing.bin"
expect 0 "" "--drift-windows 0 runs" cell "$T/c0" --drift-windows 0
check "... and measures no drift" "[ ! -e '$T/c0/drift.bin' ] && [ \"\$(js '$T/c0/freelunch.json' '\"drift\" in j or \"drift_mean\" in j')\" = False ]"

# a study: the results.csv columns, the drift plots
cat >"$T/grid.ini" <<EOF2
[grid]
reconstruct = none, sublayer
[fixed]
model         = $T/m
criterion     = magnitude
sparsity      = 0.5
calib-samples = 2
seqlen        = 16
drift-windows = 2
eval          = sotu-test
eval-windows  = 1
EOF2
"$FL" study --grid "$T/grid.ini" --out "$T/st" --threads 2 >"$T/st.log" 2>&1
check "study exits 0" "[ $? -eq 0 ]"
col() { /usr/bin/python3 -c "import csv,sys; [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1" "$2"; }
check "results.csv: drift_mean, drift_max, drift_out filled" \
  "[ \$(col '$T/st/results.csv' drift_mean | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' drift_max | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' drift_out | grep -c '^[0-9]') -eq 2 ]"
check "results.csv: each linear's accumulated drift in depth order" \
  "[ \$(col '$T/st/results.csv' drift_accumulated | sed -n 1p | tr ';' '\n' | wc -l) -eq $((L * 7)) ] && col '$T/st/results.csv' drift_names | sed -n 1p | grep -q '^layers.0.q;layers.0.k;'"
check "the drift plot is drawn" "ls '$T/st'/plots/drift_*.png >/dev/null 2>&1 && ls '$T/st'/plots/drift_*.svg >/dev/null 2>&1"
check "the report shows it" "grep -q 'plots/drift_' '$T/st/report.md'"
expect 1 "drift-windows" "a grid's drift-windows = -1: one error line" "$FL" study --grid "$T/grid.ini" --out "$T/st2" --set drift-windows=-1 --dry-run
exit $bad
