#!/bin/sh
# The CLI on bad input: one clear line on stderr naming the file and the
# problem, a non-zero exit, no crash. Prints "ok"/"not ok" lines (TAP).
. "$(dirname "$0")/clilib.sh"

# A real model to damage: the demo trains one in a second.
head -c 60000 /usr/share/common-licenses/GPL-3 >"$T/text.txt"
"$FL" demo --text "$T/text.txt" --out "$T/d" --steps 2 --seqlen 32 --batch 2 >/dev/null 2>&1 || { echo "not ok 0 - demo model could not be made"; exit 1; }
M="$T/d/model"

expect 0 "" "info --help" "$FL" info --help
expect 0 "" "eval --help" "$FL" eval --help
expect 0 "" "demo --help" "$FL" demo --help
expect 2 "unknown command" "unknown command" "$FL" frobnicate
expect 2 "required" "info without --model" "$FL" info
expect 2 "unknown GEMM backend" "bad --backend" "$FL" info --backend mkl --model "$M"
expect 0 "" "info on a good model" "$FL" info --model "$M"
expect 0 "" "eval on a good model with onednn" "$FL" eval --backend onednn --model "$M" --data "$T/d/val.bin" --seqlen 32 --json
expect 1 "$T/nowhere" "missing model directory" "$FL" info --model "$T/nowhere"

# token files
printf 'garbage that is not a token file at all, not even close......' >"$T/bad.bin"
head -c 1024 /dev/zero >>"$T/bad.bin"
expect 1 "$T/bad.bin.*magic" "token file with a bad magic" "$FL" eval --model "$M" --data "$T/bad.bin" --seqlen 32
# count beyond the file size: patch the count field of a good file
cp "$T/d/val.bin" "$T/long.bin"
printf '\377\377\377\000' | dd of="$T/long.bin" bs=1 seek=8 conv=notrunc 2>/dev/null
expect 1 "$T/long.bin" "token count beyond the file" "$FL" eval --model "$M" --data "$T/long.bin" --seqlen 32
# ids >= vocab (256): a uint16 token 0x0300 = 768
cp "$T/d/val.bin" "$T/ids.bin"
printf '\000\003' | dd of="$T/ids.bin" bs=1 seek=1030 conv=notrunc 2>/dev/null
expect 1 "$T/ids.bin.*vocab" "token id beyond the vocabulary" "$FL" eval --model "$M" --data "$T/ids.bin" --seqlen 32
expect 1 "context" "seqlen beyond the context" "$FL" eval --model "$M" --data "$T/d/val.bin" --seqlen 4096

# checkpoints
cp -r "$M" "$T/trunc"; head -c 5000 "$M/model.safetensors" >"$T/trunc/model.safetensors"
expect 1 "$T/trunc/model.safetensors" "truncated safetensors" "$FL" info --model "$T/trunc"
cp -r "$M" "$T/hdr"; printf '\377\377\377\377\000\000\000\000' | dd of="$T/hdr/model.safetensors" bs=1 conv=notrunc 2>/dev/null
expect 1 "$T/hdr/model.safetensors" "header length beyond the file" "$FL" info --model "$T/hdr"
cp -r "$M" "$T/typ"; sed 's/"model_type":[[:space:]]*"[a-z0-9]*"/"model_type": "mamba"/' "$M/config.json" >"$T/typ/config.json"
expect 1 "$T/typ/config.json.*mamba" "unknown model_type" "$FL" info --model "$T/typ"
cp -r "$M" "$T/cfg"; printf '{ not json' >"$T/cfg/config.json"
expect 1 "$T/cfg/config.json" "config.json that is not JSON" "$FL" info --model "$T/cfg"
cp -r "$M" "$T/shape"; sed 's/"intermediate_size":[[:space:]]*[0-9]*/"intermediate_size": 300/' "$M/config.json" >"$T/shape/config.json"
expect 1 "$T/shape/model.safetensors.*300" "shape that disagrees with config.json" "$FL" info --model "$T/shape"

# tokenizers and the registries
expect 0 "" "tokenize --help" "$FL" tokenize --help
expect 0 "" "tokenizer-train --help" "$FL" tokenizer-train --help
expect 0 "" "prune --help" "$FL" prune --help
expect 0 "" "pretrain --help" "$FL" pretrain --help
expect 0 "" "data --help" "$FL" data --help
expect 0 "" "list" "$FL" list
# every option of every plug-in: name=default (range) [type]: help, under its plug-in
"$FL" list >"$T/list.txt" 2>&1
check "list shows blocks's k with its type, default and help" "sed -n '/^  blocks /,/^  [a-z]/p' '$T/list.txt' | grep -q '^ *k=1 (.*) \[int|all\]: blocks per unit'"
check "list shows masklora's rank and alpha" "sed -n '/^  retrain:masklora /,/^propagation/p' '$T/list.txt' | grep -q '^ *rank=16 (.*alias r) \[int\]: adapter rank' && sed -n '/^  retrain:masklora /,/^propagation/p' '$T/list.txt' | grep -q '^ *alpha=32 (.*) \[float\]: scale' && sed -n '/^  retrain:masklora /,/^propagation/p' '$T/list.txt' | grep -q '^ *bias-norm=1 '"
check "list shows a criterion's options and the optimizers" "sed -n '/^  sparsefw /,/^  obs /p' '$T/list.txt' | grep -q '^ *iters=100 (.*) \[int\]: Frank-Wolfe' && grep -q 'optimizers: adamw (default), sgd' '$T/list.txt'"
mkdir -p "$T/tok_nomerges" && printf '{}' >"$T/tok_nomerges/vocab.json"
expect 1 "$T/tok_nomerges/merges.txt" "tokenizer directory missing merges.txt" "$FL" tokenize --tokenizer "$T/tok_nomerges" --in "$T/text.txt" --out "$T/x.bin"
[ ! -e "$T/x.bin" ] && echo "ok $((n = n + 1)) - no output left behind" || { echo "not ok $((n = n + 1)) - output left behind"; bad=1; }
# pruning: bad criterion, sparsity, N:M, reconstructor
expect 1 "unknown criterion 'wandaa'.*valid" "unknown criterion" "$FL" prune --model "$M" --criterion wandaa --sparsity 0.5 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "sparsity '1.5'" "sparsity outside (0,1)" "$FL" prune --model "$M" --criterion wanda --sparsity 1.5 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "N < M" "N:M with N >= M" "$FL" prune --model "$M" --criterion wanda --sparsity 4:4 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "does not divide" "M not dividing the width" "$FL" prune --model "$M" --criterion wanda --sparsity 2:3 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "unknown reconstructor" "unknown reconstructor" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct foo --calib "$T/d/train.bin" --out "$T/p"
expect 1 "context" "calibration seqlen beyond the context" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --seqlen 999 --calib "$T/d/train.bin" --out "$T/p"
# numbers: decimal only, range-checked (the grid's check is the same parser)
expect 2 "seed.*'1e3' is not an integer" "prune --seed 1e3" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --seed 1e3 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "epochs.*'0x10' is not an integer" "prune --epochs 0x10" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --epochs 0x10 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "give --lr-scale or --lr, not both" "prune --lr with --lr-scale" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --lr 1e-3 --lr-scale 3 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "lr-scale.*-1" "prune --lr-scale -1" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --lr-scale -1 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "lr.*'1e300' is not a number" "prune --lr 1e300" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --lr 1e300 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "retrain-samples.*'0' is not an integer" "prune --retrain-samples 0" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct retrain:full --retrain-samples 0 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "retrain-samples.*'2.5' is not an integer" "prune --retrain-samples 2.5" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct retrain:full --retrain-samples 2.5 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "--threads expects an integer" "prune --threads beyond long long" "$FL" prune --threads 99999999999999999999 --model "$M" --criterion wanda --sparsity 0.5 --calib "$T/d/train.bin" --out "$T/p"
expect 2 "--lr expects a decimal number" "demo --lr 0x1p3" "$FL" demo --lr 0x1p3 --text "$T/text.txt" --out "$T/dd"
expect 0 "" "prune with sublayer reconstruction" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct sublayer --calib "$T/d/train.bin" --calib-samples 4 --eval "$T/d/val.bin" --out "$T/p"
[ -s "$T/p/model.safetensors" ] && [ -s "$T/p/calib.bin" ] && [ -s "$T/p/freelunch.json" ] && echo "ok $((n = n + 1)) - prune wrote model, calib.bin and freelunch.json" || { echo "not ok $((n = n + 1)) - prune outputs missing"; bad=1; }
# masks.bin holds the bytes mask_sha256 hashes
h=$(sed -n 's/.*"mask_sha256":[[:space:]]*"\([0-9a-f]*\)".*/\1/p' "$T/p/freelunch.json")
[ ${#h} -eq 64 ] && [ "$(sha256sum <"$T/p/masks.bin" | cut -d' ' -f1)" = "$h" ] && echo "ok $((n = n + 1)) - sha256sum masks.bin is freelunch.json's mask_sha256" || { echo "not ok $((n = n + 1)) - mask_sha256 '$h' is not masks.bin's"; bad=1; }
expect 1 "unknown prune stream 'x'.*sparse, dense" "prune --prune-stream x" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --prune-stream x --calib "$T/d/train.bin" --out "$T/p"
# --optimizer: one line naming the valid ones; sgd runs and is recorded
expect 1 "unknown optimizer 'x' (valid: adamw, sgd)" "prune --optimizer x" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct sublayer --optimizer x --calib "$T/d/train.bin" --out "$T/po"
expect 0 "" "prune with sublayer reconstruction under sgd" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct sublayer --optimizer sgd --calib "$T/d/train.bin" --calib-samples 4 --eval "$T/d/val.bin" --out "$T/psgd"
check "freelunch.json records the optimizer" "grep -q '\"optimizer\":[[:space:]]*\"sgd\"' '$T/psgd/freelunch.json' && grep -q '\"optimizer\":[[:space:]]*\"adamw\"' '$T/p/freelunch.json'"
# criterion options: bad ones refused before any work, named and positional ones run
expect 1 "criterion ria: alpha: 3 is out of range.*options: alpha=0.5" "criterion option out of range" "$FL" prune --model "$M" --criterion ria:alpha=3 --sparsity 0.5 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "criterion sparsefw: unknown option 'iter'.*options: warm=wanda" "unknown criterion option" "$FL" prune --model "$M" --criterion sparsefw:iter=5 --sparsity 0.5 --calib "$T/d/train.bin" --out "$T/p"
expect 1 "warm start: criterion ria: alpha: 9" "bad option of a warm start" "$FL" prune --model "$M" --criterion "sparseswaps:warm=(ria:alpha=9),budget=2" --sparsity 0.5 --calib "$T/d/train.bin" --out "$T/p"
expect 0 "" "prune with a warm start's own options" "$FL" prune --model "$M" --criterion "sparsefw:warm=(ria:alpha=1),iters=3" --sparsity 0.5 --calib "$T/d/train.bin" --calib-samples 4 --eval "$T/d/val.bin" --out "$T/pw"
expect 0 "" "prune with the positional form" "$FL" prune --model "$M" --criterion sparseswaps:ria:2 --sparsity 2:4 --calib "$T/d/train.bin" --calib-samples 4 --eval "$T/d/val.bin" --out "$T/ps"

expect 0 "" "prune retraining on more windows than the calibration" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --reconstruct retrain:masklora --calib "$T/d/train.bin" --calib-samples 2 --retrain-samples 6 --eval "$T/d/val.bin" --out "$T/pr"
grep -q '"retrain_samples":[[:space:]]*6' "$T/pr/freelunch.json" && grep -q '"recovery_tokens":[[:space:]]*192' "$T/pr/freelunch.json" && echo "ok $((n = n + 1)) - freelunch.json records retrain_samples and recovery_tokens" || { echo "not ok $((n = n + 1)) - retrain_samples/recovery_tokens not in freelunch.json"; bad=1; }

# sizes from input bounded by the data, never an abort
cp -r "$M" "$T/huge"; sed 's/"num_hidden_layers":[[:space:]]*[0-9]*/"num_hidden_layers": 100000/' "$M/config.json" >"$T/huge/config.json"
expect 1 "$T/huge/config.json.*layer count 100000" "config.json with 100000 layers" "$FL" info --model "$T/huge"
cp -r "$M" "$T/more"; sed 's/"num_hidden_layers":[[:space:]]*[0-9]*/"num_hidden_layers": 40/' "$M/config.json" >"$T/more/config.json"
expect 1 "$T/more/config.json.*holds only" "config.json with more layers than the weights" "$FL" info --model "$T/more"
expect 1 "distinct windows" "more calibration samples than the data has windows" "$FL" prune --model "$M" --criterion wanda --sparsity 0.5 --calib "$T/d/train.bin" --calib-samples 4000000 --out "$T/pc"
expect 0 "" "eval with a batch far beyond the windows" "$FL" eval --model "$M" --data "$T/d/val.bin" --seqlen 32 --batch 16777216 --json
expect 1 "training bytes" "demo batch beyond its text" "$FL" demo --text "$T/text.txt" --out "$T/bb" --steps 1 --seqlen 32 --batch 16777216
expect 0 "" "demo reads --text from a pipe" sh -c "cat '$T/text.txt' | '$FL' demo --text /dev/stdin --out '$T/pipe' --steps 1 --seqlen 32 --batch 2"

echo "# $n checks"
exit $bad
