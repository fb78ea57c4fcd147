#!/bin/sh
# Runs every test binary in $BUILD/tests and closes with one summary line,
# "N passed, N failed", counting cmocka test cases across all binaries.
BUILD=${BUILD:-build}
# Passive OpenMP waiting: see harness/main.c (spinning threads on a busy
# shared machine slow everything down many times over).
[ -z "$OMP_WAIT_POLICY$GOMP_SPINCOUNT" ] && export OMP_WAIT_POLICY=passive
passed=0; failed=0; bad=""
log=$(mktemp)
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  "$t" >"$log" 2>&1; rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
  passed=$((passed + p)); failed=$((failed + f))
  [ "$rc" -ne 0 ] && bad="$bad $(basename "$t")"
done
# Shell-level tests of the CLI (exit codes, one-line errors).
for s in tests/cli_*.sh; do
  [ -f "$s" ] || continue
  echo "== $s"
  BUILD="$BUILD" sh "$s" >"$log" 2>&1; rc=$?
  cat "$log"
  p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  [ "$rc" -ne 0 ] && bad="$bad $s"
done
rm -f "$log"
[ -n "$bad" ] && echo "failing:$bad"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ -z "$bad" ]
