# tests/mesh/mesh.mk - the mesh suite's helper (the Makefile includes this
# file): meshcheck, the redis client that checks every byte, and meshfwd,
# the IPv6 sidecar (Debian's HAProxy does not read IP6T_SO_ORIGINAL_DST). The suite is
# tests/mesh/run.sh (tests/run-all.sh runs it); scripts/mesh/mesh.sh builds
# the mesh; perf/mesh-bench.sh is the mesh part of `make bench`.

MESHCHECK := $(BUILD)/tests/meshcheck
MESHFWD := $(BUILD)/tests/meshfwd
TEST_BINS += $(MESHCHECK) $(MESHFWD)

$(MESHCHECK): tests/mesh/meshcheck.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

$(MESHFWD): tests/mesh/meshfwd.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

.PHONY: mesh-check
check: mesh-check
mesh-check:
	$(Q)clang-format --dry-run --Werror tests/mesh/*.c
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/check EXTRA_CFLAGS=-Werror \
		$(BUILD)/check/tests/meshcheck $(BUILD)/check/tests/meshfwd
	$(Q)for f in scripts/mesh/mesh.sh tests/mesh/lib.sh tests/mesh/run.sh tests/mesh/connect.sh tests/mesh/ambient.sh perf/mesh-bench.sh; do \
		[ ! -e $$f ] || sh -n $$f || exit 1; done
