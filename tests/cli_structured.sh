#!/bin/sh
# Structured pruning end to end on a micro model (issue 15): prune cells
# that remove heads, channels and blocks and save a smaller model that
# loads back; a removed-layer model whose block reconstruction lowers its
# loss; hidden-state distillation; the bad inputs as one clear line; and a
# structured micro grid through `freelunch study` with the params and
# inference-speed columns. Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
col() { /usr/bin/python3 -c "import csv,sys,signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1" "$2"; }
js() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

"$FL" pretrain --preset micro --steps 30 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }
C="--calib-samples 4 --eval sotu-test --eval-windows 2 --threads 2"

# heads: one of the micro model's 2 key/value groups (2 of 4 query heads)
"$FL" prune --model "$T/m" --criterion wanda-sp --structure heads --sparsity 0.5 $C --out "$T/h" >"$T/h.log" 2>&1
check "heads: prune exits 0" "[ $? -eq 0 ]"
check "heads: the saved config has 2 heads, 1 key/value head, head_dim 16" \
  "[ \"\$(js '$T/h/config.json' 'd[\"num_attention_heads\"], d[\"num_key_value_heads\"], d[\"head_dim\"]')\" = '(2, 1, 16)' ]"
check "heads: fewer parameters, recorded with the removal" \
  "[ \"\$(js '$T/h/freelunch.json' 'd[\"params\"] < d[\"params_dense\"] and d[\"structured\"][\"removed\"] == 1')\" = True ]"
"$FL" prune --model "$T/h" --criterion magnitude --sparsity 0.5 --calib-samples 2 --eval sotu-test --eval-windows 1 --out "$T/h2" --no-model >"$T/h2.log" 2>&1
check "heads: the smaller model loads back and prunes again" "[ $? -eq 0 ] && grep -q '^ppl sotu-test' '$T/h2.log'"

# channels with FLAP on llama: the compensated down bias is saved as HF
# llama's mlp_bias (gate/up/down biases), and the model loads back
"$FL" prune --model "$T/m" --criterion flap --structure channels --sparsity 0.25 $C --out "$T/c" >"$T/c.log" 2>&1
check "channels: flap saves a llama with mlp_bias" "[ $? -eq 0 ] && [ \"\$(js '$T/c/config.json' 'd[\"mlp_bias\"], d[\"intermediate_size\"]')\" = '(True, 96)' ]"
"$FL" prune --model "$T/c" --criterion magnitude --sparsity 0.5 --calib-samples 2 --eval sotu-test --eval-windows 1 --out "$T/c3" --no-model >"$T/c3.log" 2>&1
check "channels: the flap model loads back and prunes again" "[ $? -eq 0 ] && grep -q '^ppl sotu-test' '$T/c3.log'"
# FLAP's global ratio: blocks keep different counts, saved with freelunch's
# per-layer keys; the model loads back and its single weights prune again
"$FL" prune --model "$T/m" --criterion flap:ratio=global --structure channels --sparsity 0.25 $C --out "$T/g" >"$T/g.log" 2>&1
check "global: flap:ratio=global saves per-layer sizes summing to the dense count less 25%" \
  "[ $? -eq 0 ] && [ \"\$(js '$T/g/config.json' 'len(d[\"layer_intermediate_size\"]) == d[\"num_hidden_layers\"] and sum(d[\"layer_intermediate_size\"]) == d[\"num_hidden_layers\"] * 128 - round(0.25 * d[\"num_hidden_layers\"] * 128) and max(d[\"layer_intermediate_size\"]) == d[\"intermediate_size\"]')\" = True ]"
check "global: the removal per block is recorded" \
  "[ \"\$(js '$T/g/freelunch.json' 'd[\"structured\"][\"global\"] and sum(d[\"structured\"][\"removed_per_block\"]) == d[\"structured\"][\"removed\"]')\" = True ]"
"$FL" prune --model "$T/g" --criterion wanda --sparsity 0.5 --reconstruct sublayer --calib-samples 2 --eval sotu-test --eval-windows 1 --out "$T/g2" --no-model >"$T/g2.log" 2>&1
check "global: the per-layer model loads back, prunes and reconstructs" "[ $? -eq 0 ] && grep -q '^ppl sotu-test' '$T/g2.log'"
"$FL" prune --model "$T/m" --criterion wanda-sp --structure channels --sparsity 0.25 $C --out "$T/c2" >"$T/c2.log" 2>&1
check "channels: 96 of 128 channels kept" "[ $? -eq 0 ] && [ \"\$(js '$T/c2/config.json' 'd[\"intermediate_size\"]')\" = 96 ]"

# layers, recovered by block reconstruction against the dense span
"$FL" prune --model "$T/m" --criterion block-influence --structure layers --sparsity 0.5 --reconstruct block $C --out "$T/l" >"$T/l.log" 2>&1
check "layers: prune exits 0 with one block left" "[ $? -eq 0 ] && [ \"\$(js '$T/l/config.json' 'd[\"num_hidden_layers\"]')\" = 1 ]"
check "layers: the unit spanning the removed block lowers its reconstruction loss" \
  "[ \"\$(js '$T/l/freelunch.json' 'd[\"units\"][0][\"loss_after\"] < 0.9 * d[\"units\"][0][\"loss_before\"]')\" = True ]"
check "layers: drift measured against the dense span, the block outputs and the linears that kept their width" \
  "[ \"\$(js '$T/l/freelunch.json' 'd[\"drift_out\"] > 0 and [e[\"name\"] for e in d[\"drift\"]][-1] == \"layers.0\" and len(d[\"drift\"]) == 8')\" = True ]"
check "heads: drift of the linears whose output kept its width, no local drift where the input shrank" \
  "[ \"\$(js '$T/h/freelunch.json' '[e[\"name\"] for e in d[\"drift\"] if \"local\" not in e] == [\"layers.0.o\", \"layers.0\", \"layers.1.o\", \"layers.1\"] and not any(e[\"name\"].endswith((\".q\", \".k\", \".v\")) for e in d[\"drift\"])')\" = True ]"
check "layers: inference throughput measured for it and for the dense model" "[ \"\$(js '$T/l/freelunch.json' 'd[\"profile\"][\"infer_tok_s\"] > 0 and d[\"profile\"][\"infer_tok_s_dense\"] > 0')\" = True ]"
"$FL" prune --model "$T/m" --criterion angular --structure layers --sparsity 0.5 --reconstruct retrain:full --hidden-distill 1 $C --out "$T/hd" --no-model >"$T/hd.log" 2>&1
check "layers: retraining with hidden-state distillation" "[ $? -eq 0 ] && [ \"\$(js '$T/hd/freelunch.json' 'd[\"units\"][0][\"name\"]')\" = 'model (retrain:full, hidden-state)' ]"

# bad input: one clear line each
expect 1 "removes none of the 2 key/value head groups" "a fraction that removes no head (round half up)" \
  "$FL" prune --model "$T/m" --criterion flap --structure heads --sparsity 0.2 $C --out "$T/x"
expect 1 "removes all 2 key/value head groups" "a fraction that removes every head" \
  "$FL" prune --model "$T/m" --criterion flap --structure heads --sparsity 0.9 $C --out "$T/x"
expect 1 "N:M pattern of single weights" "N:M with a structure" \
  "$FL" prune --model "$T/m" --criterion flap --structure heads --sparsity 2:4 $C --out "$T/x"
expect 1 "prunes single weights" "a weight criterion with a structure" \
  "$FL" prune --model "$T/m" --criterion wanda --structure channels --sparsity 0.5 $C --out "$T/x"
expect 1 "removes whole structures" "a structured criterion without a structure" \
  "$FL" prune --model "$T/m" --criterion angular --sparsity 0.5 $C --out "$T/x"
expect 1 "removes layers only" "a depth criterion asked for heads" \
  "$FL" prune --model "$T/m" --criterion layer-ppl --structure heads --sparsity 0.5 $C --out "$T/x"
expect 1 "no dense linear to match" "linear-wise reconstruction of a structured model" \
  "$FL" prune --model "$T/m" --criterion wanda-sp --structure channels --sparsity 0.5 --reconstruct matrix $C --out "$T/x"
expect 1 "prune-stream sparse only" "a prune stream with a structure" \
  "$FL" prune --model "$T/m" --criterion wanda-sp --structure channels --sparsity 0.5 --prune-stream dense $C --out "$T/x"
expect 1 "not one of none, heads, channels, layers" "an unknown structure" \
  "$FL" prune --model "$T/m" --criterion flap --structure rows --sparsity 0.5 $C --out "$T/x"
expect 1 "weight > 0 or 'alone'" "a bad hidden-distill" \
  "$FL" prune --model "$T/m" --criterion flap --structure heads --sparsity 0.5 --hidden-distill -1 $C --out "$T/x"
expect 1 "retraining baselines only" "hidden-distill with a local reconstructor" \
  "$FL" prune --model "$T/m" --criterion flap --structure heads --sparsity 0.5 --hidden-distill 1 --reconstruct block $C --out "$T/x"

# a structured micro grid: widths and depths as variants (each criterion
# with the structures it removes), local and retraining recovery
cat >"$T/grid.ini" <<EOF
[grid]
structure   = heads, channels
criterion   = wanda-sp, magnitude-sp
reconstruct = none, sublayer
[grid.depth]
structure   = layers
criterion   = block-influence, layer-ppl
reconstruct = none, block, retrain:full
[fixed]
model         = $T/m
sparsity      = 0.5
calib-samples = 4
eval          = sotu-test
eval-windows  = 2
EOF
"$FL" study --grid "$T/grid.ini" --out "$T/study" --dry-run >"$T/dry.log" 2>&1
check "the dry run predicts every structured cell's recovery memory" \
  "[ \$(grep -c ' final no ' '$T/dry.log') -eq 14 ] && ! grep ' final no ' '$T/dry.log' | grep -q ' ? ' && grep ' final no ' '$T/dry.log' | grep 'reconstruct=sublayer' | awk '\$5 > 0 { n++ } END { exit n == 4 ? 0 : 1 }'"
"$FL" study --grid "$T/grid.ini" --out "$T/study" --jobs 2 >"$T/run.log" 2>&1
check "structured study exits 0" "[ $? -eq 0 ]"
check "14 rows, every one ok" "[ \$(col '$T/study/results.csv' status | grep -cx ok) -eq 14 ]"
check "every row has fewer params than dense and a measured speedup" \
  "/usr/bin/python3 -c \"import csv,sys; r=[x for x in csv.DictReader(open('$T/study/results.csv')) if x['role'] != 'dense']; sys.exit(0 if all(float(x['params'])<float(x['params_dense']) and float(x['infer_speedup'])>0 and x['structure'] in ('heads','channels','layers') for x in r) else 1)\""
check "every row's inference peak is below the dense model's, measured in the same cell" \
  "/usr/bin/python3 -c \"import csv,sys; r=[x for x in csv.DictReader(open('$T/study/results.csv')) if x['role'] != 'dense']; sys.exit(0 if all(0 < float(x['infer_peak_bytes']) < float(x['infer_peak_dense_bytes']) for x in r) else 1)\""
check "the report tables the inference peak against the dense model's" "grep -q '| inference peak / dense |' '$T/study/report.md'"
check "every row has its removal's SHA-256" "[ \$(col '$T/study/results.csv' mask_sha256 | grep -cx '[0-9a-f]\{64\}') -eq 14 ]"
check "the same removal gives the same hash across recoveries" \
  "[ \$(/usr/bin/python3 -c \"import csv; r=[x for x in csv.DictReader(open('$T/study/results.csv')) if x['role'] != 'dense']; print(len({(x['structure'],x['criterion'],x['mask_sha256']) for x in r}))\") -eq 6 ]"
check "the report has the structured section, one row per structure, criterion and recovery" \
  "grep -q '^## Structured pruning' '$T/study/report.md' && [ \$(grep -c '^| \(heads\|channels\|layers\) |' '$T/study/report.md') -eq 14 ] && grep -q '^| layers | layer-ppl | 0.5 | retrain:full | 1 |' '$T/study/report.md'"
"$FL" study --grid "$T/grid.ini" --out "$T/study" >"$T/again.log" 2>&1
check "a second run resumes with nothing to do" "grep -q '14 done before, 0 to run' '$T/again.log'"

[ $bad -eq 0 ] && echo "# all passed" || echo "# FAILURES"
exit $bad
