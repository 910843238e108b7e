# cru — build, test, demo and sanitizer targets.
#
#   make            build bin/cru
#   make test       install missing deps, build, run unit + integration tests
#                   against the normal build and the ASan+UBSan build
#   make demo       install missing deps, build, upload a 200 MiB file end to end
#   make asan       ASan+UBSan build in build-asan/, and only that pass of the suite
#   make bench      throughput ratios, peak memory, round trips (tests/bench/)
#   make deps       install what is missing on Debian 12 (as root)
#   make clean

CC      ?= cc
CFLAGS  ?= -O2 -g
# Flags the project needs whatever CFLAGS the caller passes (make asan does).
CRU_CFLAGS := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -Icommon -Iworker
LDLIBS  += -lhiredis -lcurl -lcjson -pthread

BUILD   ?= build
comma   := ,
BIN     ?= bin/cru

COMMON_SRC := $(wildcard common/*.c)
WORKER_SRC := $(wildcard worker/*.c)
DRIVER_SRC := $(filter-out worker/target.c,$(wildcard worker/target_*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/cru_lua.o
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/drivers.o
UNIT_SRC   := $(wildcard tests/unit/*_test.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit demo asan asan-build deps clean bench servers

all: $(BIN)

$(BIN): $(COMMON_OBJ) $(WORKER_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CRU_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CRU_CFLAGS) -MMD -MP -c -o $@ $<

# The Redis function library is compiled into the binary so workers and the
# CLI can FUNCTION LOAD it without finding a file at run time.
$(BUILD)/cru_lua.c: common/cru.lua scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh cru_lua_source $< > $@

$(BUILD)/cru_lua.o: $(BUILD)/cru_lua.c
	$(CC) $(CFLAGS) $(CRU_CFLAGS) -c -o $@ $<

# The driver table lists every worker/target_*.c that defines a driver.
$(BUILD)/drivers.c: $(DRIVER_SRC) scripts/drivers.sh
	@mkdir -p $(dir $@)
	sh scripts/drivers.sh $(DRIVER_SRC) > $@

$(BUILD)/drivers.o: $(BUILD)/drivers.c
	$(CC) $(CFLAGS) $(CRU_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(COMMON_OBJ) $(filter-out $(BUILD)/worker/main.o,$(WORKER_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CRU_CFLAGS) -Itests/unit -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN)

deps:
	@bash scripts/deps.sh

# The suite runs twice: against the normal build, then the fast part of it
# against the ASan + UBSan build (a sanitizer report fails the process, so
# the test sees it). `make asan` runs all of it under the sanitizers.
ASAN_QUICK := bad_input cli spec_validation graph_upload metrics \
	redis_outage azure tus top
TEST_PACKAGES := nginx-light python3-flask python3-redis ruby ruby-redis util-linux

test: deps servers
	@bash scripts/deps.sh $(TEST_PACKAGES)
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory asan-build
	@$(ASAN_ENV) BUILDS="normal:$(BUILD)/tests:$(BIN): asan:build-asan/tests:build-asan/cru:$(subst $(eval) ,$(comma),$(ASAN_QUICK))" \
		bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@CRU=$(CURDIR)/$(BIN) bash scripts/demo.sh

ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

asan-build:
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/cru \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" all unit

# Only the sanitizer pass of the suite.
asan: deps servers asan-build
	@bash scripts/deps.sh $(TEST_PACKAGES)
	@$(ASAN_ENV) UNIT_DIR=build-asan/tests CRU=$(CURDIR)/build-asan/cru bash tests/run.sh

# The real third-party servers the tests upload to (s3rver, Azurite,
# @tus/server), from the lock file.
servers:
	@command -v node >/dev/null && command -v npm >/dev/null || bash scripts/deps.sh nodejs npm
	@cd tests/servers && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

# The benchmark: its own redis-server, a C upload sink, curl -T and BullMQ as
# references in the same run. Not part of make test.
bench: deps
	@command -v node >/dev/null && command -v npm >/dev/null || bash scripts/deps.sh nodejs npm
	@[ -x /usr/sbin/nginx ] || bash scripts/deps.sh nginx-light
	@$(MAKE) --no-print-directory all $(BUILD)/bench/sink
	@cd tests/bench && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	@/usr/bin/python3 tests/bench/bench.py $(BIN) $(BUILD)/bench/sink --runs 3

$(BUILD)/bench/sink: tests/bench/sink.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -o $@ $<

clean:
	rm -rf build build-asan bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
