# Shared by the CLI tests (tests/cli_*.sh source it; run.sh does not run it):
# a scratch directory $T removed on exit, TAP counters, ok DESC and
# notok DESC (one line each), check DESC SHELL-TEST, and
#   expect CODE PATTERN DESC command...
# which passes when the command exits with CODE and, if PATTERN is not
# empty, prints exactly one line on stderr matching PATTERN.
BUILD=${BUILD:-build}
FL="$BUILD/freelunch"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0; bad=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; bad=1; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }
expect() {
  code=$1; pat=$2; desc=$3; shift 3
  n=$((n + 1))
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  lines=$(wc -l <"$T/err")
  if [ "$rc" -eq "$code" ] && { [ -z "$pat" ] || { [ "$lines" -eq 1 ] && grep -q -- "$pat" "$T/err"; }; }; then
    echo "ok $n - $desc"
  else
    echo "not ok $n - $desc (exit $rc, stderr: $(head -c 300 "$T/err"))"; bad=1
  fi
}
