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
# target. Another benchmark's "RESULT ... ratio=R ... target=T" lines are
# summarised generically (ratio >= target passes).
BUILD=${BUILD:-build}
B=$BUILD/bench
PY=/usr/bin/python3
HERE=$(dirname "$0")
CASES="llama-small-block llama-small-model gpt2-small-block gpt2-small-model gpt2-124m-block"

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
awk -v backends="${BENCH_BACKENDS:-openblas onednn auto}" '
function kv(s,   i, p) {   # fields key=value of the current line into V[]
  delete V
  for (i = 1; i <= NF; i++) if ((p = index($i, "=")) > 0) V[substr($i, 1, p - 1)] = substr($i, p + 1)
}
function verdict(x, t) { return x >= t ? "PASS" : "BELOW-TARGET" }
function addtimes(key, list,   n, a, i) {   # append the ms of every step to T[key]
  n = split(list, a, ",")
  for (i = 1; i <= n; i++) T[key, ++TN[key]] = a[i] + 0
}
function median(key,   n, i, j, x, b) {     # median of T[key] (insertion sort; a few dozen values)
  n = TN[key]; if (n == 0) return 0
  for (i = 1; i <= n; i++) { x = T[key, i]; for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
  return n % 2 ? b[(n + 1) / 2] : 0.5 * (b[n / 2] + b[n / 2 + 1])
}
/^RESULT speed / { kv(); k = $3 " " $4; addtimes("fl " k, V["times"]); tokens[k] = V["tokens"]; gflop[k] = V["gflop"] }
/^RESULT torch / { kv(); addtimes("pt " $3, V["times"]); ptok[$3] = V["tokens"] }
/^RESULT peak /  { kv(); pk[$3 " " $4] = V["gflops"]; if (V["gflops"] + 0 > peak) { peak = V["gflops"] + 0; peakwho = $3 " " $4 } }
/^RESULT gemm /  { kv(); gm[$3 " " $4 " " $5] = V["gflops"]; if (!($4 in seen)) { seen[$4] = 1; shapes[++ns] = $4 } }
/^RESULT mem /   { kv(); mem[++nm] = $3; mm[$3] = V["measured"]; ma[$3] = V["analytic"]; mr[$3] = V["ratio"] }
/^LOAD /         { kv(); load[$2] = V["foreign"] }
/^RESULT attn /  { kv(); k = $3 " " $4; if (!(k in ams) || V["ms"] + 0 < ams[k]) ams[k] = V["ms"] + 0; apk[k] = V["peak"] }
/^RESULT torch-attn / { kv(); tams[$3] = V["ms"] + 0; tapk[$3] = V["peak"] }
/^RESULT / && $2 !~ /^(speed|torch|peak|gemm|mem|attn|torch-attn)$/ && / ratio=/ {
  kv(); lab = ""
  for (i = 2; i <= NF && index($i, "=") == 0; i++) lab = lab (lab == "" ? "" : " ") $i
  ol[++no] = lab; orat[no] = V["ratio"]
  otgt[no] = ("target" in V) ? V["target"] : ($2 == "sparsegpt-torch" ? 1 : "")   # bench_criteria.c: target >= 1x
}
END {
  for (k in tokens) { m = median("fl " k); if (m > 0) { fl[k] = sprintf("%.1f", tokens[k] / m * 1e3); gf[k] = sprintf("%.1f", gflop[k] / m * 1e3) } }
  for (k in ptok) { m = median("pt " k); if (m > 0) pt[k] = sprintf("%.1f", ptok[k] / m * 1e3) }
  nb = split(backends, be, /[ ,]+/)
  nc = split("llama-small-block llama-small-model gpt2-small-block gpt2-small-model gpt2-124m-block", cs, " ")
  # ceiling: the fl/pt ratio freelunch would reach running every GEMM FLOP
  # of the step (fl_flops) at the sgemm peak of this run and nothing else, i.e.
  # peak / (GEMM FLOPs per step / PyTorch step time).
  fmt = "%-34s %-9s %12s %12s %9s %9s %9s  %s\n"
  printf fmt, "speed: fwd+bwd tokens/s", "backend", "freelunch", "pytorch", "fl/pt", "ceiling", "target", "verdict"
  for (i = 1; i <= nc; i++) for (j = 1; j <= nb; j++) {
    k = be[j] " " cs[i]
    if (!(k in fl)) continue
    tgt = cs[i] ~ /124m/ ? 1 : 2
    if (cs[i] in pt && pt[cs[i]] > 0) {
      r = fl[k] / pt[cs[i]]
      ceil_ = peak > 0 ? sprintf("%.2fx", peak / (gflop[k] * pt[cs[i]] / tokens[k])) : "n/a"
      printf fmt, cs[i], be[j], fl[k], pt[cs[i]], sprintf("%.2fx", r), ceil_, sprintf(">=%dx", tgt), verdict(r, tgt)
    } else printf fmt, cs[i], be[j], fl[k], "n/a", "n/a", "n/a", sprintf(">=%dx", tgt), "NO-PYTORCH"
  }
  printf "  ceiling = the fl/pt freelunch would reach doing only its GEMM FLOPs, all at the sgemm peak below\n\n"
  fmt2 = "%-34s %-9s %12s %12s %9s %9s  %s\n"
  printf fmt2, "GEMM efficiency", "backend", "GFLOP/s", "peak", "share", "target", "verdict"
  for (j = 1; j <= nb; j++) {
    k = be[j] " gpt2-124m-block"
    if (!(k in gf) || peak <= 0) continue
    r = gf[k] / peak
    printf fmt2, "d=768 block fwd+bwd (GEMM FLOPs)", be[j], gf[k], sprintf("%.1f", peak), sprintf("%.1f%%", 100 * r), ">=50%", verdict(r, 0.5)
  }
  if (peak > 0) printf "  peak = best large sgemm of the run: %s; per backend:", peakwho
  for (k in pk) printf " %s %s", k, pk[k]
  printf "\n\n"
  if (nb > 1) {
    printf "%-34s %12s %12s %12s\n", "backends side by side", be[1], be[2], be[2] "/" be[1]
    for (i = 1; i <= nc; i++) {
      a = fl[be[1] " " cs[i]]; b = fl[be[2] " " cs[i]]
      if (a > 0 && b > 0) printf "%-34s %12s %12s %11.2fx\n", cs[i] " tok/s", a, b, b / a
    }
    for (s = 1; s <= ns; s++) {
      split("fwd dx dw", wh, " ")
      for (w = 1; w <= 3; w++) {
        a = gm[be[1] " " shapes[s] " " wh[w]]; b = gm[be[2] " " shapes[s] " " wh[w]]
        if (a > 0 && b > 0) printf "%-34s %12s %12s %11.2fx\n", "gemm " shapes[s] " " wh[w] " GFLOP/s", a, b, b / a
      }
    }
    printf "\n"
  }
  fmt4 = "%-12s %10s %10s %10s %9s %9s %9s %9s %9s  %s\n"
  printf fmt4, "attention", "O(T) ms", "ref ms", "torch ms", "ref/O(T)", "pt/O(T)", "O(T) MiB", "ref MiB", "torch MiB", "verdict (T=2048: mem ref/O(T) >= 8, time ref/O(T) >= 1)"
  na = split("attn-T256 attn-T1024 attn-T2048", ac, " ")
  for (i = 1; i <= na; i++) {
    c = ac[i]; a = ams["o(T) " c]; b = ams["reference " c]
    if (a <= 0) continue
    tp = (c in tams) ? sprintf("%.1f", tams[c]) : "n/a"; tr = (c in tams) ? sprintf("%.2fx", tams[c] / a) : "n/a"
    tm = (c in tapk) ? sprintf("%.1f", tapk[c] / 1048576) : "n/a"
    v = "-"
    if (c == "attn-T2048") v = (apk["reference " c] / apk["o(T) " c] >= 8 && b / a >= 1) ? "PASS" : "BELOW-TARGET"
    printf fmt4, c, sprintf("%.1f", a), sprintf("%.1f", b), tp, sprintf("%.2fx", b / a), tr,
           sprintf("%.1f", apk["o(T) " c] / 1048576), sprintf("%.1f", apk["reference " c] / 1048576), tm, v
  }
  printf "  ms: best median of two alternating runs per kernel; MiB: peak above the inputs q, k, v, dout (freelunch: tracked\n  allocator; PyTorch: growth of peak RSS over the first step, a fresh process per length)\n\n"
  fmt3 = "%-34s %12s %12s %9s %9s  %s\n"
  printf fmt3, "memory: one block fwd+bwd peak", "measured", "analytic", "ratio", "target", "verdict"
  for (i = 1; i <= nm; i++) {
    c = mem[i]; r = mr[c] + 0
    printf fmt3, c, sprintf("%.1fMiB", mm[c] / 1048576), sprintf("%.1fMiB", ma[c] / 1048576), sprintf("%.3f", r),
           "1+-10%", (r >= 0.9 && r <= 1.1) ? "PASS" : "BELOW-TARGET"
  }
  printf "\n"
  if (no > 0) {
    printf "%-58s %9s %9s  %s\n", "other benchmarks (their ratio=, > 1: freelunch faster)", "ratio", "target", "verdict"
    for (i = 1; i <= no; i++)
      printf "%-58s %9s %9s  %s\n", ol[i], sprintf("%.2fx", orat[i]), otgt[i] == "" ? "none" : sprintf(">=%gx", otgt[i]),
             otgt[i] == "" ? "-" : verdict(orat[i] + 0, otgt[i] + 0)
    printf "\n"
  }
  worst = 0
  for (s in load) if (load[s] + 0 > worst) worst = load[s] + 0
  printf "other processes used, of the whole machine: gemm %s%%, speed %s%%, attn %s%%, dispatch %s%%, mem %s%%", load["gemm"], load["speed"], load["attn"], load["dispatch"], load["mem"]
  if ("others" in load) printf ", other benchmarks %s%%", load["others"]
  if ("study" in load) printf ", study %s%%", load["study"]
  if (worst > 10) printf "  -- WARNING: the machine was busy; speed figures are unreliable, rerun when idle"
  printf "\n"
}' "$log"

if [ -n "$failed" ]; then
  echo "bench: failed:$failed"
  exit 1
fi
exit 0
