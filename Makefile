# Herald build. `make` builds build/herald; `make test` runs unit and integration tests;
# `make check` is what CI runs: format check, then the tests plain, under ASan+UBSan and under TSan.
# SANITIZER=address,undefined or SANITIZER=thread selects a sanitizer build in its own directory.

CC      ?= cc
SANITIZER ?=
CI      ?=

comma := ,
ifeq ($(SANITIZER),)
BUILD   := build
SANFLAGS :=
else ifeq ($(SANITIZER),address,undefined)
BUILD   := build-asan
else ifeq ($(SANITIZER),thread)
BUILD   := build-tsan
else
BUILD   := build-$(subst $(comma),-,$(SANITIZER))
endif
ifneq ($(SANITIZER),)
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
           -Wno-unused-parameter
ifneq ($(CI),)
WARN    += -Werror
endif
ifneq ($(WERROR),)
WARN    += -Werror
endif

OPT     ?= -O2
BASE_CFLAGS := -std=gnu11 $(OPT) -g $(WARN) -Iinclude -D_GNU_SOURCE -MMD -MP \
           -DHERALD_DEFAULT_ROOT='"$(abspath clients/web)"' $(CFLAGS)
ALL_CFLAGS := $(BASE_CFLAGS) $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
# Criterion's runtime cannot start under TSan (its shared arena mapping fails), so under TSan the
# test programs are built plain and drive the TSan-instrumented server; the unit tests run under
# ASan+UBSan instead (the few with threads, such as outq's reference caches, are covered under TSan
# through the server that uses them).
ifeq ($(SANITIZER),thread)
TEST_SANFLAGS :=
else
TEST_SANFLAGS := $(SANFLAGS)
endif
LDLIBS  += -lpthread -lssl -lcrypto -lz -lcjson

# Every module except main.c goes into a static library that tests link against.
LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libherald.a
BIN     := $(BUILD)/herald

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integ_%)
# Suites run again in the other modes: --ws-oneshot (WebSocket connections on the one-shot epoll
# mode) and --no-uring (every send its own sendmsg, as where the kernel offers no io_uring).
WS_MODE_BIN := $(BUILD)/tests/integ_test_ws $(BUILD)/tests/integ_test_broker
WS_MODES := --ws-oneshot --no-uring
# The integration tests' own helpers, the C client, and the pure codecs the client uses.
INTEG_LIB_SRC := $(filter-out $(INTEG_SRC),$(wildcard tests/integration/*.c)) \
                 $(wildcard clients/c/*.c) src/ws_frame.c src/utf8.c

# Criterion runs tests in parallel; sanitizer builds run slower, so fewer jobs and longer timeouts.
CRITERION_FLAGS ?= --jobs 2
export TSAN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS ?= suppressions=$(abspath tests/lsan.supp):print_suppressions=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

.PHONY: FORCE all run test unit integration browser check format format-check clean bench bench-full bench-http bench-echo bench-pubsub fuzz fuzz-smoke

# The chat demo in the document root imports the client library as ./herald.js: a copy, not
# tracked (.gitignore), made whenever clients/js/herald.js exists.
WEB_LIB := $(if $(wildcard clients/js/herald.js),clients/web/herald.js)

all: $(BIN) $(WEB_LIB)

# Compared by content on every run rather than by timestamp: an edited or stale copy newer than
# the original would otherwise be kept, and the page would test another client than clients/js.
clients/web/herald.js: clients/js/herald.js FORCE
	@cmp -s $< $@ || { echo "cp $< $@"; cp $< $@; }
FORCE:

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< $(LIB) -o $@ $(LDFLAGS) $(LDLIBS) -lcriterion

# The C client's wire helpers are pure code, tested as a unit with the codecs they build on; the
# broker's tests use them to read what it frames (inflating a compressed delivery).
WIRE_UNIT_BIN := $(BUILD)/tests/test_wsc_wire $(BUILD)/tests/test_broker
$(WIRE_UNIT_BIN): $(BUILD)/tests/test_%: tests/unit/test_%.c clients/c/wsc_wire.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iclients/c $< clients/c/wsc_wire.c $(LIB) -o $@ $(LDFLAGS) $(LDLIBS) \
	  -lcriterion

# The upgrade and the broker's wakes under allocation failures: malloc and calloc are wrapped so that chosen
# sizes fail.
$(BUILD)/tests/test_ws_upgrade_oom $(BUILD)/tests/test_broker_oom $(BUILD)/tests/test_http_api_oom: \
  $(BUILD)/tests/test_%: \
  tests/unit/test_%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< $(LIB) -o $@ $(LDFLAGS) -Wl,--wrap=malloc -Wl,--wrap=calloc $(LDLIBS) \
	  -lcriterion

$(BUILD)/tests/integ_test_%: tests/integration/test_%.c $(INTEG_LIB_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TEST_SANFLAGS) -Itests/integration -Iclients/c $< $(INTEG_LIB_SRC) \
	  -o $@ $(TEST_SANFLAGS) -lcriterion -lz -lcjson -lpthread

run: $(BIN) $(WEB_LIB)
	./$(BIN) $(ARGS)

ifeq ($(SANITIZER),thread)
unit:
	@echo "== unit tests: not under TSan (Criterion cannot start under it; run under ASan+UBSan)"
else
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t $(CRITERION_FLAGS); done
endif

# An LD_PRELOAD shim that makes every io_uring refuse sends (tests/shim/uring_refuse.c).
URING_SHIM := $(BUILD)/tests/uring_refuse.so
$(URING_SHIM): tests/shim/uring_refuse.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -fPIC -shared $< -o $@ -ldl

integration: $(BIN) $(INTEG_BIN) $(BUILD)/wsload $(URING_SHIM)
	@set -e; for t in $(INTEG_BIN); do echo "== $$t"; \
	  HERALD_BIN=$(abspath $(BIN)) HERALD_SANITIZER=$(SANITIZER) $$t $(CRITERION_FLAGS); done
	@set -e; for m in $(WS_MODES); do for t in $(WS_MODE_BIN); do echo "== $$t $$m"; \
	  HERALD_BIN=$(abspath $(BIN)) HERALD_SANITIZER=$(SANITIZER) HERALD_EXTRA_ARGS=$$m \
	  $$t $(CRITERION_FLAGS); done; done
	@echo "== node tests (ws, wscat) against $(BIN)"
	@test -d tests/node/node_modules || { echo "tests/node: run scripts/install-deps first"; exit 1; }
	HERALD_BIN=$(abspath $(BIN)) WSLOAD_BIN=$(abspath $(BUILD)/wsload) node --test tests/node/

# The chat demo in headless Chromium (tests/browser/). `make test` runs it in the plain build only:
# the suite runs three times (plain, ASan, TSan) and is near its time budget.
browser: $(BIN) $(WEB_LIB)
	@echo "== browser test (Chromium, playwright-core) against $(BIN)"
	@test -d tests/browser/node_modules || { echo "tests/browser: run scripts/install-deps first"; exit 1; }
	HERALD_BIN=$(abspath $(BIN)) node --test tests/browser/

ifeq ($(SANITIZER),)
test: unit integration browser
else
test: unit integration
endif

# The full gate: CI runs exactly this through .ci/run.
check: format-check
	$(MAKE) fuzz-smoke
	$(MAKE) test
	$(MAKE) test SANITIZER=address,undefined
	$(MAKE) test SANITIZER=thread

FORMAT_FILES := $(wildcard src/*.c src/*.h include/*.h tests/unit/*.c tests/integration/*.c \
                  tests/integration/*.h tests/shim/*.c bench/*.c bench/*.h fuzz/*.c clients/c/*.c \
                  clients/c/*.h)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: ok"

# make bench: every benchmark once, quickly (QUICK=1: 1 round of 3 s, small sizes; a few minutes).
# make bench-full: several rounds of 10 s, every scenario and peer, the fan-out sweep and charts
# (about 40 minutes). bench-http, bench-echo and bench-pubsub run one script at its defaults.
bench: $(BIN) $(BUILD)/wsload
	QUICK=1 bench/http.sh
	QUICK=1 bench/echo.sh
	QUICK=1 bench/pubsub.sh
bench-full: $(BIN) $(BUILD)/wsload
	ROUNDS=3 bench/http.sh
	ROUNDS=3 bench/echo.sh
	ROUNDS=3 SCENARIOS="fanout fanout-big sweep rooms connect" CONNECT_TOPICS="one each" bench/pubsub.sh
bench-http: $(BIN)
	bench/http.sh
bench-echo: $(BIN) $(BUILD)/wsload
	bench/echo.sh
bench-pubsub: $(BIN) $(BUILD)/wsload
	bench/pubsub.sh
$(BUILD)/wsload: bench/wsload.c bench/wsload_pubsub.c bench/wsload_opts.c bench/wsload_report.c \
                 bench/wsload.h clients/c/wsc_wire.c \
                 clients/c/wsc_wire.h src/ws_frame.c src/utf8.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -Ibench -Iclients/c $(filter %.c,$^) -o $@ -lpthread -lz

# libFuzzer targets (clang): fuzz/fuzz_<target>.c with fuzz/corpus/<target>/ and, if present,
# fuzz/<target>.dict. FUZZ_SECONDS bounds each run. Only the pure codecs are linked.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_LIB_SRC := src/err.c src/dmsg.c src/http_parse.c src/http_head.c src/http_chunked.c src/utf8.c \
                src/ws_frame.c src/proto.c src/ws_deflate.c
FUZZ_BIN := $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
$(FUZZ_BIN): build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_SRC) $(wildcard include/*.h src/*.h)
	@mkdir -p build-fuzz
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
	  $< $(FUZZ_LIB_SRC) -o $@ -lcjson -lz
fuzz: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t build-fuzz/corpus-$$t; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $$dict build-fuzz/corpus-$$t fuzz/corpus/$$t; \
	done
# In `make check`: every driver over its seed corpus, then a fixed number of runs from a fixed
# seed (the same inputs every time), so a driver whose checks drift from the code it drives fails
# CI, not the next long fuzzing session (proto_array_next's end marker did, unnoticed, for a day).
FUZZ_SMOKE_RUNS ?= 200000
fuzz-smoke: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  echo "== fuzz-smoke $$t ($(FUZZ_SMOKE_RUNS) runs, seed 1)"; \
	  rm -rf build-fuzz/smoke-$$t; mkdir -p build-fuzz/smoke-$$t; \
	  build-fuzz/fuzz_$$t -seed=1 -runs=$(FUZZ_SMOKE_RUNS) -artifact_prefix=build-fuzz/ $$dict \
	    build-fuzz/smoke-$$t fuzz/corpus/$$t >build-fuzz/smoke-$$t.log 2>&1 || \
	    { cat build-fuzz/smoke-$$t.log; exit 1; }; \
	  tail -1 build-fuzz/smoke-$$t.log; \
	done

clean:
	rm -rf build build-* compile_commands.json

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d $(wildcard $(BUILD)/tests/*.d)
