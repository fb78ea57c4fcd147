#!/bin/sh
# make bench: speed and memory benchmarks of freelunch, with PyTorch and the
# machine's own sgemm peak measured in the same run, closing with a summary
# of every ratio against its target (PASS / BELOW-TARGET). Missing a target
# never fails; a benchmark that crashes does (exit 1).
#
#   BUILD            where the bench binaries are (default build)
#   BENCH_THREADS    threads for freelunch and PyTorch (default: physical cores)
#   BENCH_BACKENDS   GEMM backends to run (default "openblas onednn auto";
#                    bench_gemm: "openblas onednn" unless this is set)
#   BENCH_SECONDS    timed seconds per speed case and side (default 6)
#   BENCH_ROUNDS     alternating freelunch/PyTorch rounds per case (default 2)
#   BENCH_QUICK=1    a fast smoke run (1 s, 3 reps); figures are rougher
#   BENCH_OTHERS=0   skip the other modules' benchmarks (stage 4)
#   BENCH_OTHER_TIMEOUT  seconds allowed to each other benchmark (default 900)
#   BENCH_FULL=1     run bench_criteria in full (else with --quick: it takes
#                    over 5 minutes in full on 2 cores)
#   BENCH_STUDY=0    skip the study-throughput case (stage 5; its own
#                    settings: bench/study_bench.sh)
#
# Stages: (1) GEMM peak and linear-layer GEMM shapes per backend
# (bench_gemm), (2b, after 2) causal attention alone at T = 256, 1024, 2048: the
# O(T) kernel vs the reference kernel it replaced (bench_attn) and vs PyTorch
# (torch_bench.py, one fresh process per length so each peak is its own),
# (2c, after 2b) GEMM dispatch by shape (--backend auto) against both forced
# backends, interleaved step by step on every speed case (its ratio is in
# the summary's other benchmarks: auto / the better forced backend),
# (2) forward+backward speed per case, freelunch (bench_speed,
# every backend) and PyTorch (bench/torch_bench.py, Debian's
# /usr/bin/python3) in alternating rounds for each case, each PyTorch run in
# a fresh process, (3) peak tracked memory of one block (bench_mem), (4) every other
# $BUILD/bench/bench_* binary (other modules' benchmarks: tokenizer,
# criteria, ...) with its own defaults, (5) summary: every ratio against its
# target. Another benchmark's "RESULT ... ratio=R ... target=T higher=WHAT"
# lines are summarised generically (ratio >= target passes; higher= says
# what a ratio above 1 means, since each benchmark defines its own ratio).
#
#   sh bench/run.sh --summary LOG   prints the summary of a saved log again
#                    (every run keeps its log in $BUILD/bench/results.log)
BUILD=${BUILD:-build}
B=$BUILD/bench
PY=/usr/bin/python3
HERE=$(dirname "$0")
if [ "${1:-}" = --summary ]; then
  [ -n "${2:-}" ] && [ -r "$2" ] || { echo "bench: --summary needs a readable log file${2:+: $2}" >&2; exit 1; }
  awk -v backends="${BENCH_BACKENDS:-openblas onednn auto}" -f "$HERE/summary.awk" "$2"
  exit $?
fi
CASES="llama-small-block llama-small-model gpt2-small-block gpt2-small-model gpt2-124m-block tiny-pretrain"

# Settings of our own benchmarks; passed to them alone, so the other
# benchmarks keep their own defaults unless the caller set these.
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  S=${BENCH_SECONDS:-1}; RMIN=${BENCH_MIN_REPS:-3}; RMAX=${BENCH_MAX_REPS:-5}
  BENCH_SECONDS=$S; export BENCH_SECONDS   # the other benchmarks shorten too
else
  S=${BENCH_SECONDS:-6}; RMIN=${BENCH_MIN_REPS:-5}; RMAX=${BENCH_MAX_REPS:-15}
fi
ROUNDS=${BENCH_ROUNDS:-2}
OWN="BENCH_SECONDS=$S BENCH_MIN_REPS=$RMIN BENCH_MAX_REPS=$RMAX"
[ -n "${BENCH_THREADS:-}" ] && export BENCH_THREADS
[ -n "${BENCH_BACKENDS:-}" ] && export BENCH_BACKENDS

for b in bench_gemm bench_speed bench_mem bench_attn; do
  [ -x "$B/$b" ] || { echo "bench: $B/$b is missing (build it with make bench)"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flbench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
log=$tmp/results
: >"$log"
failed=""
t_start=$(date +%s)

# --- foreign CPU load: how much of the machine other processes used ------
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat 2>/dev/null || echo 0; }
# CPU seconds used by this shell's finished children. `times` must run in
# this shell itself (inside $(...) it would report a subshell's children).
child_cpu() {
  times >"$tmp/times"
  cpu=$(awk 'NR==2{ s=0; for (i=1;i<=2;i++){ split($i,a,"m"); sub("s","",a[2]); s+=a[1]*60+a[2] } print s }' "$tmp/times")
}
mark() { m_busy=$(busy_jiffies); child_cpu; m_cpu=$cpu; m_wall=$(date +%s.%N); }
# load_report <stage>: prints and logs the share of all CPUs that processes
# other than the benchmarks used since the last mark.
load_report() {
  b1=$(busy_jiffies); child_cpu; c1=$cpu; w1=$(date +%s.%N)
  awk -v b0="$m_busy" -v b1="$b1" -v c0="$m_cpu" -v c1="$c1" -v w0="$m_wall" -v w1="$w1" \
      -v hz="$HZ" -v n="$NCPU" -v st="$1" 'BEGIN{
        wall = w1 - w0; if (wall <= 0) wall = 1e-9
        f = ((b1 - b0) / hz - (c1 - c0)) / (wall * n) * 100; if (f < 0) f = 0
        printf "LOAD %s foreign=%.1f wall=%.1f\n", st, f, wall }' | tee -a "$log"
}

run() {   # run <label> <command...>: output to the terminal (as it comes) and the log
  label=$1; shift
  { "$@" 2>&1; echo $? >"$tmp/rc"; } | tee "$tmp/out"
  rc=$(cat "$tmp/rc"); cat "$tmp/out" >>"$log"
  [ "$rc" -ne 0 ] && { echo "bench: $label exited with status $rc"; failed="$failed $label"; }
  return 0
}

echo "== machine"
model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "cpu: $model; $NCPU logical CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "settings: about $S s timed per case and side, $RMIN..$RMAX reps, median of reps after 2 warm-up steps"

echo "== 1. GEMM: sgemm peak and linear-layer shapes, per backend (GFLOP/s)"
mark; run bench_gemm env $OWN "$B/bench_gemm"; load_report gemm
NT=$(awk '/^THREADS /{print $2; exit}' "$log")
[ -n "$NT" ] || NT=1

have_torch=1
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  have_torch=0
  echo "bench: $PY cannot import torch (apt-get install python3-torch); PyTorch ratios are skipped"
fi

echo "== 2. forward+backward speed, freelunch vs PyTorch, $NT threads each, $ROUNDS alternating rounds"
# Each case alternates freelunch and PyTorch for ROUNDS rounds of S/ROUNDS
# seconds, so a load that comes and goes (a shared machine) hits both
# sides alike; the summary takes the median over every timed step of all
# rounds (the times= field).
mark
RS=$(awk -v s="$S" -v r="$ROUNDS" 'BEGIN{ printf "%g", s / r }')
RMIN_R=$(( (RMIN + ROUNDS - 1) / ROUNDS )); RMAX_R=$(( (RMAX + ROUNDS - 1) / ROUNDS ))
for c in $CASES; do
  r=1
  while [ $r -le $ROUNDS ]; do
    run "bench_speed $c" env BENCH_SECONDS=$RS BENCH_MIN_REPS=$RMIN_R BENCH_MAX_REPS=$RMAX_R "$B/bench_speed" "$c"
    [ $have_torch = 1 ] && run "torch_bench $c" "$PY" "$HERE/torch_bench.py" --threads "$NT" \
        --seconds "$RS" --min-reps "$RMIN_R" --max-reps "$RMAX_R" "$c"
    r=$((r + 1))
  done
done
load_report speed

echo "== 2b. causal attention alone, fwd+bwd (B=2, 12 heads of 64): O(T) kernel, reference kernel, PyTorch"
mark
for c in attn-T256 attn-T1024 attn-T2048; do
  run "bench_attn $c" env $OWN "$B/bench_attn" "$c"
  [ $have_torch = 1 ] && run "torch_bench $c" "$PY" "$HERE/torch_bench.py" --threads "$NT" \
      --seconds "$S" --min-reps "$RMIN" --max-reps "$RMAX" "$c"
done
load_report attn

echo "== 2c. GEMM dispatch by shape: auto vs both forced backends, step by step in turn (bench_speed --side-by-side)"
# One process per case; the three sides rotate every round, so the ratios
# are side by side under the same load. Auto reads its choices from the
# cache directory and times what it lacks during the warm-up steps.
mark
for c in $CASES; do run "bench_speed --side-by-side $c" env $OWN "$B/bench_speed" --side-by-side "$c"; done
load_report dispatch

echo "== 3. peak tracked memory of one block's forward+backward (+ grads, AdamW moments)"
mark; run bench_mem env $OWN "$B/bench_mem"; load_report mem

others=""
[ "${BENCH_OTHERS:-1}" = 0 ] || for b in "$B"/bench_*; do
  n=$(basename "$b")
  case $n in bench_gemm|bench_speed|bench_mem|bench_attn|*.*) continue ;; esac
  # only binaries whose source is still in bench/ (no stale leftovers)
  [ -f "$b" ] && [ -x "$b" ] && [ -f "$HERE/$n.c" ] && others="$others $n"
done
if [ -n "$others" ]; then
  echo "== 4. other benchmarks:$others"
  mark
  for n in $others; do
    echo "-- $n"
    args=""
    [ $n = bench_criteria ] && [ "${BENCH_FULL:-0}" != 1 ] && args=--quick
    # a hung benchmark (say, a network fetch) must not hang make bench
    to=${BENCH_OTHER_TIMEOUT:-900}
    # HF's JS encoder needs about a minute of CPU on one of its cases
    [ $n = bench_tokenizer ] && to=${BENCH_OTHER_TIMEOUT:-1800}
    run "$n" timeout "$to" "$B/$n" $args
  done
  load_report others
fi

# --- 5. study throughput: seconds per cell, shared work off vs on ---------
if [ "${BENCH_STUDY:-1}" != 0 ]; then
  echo "== 5. study throughput: a 16-cell grid with the cells' shared work off and on (bench/study_bench.sh)"
  mark; run study_bench sh "$HERE/study_bench.sh"; load_report study
fi

t_end=$(date +%s)
echo
echo "== summary ($NT threads; speed = median step time; ratios > 1 mean freelunch is faster; $((t_end - t_start)) s in all)"
awk -v backends="${BENCH_BACKENDS:-openblas onednn auto}" -f "$HERE/summary.awk" "$log"
cp "$log" "$B/results.log.tmp" && mv "$B/results.log.tmp" "$B/results.log" &&
  echo "(the log: $B/results.log; sh bench/run.sh --summary $B/results.log prints this again)"

if [ -n "$failed" ]; then
  echo "bench: failed:$failed"
  exit 1
fi
exit 0
