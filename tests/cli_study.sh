#!/bin/sh
# freelunch study end to end on a micro model: a small grid with two jobs,
# a failing cell that becomes a row, SIGKILL of the runner mid-grid and a
# resume that runs every cell exactly once, and clear errors for bad grids.
# Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
# data rows of a results.csv (every row starts with its quoted cell id; a
# multi-line message does not); the dense reference rows (role dense,
# one per model and evaluation, run before the cells) are not cells: rows and
# col leave them out, dcol reads them alone
rows() { /usr/bin/python3 -c "import csv,sys
try: print(sum(r.get('role') != 'dense' for r in csv.DictReader(open(sys.argv[1]))))
except Exception: print(0)" "$1"; }
col() { /usr/bin/python3 -c "import csv,sys,signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1" "$2"; }
dcol() { /usr/bin/python3 -c "import csv,sys,signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') == 'dense']" "$1" "$2"; }
cells() { ls "$1" | grep -vc '^dense-'; }

"$FL" pretrain --preset micro --steps 30 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }

# the [fixed] section both grids share: the micro model, cheap cells
fixed() {
  cat <<EOF
[fixed]
model         = $T/m
sparsity      = 0.5
calib-samples = 4
eval          = sotu-test
eval-windows  = 2
EOF
}

{ cat <<EOF
; a micro grid
[grid]
criterion   = magnitude, wanda
reconstruct = none, sublayer, block
EOF
fixed; } >"$T/grid.ini"

# dry run: the cells, nothing run
"$FL" study --grid "$T/grid.ini" --out "$T/out" --dry-run >"$T/dry.log" 2>&1
check "dry run lists 6 cells" "grep -q '^6 cells' '$T/dry.log'"
check "dry run writes nothing" "[ ! -e '$T/out/results.csv' ]"

# the grid, two jobs at a time
"$FL" study --grid "$T/grid.ini" --out "$T/out" --jobs 2 >"$T/run.log" 2>&1
check "study exits 0" "[ $? -eq 0 ]"
check "6 rows" "[ $(rows "$T/out/results.csv") -eq 6 ]"
check "every row ok" "[ \"\$(col '$T/out/results.csv' status | sort -u)\" = ok ]"
check "every row has a perplexity" "! col '$T/out/results.csv' ppl | grep -qv '^[0-9]'"
check "reconstruction rows have a working set" "[ \$(col '$T/out/results.csv' working_bytes | grep -cv '^0\$') -eq 4 ]"
check "settings the grid left out are their defaults, read back from freelunch.json" \
  "[ \"\$(col '$T/out/results.csv' calib | sort -u)\" = sotu-train ] && [ \"\$(col '$T/out/results.csv' pattern | sort -u)\" = row ] && [ \$(col '$T/out/results.csv' batch_size | grep -cx 2) -eq 4 ]"
check "machine and commit recorded" "col '$T/out/results.csv' machine | grep -q cores && [ -n \"\$(col '$T/out/results.csv' commit | sed -n 1p)\" ]"
# a results.csv from before masks were chosen apart from recovery: never resumed on
mkdir -p "$T/stale"
/usr/bin/python3 -c "
import csv,sys
r=list(csv.reader(open(sys.argv[1]))); k=r[0].index('mask_sha256')
for row in r[1:]: row[k]=''
csv.writer(open(sys.argv[2],'w',newline='')).writerows(r)" "$T/out/results.csv" "$T/stale/results.csv"
"$FL" study --grid "$T/grid.ini" --out "$T/stale" >"$T/stale.log" 2>&1
check "a study refuses to resume on rows without mask_sha256" "[ $? -ne 0 ] && grep -q 'chose masks inside each recovery unit' '$T/stale.log' && [ ! -d '$T/stale/cells' ]"
check "every row has its masks' SHA-256 and the default prune stream" \
  "[ \$(col '$T/out/results.csv' mask_sha256 | grep -cx '[0-9a-f]\{64\}') -eq 6 ] && [ \"\$(col '$T/out/results.csv' prune_stream | sort -u)\" = sparse ]"
check "each cell keeps freelunch.json, calib.bin and its log, no model" \
  "[ \$(cells '$T/out/cells') -eq 6 ] && [ \$(ls '$T/out'/cells/*/freelunch.json | wc -l) -eq 6 ] && [ \$(ls '$T/out'/cells/*/calib.bin | wc -l) -eq 6 ] && ! ls '$T/out'/cells/*/model.safetensors >/dev/null 2>&1"
check "the grid as run is saved" "grep -q 'reconstruct = none, sublayer, block' '$T/out/grid.ini'"
check "progress shows cells done of total and an ETA" "grep -q '^\[6/6\] done' '$T/run.log' && grep -q ETA '$T/run.log'"
check "plots drawn (PNG and SVG)" "[ \$(ls '$T/out'/plots/*.png | wc -l) -ge 5 ] && [ \$(ls '$T/out'/plots/*.svg | wc -l) -ge 5 ] && head -c 8 '$T/out/plots/mem_s0.5.png' | grep -q PNG"
check "report.md has the perplexity table and the verdicts" "grep -q '^## Perplexity' '$T/out/report.md' && grep -q '^## Claim 1' '$T/out/report.md' && grep -q '^- \*\*Claim 3' '$T/out/report.md' && grep -q '| sublayer |' '$T/out/report.md'"
check "report.html embeds its plots" "grep -q 'data:image/svg+xml;base64' '$T/out/report.html' && ! grep -q 'src=\"plots/' '$T/out/report.html'"
check "one dense reference row, run first, ok, named in the dry run" \
  "[ \$(dcol '$T/out/results.csv' status) = ok ] && [ \$(dcol '$T/out/results.csv' criterion) = dense ] && grep -q '^plus 1 dense reference' '$T/dry.log' && grep -q '^\[dense\] the unpruned model: ppl' '$T/run.log'"
"$FL" eval --model "$T/m" --split sotu-test --max-windows 2 --batch 4 --json >"$T/dense.json" 2>"$T/dense.err"
dp=$(/usr/bin/python3 -c "import json,sys; print('%.6f' % json.load(open(sys.argv[1]))['ppl'])" "$T/dense.json" 2>/dev/null)
check "the dense row's ppl is freelunch eval's on the same windows ($dp)" \
  "[ -n '$dp' ] && /usr/bin/python3 -c \"import sys; sys.exit(abs(float('\$(dcol '$T/out/results.csv' ppl)') - float('$dp')) > 1e-4 * float('$dp'))\""
check "every perplexity table and plot carries the dense model" \
  "grep -q '^| \*dense model\* |' '$T/out/report.md' && grep -q '(dense model [0-9.]*)' '$T/out/report.md' && grep -q 'dense reference row of the results' '$T/out/report.md' && grep -q \"title 'dense model (\" '$T/out/plots/bars_s0.5.gp' && grep -q \"title 'dense model (\" '$T/out/plots/mem_s0.5.gp'"
# report.html in a real browser: Debian's headless Chromium (make deps) driven
# by playwright-core (npm-installed once into the cache, staged then renamed);
# the full-page screenshot stays in the study directory as an artefact
PW_VERSION=1.65.1
pw="${FL_CACHE:-$HOME/.cache/freelunch}/node-browser"
if [ ! -f "$pw/node_modules/playwright-core/package.json" ]; then
  st="$pw.stage.$$"; rm -rf "$st"; mkdir -p "$st"
  npm install --prefix "$st" --no-audit --no-fund --silent "playwright-core@$PW_VERSION" >"$T/npm.log" 2>&1 && rm -rf "$pw" && mv "$st" "$pw" \
    || { rm -rf "$st"; cat "$T/npm.log"; }
fi
cp tests/oracle/report_browser.mjs "$pw/report_browser.mjs" 2>/dev/null
node "$pw/report_browser.mjs" "$(cd "$T/out" && pwd)/report.html" "$T/out/report.png" >"$T/browser.json" 2>"$T/browser.err"
check "headless Chromium renders report.html ($(head -c 300 "$T/browser.err"))" "[ -s '$T/browser.json' ]"
bq() { /usr/bin/python3 -c "import json,sys; print(eval(sys.argv[2], json.load(open(sys.argv[1]))))" "$T/browser.json" "$1" 2>/dev/null; }
nsvg=$(ls "$T/out"/plots/*.svg | wc -l)
check "in the browser every plot is an embedded image that decodes ($(bq 'f\"{decoded}/{images} of {figures} figures\"') for $nsvg SVGs)" \
  "[ \"\$(bq 'images == decoded == embedded == figures')\" = True ] && [ \"\$(bq 'images - thumbs')\" -eq $nsvg ]"
check "the summary shows one figure per claim ($(bq 'f\"{thumbs_in_summary} of {thumbs}\"'))" "[ \"\$(bq 'thumbs == thumbs_in_summary == 3')\" = True ]"
check "the page opens with the Summary, one screen long, naming the dense model and the three claims" \
  "[ \"\$(bq 'h2[0]')\" = Summary ] && [ \"\$(bq '0 <= summary_top and 0 < summary_height and summary_top + summary_height <= viewport')\" = True ] && [ \"\$(bq \"all(w in summary_text for w in ('Dense model', 'Claim 1', 'Claim 2', 'Claim 3'))\")\" = True ]"
check "no script error, nothing wider than the page, a full-page screenshot saved" \
  "[ \"\$(bq 'errors == [] and width <= 1280')\" = True ] && head -c 8 '$T/out/report.png' | grep -q PNG && [ \$(wc -c <'$T/out/report.png') -gt 50000 ]"
check "the dense row is on no Pareto front" "[ -z \"\$(dcol '$T/out/results.csv' pareto_mem)\" ]"
check "Pareto flags set on ok rows" "[ \$(col '$T/out/results.csv' pareto_mem | grep -c '^[01]\$') -eq 6 ]"

# again: nothing to do, nothing written twice
cp "$T/out/results.csv" "$T/before.csv"
"$FL" study --grid "$T/grid.ini" --out "$T/out" >"$T/again.log" 2>&1
check "a second run skips every cell" "grep -q '6 done before, 0 to run' '$T/again.log' && cmp -s '$T/before.csv' '$T/out/results.csv'"

# a failing cell (N:M that the widths do not allow) is a row, and the grid goes on
"$FL" study --grid "$T/grid.ini" --out "$T/out" --set sparsity=0.5,3:7 --set criterion=wanda --set reconstruct=none >"$T/fail.log" 2>&1
check "a grid with a failing cell exits 0" "[ $? -eq 0 ]"
check "the failed cell is a row with status error and the cell's message" \
  "[ $(rows "$T/out/results.csv") -eq 7 ] && col '$T/out/results.csv' status | grep -qx error && col '$T/out/results.csv' message | grep -q 'M=7 does not divide'"

# a diverging cell (absurd learning rate) is a row with status diverged
"$FL" study --grid "$T/grid.ini" --out "$T/out" --set criterion=wanda --set reconstruct=sublayer --set lr=1e12 >"$T/div.log" 2>&1
check "a diverged cell is a row with status diverged and its message" \
  "[ $(rows "$T/out/results.csv") -eq 8 ] && col '$T/out/results.csv' status | grep -qx diverged && col '$T/out/results.csv' message | grep -q 'reconstruction diverged at step'"

# SIGKILL the runner mid-grid, then resume: every cell exactly once
{ cat <<EOF
[grid]
criterion   = magnitude, wanda
reconstruct = none, sublayer
seed        = 0, 1
EOF
fixed; } >"$T/grid2.ini"
"$FL" study --grid "$T/grid2.ini" --out "$T/nested/k" >"$T/k1.log" 2>&1 &
pid=$!
i=0
while [ "$(rows "$T/nested/k/results.csv")" -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
r1=$(rows "$T/nested/k/results.csv")
check "killed mid-grid ($r1 of 8 rows written)" "[ $r1 -ge 2 ] && [ $r1 -lt 8 ]"
sleep 0.3
check "no cell outlives the runner" "! pgrep -f '$T/nested/k/cells' >/dev/null"
check "the file left by the kill is complete CSV" "col '$T/nested/k/results.csv' cell_id >/dev/null 2>&1"
cp "$T/nested/k/results.csv" "$T/k1.csv"
"$FL" study --grid "$T/grid2.ini" --out "$T/nested/k" >"$T/k2.log" 2>&1
check "resumed run exits 0" "[ $? -eq 0 ]"
check "resume ran only the missing cells" "grep -q \"$r1 done before, $((8 - r1)) to run\" '$T/k2.log'"
check "every cell exactly once" "[ $(rows "$T/nested/k/results.csv") -eq 8 ] && [ \$(col '$T/nested/k/results.csv' cell_id | sort -u | wc -l) -eq 8 ]"
check "rows written before the kill are kept as they were" \
  "[ \"\$(col '$T/k1.csv' finished_at)\" = \"\$(col '$T/nested/k/results.csv' finished_at | head -$r1)\" ]"

# lr-scale multiplies the preset's learning rate (the default study tunes it)
"$FL" prune --model "$T/m" --criterion wanda --sparsity 0.5 --reconstruct sublayer --calib-samples 4 --eval sotu-test --eval-windows 2 --no-model --out "$T/lr1" >/dev/null 2>&1
"$FL" prune --model "$T/m" --criterion wanda --sparsity 0.5 --reconstruct sublayer --calib-samples 4 --eval sotu-test --eval-windows 2 --lr-scale 3 --no-model --out "$T/lr3" >/dev/null 2>&1
check "--lr-scale 3 trains with three times the preset's learning rate, recorded" "/usr/bin/python3 -c \"
import json,sys; a=json.load(open('$T/lr1/freelunch.json'))['cell']; b=json.load(open('$T/lr3/freelunch.json'))['cell']
sys.exit(not (abs(b['lr'] / a['lr'] - 3) < 1e-6 and b['lr_scale'] == 3 and 'lr_scale' not in a))\""

# [tune]: each cell that trains runs one sub-cell per learning rate, scored
# on sotu-val only, then its final cell with the best; none runs once
{ cat <<EOF
[grid]
criterion   = magnitude, wanda
reconstruct = none, sublayer
EOF
fixed; printf '[tune]\nlr = 1e-3, 3e-2\n'; } >"$T/tune.ini"
# the tune rows' argmin per cell against the final rows: prints what is wrong, or OK
tune_check() {
  /usr/bin/python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
bad = []
tune = [r for r in rows if r['role'] == 'tune']
final = [r for r in rows if r['role'] == 'final']
if len(tune) != 4 or len(final) != 4: bad.append('roles: %d tune, %d final' % (len(tune), len(final)))
for r in tune:
    if r['reconstruct'] != 'sublayer': bad.append('a tune row for ' + r['reconstruct'])
    if r['status'] != 'ok' or r['eval_set'] != 'sotu-val' or r['ppl_sotu_test'] or 'test' in r['ppl_all']:
        bad.append('tune row %s: %s, evaluated on %s' % (r['cell_id'], r['status'], r['ppl_all']))
    if r['pareto_mem'] != '': bad.append('a tune row on a Pareto front')
for r in final:
    if r['status'] != 'ok' or r['eval_set'] != 'sotu-test' or not r['ppl_sotu_test'] or 'sotu-val' in r['ppl_all']:
        bad.append('final row %s: %s, evaluated on %s' % (r['cell_id'], r['status'], r['ppl_all']))
    if r['pareto_mem'] not in ('0', '1'): bad.append('final row without its Pareto flag')
    subs = [t for t in tune if t['criterion'] == r['criterion']]
    if r['reconstruct'] == 'none':
        if r['lr']: bad.append('none got an lr')
        continue
    if len(subs) != 2: bad.append('%d sub-cells for %s' % (len(subs), r['criterion'])); continue
    best = min(subs, key=lambda t: float(t['ppl']))   # ties: the first, as min keeps it
    if float(r['lr']) != float(best['lr']): bad.append('%s: final lr %s, argmin %s' % (r['criterion'], r['lr'], best['lr']))
    if r['mask_sha256'] != best['mask_sha256'] or r['recon_loss_after'] != best['recon_loss_after']:
        bad.append('%s: the final run is not the chosen sub-cell run again' % r['criterion'])
print('; '.join(bad) or 'OK')
PY
}
"$FL" study --grid "$T/tune.ini" --out "$T/tune" --dry-run >"$T/tdry.log" 2>&1
check "tuned dry run: 8 cells, 4 of them sub-cells, listed with their role" \
  "grep -q '^8 cells' '$T/tdry.log' && grep -q '4 final cells, 4 tuning sub-cells' '$T/tdry.log' && [ \$(grep -c '^[0-9]* *[0-9a-f]\{12\} tune ' '$T/tdry.log') -eq 4 ]"
"$FL" study --grid "$T/tune.ini" --out "$T/tune" --jobs 2 >"$T/trun.log" 2>&1
check "tuned study exits 0 with 8 rows" "[ $? -eq 0 ] && [ $(rows "$T/tune/results.csv") -eq 8 ]"
msg=$(tune_check "$T/tune/results.csv")
check "tune rows on sotu-val only; finals carry the argmin lr, on the test split, and rerun the chosen sub-cell exactly ($msg)" "[ \"\$msg\" = OK ]"
check "a sub-cell's command line evaluates the selection split alone" \
  "for l in '$T'/tune/cells/*_tune*/log; do head -1 \"\$l\" | grep -q -- '--eval sotu-val --' && ! head -1 \"\$l\" | grep -q test || exit 1; done"
check "progress names the sub-cell and the chosen value" \
  "grep -q 'tune 2/2 of cell [0-9a-f]\{12\}, on sotu-val only' '$T/trun.log' && grep -q 'lr=.* chosen on sotu-val' '$T/trun.log'"
check "the report counts the final cells only" "grep -q ', 4 cells: 4 ok' '$T/tune/report.md'"
check "grid.ini keeps [tune]" "grep -q '^\[tune\]' '$T/tune/grid.ini' && grep -q '^select = sotu-val' '$T/tune/grid.ini'"
# killed mid-study and resumed: every row once, the finals still the argmin
"$FL" study --grid "$T/tune.ini" --out "$T/tk" >"$T/tk1.log" 2>&1 &
pid=$!
i=0
while [ "$(rows "$T/tk/results.csv")" -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
r1=$(rows "$T/tk/results.csv")
check "tuned study killed mid-grid ($r1 of 8 rows written)" "[ $r1 -ge 2 ] && [ $r1 -lt 8 ]"
"$FL" study --grid "$T/tune.ini" --out "$T/tk" >"$T/tk2.log" 2>&1
check "tuned resume ran only the missing cells" "[ $? -eq 0 ] && grep -q \"$r1 done before, $((8 - r1)) to run\" '$T/tk2.log'"
msg=$(tune_check "$T/tk/results.csv")
check "after the resume every row exactly once, the finals the argmin ($msg)" \
  "[ $(rows "$T/tk/results.csv") -eq 8 ] && [ \$(col '$T/tk/results.csv' cell_id | sort -u | wc -l) -eq 8 ] && [ \"\$msg\" = OK ]"
check "the same rows as the uninterrupted study" \
  "[ \"\$(col '$T/tk/results.csv' cell_id | sort)\" = \"\$(col '$T/tune/results.csv' cell_id | sort)\" ]"
# every sub-cell diverges: the final is a failed row that says so, and nothing runs it
"$FL" study --grid "$T/tune.ini" --out "$T/tdiv" --set criterion=wanda --set reconstruct=sublayer --set lr=1e12,1e13 >"$T/tdiv.log" 2>&1
check "a final whose sub-cells all failed is an error row naming them, without a run" \
  "[ $? -eq 0 ] && [ \"\$(col '$T/tdiv/results.csv' role | tr '\n' ' ')\" = 'tune tune final ' ] && [ \"\$(col '$T/tdiv/results.csv' status | tr '\n' ' ')\" = 'diverged diverged error ' ] && col '$T/tdiv/results.csv' message | grep -q 'tuning: none of its 2 sub-cells finished ok on sotu-val' && [ \$(cells '$T/tdiv/cells') -eq 2 ]"
# refusals: one line naming the grid file
{ cat "$T/tune.ini"; echo "select = sotu-test"; } >"$T/tbad1.ini"
"$FL" study --grid "$T/tbad1.ini" --out "$T/bad" --dry-run >"$T/tb1.log" 2>&1; rc=$?
check "[tune] select = sotu-test: exit 1, one line naming the file" \
  "[ $rc -eq 1 ] && [ \$(wc -l <'$T/tb1.log') -eq 1 ] && grep -q 'tbad1.ini: \[tune\] select = sotu-test: a test split never chooses' '$T/tb1.log'"
"$FL" study --grid "$T/tune.ini" --out "$T/bad" --set eval=sotu-test,sotu-val --dry-run >"$T/tb2.log" 2>&1; rc=$?
check "[tune] select that is an eval set: exit 1, one line" \
  "[ $rc -eq 1 ] && [ \$(wc -l <'$T/tb2.log') -eq 1 ] && grep -q 'tune.ini: \[tune\] select = sotu-val is also an evaluation set' '$T/tb2.log'"

# --keep-models keeps the pruned model, and it loads
"$FL" study --grid "$T/grid.ini" --out "$T/keep" --set criterion=wanda --set reconstruct=none --keep-models >"$T/keep.log" 2>&1
check "--keep-models keeps a model that loads" "\"$FL\" info --model \"\$(ls -d '$T/keep'/cells/* | grep -v /dense-)\" >/dev/null 2>&1"

# one runner per results directory
"$FL" study --grid "$T/grid2.ini" --out "$T/lock" --set seed=0,1,2,3,4,5 >"$T/lock1.log" 2>&1 &
pid=$!
i=0
while [ ! -e "$T/lock/grid.ini" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
"$FL" study --grid "$T/grid2.ini" --out "$T/lock" >"$T/lock2.log" 2>&1; rc=$?
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "a second runner on the same directory is refused" "[ $rc -eq 1 ] && grep -q 'another study is running' '$T/lock2.log'"

# bad input: one line naming the problem, non-zero exit, nothing written
printf '[grid]\ncriterion = wanda, wandx\nsparsity = 0.5\n' >"$T/bad1.ini"
"$FL" study --grid "$T/bad1.ini" --out "$T/bad" >"$T/b1.log" 2>&1; rc=$?
check "unknown criterion: exit 1, one line naming the file, the value and the valid ones" \
  "[ $rc -eq 1 ] && [ \$(wc -l <'$T/b1.log') -eq 1 ] && grep -q \"bad1.ini: key 'criterion': unknown criterion 'wandx' (valid: magnitude\" '$T/b1.log'"
printf '[grid]\ncriterion = wanda\nsparsity = 0.5\nlearning-rate = 1\n' >"$T/bad2.ini"
"$FL" study --grid "$T/bad2.ini" --out "$T/bad" >"$T/b2.log" 2>&1; rc=$?
check "unknown key: exit 1, one line listing the valid keys" \
  "[ $rc -eq 1 ] && [ \$(wc -l <'$T/b2.log') -eq 1 ] && grep -q \"unknown key 'learning-rate' (valid: model, criterion\" '$T/b2.log'"
printf '[grid]\ncriterion = wanda\nsparsity = 0.5\n[fixed\n' >"$T/bad3.ini"
"$FL" study --grid "$T/bad3.ini" --out "$T/bad" >"$T/b3.log" 2>&1; rc=$?
check "malformed grid: exit 1, one line with the line number" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/b3.log') -eq 1 ] && grep -q 'bad3.ini: line 4' '$T/b3.log'"
"$FL" study --set 'reconstruct=none,blockz' --out "$T/bad" >"$T/b4.log" 2>&1; rc=$?
check "unknown reconstructor via --set: exit 1, one line" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/b4.log') -eq 1 ] && grep -q \"unknown reconstructor 'blockz'\" '$T/b4.log'"
check "no results directory made by bad input" "[ ! -e '$T/bad' ]"
# grids that once slipped past the checks
"$FL" study --grid "$T" --out "$T/bad" --dry-run >"$T/b6.log" 2>&1; rc=$?
check "--grid DIR: exit 1, one line" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/b6.log') -eq 1 ] && grep -q \"$T: is a directory\" '$T/b6.log'"
# 256^8 = 2^64 cells (once wrapped to '0 cells', exit 0) and 128^9 = 2^63 (once a crash)
big() { printf '[grid]\ncriterion = wanda\nsparsity = 0.5\n'; for k in $2; do echo "$k = $(seq -s, 1 "$1")"; done; }
big 256 "epochs batch-size grad-accum calib-samples lr seed eval-windows threads" >"$T/big1.ini"
big 128 "epochs batch-size grad-accum calib-samples weight-decay seed eval-windows threads lr" >"$T/big2.ini"
for b in big1 big2; do
  "$FL" study --grid "$T/$b.ini" --out "$T/bad" --dry-run >"$T/$b.log" 2>&1; rc=$?
  check "$b.ini: more cells than the limit: exit 1, one line" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/$b.log') -eq 1 ] && grep -q '$b.ini: more than 1000000 cells' '$T/$b.log'"
done
# 60 seeds and 30 learning rates: lines longer than inih's buffer
{ printf '[grid]\ncriterion = wanda\nsparsity = 0.5\n'; echo "seed = $(seq -s ', ' 0 59)"; echo "lr = $(seq -s ', ' 1 30 | sed 's/\([0-9][0-9]*\)/\1e-4/g')"; } >"$T/long.ini"
"$FL" study --grid "$T/long.ini" --out "$T/bad" --dry-run >"$T/long.log" 2>&1
check "a grid of 200+ character lines: 1800 cells" "grep -q '^1800 cells' '$T/long.log'"
{ printf '[grid]\ncriterion = wanda\nsparsity = 0.5\n'; printf '%0300d = 1\n' 0; } >"$T/long2.ini"
"$FL" study --grid "$T/long2.ini" --out "$T/bad" --dry-run >"$T/long2.log" 2>&1; rc=$?
check "a line too long to read: exit 1, one line naming the file and line" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/long2.log') -eq 1 ] && grep -q 'long2.ini: line 4: too long' '$T/long2.log'"
# numbers prune would refuse are refused by the grid too
for v in "seed = 1e3" "epochs = 0x10" "threads = 99999999999" "lr = 1e300" "lr = inf"; do
  printf '[grid]\ncriterion = wanda\nsparsity = 0.5\n%s\n' "$v" >"$T/num.ini"
  "$FL" study --grid "$T/num.ini" --out "$T/bad" --dry-run >"$T/num.log" 2>&1; rc=$?
  check "grid '$v': exit 1, one line" "[ $rc -eq 1 ] && [ \$(wc -l <'$T/num.log') -eq 1 ] && grep -q \"num.ini: key '${v%% *}': '${v##* }' is not\" '$T/num.log'"
done
printf 'not,our,header\n' >"$T/other.csv"; mkdir -p "$T/o2"; cp "$T/other.csv" "$T/o2/results.csv"
"$FL" study --grid "$T/grid.ini" --out "$T/o2" >"$T/b5.log" 2>&1; rc=$?
check "a foreign results.csv is refused, untouched" "[ $rc -eq 1 ] && grep -q 'o2/results.csv: not a freelunch results file' '$T/b5.log' && cmp -s '$T/other.csv' '$T/o2/results.csv'"
for g in grids/*.ini; do
  "$FL" study --grid "$g" --dry-run --out "$T/dry-$(basename "$g")" >"$T/g.log" 2>&1 && grep -q ' cells (' "$T/g.log" && ok "example grid $g parses" || notok "example grid $g: $(tail -1 "$T/g.log")"
done
"$FL" study --help | grep -q -- '--dry-run' && ok "study --help" || notok "study --help"
echo "# $n checks"
exit $bad
