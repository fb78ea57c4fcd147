#!/bin/sh
# make bench's summary (bench/summary.awk, run by bench/run.sh and by
# `sh bench/run.sh --summary LOG`) judged on hand-made logs: each ratio
# against issue 12's targets (fwd+bwd >= 1.5x PyTorch, the llama block
# >= 1.8x, the d=768 block's GEMMs >= 70% of the sgemm peak, attention at
# T = 2048 within 1/8 of the old kernel's memory and no slower), the
# tokens/s from the median step, where a step's time goes (GEMMs and the
# rest, and the ratio the rest would allow), the busy-machine warning. Timing itself is
# never tested (a shared machine); only the arithmetic of the verdicts.
# Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
S=bench/run.sh

# one step of 2048 tokens: freelunch 100 ms = 20480 tok/s, PyTorch the
# ratio's multiple of that; times= holds every step, the median is taken
speed() {   # speed CASE BACKEND FL_MS
  echo "RESULT speed $2 $1 tok_s=0 ms=$3 reps=3 gflop=10 gflops=0 tokens=2048 times=$3,$3,$3"
}
torch() {   # torch CASE PT_MS
  echo "RESULT torch $1 tok_s=0 ms=$2 reps=3 tokens=2048 times=$2,$2,$2"
}
{
  echo "THREADS 2"
  echo "RESULT peak openblas 2048x2048x2048 gflops=200.0 median=190 ms=1"
  echo "LOAD gemm foreign=1.0 wall=10"
  speed llama-small-block openblas 100; torch llama-small-block 170     # 1.70x < 1.8
  speed gpt2-small-block openblas 100;  torch gpt2-small-block 150      # two rounds of PyTorch:
  torch gpt2-small-block 170                                            # the median step, 160 ms: 1.60x >= 1.5
  speed gpt2-small-model openblas 100;  torch gpt2-small-model 140      # 1.40x < 1.5
  speed gpt2-124m-block openblas 100;   torch gpt2-124m-block 150       # 1.50x: at the target
  speed tiny-pretrain openblas 100;     torch tiny-pretrain 149         # 1.49x: the pretraining step, below 1.5
  echo "RESULT speed onednn gpt2-124m-block tok_s=0 ms=100 reps=3 gflop=13.8 gflops=0 tokens=2048 times=100,100,100"
  echo "RESULT attn reference attn-T2048 ms=1000 peak=800000000 state=1"
  echo "RESULT attn o(T) attn-T2048 ms=900 peak=100000000 state=1"
  echo "RESULT attn reference attn-T1024 ms=100 peak=1000 state=1"
  echo "RESULT attn o(T) attn-T1024 ms=200 peak=900 state=1"
  echo "RESULT mem llama-small-block measured=105 analytic=100 ratio=1.05"
  echo "RESULT mem gpt2-small-block measured=120 analytic=100 ratio=1.2"
  # 2048 tokens in 100 ms; GEMMs 70 ms outside parallel regions, 20 ms
  # summed over 2 threads inside them: 80 ms of the step
  echo "RESULT dispatch gpt2-small-block ratio=1.000 target=0.97 auto_tok_s=20480 gemm_ms_auto=90 gemm_nested_ms_auto=20 threads=2"
  echo "RESULT other-thing case ratio=0.96 target=0.97"
  echo "RESULT another case ratio=2.5"
  echo "RESULT fuse openblas qkv fwd ratio=1.250 higher=fusing-faster separate_ms=5 fused_ms=4"
  echo "LOAD speed foreign=4.0 wall=10"
} >"$T/log"
sh "$S" --summary "$T/log" >"$T/sum" 2>"$T/err"; rc=$?
check "the summary of a saved log exits 0 and says nothing on stderr" "[ $rc -eq 0 ] && [ ! -s '$T/err' ]"
row() { grep "^$1 *$2 " "$T/sum" | head -1; }
check "llama-small-block at 1.70x PyTorch is below its 1.8x target" \
  "row llama-small-block openblas | grep -q '1.70x .*>=1.8x  BELOW-TARGET'"
check "PyTorch's tokens/s is the median step over both rounds (150 and 170 ms: 160 ms)" \
  "row gpt2-small-block openblas | grep -q ' 12800.0 '"
check "the rounds' range: freelunch's one round against PyTorch's fastest and slowest (150, 170 ms)" \
  "row gpt2-small-block openblas | grep -q ' 1.60x *1.50-1.70x '"
check "gpt2-small-block at 1.60x passes 1.5x" "row gpt2-small-block openblas | grep -q '1.60x .*>=1.5x  PASS'"
check "gpt2-small-model at 1.40x is below 1.5x" "row gpt2-small-model openblas | grep -q '1.40x .*>=1.5x  BELOW-TARGET'"
check "gpt2-124m-block at exactly 1.50x passes (the target is >=)" "row gpt2-124m-block openblas | grep -q '1.50x .*>=1.5x  PASS'"
check "the tiny preset's pretraining step is judged as a case: 1.49x is below 1.5x" "row tiny-pretrain openblas | grep -q '1.49x .*>=1.5x  BELOW-TARGET'"
# GEMM share: 2048 tokens in 100 ms; openblas 10 GFLOP -> 100 GFLOP/s = 50%
# of 200; onednn 13.8 GFLOP -> 138 GFLOP/s = 69% < 70%
check "the d=768 block's GEMM share: 50% is below 70%" "grep -q 'openblas *100.0 *200.0 *50.0% *>=70%  BELOW-TARGET' '$T/sum'"
check "69% is below 70% too" "grep -q 'onednn *138.0 *200.0 *69.0% *>=70%  BELOW-TARGET' '$T/sum'"
check "attention at T=2048: 8x less memory and faster passes" "grep '^attn-T2048' '$T/sum' | grep -q 'PASS'"
check "T=1024 carries no verdict" "grep '^attn-T1024' '$T/sum' | grep -q ' -$'"
check "memory within 10% of the analytic count passes, 20% over does not" \
  "grep -q '^llama-small-block .*MiB *1.050 *1+-10%  PASS' '$T/sum' && grep -q '^gpt2-small-block .*MiB *1.200 *1+-10%  BELOW-TARGET' '$T/sum'"
check "another benchmark's ratio below its own target" "grep '^other-thing case' '$T/sum' | grep -q '0.96x *>=0.97x  ? *BELOW-TARGET'"
check "a ratio without a target is listed without a verdict" "grep '^another case' '$T/sum' | grep -q '2.50x *none  ? *-$'"
check "a line's own meaning of its ratio is shown (fuse: above 1, fusing would be faster), not 'freelunch faster'" \
  "grep '^fuse openblas qkv fwd' '$T/sum' | grep -q '1.25x *none  fusing-faster *-$' && ! grep -q 'freelunch faster' '$T/sum'"
check "where a step goes: 100 ms, 80 of them GEMMs (nested ones counted once per thread), 20 the rest" \
  "grep -q '^gpt2-small-block *100.0 *80.0 *80.0% *20.0 *2.00x$' '$T/sum'"
check "the dispatch line is still judged against its own target" "grep -q '^dispatch gpt2-small-block *1.00x *>=0.97x  ? *PASS' '$T/sum'"
check "a quiet machine: no warning" "! grep -q WARNING '$T/sum'"

echo "LOAD study foreign=35.0 wall=10" >>"$T/log"
sh "$S" --summary "$T/log" >"$T/sum" 2>&1
check "a busy machine (35% of it used by others) is called unreliable" "grep -q 'study 35.0%.*WARNING: the machine was busy' '$T/sum'"

# a case flipped above its target flips the verdict
sed 's/^RESULT torch gpt2-small-model .*/RESULT torch gpt2-small-model tok_s=0 ms=0 reps=3 tokens=2048 times=151,151,151/' "$T/log" >"$T/log2"
sh "$S" --summary "$T/log2" >"$T/sum2" 2>&1
check "the same case at 1.51x passes" "grep '^gpt2-small-model *openblas' '$T/sum2' | grep -q '1.51x .*PASS'"

# make bench runs every criterion of the registry through bench_criteria; a
# structured one (no prune function: it removes heads, channels or blocks)
# is left out instead of failing the run, as it did once
"$BUILD/bench/bench_criteria" --quick magnitude flap >"$T/crit" 2>&1; rc=$?
check "bench_criteria on an unstructured and a structured criterion exits 0" "[ $rc -eq 0 ]"
check "it times magnitude under both patterns" "[ \$(grep -c '^RESULT crit magnitude fc1-3072x768 ' '$T/crit') -eq 2 ]"
check "and leaves flap out, saying nothing" "! grep -q flap '$T/crit'"

# the pretraining case runs the tiny preset's own configuration and AdamW
# step: bench_speed refuses it when its literal shapes (the ones
# torch_bench.py builds) drift from harness/presets.c's
BENCH_BACKENDS=openblas BENCH_SECONDS=0 BENCH_MIN_REPS=1 BENCH_MAX_REPS=1 BENCH_THREADS=2 \
  "$BUILD/bench/bench_speed" tiny-pretrain >"$T/tp" 2>&1; rc=$?
check "bench_speed tiny-pretrain (one timed step) exits 0 with one RESULT line of 2048 tokens" \
  "[ $rc -eq 0 ] && [ \$(grep -c '^RESULT speed openblas tiny-pretrain .* tokens=2048 ' '$T/tp') -eq 1 ]"
check "torch_bench.py knows the case, with the same shapes (d 192, 4 layers, 6/2 heads, 512, tied, AdamW)" \
  "grep -q '(\"tiny-pretrain\", \"llama\", 192, 4, 6, 2, 512, 4096, 8, 256, True, True, (3e-3, 0.1, 1.0))' bench/torch_bench.py"

# a log is input: a round of zero tokens or zero milliseconds, or a line
# of nothing but a name, is left out, never a division by zero
printf 'RESULT speed openblas gpt2-small-block tok_s=0 ms=100 tokens=2048 times=100\nRESULT speed onednn gpt2-small-block tok_s=0 ms=0 tokens=0 times=0\nRESULT torch gpt2-small-block ms=5 tokens=0 times=5\nRESULT torch gpt2-small-block ms=150 tokens=2048 times=150\nRESULT dispatch gpt2-small-block\nRESULT mem x\n' >"$T/bad.log"
sh "$S" --summary "$T/bad.log" >"$T/sumbad" 2>&1; rc=$?
check "a log with rounds of zero tokens or milliseconds and empty lines: summarised, those rounds left out (no inf)" \
  "[ $rc -eq 0 ] && grep -q '^gpt2-small-block *openblas .* 1.50-1.50x ' '$T/sumbad' && ! grep -qi 'inf\|nan\|division\|fatal' '$T/sumbad'"

expect 1 "bench: --summary needs a readable log file: $T/none" "a missing log: one line, exit 1" sh "$S" --summary "$T/none"
expect 1 "bench: --summary needs a readable log file" "no log named: one line, exit 1" sh "$S" --summary
exit $bad
