#!/bin/sh
# Zero-shot accuracy from the command line (freelunch eval --task,
# harness/cmd_eval.c; freelunch data tasks): --json lines, --per-item,
# --limit, the corpus tasks built deterministically, and one clear error
# line for every malformed task file or option. The scores themselves are
# checked against PyTorch in tests/test_mc.c. Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
js() { /usr/bin/python3 -c "import json,sys; L=[json.loads(l) for l in open(sys.argv[1])]; print(eval(sys.argv[2]))" "$1" "$2"; }

"$FL" pretrain --preset micro --steps 20 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }

cat >"$T/boolq.jsonl" <<'X'
{"question": "is the sky blue", "passage": "The sky is blue on a clear day.", "label": 1}
{"question": "do cats bark", "answer": false, "passage": "Cats meow; dogs bark."}
{"question": "is ice cold", "passage": "Ice is frozen water.", "label": true}
X
cat >"$T/hs.jsonl" <<'X'
{"activity_label": "Cooking", "ctx_a": "A man cracks an egg.", "ctx_b": "he", "endings": ["fries it in a pan.", "sings.", "reads a book about eggs."], "label": 0}
{"activity_label": "Sports", "ctx_a": "A woman runs.", "ctx_b": "she", "endings": ["jumps the hurdle.", "stops [title] and sits."], "label": "1"}
X
expect 0 "" "eval --task on two files" "$FL" eval --model "$T/m" --task boolq:"$T/boolq.jsonl" --task hellaswag:"$T/hs.jsonl" --json --per-item "$T/pi.jsonl" --threads 2
cp "$T/out" "$T/j.jsonl"
check "--json: one line per task, acc_norm only where lm-eval reports it" \
  "[ \"\$(js '$T/j.jsonl' '[(l[\"task\"], l[\"n\"], \"acc_norm\" in l, 0 <= l[\"acc\"] <= 1) for l in L]')\" = \"[('boolq', 3, False, True), ('hellaswag', 2, True, True)]\" ]"
check "--per-item: one line per item, a log-likelihood and a length per choice" \
  "[ \"\$(js '$T/pi.jsonl' '[(l[\"task\"], l[\"idx\"], l[\"label\"], len(l[\"loglik\"]), l[\"chars\"]) for l in L]')\" = \"[('boolq', 0, 1, 2, [2, 3]), ('boolq', 1, 0, 2, [2, 3]), ('boolq', 2, 1, 2, [2, 3]), ('hellaswag', 0, 0, 3, [18, 6, 24]), ('hellaswag', 1, 1, 2, [17, 16])]\" ]"
check "--per-item agrees with --json's acc and acc_norm" \
  "[ \"\$(js '$T/pi.jsonl' '\"%.6f %.6f\" % (sum(max(range(len(l[\"loglik\"])), key=lambda c: l[\"loglik\"][c]) == l[\"label\"] for l in L[:3]) / 3, sum(max(range(len(l[\"loglik\"])), key=lambda c: l[\"loglik\"][c] / l[\"chars\"][c]) == l[\"label\"] for l in L[3:]) / 2)')\" = \"\$(js '$T/j.jsonl' '\"%.6f %.6f\" % (L[0][\"acc\"], L[1][\"acc_norm\"])')\" ]"
expect 0 "" "--limit 1" "$FL" eval --model "$T/m" --task boolq:"$T/boolq.jsonl" --limit 1 --json --threads 2
check "... scores one item" "grep -q '\"n\": 1,' '$T/out'"
expect 0 "" "plain output" "$FL" eval --model "$T/m" --task hellaswag:"$T/hs.jsonl" --threads 2
check "... names the task and its accuracies" "grep -q '^hellaswag .*acc .*acc_norm' '$T/out'"
expect 0 "" "eval --help" "$FL" eval --help
check "... documents --task" "grep -q -- '--task NAME:FILE' '$T/out' && grep -q -- '--per-item' '$T/out'"

# malformed files and options: one line naming the file and the line
printf '%s\n%s\n' '{"question": "q", "passage": "p", "label": 0}' '{"passage": "p", "label": 0}' >"$T/bad1.jsonl"
expect 1 "bad1.jsonl:2: missing field 'question'" "a missing field" "$FL" eval --model "$T/m" --task boolq:"$T/bad1.jsonl"
printf '%s\n' '{"question": "q", "passage": "p", "label": 5}' >"$T/bad2.jsonl"
expect 1 "bad2.jsonl:1: label 5 out of range" "a label out of range" "$FL" eval --model "$T/m" --task boolq:"$T/bad2.jsonl"
printf '%s\n' '{"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": [], "label": 0}' >"$T/bad3.jsonl"
expect 1 "bad3.jsonl:1: field 'endings' is an empty list" "empty choices" "$FL" eval --model "$T/m" --task hellaswag:"$T/bad3.jsonl"
printf '%s\n%s\n' '{"text": "a b"}' '{"text": "a b"' >"$T/bad4.jsonl"
expect 1 "bad4.jsonl:2: not valid JSON" "bad JSON" "$FL" eval --model "$T/m" --task lambada:"$T/bad4.jsonl"
expect 1 "nothing.jsonl" "a missing file" "$FL" eval --model "$T/m" --task boolq:"$T/nothing.jsonl"
expect 1 "unknown format 'squad'" "an unknown format" "$FL" eval --model "$T/m" --task squad:"$T/boolq.jsonl"
expect 1 "not a corpus task" "a bare name that is no corpus task" "$FL" eval --model "$T/m" --task boolq
expect 2 "limit" "--limit 0" "$FL" eval --model "$T/m" --task boolq:"$T/boolq.jsonl" --limit 0
expect 1 "exceeds the model's context" "--window beyond the context" "$FL" eval --model "$T/m" --task boolq:"$T/boolq.jsonl" --window 100000
check "a failed run leaves no --per-item file" "! '$FL' eval --model '$T/m' --task boolq:'$T/bad2.jsonl' --per-item '$T/pi2.jsonl' 2>/dev/null && [ ! -e '$T/pi2.jsonl' ] && [ ! -e '$T/pi2.jsonl.tmp' ]"

# the corpus tasks, in a cache of our own (the corpora linked in)
REAL=${FL_CACHE:-$HOME/.cache/freelunch}
mkdir -p "$T/cache" && for f in "$REAL"/*; do [ "$(basename "$f")" = tasks ] || ln -s "$f" "$T/cache/"; done
expect 0 "" "data tasks" "$FL" data tasks --cache "$T/cache"
cp "$T/out" "$T/tasks.txt"
check "... builds both files with their sizes" "grep -q '^lambada-sotu *914 items' '$T/tasks.txt' && grep -q '^cloze-sotu *912 items' '$T/tasks.txt'"
sha256sum "$T/cache/tasks/"*.jsonl | cut -d' ' -f1 >"$T/sha1"
rm -rf "$T/cache/tasks"
expect 0 "" "eval --task builds a missing corpus task" "$FL" eval --model "$T/m" --task lambada-sotu --task cloze-sotu --limit 4 --json --cache "$T/cache" --threads 2
cp "$T/out" "$T/c.jsonl"
check "... the same bytes as data tasks" "sha256sum '$T/cache/tasks/'*.jsonl | cut -d' ' -f1 | cmp -s - '$T/sha1'"
check "... lambada-sotu gives acc and ppl, cloze-sotu acc and acc_norm" \
  "[ \"\$(js '$T/c.jsonl' '[(l[\"task\"], l[\"n\"], \"ppl\" in l, \"acc_norm\" in l) for l in L]')\" = \"[('lambada-sotu', 4, True, False), ('cloze-sotu', 4, False, True)]\" ]"
check "cloze-sotu: four choices, the label among them" \
  "[ \"\$(js '$T/cache/tasks/cloze-sotu.jsonl' 'all(len(l[\"choices\"]) == 4 and 0 <= l[\"label\"] < 4 for l in L) and len(set(l[\"label\"] for l in L)) == 4')\" = True ]"

# one cell: prune --eval-task; a study: the grid key, the results.csv columns
cell() { "$FL" prune --model "$T/m" --criterion magnitude --sparsity 0.5 --calib-samples 2 --seqlen 16 --eval sotu-test \
  --eval-windows 1 --drift-windows 0 --no-model --threads 2 --cache "$T/cache" "$@"; }
expect 0 "" "prune --eval-task" cell --out "$T/c1" --eval-task lambada-sotu --eval-task boolq:"$T/boolq.jsonl" --eval-task-limit 3
fj() { /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
check "freelunch.json: zero_shot per task, limited to 3 items" \
  "[ \"\$(fj '$T/c1/freelunch.json' 'sorted((k, v[\"n\"], \"ppl\" in v) for k, v in j[\"zero_shot\"].items())')\" = \"[('boolq', 3, False), ('lambada-sotu', 3, True)]\" ]"
expect 1 "unknown format 'squad'" "prune --eval-task with an unknown format: one line" cell --out "$T/c2" --eval-task squad:x
cat >"$T/grid.ini" <<EOF2
[grid]
reconstruct = none, sublayer
[fixed]
model           = $T/m
criterion       = magnitude
sparsity        = 0.5
calib-samples   = 2
seqlen          = 16
drift-windows   = 0
eval            = sotu-test
eval-windows    = 1
eval-task       = lambada-sotu, cloze-sotu, hellaswag:$T/hs.jsonl
eval-task-limit = 4
EOF2
FL_CACHE="$T/cache" "$FL" study --grid "$T/grid.ini" --out "$T/st" --threads 2 >"$T/st.log" 2>&1
check "study with eval-task exits 0" "[ $? -eq 0 ]"
col() { /usr/bin/python3 -c "import csv,sys; [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1" "$2"; }
check "results.csv: acc and acc_norm per task, the word perplexity, eval_task_limit" \
  "[ \$(col '$T/st/results.csv' acc_lambada_sotu | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' acc_norm_cloze_sotu | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' acc_norm_hellaswag | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' word_ppl_lambada_sotu | grep -c '^[0-9]') -eq 2 ] && [ \$(col '$T/st/results.csv' eval_task_limit | grep -c '^4\$') -eq 2 ] && [ -z \"\$(col '$T/st/results.csv' acc_boolq | tr -d '\\n')\" ]"
check "results.csv: acc_mean is the mean acc of the three tasks" \
  "/usr/bin/python3 -c \"import csv,sys; R=[x for x in csv.DictReader(open('$T/st/results.csv')) if x['role'] != 'dense']; sys.exit(not all(abs(float(r['acc_mean']) - (float(r['acc_lambada_sotu']) + float(r['acc_cloze_sotu']) + float(r['acc_hellaswag'])) / 3) < 1e-6 for r in R))\""
check "the report has the accuracy table beside perplexity" \
  "grep -q '^## Zero-shot accuracy' '$T/st/report.md' && grep -q '| criterion | reconstructor | ppl | .acc_hellaswag. | .acc_norm_hellaswag. | .acc_lambada_sotu. | .acc_cloze_sotu. | .acc_norm_cloze_sotu. | .acc_mean. |' '$T/st/report.md' && [ \$(grep -c '^| magnitude | ' '$T/st/report.md') -ge 2 ]"
# the dense reference: the unpruned model on the same tasks and items,
# as `freelunch eval --task` scores it
"$FL" eval --model "$T/m" --task lambada-sotu --task cloze-sotu --task hellaswag:"$T/hs.jsonl" --limit 4 --json --cache "$T/cache" --threads 2 >"$T/dense.jsonl" 2>"$T/dense.err"
check "the dense row: acc per task as freelunch eval --task gives it, and acc_mean" \
  "/usr/bin/python3 -c \"import csv,json,sys; D=[r for r in csv.DictReader(open('$T/st/results.csv')) if r['role'] == 'dense']; J={l['task']: l for l in map(json.loads, open('$T/dense.jsonl'))}; r=D[0]; ok = len(D) == 1 and r['status'] == 'ok' and all(abs(float(r['acc_' + k.replace('-', '_')]) - v['acc']) < 1e-9 for k, v in J.items()) and abs(float(r['acc_norm_hellaswag']) - J['hellaswag']['acc_norm']) < 1e-9 and abs(float(r['acc_mean']) - sum(v['acc'] for v in J.values()) / 3) < 1e-9 and r['eval_task_limit'] == '4'; sys.exit(not ok)\""
check "the report's accuracy table opens with the dense model" \
  "grep -q '^| \\*dense model\\* | – | \\*[0-9.]*\\* | \\*[0-9.]*\\* |' '$T/st/report.md'"
# tuning runs score on the selection split only: no zero-shot tasks (the
# corpus tasks are made of sotu-test), while the final runs have them
{ cat "$T/grid.ini"; printf '[tune]\nlr-scale = 1, 3\nselect   = sotu-val\n'; } >"$T/tune.ini"
FL_CACHE="$T/cache" "$FL" study --grid "$T/tune.ini" --out "$T/tu" --threads 2 >"$T/tu.log" 2>&1
check "a tuned study with eval-task exits 0" "[ $? -eq 0 ]"
check "... tuning rows have no accuracy, final and dense rows have it" \
  "/usr/bin/python3 -c \"import csv,sys; R=list(csv.DictReader(open('$T/tu/results.csv'))); T=[r for r in R if r['role'] == 'tune']; F=[r for r in R if r['role'] not in ('tune',)]; sys.exit(not (len(T) == 2 and len(F) == 3 and all(r['acc_lambada_sotu'] == '' for r in T) and all(r['acc_lambada_sotu'] != '' for r in F)))\""
expect 1 "squad" "a grid's eval-task with an unknown format: one error line" "$FL" study --grid "$T/grid.ini" --out "$T/st2" --set eval-task=squad:x --dry-run
exit $bad
