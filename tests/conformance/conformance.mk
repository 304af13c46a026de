# tests/conformance/conformance.mk - the differential conformance and fault
# suite (root, real BPF, real sockets): every scenario runs on plain loopback
# TCP and accelerated, and what the application sees must match; see
# docs/compat.md. The top Makefile includes this file.
#
#   make test           builds $(BUILD)/tests/conformance; run-all.sh runs it
#   make $(BUILD)/tests/soak
#                       the 10,000-connection heartbeat soak (not in make
#                       test): $(BUILD)/tests/soak --build $(BUILD);
#                       SOAK_MINUTES (10), SOAK_CONNS (10000) tune it

CONF_SRCS := $(wildcard tests/conformance/*.c)
CONF_HDRS := tests/conformance/conform.h tests/integration/harness.h \
	     include/sockmesh.h
CONF_BIN  := $(BUILD)/tests/conformance
SOAK_BIN  := $(BUILD)/tests/soak

TEST_BINS += $(CONF_BIN)

$(CONF_BIN): $(CONF_SRCS) $(CONF_HDRS) tests/integration/harness.c $(LIBSM) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/integration -Wno-format-truncation -pthread $(CONF_SRCS) tests/integration/harness.c $(LIBSM) $(LDLIBS_CORE) -o $@

$(SOAK_BIN): tests/conformance/soak/soak.c tests/conformance/conform.c $(CONF_HDRS) tests/integration/harness.c $(LIBSM) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/integration -Itests/conformance -Wno-format-truncation -pthread tests/conformance/soak/soak.c tests/conformance/conform.c tests/integration/harness.c $(LIBSM) $(LDLIBS_CORE) -o $@

# 10,000 connections heartbeating for SOAK_MINUTES (10), no stall over 1 s.
.PHONY: soak
soak: deps
	$(Q)$(MAKE) --no-print-directory all $(SOAK_BIN)
	$(Q)$(SOAK_BIN) --build $(BUILD)
