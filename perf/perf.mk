# perf.mk - sockmesh-bench and `make bench`; included by the top Makefile
# before its own rules.
#
# Included before the `all` rule: without this, the first rule below would
# become the default goal of a plain `make`.
.DEFAULT_GOAL := all

BENCH_SRCS := perf/sockmesh-bench.c perf/bench_run.c perf/bench_io.c \
	      perf/bench_hist.c perf/bench_report.c perf/bench_proto.c
BENCH_OBJS := $(patsubst perf/%.c,$(BUILD)/perf/%.o,$(BENCH_SRCS))
EXTRA_BINS += $(BUILD)/sockmesh-bench

$(BUILD)/perf:
	$(Q)mkdir -p $@

$(BUILD)/perf/%.o: perf/%.c perf/bench.h include/sockmesh.h \
		   $(CG_HDRS) | $(BUILD)/perf
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/sockmesh-bench: $(BENCH_OBJS) $(LIBSM)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $(BENCH_OBJS) $(LIBSM) $(LDLIBS_CORE) \
		-luring -lm -o $@

# The matrix (rr, stream, crr x 64 B..1 MiB x tcp, accel, uds) and a latency
# sweep (rr 64 B, open loop at 10..110% of tcp's maximum: sweep.{json,md,tsv,svg})
# against a private daemon, then the real clients (iperf3, sockperf, redis, pgbench,
# redis GET from Python and the JVM, nginx +
# wrk; plain vs accel, under compat = strict and again under fast); each
# writes perf/results/ and its table in
# perf/README.md. `make bench-clients` runs only the real clients,
# `make bench-quick` a 2-minute round of them (for development).
.PHONY: bench bench-clients bench-quick bench-check deps-bench
deps-bench:
	$(Q)scripts/setup.sh --bench

bench: deps-bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)rc=0; perf/run-bench.sh $(BUILD) || rc=$$?; \
		perf/real-clients.sh $(BUILD) || rc=$$?; \
		perf/real-clients.sh --compat fast --rounds 3 \
			--out perf/results/real-clients-fast $(BUILD) || rc=$$?; \
		perf/mesh-bench.sh $(BUILD) || rc=$$?; exit $$rc

bench-clients: deps-bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)perf/real-clients.sh $(BUILD)

bench-quick: deps-bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)perf/real-clients.sh --quick $(BUILD)

# `make check` covers perf/ too: formatting and cppcheck (its -Werror build
# of `all` includes sockmesh-bench already).
check: bench-check
bench-check:
	$(Q)clang-format --dry-run --Werror perf/*.c perf/*.h
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr -Iinclude -Icgroupd/lib perf

# the unit test of --proto's framing (tests/unit/test_bench_proto.c): the
# one unit test built against perf/ rather than the libraries
$(BUILD)/tests/test_bench_proto: tests/unit/test_bench_proto.c perf/bench_proto.c \
				 perf/bench.h include/sockmesh.h | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iperf tests/unit/test_bench_proto.c perf/bench_proto.c \
		-lcmocka -o $@
