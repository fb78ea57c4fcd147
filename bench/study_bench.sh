#!/bin/sh
# Study throughput (issue 12, item 5): seconds per cell over a fixed
# 16-cell grid, with the cells' shared work off (--no-share: every cell
# tokenizes, collects statistics and prunes itself) and on (harness/share.h),
# in the same run, alternating: round 1 runs off then on with an empty
# share cache (the first cell of each pruning pass computes it), round 2
# off then on again with the entries in place. Per mode: the median of the
# cells' own wall_s (results.csv: the whole pipeline in the cell's process)
# and the study's wall time / 16 (process start-up and the runner
# included). Prints RESULT lines for bench/run.sh's summary:
#   RESULT study-throughput MODEL MODE cell_s=... study_s=...
#   RESULT study-throughput MODEL shared/unshared ratio=R target=2 higher=sharing-faster
# (R: median cell seconds off / on, cold cache; target: half the seconds).
#
#   BUILD                  where freelunch is (default build)
#   BENCH_STUDY_MODEL      micro (default: pretrained here, 30 steps) or tiny
#                          (the cache's models/tiny, built by the default study)
#   BENCH_STUDY_STREAM     the grid's prune-stream (default dense; sparse is the
#                          settings' default, where only none and the
#                          retraining baselines share their pruning pass)
#   BENCH_THREADS          threads (default: freelunch's, the physical cores)
BUILD=${BUILD:-build}
FL=$BUILD/freelunch
MODEL=${BENCH_STUDY_MODEL:-micro}
STREAM=${BENCH_STUDY_STREAM:-dense}
PY=/usr/bin/python3
[ -x "$FL" ] || { echo "study_bench: $FL is missing (make)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flstudy.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
TH=""
[ -n "${BENCH_THREADS:-}" ] && TH="--threads $BENCH_THREADS"

# a cache of our own: the corpora linked from the real one, share/ empty
SRC=${FL_CACHE:-$HOME/.cache/freelunch}
"$FL" data fetch >/dev/null 2>&1 || { echo "study_bench: freelunch data fetch failed"; exit 1; }
mkdir -p "$tmp/cache"
for f in "$SRC"/*; do case "$(basename "$f")" in share) ;; *) ln -s "$f" "$tmp/cache/$(basename "$f")" ;; esac; done
export FL_CACHE="$tmp/cache"

case $MODEL in
micro)
  "$FL" pretrain --preset micro --steps 30 --out "$tmp/m" $TH >"$tmp/m.log" 2>&1 || { echo "study_bench: micro pretraining failed"; tail -1 "$tmp/m.log"; exit 1; }
  M=$tmp/m; CALIB=8; WIN=8 ;;
tiny)
  M=$SRC/models/tiny; CALIB=32; WIN=40
  [ -f "$M/config.json" ] || { echo "study_bench: $M is missing (freelunch pretrain --preset tiny)"; exit 1; } ;;
*) echo "study_bench: BENCH_STUDY_MODEL is micro or tiny"; exit 1 ;;
esac

cat >"$tmp/grid.ini" <<EOF
; the study-throughput grid: 16 cells, 4 pruning passes of 4 cells each
[grid]
seed         = 0, 1
criterion    = wanda, sparsegpt
reconstruct  = none, sublayer, block, retrain:full
[fixed]
model         = $M
sparsity      = 0.5
calib-samples = $CALIB
eval          = sotu-test
eval-windows  = $WIN
prune-stream  = $STREAM
EOF

# study MODE DIR [options]: one study, its wall seconds into $tmp/DIR.wall
study() {
  mode=$1; dir=$2; shift 2
  t0=$(date +%s.%N)
  "$FL" study --grid "$tmp/grid.ini" --out "$tmp/$dir" $TH "$@" >"$tmp/$dir.log" 2>&1 || { echo "study_bench: the $mode study failed"; tail -3 "$tmp/$dir.log"; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }' >"$tmp/$dir.wall"
  echo "study_bench: $mode ($dir): $(cat "$tmp/$dir.wall") s for 16 cells"
}
study unshared off1 --no-share
study shared-cold on1
study unshared off2 --no-share
study shared-warm on2

$PY - "$tmp" "$MODEL-$STREAM" <<'EOF'
import csv, statistics, sys
tmp, model = sys.argv[1], sys.argv[2]
def cells(*dirs):
    v = []
    for d in dirs:
        rows = [r for r in csv.DictReader(open('%s/%s/results.csv' % (tmp, d))) if r.get('role') != 'dense']   # the dense reference row
        if len(rows) != 16 or any(r['status'] != 'ok' for r in rows):
            sys.exit('study_bench: %s: not 16 ok cells' % d)
        v += [float(r['wall_s']) for r in rows]
    return statistics.median(v)
def study(*dirs): return statistics.mean(float(open('%s/%s.wall' % (tmp, d)).read()) / 16 for d in dirs)
# the same results either way (also tests/cli_share.sh): ppl and masks per cell
ref = {r['cell_id']: (r['ppl'], r['mask_sha256']) for r in csv.DictReader(open(tmp + '/off1/results.csv'))}
for d in ('on1', 'off2', 'on2'):
    got = {r['cell_id']: (r['ppl'], r['mask_sha256']) for r in csv.DictReader(open('%s/%s/results.csv' % (tmp, d)))}
    if got != ref: sys.exit('study_bench: %s: perplexities or masks differ from the unshared run' % d)
off, cold, warm = cells('off1', 'off2'), cells('on1'), cells('on2')
print('RESULT study-throughput %s unshared cell_s=%.3f study_s=%.3f' % (model, off, study('off1', 'off2')))
print('RESULT study-throughput %s shared-cold cell_s=%.3f study_s=%.3f' % (model, cold, study('on1')))
print('RESULT study-throughput %s shared-warm cell_s=%.3f study_s=%.3f' % (model, warm, study('on2')))
print('RESULT study-throughput %s shared/unshared cold ratio=%.2f target=2 higher=sharing-faster' % (model, off / cold))
print('RESULT study-throughput %s shared/unshared warm ratio=%.2f higher=sharing-faster' % (model, off / warm))
EOF
