# freelunch: build, test, bench, and the main job.
#   make            the freelunch binary and libfreelunch.a
#   make test       installs Debian deps if missing, runs the whole suite
#   make test-asan  the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       every tests/fuzz/fuzz_*.c under libFuzzer, FUZZ_SECONDS (60) each
#   make bench      speed and memory benchmarks (ratios against PyTorch / GEMM peak)
#   make test-big   the tests too slow for the suite: a 1B-parameter bf16 llama
#                   pruned streamed and fully resident (tests/big/stream_1b.sh)
#   make study      the main job on the embedded default
#   make deps       apt-get install whatever is missing

CC      ?= cc
# The OpenMP build of OpenBLAS, linked by path: it shares libgomp's thread
# pool with our kernels and with oneDNN, so nothing is oversubscribed.
OBLAS   := /usr/lib/x86_64-linux-gnu/openblas-openmp
CPPFLAGS += -I. -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/hwloc -D_GNU_SOURCE
CFLAGS  ?= -O2 -march=native -g
# What the project needs whatever CFLAGS says: `make CFLAGS=-O0` (or the
# sanitizer builds) must still be warning-free C11 with OpenMP, and a CFLAGS
# on make's command line would replace a `CFLAGS +=`. Appended to every
# compile and link, after CFLAGS; SAN_FLAGS holds a sanitizer build's flags.
override FL_CFLAGS := -std=c11 -Wall -Wextra -Werror -fopenmp
SAN_FLAGS ?=
ALL_CFLAGS = $(CFLAGS) $(FL_CFLAGS) $(SAN_FLAGS)
LDLIBS  := -L$(OBLAS) -Wl,-rpath,$(OBLAS) -lopenblas -ldnnl -lhwloc -lsleef -lcjson -linih -lcsv -lcrypto -lpcre2-8 -licuuc -lm -fopenmp

BUILD   ?= build
SRC_DIRS := model datasets eval harness criteria reconstructors plots reports
LIB_SRC := $(filter-out harness/main.c,$(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# make fuzz: clang, its libFuzzer and sanitizer runtimes (libclang-rt-dev is
# only recommended by clang, so a --no-install-recommends install lacks
# it) and its OpenMP (libomp-dev: omp.h and libomp for clang -fopenmp)
FUZZ_PKGS := clang libclang-rt-dev libomp-dev
DEB_PKGS := build-essential libopenblas-openmp-dev libdnnl-dev libcsv-dev libhwloc-dev libssl-dev \
            gnuplot-nox libcjson-dev libinih-dev libcmocka-dev python3-torch python3-numpy libpcre2-dev chromium libicu-dev \
            slurm-wlm munge libsleef-dev time

.PHONY: all deps fuzz-deps test test-asan fuzz fuzz-build bench study clean tests-build test-big
all: $(BUILD)/freelunch $(BUILD)/libfreelunch.a
	@# ./freelunch is the normal build; the sanitizer build must not take its place
	@if [ "$(BUILD)" = build ]; then ln -sf $(BUILD)/freelunch freelunch; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The commit a binary was built from goes into every results file and report:
# build/commit.txt changes only when `git describe` does, so only version.o rebuilds.
$(BUILD)/commit.txt: FORCE
	@mkdir -p $(BUILD)
	@c=$$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown); \
	[ "$$(cat $@ 2>/dev/null)" = "$$c" ] || echo "$$c" > $@
$(BUILD)/harness/version.o: $(BUILD)/commit.txt
$(BUILD)/harness/version.o: CPPFLAGS += -DFL_COMMIT='"$(shell cat $(BUILD)/commit.txt 2>/dev/null || echo unknown)"'
.PHONY: FORCE
FORCE:

$(BUILD)/libfreelunch.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/freelunch: $(BUILD)/harness/main.o $(BUILD)/libfreelunch.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libfreelunch.a tests/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/libfreelunch.a bench/benchutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS)

# the benchmarks are built with the tests so the suite runs one of them
# (tests/cli_bench.sh) and a benchmark that no longer builds fails CI
tests-build: all $(TEST_BIN) $(BENCH_BIN)

$(BUILD)/tests/big/%: tests/big/%.c $(BUILD)/libfreelunch.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS)

# Minutes, gigabytes of disk and of memory: out of the default suite.
test-big: deps all $(BUILD)/tests/big/gen_llama
	BUILD=$(BUILD) sh tests/big/stream_1b.sh

# apt-get install whichever of $(1) are missing, plus the commands $(2) checks
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(2) \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS),command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; command -v npm >/dev/null 2>&1 || missing="$$missing npm";)

fuzz-deps: deps
	$(call install_missing,$(FUZZ_PKGS),)

test: deps
	$(MAKE) tests-build
	BUILD=$(BUILD) sh tests/run.sh

# The sanitizers go in SAN_FLAGS, so a CFLAGS given to make (say -O0) sets
# only the optimisation of the sanitizer build, never its sanitizers or the
# project's flags; without one it is -O1 -g.
ASAN_FLAGS := -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_CFLAGS = $(if $(filter command line environment,$(origin CFLAGS)),$(CFLAGS),-O1 -g)
test-asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="$(SAN_CFLAGS)" SAN_FLAGS="$(ASAN_FLAGS)" tests-build
	BUILD=build-asan FL_ASAN=1 ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh

# libFuzzer: the library built by clang with coverage and the sanitizers in
# its own directory, each tests/fuzz/fuzz_*.c linked with libFuzzer's main,
# then each run for FUZZ_SECONDS on a copy of its seeds (tests/fuzz/run.sh).
# -Wno-pass-failed: clang reports a `#pragma omp simd` it did not vectorise
# as a warning; that is the optimiser's choice, not a defect of the code.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -Wno-pass-failed
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
fuzz: fuzz-deps
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CFLAGS="$(SAN_CFLAGS)" SAN_FLAGS="$(FUZZ_FLAGS)" fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_SRC:tests/fuzz/%.c=%)

fuzz-build: $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/libfreelunch.a $(wildcard tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS)

bench: deps all $(BENCH_BIN)
	BUILD=$(BUILD) sh bench/run.sh

study: deps all
	./freelunch study $(STUDY_ARGS)

clean:
	rm -rf build build-asan build-fuzz freelunch

-include $(LIB_OBJ:.o=.d) $(BUILD)/harness/main.d
