# tests/extra.mk - bad input: fuzzing, sanitizer builds (the Makefile
# includes this file; tests/run-extra.sh runs what it builds).
#
#   make fuzz      build the libFuzzer harnesses into $(BUILD)/fuzz and run
#                  each for FUZZ_SECONDS (300); `make -j2 fuzz` runs both at
#                  once. New inputs go to $(BUILD)/fuzz/corpus, crashes to
#                  $(BUILD)/fuzz/artifacts; the seeds in tests/fuzz/corpus
#                  are only read.
#   make asan      build sockmeshd, sockmesh, the unit tests and the
#                  integration runner with ASan + UBSan into $(BUILD)/asan
#
# `make test` builds both (TEST_BINS).

FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined
FUZZ_SECONDS ?= 300
FUZZ_NAMES   := config cli
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))

ASAN_DIR    := $(BUILD)/asan
ASAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_BINS   := $(ASAN_DIR)/sockmeshd $(ASAN_DIR)/sockmesh \
	       $(ASAN_DIR)/tests/integration \
	       $(patsubst $(BUILD)/%,$(ASAN_DIR)/%,$(UNIT_BINS)) \
	       $(ASAN_DIR)/tests/pingpong

TEST_BINS += $(FUZZ_BINS) asan

.PHONY: fuzz asan $(patsubst %,fuzz-%,$(FUZZ_NAMES))

$(FUZZ_DIR)/obj:
	$(Q)mkdir -p $@

# The code under test gets coverage (fuzzer-no-link); the harness links it.
$(FUZZ_DIR)/obj/config.o: cgroupd/lib/config.c
$(FUZZ_DIR)/obj/cli.o: cgroupd/sockmesh/cli.c
$(FUZZ_DIR)/obj/config.o $(FUZZ_DIR)/obj/cli.o: $(CG_HDRS) include/sockmesh.h | $(FUZZ_DIR)/obj
	$(call msg,CC,$@)
	$(Q)$(CLANG) $(CFLAGS) $(subst fuzzer,fuzzer-no-link,$(FUZZ_CFLAGS)) -c $(filter %.c,$^) -o $@

$(FUZZ_DIR)/fuzz_config: tests/fuzz/fuzz_config.c $(FUZZ_DIR)/obj/config.o
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(CFLAGS) $(FUZZ_CFLAGS) $^ -linih -o $@

$(FUZZ_DIR)/fuzz_cli: tests/fuzz/fuzz_cli.c $(FUZZ_DIR)/obj/cli.o
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(CFLAGS) -Icgroupd/sockmesh $(FUZZ_CFLAGS) $^ -o $@

fuzz: $(patsubst %,fuzz-%,$(FUZZ_NAMES))

$(patsubst %,fuzz-%,$(FUZZ_NAMES)): fuzz-%: $(FUZZ_DIR)/fuzz_%
	$(Q)mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/artifacts/$*- \
		$(FUZZ_DIR)/corpus/$* tests/fuzz/corpus/$*

# The same Makefile, a second time, into its own directory. -fsanitize
# reaches the link lines through CFLAGS.
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(ASAN_DIR) CC=$(CLANG) \
		EXTRA_CFLAGS='$(EXTRA_CFLAGS) $(ASAN_CFLAGS) -Wno-unknown-warning-option' \
		$(ASAN_BINS)
