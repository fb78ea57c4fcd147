#!/bin/sh
# make fuzz's runner: each target NAME given ($FUZZ_BUILD/fuzz/NAME, built by
# make fuzz) runs for FUZZ_SECONDS under libFuzzer on a scratch copy of its
# seeds (tests/fuzz/corpus/NAME/ or, without the fuzz_ prefix,
# tests/fuzz/corpus/grid/ for fuzz_grid), so the committed seeds never
# change; tests/fuzz/NAME.dict is its dictionary and tests/fuzz/NAME.options
# its extra libFuzzer flags (one line, e.g. -max_len=8192) if any. A target
# may write seeds of its own into $FUZZ_SEED_DIR (the scratch corpus) at
# start. A crash, leak, sanitizer report or slow input fails the target;
# the input that did it is kept under $FUZZ_BUILD/artifacts/NAME/. The last
# line is "fuzz: N targets, N crashed" (not the test suite's summary form).
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# the slowest acceptable input: a grid check opens every criterion once
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
[ -z "$OMP_WAIT_POLICY$GOMP_SPINCOUNT" ] && export OMP_WAIT_POLICY=passive
ntargets=0; failed=""
for t in "$@"; do
  ntargets=$((ntargets + 1))
  bin="$FUZZ_BUILD/fuzz/$t"
  work=$(mktemp -d)
  mkdir -p "$work/corpus"
  for c in "tests/fuzz/corpus/$t" "tests/fuzz/corpus/${t#fuzz_}"; do
    [ -d "$c" ] && cp -R "$c/." "$work/corpus/"
  done
  art="$FUZZ_BUILD/artifacts/$t"
  mkdir -p "$art"
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  opts=""
  [ -f "tests/fuzz/$t.options" ] && opts=$(cat "tests/fuzz/$t.options")
  FUZZ_SEED_DIR="$work/corpus" "$bin" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" $dict $opts "$work/corpus" >"$work/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t ok (${runs:-?} runs in ${FUZZ_SECONDS}s, $(ls "$work/corpus" | wc -l) inputs in the corpus)"
  else
    tail -n 40 "$work/log"
    echo "fuzz: $t FAILED (exit $rc); the input is in $art/"
    failed="$failed $t"
  fi
  rm -rf "$work"
done
echo "fuzz: $ntargets targets, $(echo $failed | wc -w) crashed${failed:+:$failed}"
[ -z "$failed" ]
