# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# ephport: build, run and test. 'make help' lists the targets.

VERSION := 0.1.0
OUT := build
# where the skeleton headers are: make asan builds from $(OUT)'s (OUT=build-asan SKEL_OUT=build)
SKEL_OUT ?= $(OUT)
PREFIX ?= /usr/local

CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= $(or $(shell command -v bpftool 2>/dev/null),/usr/sbin/bpftool)
CC ?= cc
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
	-e 's/s390x/s390/' -e 's/riscv64/riscv/' -e 's/loongarch64/loongarch/')

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -DEPHPORT_VERSION='"$(VERSION)"' -I$(SKEL_OUT) -Ibpf -Iuser
# libnftables reads a namespace's NAT rules (nat_rules.c)
NFT_LIBS := $(or $(shell pkg-config --libs libnftables 2>/dev/null),-lnftables)
# ncurses draws ephport top (top.c)
CURSES_LIBS := $(or $(shell pkg-config --libs ncursesw 2>/dev/null),-lncursesw -ltinfo)
LDLIBS += -lbpf -lelf -lz -lcjson -lmicrohttpd -lmnl $(NFT_LIBS) $(CURSES_LIBS) -lm -lpthread
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ivmlinux -Ibpf

# Debian 12 packages: to build and run, and in addition to test
BUILD_DEPS := make gcc libc6-dev clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev \
	libcjson-dev libmicrohttpd-dev libmnl-dev libnftables-dev libncurses-dev pkg-config iproute2 mount
TEST_DEPS := libcriterion-dev libclang-rt-14-dev python3 python3-pytest python3-jsonschema rsyslog procps util-linux prometheus \
	nftables iptables \
	libbpf-tools yamllint python3-yaml nodejs \
	buildah binutils bash-completion groff-base man-db systemd conntrack tmux \
	debhelper dpkg-dev lintian podman crun
# make asan and make fuzz: clang's sanitizer and libFuzzer runtimes, which clang-14 only
# recommends (libclang-rt-14-dev), and what tests/asan/run uses
SAN_DEPS := clang libclang-rt-14-dev libcriterion-dev python3 iproute2 util-linux
# bench/run: python3, and tcpstates from libbpf-tools as the peer
BENCH_DEPS := python3 procps util-linux libbpf-tools nftables iproute2
# make vmtest: qemu, the initramfs (cpio, static init), modprobe and depmod for the guest
VMTEST_DEPS := qemu-system-x86 cpio kmod xz-utils zstd debian-archive-keyring
# the kernels make vmtest boots (Debian's: 5.10 bullseye, 6.1 bookworm, 6.12 trixie)
KERNELS ?= 5.10 6.1 6.12

# one object per concern (bpf/), linked into one with bpftool gen object: one skeleton
BPF_SRCS := $(wildcard bpf/*.bpf.c)
# maps.bpf.o defines what the others declare extern: it goes first (libbpf 1.1's linker
# keeps an extern map's place in BTF at 0 when its definition comes later)
BPF_OBJS := $(OUT)/bpf/maps.bpf.o $(filter-out $(OUT)/bpf/maps.bpf.o, \
	$(patsubst bpf/%.bpf.c,$(OUT)/bpf/%.bpf.o,$(BPF_SRCS)))
BPF_HDRS := $(wildcard bpf/*.h) vmlinux/vmlinux.h
SKELS := $(SKEL_OUT)/ephport.skel.h
# the option tables (agent_opts.o, query_opts.o) are here for the unit tests to parse with,
# query_render.o for the query fuzzer to render with
LIB_OBJS := $(addprefix $(OUT)/,util.o index.o cadence.o addr.o objects.o jsonw.o table.o tuples.o capacity.o nat_rules.o nat_rules_parse.o nat.o nat_json.o query_nat.o metrics_nat.o netns.o spread_local.o lock.o privdir.o cgroup.o kernel.o startup.o \
	nat_ct.o nat_ct_agg.o report.o sink.o pressure.o openers.o failures.o spread.o guard.o cost.o promtext.o metrics_conn.o metrics_http.o series.o hints.o metrics.o \
	opts.o opts_complete.o agent_opts.o query_opts.o query_render.o top_model.o top_frame.o)
CMD_OBJS := $(addprefix $(OUT)/,main.o agent.o agent_signal.o agent_check.o agent_lines.o agent_upkeep.o agent_bpf.o \
	agent_query.o query.o top.o)
UNIT_SRCS := $(wildcard tests/unit/*.c)
BENCH_BINS := $(OUT)/loadgen $(OUT)/floor $(OUT)/nshold $(OUT)/nat_probe $(OUT)/natrules \
	$(OUT)/natflows

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
.PHONY: all deps test-deps bench-deps san-deps mounts run demo test bench unit vmlinux format clean \
	help image install uninstall vmtest soak completion asan asan-build fuzz deb deb-deps

all: $(OUT)/ephport
	@: # a recipe, so a recursive make does not say "Nothing to be done"

help:
	@echo "make            build $(OUT)/ephport"
	@echo "make run        install build deps (apt), build, mount bpffs/tracefs, start the agent"
	@echo "make demo       ports running out and ephport warning, in under a minute (root; cleans up)"
	@echo "make test       install build and test deps (apt), build, run every test"
	@echo "make asan       the unit tests and an end-to-end smoke built with ASan and UBSan"
	@echo "                ($(ASAN_OUT)/; the smoke needs root)"
	@echo "make fuzz       each libFuzzer target (tests/fuzz/) for FUZZ_S seconds (default $(FUZZ_S))"
	@echo "make bench      run the benchmark (bench/run; BENCH_ARGS='--rounds 9' ...), then bench/nat_cost"
	@echo "make vmtest     the end-to-end tests on Linux 5.10, 6.1 and 6.12 in VMs (root;"
	@echo "                KERNELS=\"6.1\", VMTEST_ARGS='tests/e2e/test_tuples.py'; docs/kernels.md)"
	@echo "make soak       the agent under churn, restarts and namespace turnover against ss, with"
	@echo "                200,000 live and 1,000,000 TIME_WAIT sockets first (root; SOAK_S=600)"
	@echo "make vmlinux    regenerate vmlinux/vmlinux.h from this kernel's BTF"
	@echo "make format     clang-format the C sources"
	@echo "make completion write deploy/completion/ephport.bash from the option tables"
	@echo "make deb        build the Debian package in $(OUT)/deb (debhelper; installs its tools)"
	@echo "make image      build the container image $(IMAGE) with buildah (root; IMAGE=name:tag)"
	@echo "make install    install to $(PREFIX) (DESTDIR=, PREFIX=; docs/install.md)"
	@echo "make uninstall  remove what make install installed (same DESTDIR and PREFIX)"
	@echo "V=1             show full commands"

$(OUT):
	$(Q)mkdir -p $@

$(OUT)/bpf:
	$(Q)mkdir -p $@

$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) | $(OUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/ephport.bpf.o: $(BPF_OBJS)
	$(call msg,LINK-BPF,$@)
	$(Q)$(BPFTOOL) gen object $@ $^
	$(Q)$(LLVM_STRIP) -g $@

$(OUT)/ephport.skel.h: $(OUT)/ephport.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name ephport_bpf > $@

$(OUT)/%.o: user/%.c $(SKELS) | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# the benchmark's load generator and floor program
$(OUT)/floor.bpf.o: bench/floor.bpf.c vmlinux/vmlinux.h | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUT)/floor.skel.h: $(OUT)/floor.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name floor_bpf > $@

$(OUT)/floor: bench/floor.c $(OUT)/floor.skel.h
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< -lbpf -lelf -lz -o $@

$(OUT)/natflows: bench/natflows.c | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(CPPFLAGS) $< -o $@

$(OUT)/nshold: bench/nshold.c | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(CPPFLAGS) $< -o $@

# nat_ct.c alone: the end-to-end tests' view of a namespace's source NAT
$(OUT)/nat_probe: bench/nat_probe.c $(OUT)/nat_ct.o $(OUT)/nat_ct_agg.o | $(OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $^ -lmnl -lcjson -o $@

# what nat_rules.c makes of a namespace (tests/e2e/test_nat_rules.py)
$(OUT)/natrules: bench/natrules.c $(OUT)/nat_rules.o $(OUT)/nat_rules_parse.o
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $^ -lcjson -lmnl $(NFT_LIBS) -o $@

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

# make asan: the user space again, by clang with AddressSanitizer and UBSan, into its own
# folder through the rules above (OUT=$(ASAN_OUT)); the BPF object and its skeleton stay
# $(OUT)'s, built by clang -target bpf as always
ASAN_OUT := build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_BINS := $(ASAN_OUT)/ephport $(ASAN_OUT)/unit_tests

asan-build: $(SKELS)
	@$(MAKE) --no-print-directory $(if $(Q),-s) OUT=$(ASAN_OUT) SKEL_OUT=$(SKEL_OUT) CC=$(CLANG) \
		CFLAGS='-O1 -g $(SAN_FLAGS) -std=c11 -Wall -Wextra -Werror' $(ASAN_BINS)

# make fuzz: a libFuzzer target per parser of outside input (tests/fuzz/*.c, fuzz.c their
# helpers), linked against user/ built with coverage, ASan and UBSan in build-fuzz/. UB
# stops a target as a crash does.
FUZZ_OUT := build-fuzz
FUZZ_CFLAGS := -O1 -g $(SAN_FLAGS) -fno-sanitize-recover=all -std=c11 -Wall -Wextra -Werror
FUZZ_TARGETS := $(filter-out fuzz,$(basename $(notdir $(wildcard tests/fuzz/*.c))))
FUZZ_BINS := $(addprefix $(FUZZ_OUT)/fuzz_,$(FUZZ_TARGETS))
FUZZ_LIB := $(FUZZ_OUT)/libephport.a
# seconds each target runs in make fuzz (make test: 3)
FUZZ_S ?= 60

$(FUZZ_OUT):
	$(Q)mkdir -p $@

$(FUZZ_OUT)/%.o: user/%.c $(SKELS) | $(FUZZ_OUT)
	$(call msg,CC-FUZZ,$@)
	$(Q)$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_OUT)/fuzz.o: tests/fuzz/fuzz.c tests/fuzz/fuzz.h | $(FUZZ_OUT)
	$(call msg,CC-FUZZ,$@)
	$(Q)$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

# an archive: each target takes only the objects it needs
$(FUZZ_LIB): $(patsubst $(OUT)/%,$(FUZZ_OUT)/%,$(LIB_OBJS))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# no target resolves a host name (fuzz.c wraps getaddrinfo)
$(FUZZ_OUT)/fuzz_%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_OUT)/fuzz.o $(FUZZ_LIB)
	$(call msg,LINK,$@)
	$(Q)$(CLANG) $(CPPFLAGS) -Itests/fuzz $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OUT)/fuzz.o \
		$(FUZZ_LIB) $(LDLIBS) -Wl,--wrap=getaddrinfo -o $@

-include $(wildcard $(FUZZ_OUT)/*.d)

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

# make deb: Debian's packaging tools, and lintian to check what they made
DEB_DEPS := debhelper dpkg-dev lintian
deb-deps: deps
	$(call apt_install,$(DEB_DEPS))

bench-deps: deps
	$(call apt_install,$(BENCH_DEPS))

san-deps: deps
	$(call apt_install,$(SAN_DEPS))

mounts:
	@mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpf /sys/fs/bpf
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
	@$(MAKE) --no-print-directory all $(OUT)/unit_tests $(BENCH_BINS) asan-build $(FUZZ_BINS)
	@$(MAKE) --no-print-directory mounts
	@tests/run

# every kernel of KERNELS booted in qemu, the end-to-end suite run in it against this build
vmtest: test-deps
	$(call apt_install,$(VMTEST_DEPS))
	@$(MAKE) --no-print-directory all $(OUT)/unit_tests $(BENCH_BINS)
	@tests/vm/run --kernels "$(KERNELS)" $(VMTEST_ARGS)

bench: bench-deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@$(MAKE) --no-print-directory mounts
	@bench/run $(BENCH_ARGS)
	@bench/nat_cost

# the Debian package, built with debhelper from the committed sources (git ls-files) copied
# to $(OUT)/deb/ephport-$(VERSION): $(OUT)/deb/ephport_$(VERSION)_*.deb (docs/install.md)
deb: deb-deps
	$(call msg,DEB,$(OUT)/deb)
	$(Q)rm -rf $(OUT)/deb && mkdir -p $(OUT)/deb/ephport-$(VERSION)
	$(Q)git ls-files -z | tar --null -T - -cf - | tar -C $(OUT)/deb/ephport-$(VERSION) -xf -
	$(Q)cd $(OUT)/deb/ephport-$(VERSION) && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
		{ tail -n 30 ../build.log; echo "make deb: dpkg-buildpackage failed ($(OUT)/deb/build.log)" >&2; exit 1; }
	$(Q)ls $(OUT)/deb/*.deb

# long: not part of make test (docs/performance.md)
SOAK_S ?= 600
soak: test-deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@$(MAKE) --no-print-directory mounts
	@SOAK_S=$(SOAK_S) tests/soak/run

unit: $(OUT)/unit_tests
	$(OUT)/unit_tests

# the smoke loads the agent: as root, with bpffs and tracefs mounted
asan: san-deps
	@$(MAKE) --no-print-directory asan-build
	@[ "$$(id -u)" != 0 ] || $(MAKE) --no-print-directory mounts
	@tests/asan/run

fuzz: san-deps
	@$(MAKE) --no-print-directory $(if $(Q),-s) $(FUZZ_BINS)
	@tests/fuzz/run --seconds $(FUZZ_S)

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

format:
	clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h tests/unit/*.c tests/vm/*.c bench/*.c \
		tests/fuzz/*.c tests/fuzz/*.h

# the bash completion is the binary's: after changing an option, run this and commit the
# script (tests/e2e/test_completion.py fails while they differ)
completion: $(OUT)/ephport
	$(call msg,GEN,deploy/completion/ephport.bash)
	$(Q)$(OUT)/ephport completion bash > deploy/completion/ephport.bash

# the container image: FROM scratch plus the binary, the libraries it links and the loader
# (deploy/image-rootfs.sh says why not static); buildah needs no daemon. vfs storage works
# on any file system; see the image with '$(BUILDAH) images'.
IMAGE ?= ephport:$(VERSION)
BUILDAH ?= buildah --storage-driver vfs
IMAGE_DEPS := buildah binutils libc-bin

image: deps
	$(call apt_install,$(IMAGE_DEPS))
	@$(MAKE) --no-print-directory all
	$(call msg,IMAGE,$(IMAGE))
	$(Q)sh deploy/image-rootfs.sh $(OUT)/ephport $(OUT)/image/rootfs
	$(Q)$(BUILDAH) bud --quiet --isolation chroot --build-arg VERSION=$(VERSION) \
		-f deploy/Containerfile -t $(IMAGE) $(OUT)/image >/dev/null
	@echo "  built $(IMAGE): '$(BUILDAH) images' lists it, '$(BUILDAH) push' ships it"

# host install (docs/install.md). DESTDIR stages for a package; the unit's ExecStart and
# EnvironmentFile are rewritten for SBINDIR and SYSCONFDIR. systemd reads units from
# /usr/lib/systemd/system (PREFIX=/usr) and /usr/local/lib/systemd/system (the default);
# for another PREFIX set SYSTEMDUNITDIR=/etc/systemd/system.
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/ephport
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
INSTALLED = $(SBINDIR)/ephport $(MANDIR)/man8/ephport.8 $(BASHCOMPDIR)/ephport \
	$(SYSTEMDUNITDIR)/ephport.service $(DOCDIR)/README.md \
	$(addprefix $(DOCDIR)/,$(wildcard docs/*.md docs/*.json))

# every directory must be absolute: a relative one would install below the working tree
define check_dirs
	@for d in "PREFIX=$(PREFIX)" "SBINDIR=$(SBINDIR)" "MANDIR=$(MANDIR)" "DOCDIR=$(DOCDIR)" \
		"BASHCOMPDIR=$(BASHCOMPDIR)" "SYSTEMDUNITDIR=$(SYSTEMDUNITDIR)" \
		"SYSCONFDIR=$(SYSCONFDIR)"; do \
		case "$${d#*=}" in /*) ;; *) echo "make: $${d%%=*} must be an absolute path," \
			"not '$${d#*=}'" >&2; exit 2 ;; esac; \
	done
endef

install: $(OUT)/ephport
	$(call check_dirs)
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -D -m 0755 $(OUT)/ephport $(DESTDIR)$(SBINDIR)/ephport
	$(Q)install -D -m 0644 deploy/man/ephport.8 $(DESTDIR)$(MANDIR)/man8/ephport.8
	$(Q)install -D -m 0644 deploy/completion/ephport.bash $(DESTDIR)$(BASHCOMPDIR)/ephport
	$(Q)install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/docs
	$(Q)sed -e 's|/usr/local/sbin/ephport|$(SBINDIR)/ephport|' \
		-e 's|/etc/default/ephport|$(SYSCONFDIR)/default/ephport|' \
		deploy/systemd/ephport.service > $(DESTDIR)$(SYSTEMDUNITDIR)/ephport.service
	$(Q)chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/ephport.service
	$(Q)install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	$(Q)install -m 0644 $(wildcard docs/*.md docs/*.json) $(DESTDIR)$(DOCDIR)/docs/
	@# the settings file is the admin's: written once, never replaced
	$(Q)[ -e $(DESTDIR)$(SYSCONFDIR)/default/ephport ] || install -D -m 0644 \
		deploy/systemd/ephport.default $(DESTDIR)$(SYSCONFDIR)/default/ephport
	@[ -n "$(DESTDIR)" ] || echo "  next: systemctl daemon-reload; systemctl enable --now ephport"

uninstall:
	$(call check_dirs)
	$(call msg,UNINSTALL,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	$(Q)rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@# the settings file goes only if the admin never changed it
	$(Q)f=$(DESTDIR)$(SYSCONFDIR)/default/ephport; \
	if cmp -s deploy/systemd/ephport.default $$f; then rm -f $$f; \
	elif [ -e $$f ]; then echo "  kept $$f (changed)"; fi
	@[ -n "$(DESTDIR)" ] || ! systemctl is-active --quiet ephport 2>/dev/null || \
		echo "  ephport.service still runs: systemctl disable --now ephport"

clean:
	rm -rf $(OUT) $(ASAN_OUT) $(FUZZ_OUT)
