# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# ephport: build, run and test. 'make help' lists the targets.

VERSION := 0.1.0
OUT := build
PREFIX ?= /usr/local

CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= $(or $(shell command -v bpftool 2>/dev/null),/usr/sbin/bpftool)
CC ?= cc
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
	-e 's/s390x/s390/' -e 's/riscv64/riscv/' -e 's/loongarch64/loongarch/')

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -DEPHPORT_VERSION='"$(VERSION)"' -I$(OUT) -Ibpf -Iuser
LDLIBS += -lbpf -lelf -lz -lcjson -lmicrohttpd -lm -lpthread
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ivmlinux -Ibpf

# Debian 12 packages: to build and run, and in addition to test
BUILD_DEPS := make gcc libc6-dev clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev \
	libcjson-dev libmicrohttpd-dev iproute2 mount
TEST_DEPS := libcriterion-dev python3 python3-pytest python3-jsonschema rsyslog procps util-linux prometheus \
	libbpf-tools yamllint python3-yaml kubectl nodejs
# bench/run: python3, and tcpstates from libbpf-tools as the peer
BENCH_DEPS := python3 procps util-linux libbpf-tools

BPF_SRCS := $(wildcard bpf/*.bpf.c)
SKELS := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))
LIB_OBJS := $(addprefix $(OUT)/,util.o addr.o tuples.o capacity.o netns.o lock.o cgroup.o \
	report.o sink.o pressure.o failures.o guard.o cost.o metrics.o)
CMD_OBJS := $(addprefix $(OUT)/,main.o agent.o query.o)
UNIT_SRCS := $(wildcard tests/unit/*.c)
BENCH_BINS := $(OUT)/loadgen $(OUT)/floor

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
# keep the .bpf.o and skeletons that pattern rules make on the way
.SECONDARY:
.PHONY: all deps test-deps bench-deps mounts run demo test bench unit vmlinux format clean help

all: $(OUT)/ephport
	@: # a recipe, so a recursive make does not say "Nothing to be done"

help:
	@echo "make            build $(OUT)/ephport"
	@echo "make run        install build deps (apt), build, mount bpffs/tracefs, start the agent"
	@echo "make demo       ports running out and ephport warning, in under a minute (root; cleans up)"
	@echo "make test       install build and test deps (apt), build, run every test"
	@echo "make bench      run the benchmark (bench/run; BENCH_ARGS='--rounds 9' ...)"
	@echo "make vmlinux    regenerate vmlinux/vmlinux.h from this kernel's BTF"
	@echo "make format     clang-format the C sources"
	@echo "V=1             show full commands"

$(OUT):
	$(Q)mkdir -p $@

$(OUT)/%.bpf.o: bpf/%.bpf.c bpf/%.h bpf/core_fixes.bpf.h vmlinux/vmlinux.h | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(OUT)/%.o: user/%.c $(SKELS) | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# the benchmark's load generator and floor program
$(OUT)/floor.bpf.o: bench/floor.bpf.c vmlinux/vmlinux.h | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUT)/floor: bench/floor.c $(OUT)/floor.skel.h
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< -lbpf -lelf -lz -o $@

$(OUT)/loadgen: bench/loadgen.c | $(OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< -lpthread -lm -o $@

$(OUT)/ephport: $(CMD_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/unit_tests: $(UNIT_SRCS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $^ $(LDLIBS) -lcriterion -o $@

-include $(wildcard $(OUT)/*.d)

# install whatever of $(1) is missing; one clear line when we cannot
define apt_install
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || \
			missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make: missing packages:$$missing -- run as root (sudo make ...)" >&2; exit 1; \
		fi; \
		echo "  APT     $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_DEPS))

test-deps: deps
	$(call apt_install,$(TEST_DEPS))

bench-deps: deps
	$(call apt_install,$(BENCH_DEPS))

mounts:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

run: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory mounts
	@echo "starting $(OUT)/ephport agent $(ARGS) (Ctrl-C stops it)" >&2
	@exec $(OUT)/ephport agent $(ARGS)

# demo/run: a namespace with 100 ports, a client using them up, the agent watching
demo: deps
	$(call apt_install,python3)
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory mounts
	@demo/run

test: test-deps
	@$(MAKE) --no-print-directory all $(OUT)/unit_tests $(BENCH_BINS)
	@$(MAKE) --no-print-directory mounts
	@tests/run

bench: bench-deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@$(MAKE) --no-print-directory mounts
	@bench/run $(BENCH_ARGS)

unit: $(OUT)/unit_tests
	$(OUT)/unit_tests

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

format:
	clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h tests/unit/*.c bench/*.c

clean:
	rm -rf $(OUT)
