# sockmesh - one entry point. `make help` lists the targets.
VERSION     := 0.1.0
BUILD       := build
CONFIG      ?= conf/sockmesh.ini

CC          ?= gcc
CLANG       ?= clang
BPFTOOL     ?= bpftool
CFLAGS      ?= -O2 -g
CFLAGS      += -std=gnu11 -Wall -Wextra -DSM_VERSION='"$(VERSION)"' \
	       -Iinclude -Icgroupd/lib -I$(BUILD) $(EXTRA_CFLAGS)
LDLIBS_CORE := -lbpf -lelf -lz -linih -luring
# the BPF target arch (bpf_tracing.h's PT_REGS) from the machine's
ARCH        ?= $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/i.86/x86/' \
		 -e 's/aarch64.*/arm64/' -e 's/ppc64.*/powerpc/' \
		 -e 's/s390x/s390/' -e 's/riscv64/riscv/' -e 's/loongarch64/loongarch/')
BPF_CFLAGS  := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	       -I$(BUILD) -Iinclude

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# cgroupd/: lib/ (config, pins, cgroups, policy, status: what both binaries
# and the tests share), sockmeshd/ (the daemon), sockmesh/ (the CLI). Each
# folder but its main.c is one archive; a binary links its own and lib's.
LIB_SRCS  := $(wildcard cgroupd/lib/*.c)
D_SRCS    := $(filter-out %/main.c,$(wildcard cgroupd/sockmeshd/*.c))
CLI_SRCS  := $(filter-out %/main.c,$(wildcard cgroupd/sockmesh/*.c))
CG_HDRS   := $(wildcard cgroupd/*/*.h)
LIBSM     := $(BUILD)/libsockmesh.a
LIBSMD    := $(BUILD)/libsockmeshd.a
LIBSMCLI  := $(BUILD)/libsockmesh-cli.a
obj_of     = $(patsubst cgroupd/%.c,$(BUILD)/obj/%.o,$(1))
BPF_OBJS  := $(BUILD)/sockops.bpf.o $(BUILD)/skmsg.bpf.o
BINS      := $(BUILD)/sockmeshd $(BUILD)/sockmesh
EXTRA_BINS :=

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BIN  := $(BUILD)/tests/integration

# Parts added by later work bring their own makefile fragments: they may
# add to EXTRA_BINS (built by `make`), TEST_BINS (built by `make test`)
# and define their own targets.
TEST_BINS :=
-include perf/perf.mk
-include tests/conformance/conformance.mk
-include tests/extra.mk
-include tests/deploy/deploy.mk
-include tests/mesh/mesh.mk

.PHONY: all run test test-unit test-integration test-kernels check install uninstall clean help deps
.DELETE_ON_ERROR:

all: $(BINS) $(EXTRA_BINS)

help:
	@echo 'make            build build/sockmeshd, build/sockmesh and the BPF objects'
	@echo 'make run        set up what is missing, build, run sockmeshd on $(CONFIG)'
	@echo 'make test       set up what is missing, build, run every test (root)'
	@echo 'make check      clang-format, cppcheck, a -Werror build of everything'
	@echo 'make bench      sockmesh-bench matrix + real clients (iperf3, sockperf, redis, nginx+wrk): perf/results/ (root)'
	@echo 'make bench-quick  real clients, one 2 s round each (~2 min): build/real-clients-quick.md (root)'
	@echo 'make soak       10,000 connections heartbeating for 10 minutes (root)'
	@echo 'make fuzz       the config and CLI fuzzers, FUZZ_SECONDS each (300)'
	@echo 'make install    install to $$(DESTDIR)$$(PREFIX) (PREFIX=/usr/local), config in /etc/sockmesh'
	@echo 'make uninstall  remove what make install installed (not a changed config)'
	@echo 'make test-deploy  build the container image with podman, check it accelerates (root)'
	@echo 'make test-kernels integration + conformance under Debian 11, 12, 13 and backports kernels in qemu: docs/kernels.md (root)'
	@echo 'make clean      remove build/'
	@echo 'V=1             show the commands'

# Install the Debian packages that are missing (idempotent, quick when done).
deps:
	$(Q)scripts/setup.sh

$(BUILD) $(BUILD)/tests:
	$(Q)mkdir -p $@

$(BUILD)/vmlinux.h: | $(BUILD)
	$(call msg,BTF,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

vpath %.bpf.c sockops skmsg mesh
$(BUILD)/%.bpf.o: %.bpf.c include/sockmesh.h include/sm_maps.bpf.h include/sm_mesh.h $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# One object, each map defined once (sockops) and extern elsewhere (skmsg).
$(BUILD)/sockmesh.bpf.o: $(BPF_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(BUILD)/sockmesh.skel.h: $(BUILD)/sockmesh.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name sockmesh_bpf > $@

# [mesh] mode = connect: an object of its own, loaded only in that mode
$(BUILD)/mesh.skel.h: $(BUILD)/mesh.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name sockmesh_mesh_bpf > $@

$(BUILD)/obj/%.o: cgroupd/%.c $(CG_HDRS) include/sockmesh.h include/sm_mesh.h \
		   $(BUILD)/sockmesh.skel.h $(BUILD)/mesh.skel.h
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIBSM): $(call obj_of,$(LIB_SRCS))
$(LIBSMD): $(call obj_of,$(D_SRCS))
$(LIBSMCLI): $(call obj_of,$(CLI_SRCS))
$(LIBSM) $(LIBSMD) $(LIBSMCLI):
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BUILD)/sockmeshd: $(BUILD)/obj/sockmeshd/main.o $(LIBSMD) $(LIBSM)
$(BUILD)/sockmesh: $(BUILD)/obj/sockmesh/main.o $(LIBSMCLI) $(LIBSM)
$(BINS):
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_CORE) -o $@

run: deps all
	$(BUILD)/sockmeshd -c $(CONFIG)

# the unit tests reach into all three folders
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIBSMD) $(LIBSMCLI) $(LIBSM) \
		       include/sockmesh.h | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit -Icgroupd/sockmeshd -Icgroupd/sockmesh $< \
		$(LIBSMD) $(LIBSMCLI) $(LIBSM) $(LDLIBS_CORE) -lcmocka -o $@

$(INTEG_BIN): $(INTEG_SRCS) tests/integration/harness.c tests/integration/harness.h \
	      include/sockmesh.h $(LIBSM) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Icgroupd -Itests/integration -Wno-format-truncation -pthread $(INTEG_SRCS) tests/integration/harness.c \
		$(LIBSM) $(LDLIBS_CORE) -o $@

test-unit: $(UNIT_BINS)
	$(Q)tests/run-unit.sh $(UNIT_BINS)

test-integration: all $(INTEG_BIN)
	$(Q)$(INTEG_BIN) --build $(BUILD) $(TESTS)

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(INTEG_BIN) $(TEST_BINS)
	$(Q)tests/run-all.sh $(BUILD)

# Debian's own kernels under qemu (scripts/kernels/): the suites, a table.
test-kernels: deps
	$(Q)$(MAKE) --no-print-directory all $(INTEG_BIN) $(TEST_BINS)
	$(Q)scripts/kernels/test-kernels.sh -b $(BUILD) -o docs/kernels.md $(KERNELS)

check: $(BUILD)/vmlinux.h
	$(Q)clang-format --dry-run --Werror cgroupd/*/*.c cgroupd/*/*.h include/*.h \
		sockops/*.bpf.c skmsg/*.bpf.c mesh/*.bpf.c perf/*.c perf/*.h \
		tests/unit/*.c tests/integration/*.c tests/integration/*.h \
		tests/conformance/*.c tests/conformance/*.h \
		tests/conformance/soak/*.c tests/fuzz/*.c tests/deploy/*.c
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr -Iinclude -Icgroupd/lib cgroupd tests
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/check EXTRA_CFLAGS=-Werror \
		all $(BUILD)/check/tests/integration

# make install [PREFIX=/usr/local] [DESTDIR=] [UNITDIR=...]: binaries, the
# systemd unit (with the paths of PREFIX), man pages, and the config in
# /etc/sockmesh (the path the binaries read by default), never overwriting
# one that is there. make uninstall removes them all but a config that was
# changed.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR := /etc/sockmesh
MAN8    := man/sockmeshd.8 man/sockmesh.8
MAN5    := man/sockmesh.ini.5
# root:root when installing as root (a package build as a user cannot chown)
OWNER   := $(if $(filter 0,$(shell id -u)),-o root -g root)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BUILD)/sockmeshd $(DESTDIR)$(SBINDIR)/sockmeshd
	install -m 0755 $(BUILD)/sockmesh $(BUILD)/sockmesh-bench $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/sbin/|$(SBINDIR)/|g' conf/sockmeshd.service \
		>$(BUILD)/sockmeshd.service
	install -m 0644 $(BUILD)/sockmeshd.service $(DESTDIR)$(UNITDIR)/sockmeshd.service
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -d -m 0755 $(OWNER) $(DESTDIR)$(CONFDIR)
	@if [ -e $(DESTDIR)$(CONFDIR)/sockmesh.ini ]; then \
		echo "keeping $(DESTDIR)$(CONFDIR)/sockmesh.ini (the new default is conf/sockmesh.ini)"; \
	else \
		echo "install -m 0644 $(OWNER) conf/sockmesh.ini $(DESTDIR)$(CONFDIR)/sockmesh.ini"; \
		install -m 0644 $(OWNER) conf/sockmesh.ini $(DESTDIR)$(CONFDIR)/sockmesh.ini; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sockmeshd $(DESTDIR)$(BINDIR)/sockmesh \
		$(DESTDIR)$(BINDIR)/sockmesh-bench $(DESTDIR)$(UNITDIR)/sockmeshd.service \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man8/%,$(MAN8)) \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man5/%,$(MAN5))
	@if cmp -s conf/sockmesh.ini $(DESTDIR)$(CONFDIR)/sockmesh.ini; then \
		echo "rm -f $(DESTDIR)$(CONFDIR)/sockmesh.ini"; \
		rm -f $(DESTDIR)$(CONFDIR)/sockmesh.ini; \
		rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(CONFDIR)/sockmesh.ini ]; then \
		echo "keeping $(DESTDIR)$(CONFDIR)/sockmesh.ini: it was changed"; \
	fi

clean:
	rm -rf $(BUILD)
