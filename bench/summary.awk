# bench/summary.awk: the summary of make bench (bench/run.sh) from its log
# of RESULT, LOAD and THREADS lines: every ratio against its target, PASS or
# BELOW-TARGET. Kept apart from run.sh so a saved log can be summarised
# again (sh bench/run.sh --summary LOG) and tests/cli_bench.sh can check
# the verdicts on a hand-made log.
#   awk -v backends="openblas onednn auto" -f bench/summary.awk LOG
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
# each line is one round: its own median (ms=) gives the round's tokens/s,
# whose extremes over the rounds give the range of the ratio (the noise)
function span(key, v) {
  if (!(key in lo) || v < lo[key]) lo[key] = v
  if (!(key in hi) || v > hi[key]) hi[key] = v
}
/^RESULT speed / { kv(); k = $3 " " $4; addtimes("fl " k, V["times"]); tokens[k] = V["tokens"]; gflop[k] = V["gflop"]
                   if (V["ms"] + 0 > 0 && V["tokens"] + 0 > 0) span("fl " k, V["tokens"] / V["ms"] * 1e3) }
/^RESULT torch / { kv(); addtimes("pt " $3, V["times"]); ptok[$3] = V["tokens"]
                   if (V["ms"] + 0 > 0 && V["tokens"] + 0 > 0) span("pt " $3, V["tokens"] / V["ms"] * 1e3) }
/^RESULT peak /  { kv(); pk[$3 " " $4] = V["gflops"]; if (V["gflops"] + 0 > peak) { peak = V["gflops"] + 0; peakwho = $3 " " $4 } }
/^RESULT gemm /  { kv(); gm[$3 " " $4 " " $5] = V["gflops"]; if (!($4 in seen)) { seen[$4] = 1; shapes[++ns] = $4 } }
/^RESULT mem /   { kv(); mem[++nm] = $3; mm[$3] = V["measured"]; ma[$3] = V["analytic"]; mr[$3] = V["ratio"] }
/^LOAD /         { kv(); load[$2] = V["foreign"] }
/^RESULT attn /  { kv(); k = $3 " " $4; if (!(k in ams) || V["ms"] + 0 < ams[k]) ams[k] = V["ms"] + 0; apk[k] = V["peak"] }
/^RESULT dispatch / {   # a nested GEMM's time is summed over the threads that ran one at once
  kv(); dstep[$3] = V["auto_tok_s"] + 0; th = V["threads"] + 0; if (th < 1) th = 1
  dgemm[$3] = V["gemm_ms_auto"] - V["gemm_nested_ms_auto"] + V["gemm_nested_ms_auto"] / th
}
/^RESULT torch-attn / { kv(); tams[$3] = V["ms"] + 0; tapk[$3] = V["peak"] }
/^RESULT / && $2 !~ /^(speed|torch|peak|gemm|mem|attn|torch-attn)$/ && / ratio=/ {
  kv(); lab = ""
  for (i = 2; i <= NF && index($i, "=") == 0; i++) lab = lab (lab == "" ? "" : " ") $i
  ol[++no] = lab; orat[no] = V["ratio"]; ohi[no] = ("higher" in V) ? V["higher"] : "?"
  otgt[no] = ("target" in V) ? V["target"] : ($2 == "sparsegpt-torch" ? 1 : "")   # bench_criteria.c: target >= 1x
}
END {
  for (k in tokens) { m = median("fl " k); if (m > 0) { fl[k] = sprintf("%.1f", tokens[k] / m * 1e3); gf[k] = sprintf("%.1f", gflop[k] / m * 1e3) } }
  for (k in ptok) { m = median("pt " k); if (m > 0) pt[k] = sprintf("%.1f", ptok[k] / m * 1e3) }
  nb = split(backends, be, /[ ,]+/)
  # tiny-pretrain: the tiny preset's pretraining step (fwd+bwd+AdamW), issue 12 item 5
  nc = split("llama-small-block llama-small-model gpt2-small-block gpt2-small-model gpt2-124m-block tiny-pretrain", cs, " ")
  # ceiling: the fl/pt ratio freelunch would reach running every GEMM FLOP
  # of the step (fl_flops) at the sgemm peak of this run and nothing else, i.e.
  # peak / (GEMM FLOPs per step / PyTorch step time).
  fmt = "%-34s %-9s %12s %12s %9s %13s %9s %9s  %s\n"
  printf fmt, "speed: fwd+bwd tokens/s", "backend", "freelunch", "pytorch", "fl/pt", "rounds' range", "ceiling", "target", "verdict"
  for (i = 1; i <= nc; i++) for (j = 1; j <= nb; j++) {
    k = be[j] " " cs[i]
    if (!(k in fl)) continue
    # issue 12's targets: every fwd+bwd case >= 1.5x PyTorch, the llama
    # block >= 1.8x
    tgt = cs[i] == "llama-small-block" ? 1.8 : 1.5
    if (cs[i] in pt && pt[cs[i]] > 0) {
      r = fl[k] / pt[cs[i]]
      ceil_ = peak > 0 ? sprintf("%.2fx", peak / (gflop[k] * pt[cs[i]] / tokens[k])) : "n/a"
      rg = ("fl " k) in lo && ("pt " cs[i]) in lo ? sprintf("%.2f-%.2fx", lo["fl " k] / hi["pt " cs[i]], hi["fl " k] / lo["pt " cs[i]]) : "n/a"
      printf fmt, cs[i], be[j], fl[k], pt[cs[i]], sprintf("%.2fx", r), rg, ceil_, sprintf(">=%gx", tgt), verdict(r, tgt)
    } else printf fmt, cs[i], be[j], fl[k], "n/a", "n/a", "n/a", "n/a", sprintf(">=%gx", tgt), "NO-PYTORCH"
  }
  printf "  rounds' range = the ratio's extremes over the rounds (the slowest freelunch round against the fastest PyTorch\n  round, and the reverse): how far the machine's noise moves it\n"
  printf "  ceiling = the fl/pt freelunch would reach doing only its GEMM FLOPs, all at the sgemm peak below\n\n"
  # Where a step's time goes (stage 2c's auto side, one process, many
  # rounds): its GEMMs (timed per call inside the steps; those issued
  # inside a parallel region, one per thread, count 1/threads) and the rest. The
  # last column is the fl/pt ratio with the rest taking no time at all: when
  # it is below a case's target, no kernel outside the GEMMs can reach it.
  hd = 0
  for (i = 1; i <= nc; i++) {
    c = cs[i]
    if (!(c in dstep) || dstep[c] <= 0 || dgemm[c] <= 0) continue
    tk = 0; for (j = 1; j <= nb; j++) if ((be[j] " " c) in tokens) tk = tokens[be[j] " " c]
    if (tk <= 0) continue
    if (!hd) { printf "%-34s %10s %10s %8s %10s %14s\n", "where a step goes (auto, stage 2c)", "step ms", "GEMM ms", "GEMM", "rest ms", "fl/pt, no rest"; hd = 1 }
    st = tk / dstep[c] * 1e3
    nr = (c in pt && pt[c] > 0) ? sprintf("%.2fx", tk / dgemm[c] * 1e3 / pt[c]) : "n/a"
    printf "%-34s %10.1f %10.1f %7.1f%% %10.1f %14s\n", c, st, dgemm[c], 100 * dgemm[c] / st, st - dgemm[c], nr
  }
  if (hd) printf "\n"
  fmt2 = "%-34s %-9s %12s %12s %9s %9s  %s\n"
  printf fmt2, "GEMM efficiency", "backend", "GFLOP/s", "peak", "share", "target", "verdict"
  for (j = 1; j <= nb; j++) {
    k = be[j] " gpt2-124m-block"
    if (!(k in gf) || peak <= 0) continue
    r = gf[k] / peak
    printf fmt2, "d=768 block fwd+bwd (GEMM FLOPs)", be[j], gf[k], sprintf("%.1f", peak), sprintf("%.1f%%", 100 * r), ">=70%", verdict(r, 0.7)
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
    # each line says what its ratio above 1 means (higher=); "?" when it does not
    printf "%-58s %9s %9s  %-18s %s\n", "other benchmarks (ratio= as each defines it)", "ratio", "target", "> 1 means", "verdict"
    for (i = 1; i <= no; i++)
      printf "%-58s %9s %9s  %-18s %s\n", ol[i], sprintf("%.2fx", orat[i]), otgt[i] == "" ? "none" : sprintf(">=%gx", otgt[i]),
             ohi[i], otgt[i] == "" ? "-" : verdict(orat[i] + 0, otgt[i] + 0)
    printf "\n"
  }
  worst = 0
  for (s in load) if (load[s] + 0 > worst) worst = load[s] + 0
  printf "other processes used, of the whole machine: gemm %s%%, speed %s%%, attn %s%%, dispatch %s%%, mem %s%%", load["gemm"], load["speed"], load["attn"], load["dispatch"], load["mem"]
  if ("others" in load) printf ", other benchmarks %s%%", load["others"]
  if ("study" in load) printf ", study %s%%", load["study"]
  if (worst > 10) printf "  -- WARNING: the machine was busy; speed figures are unreliable, rerun when idle"
  printf "\n"
}
