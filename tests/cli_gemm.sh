#!/bin/sh
# GEMM dispatch by shape from the command line (model/gemm.h, --backend
# auto, the default): the choices are filed once in CACHE/gemm, a second
# identical cell times nothing and computes the same numbers, every cell's
# profile lists each shape with its backend and why, a forced backend
# bypasses the file, and a corrupt file is noted once and measured again.
# The decision itself is tested with injected timings in test_gemm.c.
# Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
js() { /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

# a cache of our own (no gemm/ yet), the corpora linked from the real one
SRC=${FL_CACHE:-$HOME/.cache/freelunch}
mkdir -p "$T/cache" "$T/cache2"
for f in "$SRC"/*; do case "$(basename "$f")" in models|share|gemm) ;; *) ln -s "$f" "$T/cache/$(basename "$f")"; ln -s "$f" "$T/cache2/$(basename "$f")" ;; esac; done
export FL_CACHE="$T/cache"

"$FL" pretrain --preset micro --steps 20 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }
F=$(ls "$T"/cache/gemm/dispatch-*.json 2>/dev/null | head -1)
check "pretraining filed its choices in CACHE/gemm" "[ -n '$F' ] && [ \"\$(js '$F' 'len(j[\"shapes\"]) > 0 and \"threads: 2\" in j[\"key\"]')\" = True ]"
check "the file is keyed by hwloc's machine and both libraries" "[ \"\$(js '$F' 'all(w in j[\"key\"] for w in (\"machine:\", \"openblas:\", \"onednn:\", \"cores\"))')\" = True ]"

cell() { out=$1; shift; "$FL" prune --model "$T/m" --criterion wanda --sparsity 0.5 --calib-samples 2 --seqlen 16 \
  --eval sotu-test --eval-windows 2 --no-model --threads 2 --out "$out" "$@"; }
expect 0 "" "a cell with the default backend" cell "$T/a"
P="j['profile']['gemm']"
check "its profile: mode auto and the file it used" "[ \"\$(js '$T/a/freelunch.json' \"$P['mode'] == 'auto' and $P['cache'] == '$F'\")\" = True ]"
check "its profile lists every shape with a backend and why" \
  "[ \"\$(js '$T/a/freelunch.json' \"len($P['shapes']) > 3 and all(s['backend'] in ('openblas', 'onednn') and s['why'] in ('measured', 'cache', 'small') and s['calls'] > 0 and 'x' in s['shape'] for s in $P['shapes'])\")\" = True ]"
check "a measured or filed shape shows both backends' times" \
  "[ \"\$(js '$T/a/freelunch.json' \"all(s['openblas_s'] > 0 and s['onednn_s'] > 0 for s in $P['shapes'] if s['why'] != 'small')\")\" = True ]"
check "a shape's backend is the faster one filed for it (beyond the margin)" \
  "[ \"\$(js '$T/a/freelunch.json' \"all((s['backend'] == 'onednn') == (s['onednn_s'] < s['openblas_s'] * (1 - 0.03)) for s in $P['shapes'] if s['why'] != 'small')\")\" = True ]"

expect 0 "" "the same cell again" cell "$T/b"
check "the second cell times nothing: every choice from the file" \
  "[ \"\$(js '$T/b/freelunch.json' \"$P['measure_seconds'] == 0 and all(s['why'] in ('cache', 'small') for s in $P['shapes'])\")\" = True ]"
PPL="repr(j['perplexity']['sotu-test']) + ' ' + repr([u['loss_after'] for u in j['units']])"
check "and computes the same numbers, bit for bit" "[ -n \"\$(js '$T/a/freelunch.json' \"$PPL\")\" ] && [ \"\$(js '$T/a/freelunch.json' \"$PPL\")\" = \"\$(js '$T/b/freelunch.json' \"$PPL\")\" ]"

FL_CACHE="$T/cache2" cell "$T/c" --backend openblas >"$T/c.log" 2>&1 && ok "a cell forced to openblas" || notok "a cell forced to openblas: $(tail -1 "$T/c.log")"
check "forcing bypasses the file: none written" "[ ! -e '$T/cache2/gemm' ]"
check "its profile: every shape on openblas, forced, no file" \
  "[ \"\$(js '$T/c/freelunch.json' \"$P['mode'] == 'openblas' and $P['cache'] is None and all(s['backend'] == 'openblas' and s['why'] == 'forced' for s in $P['shapes'])\")\" = True ]"
FL_BACKEND=onednn FL_CACHE="$T/cache2" cell "$T/d" >"$T/d.log" 2>&1 && ok "FL_BACKEND=onednn" || notok "FL_BACKEND=onednn: $(tail -1 "$T/d.log")"
check "every shape on onednn" "[ \"\$(js '$T/d/freelunch.json' \"all(s['backend'] == 'onednn' for s in $P['shapes'])\")\" = True ]"
check "openblas and onednn agree beyond float reassociation" \
  "[ \"\$(/usr/bin/python3 -c \"import json; a=json.load(open('$T/c/freelunch.json'))['perplexity']['sotu-test']; b=json.load(open('$T/d/freelunch.json'))['perplexity']['sotu-test']; print(abs(a-b) < 1e-4*a)\")\" = True ]"

printf '{"key": "garbage' >"$F"
cell "$T/e" >"$T/e.log" 2>&1 && ok "a cell with a corrupt file" || notok "a cell with a corrupt file: $(tail -1 "$T/e.log")"
check "the corrupt file is noted once, naming it" "[ \"\$(grep -c 'gemm: $F: not JSON; ignored: its shapes are measured again' '$T/e.log')\" = 1 ]"
check "its shapes were measured again and the file rewritten valid" \
  "[ \"\$(js '$T/e/freelunch.json' \"$P['measure_seconds'] > 0 and any(s['why'] == 'measured' for s in $P['shapes'])\")\" = True ] && [ \"\$(js '$F' 'len(j[\"shapes\"]) > 0')\" = True ]"
expect 2 "expected auto, openblas or onednn" "a bad --backend names the choices" "$FL" info --backend mkl --model "$T/m"
expect 1 "FL_BACKEND.*expected auto" "a bad FL_BACKEND" env FL_BACKEND=mkl "$FL" info --model "$T/m"
exit $bad
