#!/bin/sh
# The build's flags: the project's own (-std=c11 -Wall -Wextra -Werror
# -fopenmp) are on every compile and link whatever CFLAGS a user gives, and
# the sanitizer builds add their sanitizers to them (make -n: nothing is
# built). Prints TAP-style lines.
n=0; bad=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; bad=1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# has_all FILE WORD...: every compile/link line of FILE (cc/clang ... -o) has every WORD, and there is one
has_all() {
  f=$1; shift
  grep -E '^(cc|clang|gcc)[^ ]* .* -o ' "$f" >"$T/lines" || return 1
  for w in "$@"; do
    if grep -v -q -e " $w " -e " $w\$" "$T/lines"; then
      echo "# a line without $w: $(grep -v -e " $w " -e " $w\$" "$T/lines" | head -n 1 | cut -c1-300)"
      return 1
    fi
  done
}
PROJECT="-std=c11 -Wall -Wextra -Werror -fopenmp"
make -n -B all CFLAGS=-O0 >"$T/all" 2>&1
# shellcheck disable=SC2086
has_all "$T/all" -O0 $PROJECT && ok "make CFLAGS=-O0 keeps the project's flags" || notok "make CFLAGS=-O0 keeps the project's flags"
make -n -B test-asan CFLAGS=-O0 >"$T/asan" 2>&1
# shellcheck disable=SC2086
has_all "$T/asan" -O0 $PROJECT -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  && ok "make test-asan CFLAGS=-O0: the project's flags, the sanitizers and -O0" || notok "make test-asan CFLAGS=-O0: the project's flags, the sanitizers and -O0"
grep -q 'build-asan/' "$T/asan" && grep -q 'BUILD=build-asan .*tests/run.sh' "$T/asan" \
  && ok "make test-asan builds in build-asan and runs the suite there" || notok "make test-asan builds in build-asan and runs the suite there"
make -n -B test-asan >"$T/asan2" 2>&1
# shellcheck disable=SC2086
has_all "$T/asan2" -O1 $PROJECT -fsanitize=address,undefined && ok "make test-asan: -O1 by default" || notok "make test-asan: -O1 by default"
make -n -B fuzz CFLAGS=-O0 FUZZ_SECONDS=1 >"$T/fuzz" 2>&1
# shellcheck disable=SC2086
has_all "$T/fuzz" -O0 $PROJECT -fsanitize=fuzzer-no-link,address,undefined && grep -q '^clang .*-fsanitize=fuzzer .*build-fuzz/fuzz/fuzz_grid ' "$T/fuzz" \
  && ok "make fuzz: clang, the project's flags and the sanitizers; fuzzers linked with libFuzzer" || notok "make fuzz: clang, the project's flags and the sanitizers; fuzzers linked with libFuzzer"
echo "# $n checks"
exit $bad
