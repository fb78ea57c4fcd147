# freelunch: build, test, bench, and the main job.
#   make            the freelunch binary and libfreelunch.a
#   make test       installs Debian deps if missing, runs the whole suite
#   make test-asan  the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      speed and memory benchmarks (ratios against PyTorch / GEMM peak)
#   make study      the main job on the embedded default
#   make deps       apt-get install whatever is missing

CC      ?= cc
# The OpenMP build of OpenBLAS, linked by path: it shares libgomp's thread
# pool with our kernels and with oneDNN, so nothing is oversubscribed.
OBLAS   := /usr/lib/x86_64-linux-gnu/openblas-openmp
CPPFLAGS += -I. -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/hwloc -D_GNU_SOURCE
CFLAGS  ?= -O2 -march=native -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -fopenmp
LDLIBS  := -L$(OBLAS) -Wl,-rpath,$(OBLAS) -lopenblas -ldnnl -lhwloc -lcjson -linih -lcsv -lcrypto -lpcre2-8 -lm -fopenmp

BUILD   ?= build
SRC_DIRS := model datasets eval harness criteria reconstructors plots reports
LIB_SRC := $(filter-out harness/main.c,$(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

DEB_PKGS := build-essential libopenblas-openmp-dev libdnnl-dev libcsv-dev libhwloc-dev libssl-dev \
            gnuplot-nox libcjson-dev libinih-dev libcmocka-dev python3-torch python3-numpy libpcre2-dev

.PHONY: all deps test test-asan bench study clean tests-build
all: $(BUILD)/freelunch $(BUILD)/libfreelunch.a
	@# ./freelunch is the normal build; the sanitizer build must not take its place
	@if [ "$(BUILD)" = build ]; then ln -sf $(BUILD)/freelunch freelunch; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

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
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libfreelunch.a tests/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/libfreelunch.a bench/benchutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libfreelunch.a $(LDFLAGS) $(LDLIBS)

tests-build: all $(TEST_BIN)

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: deps
	$(MAKE) tests-build
	BUILD=$(BUILD) sh tests/run.sh

test-asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" tests-build
	BUILD=build-asan FL_ASAN=1 ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh

bench: deps all $(BENCH_BIN)
	BUILD=$(BUILD) sh bench/run.sh

study: deps all
	./freelunch study $(STUDY_ARGS)

clean:
	rm -rf build build-asan freelunch

-include $(LIB_OBJ:.o=.d) $(BUILD)/harness/main.d
