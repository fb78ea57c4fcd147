#!/bin/sh
# prune --stream and --save-dtype from the command line: a streamed cell on
# a bf16 checkpoint gives the resident cell's perplexity and masks; the
# bf16/fp16 files it saves are what PyTorch's own rounding (.to(bfloat16),
# .to(float16)) makes of the fp32 save, their headers say so and their
# zeros are masks.bin's (tests/oracle/torch_ref.py reads them by hand);
# bad input gives one line. TAP lines.
. "$(dirname "$0")/clilib.sh"
PY=/usr/bin/python3

head -c 60000 /usr/share/common-licenses/GPL-3 >"$T/text.txt"
"$FL" demo --text "$T/text.txt" --out "$T/d" --steps 2 --seqlen 32 --batch 2 --family llama >/dev/null 2>&1 ||
  { echo "not ok 0 - demo model could not be made"; exit 1; }
# the demo saves fp32: a bf16 copy of it is the checkpoint under test
"$FL" prune --model "$T/d/model" --criterion magnitude --sparsity 0.0001 --reconstruct none --calib "$T/d/val.bin" \
  --calib-samples 2 --seqlen 32 --eval "$T/d/val.bin" --eval-windows 1 --drift-windows 0 --save-dtype bf16 \
  --out "$T/m16" >/dev/null 2>&1 || { echo "not ok 0 - bf16 copy"; exit 1; }
M="$T/m16"
P="--criterion wanda --sparsity 0.5 --reconstruct sublayer --calib $T/d/val.bin --calib-samples 4 --seqlen 32 --epochs 1
   --eval $T/d/val.bin --eval-windows 4 --drift-windows 0"

expect 0 "" "resident fp32 save" "$FL" prune --model "$M" $P --out "$T/full"
expect 0 "" "streamed, bf16 save" "$FL" prune --model "$M" $P --stream --save-dtype bf16 --out "$T/sb"
expect 0 "" "streamed, fp16 save" "$FL" prune --model "$M" $P --stream --save-dtype fp16 --out "$T/sh"
for x in sb sh; do
  check "same mask hash ($x)" "[ \"\$(grep -o '\"mask_sha256\":[^,]*' $T/full/freelunch.json)\" = \"\$(grep -o '\"mask_sha256\":[^,]*' $T/$x/freelunch.json)\" ]"
  check "same perplexity ($x)" "[ \"\$(sed -n '/\"perplexity\"/,/}/p' $T/full/freelunch.json)\" = \"\$(sed -n '/\"perplexity\"/,/}/p' $T/$x/freelunch.json)\" ]"
done
check "streamed recorded" "grep -q '\"streamed\":[[:space:]]*true' $T/sb/freelunch.json && grep -q '\"save_dtype\":[[:space:]]*\"BF16\"' $T/sb/freelunch.json"
# the oracle: PyTorch's rounding of the fp32 save, the header dtype, zeros = masks
check "bf16 and fp16 files are torch's rounding of the fp32 one" "$PY - '$T' <<'PYEOF'
import sys, json, struct
sys.path.insert(0, 'tests/oracle')
import numpy as np, torch
import torch_ref as R
T = sys.argv[1]
def header(p):
    raw = open(p, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    return json.loads(raw[8:8 + n])
full = R.st_read(T + '/full/model.safetensors')
masks = np.fromfile(T + '/full/masks.bin', dtype=np.uint8)
for d, dt, tdt in (('sb', 'BF16', torch.bfloat16), ('sh', 'F16', torch.float16)):
    h = header(T + '/' + d + '/model.safetensors')
    assert all(v['dtype'] == dt for k, v in h.items() if k != '__metadata__'), d
    got = R.st_read(T + '/' + d + '/model.safetensors')
    assert set(got) == set(full)
    mo = 0
    for k in full:
        want = full[k].float().to(tdt).double()
        g = got[k]
        # the one difference allowed: a non-zero torch rounds to 0 stays the smallest subnormal
        under = (want == 0) & (full[k] != 0)
        assert torch.equal(g[~under], want[~under]), k
        assert bool((g[under] != 0).all()), k
    # masks.bin (depth order) against the zeros of the block linears
    lin = [k for k in got if '_proj.' in k]
    lin.sort(key=lambda k: (int(k.split('.')[2]), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'].index(k.split('.')[-2])))
    for k in lin:
        n = got[k].numel()
        assert np.array_equal(masks[mo:mo + n] == 1, (got[k].flatten() != 0).numpy()), k
        mo += n
    assert mo == len(masks)
PYEOF"
expect 1 "save-dtype" "unknown --save-dtype" "$FL" prune --model "$M" $P --save-dtype int8 --out "$T/x"
expect 1 "stream" "--stream with --structure" "$FL" prune --model "$M" --criterion wanda-sp --structure heads --sparsity 0.25 \
  --calib "$T/d/val.bin" --calib-samples 2 --seqlen 32 --stream --out "$T/x"
cp -r "$M" "$T/trunc"; head -c 3000 "$M/model.safetensors" >"$T/trunc/model.safetensors"
expect 1 "$T/trunc/model.safetensors" "truncated checkpoint, streamed" "$FL" prune --model "$T/trunc" $P --stream --out "$T/x"
# a dtype freelunch does not read: the header's first BF16 made I16
cp -r "$M" "$T/i16"; $PY - "$T/i16/model.safetensors" <<'PYEOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
i = b.find(b'"BF16"'); b[i:i + 6] = b'"I16" '; open(p, 'wb').write(bytes(b))
PYEOF
expect 1 "I16" "unsupported dtype, streamed" "$FL" prune --model "$T/i16" $P --stream --out "$T/x"
expect 0 "" "plan --stream" "$FL" plan --model "$M" --calib-samples 4 --seqlen 32 --stream --gflops 10
# in a grid: stream and save-dtype are keys; a streamed cell and a resident
# one give the same masks and perplexity, and the columns say which ran
cat >"$T/grid.ini" <<EOF2
[grid]
stream = false, true
[fixed]
model = $M
criterion = wanda
sparsity = 0.5
reconstruct = sublayer
calib = $T/d/val.bin
calib-samples = 4
seqlen = 32
epochs = 1
eval = $T/d/val.bin
eval-windows = 4
drift-windows = 0
save-dtype = bf16
EOF2
expect 0 "" "a study with stream = false, true" "$FL" study --grid "$T/grid.ini" --out "$T/st" --threads 2
check "... the two cells: same masks and perplexity, stream and save_dtype columns" \
  "$PY -c \"import csv,sys; R=[r for r in csv.DictReader(open('$T/st/results.csv')) if r['role'] != 'dense']; sys.exit(not (len(R) == 2 and sorted(r['stream'] for r in R) == ['false', 'true'] and all(r['save_dtype'] == 'bf16' and r['status'] == 'ok' for r in R) and R[0]['mask_sha256'] == R[1]['mask_sha256'] != '' and R[0]['ppl'] == R[1]['ppl'] != ''))\""
expect 1 "save-dtype" "a grid's save-dtype that is no dtype: one line" "$FL" study --grid "$T/grid.ini" --out "$T/st2" --set save-dtype=f8 --dry-run
[ $bad -eq 0 ]
