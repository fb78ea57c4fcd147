#!/bin/sh
# freelunch plot / report on the command line: --help, and bad input gives
# one error line naming the file, a non-zero exit and no output left behind.
# Prints "ok"/"not ok" lines (TAP). The report's contents are tested in
# tests/test_report.c.
. "$(dirname "$0")/clilib.sh"

expect 0 "" "report --help" "$FL" report --help
expect 0 "" "plot --help" "$FL" plot --help
grep -q -- "--results" "$T/out" && echo "ok $((n = n + 1)) - plot --help names --results" || { echo "not ok $((n = n + 1)) - plot --help"; bad=1; }
expect 2 "required" "plot without --results" "$FL" plot
expect 1 "$T/missing.csv" "plot on a missing file" "$FL" plot --results "$T/missing.csv"
expect 1 "$T/missing.csv" "report on a missing file" "$FL" report --results "$T/missing.csv"
printf 'cell_id,status,ppl\nc1,ok,12.5\n' >"$T/bad.csv"
expect 1 "$T/bad.csv.*header" "report on a CSV with a wrong header" "$FL" report --results "$T/bad.csv"
[ ! -e "$T/report.md" ] && [ ! -e "$T/report.html" ] && [ ! -e "$T/plots" ] \
  && echo "ok $((n = n + 1)) - nothing written on bad input" || { echo "not ok $((n = n + 1)) - output left behind"; bad=1; }

echo "# $n checks"
exit $bad
