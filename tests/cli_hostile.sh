#!/bin/sh
# freelunch plot and freelunch report on a results.csv whose text columns
# hold gnuplot commands after newlines, quotes, backticks, $(...), HTML, very
# long strings and invalid UTF-8 (written by test_hostile_csv --write-csv):
# both succeed, nothing of it runs, and every line of every generated script
# is one the plot code writes. Prints "ok"/"not ok" lines (TAP).
. "$(dirname "$0")/clilib.sh"

"$BUILD/tests/test_hostile_csv" --write-csv "$T/results.csv" "$T" >/dev/null 2>&1 \
  || { echo "not ok 1 - cannot write the hostile results.csv"; exit 1; }
expect 0 "" "plot on hostile values" "$FL" plot --results "$T/results.csv" --out "$T/p"
expect 0 "" "report on hostile values" "$FL" report --results "$T/results.csv" --out "$T/r"
[ ! -e "$T/PWNED" ] && echo "ok $((n = n + 1)) - no command of a value ran" || { echo "not ok $((n = n + 1)) - a value ran as a command"; bad=1; }
# a line of a script is a comment, a set, a plot or its continuation, a replot
odd=$(cat "$T"/p/plots/*.gp "$T"/r/plots/*.gp | grep -v -e '^$' -e '^# freelunch: ' -e '^# Re-draw with ' -e '^set ' -e '^plot ' -e "^     *'" -e '^replot$' | head -3)
[ -z "$odd" ] && echo "ok $((n = n + 1)) - every script line is the plot code's" || { echo "not ok $((n = n + 1)) - script lines from values: $odd"; bad=1; }
grep -qi '<script' "$T/r/report.html" && { echo "not ok $((n = n + 1)) - raw <script> in report.html"; bad=1; } || echo "ok $((n = n + 1)) - no raw <script> in report.html"

echo "# $n checks"
exit $bad
