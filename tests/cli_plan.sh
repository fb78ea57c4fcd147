#!/bin/sh
# freelunch plan: the table and --json for every reconstructor from a
# config.json alone (the paper's models' configs in tests/fixtures), and
# one clear error for a bad model or option. The figures themselves are
# held to measured cells by tests/test_recon_mem.c.
. "$(dirname "$0")/clilib.sh"
C=tests/fixtures/configs

expect 0 "" "plan --help" "$FL" plan --help
check "help names --json" "grep -q -- '--json' '$T/out'"
expect 0 "" "plan of opt-125m (a config.json path)" "$FL" plan --model $C/opt-125m.json --gflops 10
for r in $("$FL" list 2>/dev/null | sed -n '/^reconstructors:/,/^[a-z]/p' | grep '^  [a-z]' | awk '{print $1}'); do
  check "table row for $r" "grep -q '^$r ' '$T/out'"
done
check "time labelled an estimate" "grep -q 'estimated at 10.0 GFLOP/s' '$T/out'"
# --json: one object per registered reconstructor, the five keys, numbers
for m in opt-125m opt-350m qwen2.5-0.5b llama-3.1-8b llama-2-70b qwen2.5-72b; do
  expect 0 "" "plan --json $m" "$FL" plan --model $C/$m.json --json --gflops 10
  cp "$T/out" "$T/$m.json"
  check "$m: every object has the five keys, peaks ordered" "/usr/bin/python3 - '$T/$m.json' <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
assert len(l) >= 10, len(l)
for o in l:
    for k in ('reconstruct', 'working_bytes', 'recovery_peak_bytes', 'peak_bytes', 'flops'):
        assert k in o, (o, k)
    assert o['peak_bytes'] >= o['recovery_peak_bytes'] >= o['working_bytes'] >= 0, o
    assert o['flops'] > 0, o
PY"
done
# a model directory works too (its config.json), and the calibration size scales the FLOPs
mkdir -p "$T/dir" && cp $C/qwen2.5-0.5b.json "$T/dir/config.json"
expect 0 "" "plan of a directory" "$FL" plan --model "$T/dir" --json --gflops 10 --calib-samples 64
check "half the windows, about half the FLOPs of block" "/usr/bin/python3 -c '
import json
a = {o[\"reconstruct\"]: o for o in json.load(open(\"$T/qwen2.5-0.5b.json\"))}
b = {o[\"reconstruct\"]: o for o in json.load(open(\"$T/out\"))}
r = b[\"block\"][\"flops\"] / a[\"block\"][\"flops\"]
assert 0.45 < r < 0.55, r
'"
expect 1 "no-such/config.json: cannot open" "missing model" "$FL" plan --model "$T/no-such"
printf '{"model_type": "mamba"}' >"$T/bad.json"
expect 1 "bad.json: model_type \"mamba\" is not supported" "unsupported family" "$FL" plan --model "$T/bad.json"
expect 1 "exceeds the model's context" "seqlen past the context" "$FL" plan --model $C/opt-125m.json --seqlen 4096 --gflops 10
expect 2 "--calib-samples" "bad calib-samples" "$FL" plan --model $C/opt-125m.json --calib-samples 0
expect 2 "gflops" "bad gflops" "$FL" plan --model $C/opt-125m.json --gflops -1
expect 2 "required" "no model" "$FL" plan
exit $bad
