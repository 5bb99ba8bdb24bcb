# sproxy-bpf build.  `make V=1` prints full commands.
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
OUTPUT   := build
BIN      := sproxy-bpf
VERSION  := 0.1.0

CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PKG_CONFIG ?= pkg-config

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' \
	-e 's/ppc64le/powerpc/' -e 's/mips.*/mips/' -e 's/riscv64/riscv/' \
	-e 's/s390x/s390/' -e 's/loongarch64/loongarch/')
VMLINUX := vmlinux/$(ARCH)/vmlinux.h

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CFLAGS   ?= -g -O2
XCFLAGS  := -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE -pthread \
	-DSPROXY_VERSION='"$(VERSION)"' -Iuser -Ibpf -I$(OUTPUT)
LDLIBS   := $(shell $(PKG_CONFIG) --libs libbpf libevent inih libcap-ng 2>/dev/null || \
	echo -lbpf -levent -linih -lcap-ng) -lelf -lz -pthread

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-I$(dir $(VMLINUX)) -Ibpf

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,skel/%.skel.h,$(BPF_SRCS))

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(OUTPUT)/user/main.o,$(USER_OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(OUTPUT)/tools/%,$(TOOL_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUTPUT)/fuzz/%,$(FUZZ_SRCS))
FUZZ_LIB_SRCS := $(filter-out user/main.c,$(USER_SRCS))

# Debian packages: to build, to test, to benchmark.
DEPS_BUILD := gcc make clang llvm pkg-config libbpf-dev bpftool libelf-dev \
	zlib1g-dev libevent-dev libinih-dev libcap-ng-dev scdoc
DEPS_TEST  := iproute2 procps psmisc curl dnsutils busybox-static redsocks mitmproxy \
	dnsmasq-base libclang-rt-14-dev jq socat microsocks dante-server tinyproxy \
	openssl nftables iptables
# What 64_install.sh checks the packaging with; `make deb` adds lintian.
DEPS_PKG   := man-db systemd bash-completion zsh dpkg-dev debhelper fakeroot
DEPS_DEB   := $(DEPS_PKG) lintian
DEPS_BENCH := iperf3 wrk apache2-utils dnsperf redsocks proxychains4 \
	microsocks gnuplot-nox iptables

.PHONY: all deps deps-test deps-bench deps-pkg deps-deb test unit fuzz fuzz-long integration \
	sanitize demo bench test-build bench-smoke bench-rules soak install uninstall clean vmlinux tools \
	build-deps deb man

MAN := $(OUTPUT)/sproxy-bpf.8
UNITS := $(OUTPUT)/systemd/sproxy-bpf.service $(OUTPUT)/systemd/sproxy-bpf@.service

# Builds only: installing packages is `make deps` (as root).
all: $(BIN) $(MAN) $(UNITS)

deps:
	$(Q)tests/deps.sh $(DEPS_BUILD)
deps-pkg: deps
	$(Q)tests/deps.sh $(DEPS_PKG)
deps-deb: deps
	$(Q)tests/deps.sh $(DEPS_DEB)

# A missing tool or library: one message that says what to do, not a
# compiler error.  Order-only, so it never causes a rebuild.
BUILD_LIBS := libbpf libevent inih libcap-ng
build-deps:
	$(Q)missing=""; \
	for t in $(CC) $(CLANG) $(BPFTOOL) $(PKG_CONFIG) scdoc; do \
		command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	for l in $(BUILD_LIBS); do \
		$(PKG_CONFIG) --exists $$l 2>/dev/null || missing="$$missing $$l"; done; \
	[ -z "$$missing" ] || { echo "sproxy-bpf: missing build dependencies:$$missing" >&2; \
		echo "sproxy-bpf: run 'sudo make deps' (Debian: apt-get install $(DEPS_BUILD))" >&2; \
		exit 1; }
deps-test: deps
	$(Q)tests/deps.sh $(DEPS_TEST)
deps-bench: deps-test
	$(Q)tests/deps.sh $(DEPS_BENCH)

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests $(OUTPUT)/tools $(OUTPUT)/fuzz/obj $(OUTPUT)/asan/obj $(OUTPUT)/asan $(OUTPUT)/tsan/obj $(OUTPUT)/bench:
	$(Q)mkdir -p $@

# vmlinux.h is checked in per architecture (see README); regenerate with
# `make vmlinux` on a kernel with BTF.
vmlinux:
	$(call msg,GEN,$(VMLINUX))
	$(Q)mkdir -p $(dir $(VMLINUX))
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c bpf/sproxy.h $(wildcard bpf/*.bpf.h) $(VMLINUX) | $(OUTPUT) build-deps
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp
	$(Q)rm -f $@.tmp

skel/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(USER_OBJS): $(SKELS)

$(OUTPUT)/user/%.o: user/%.c | $(OUTPUT)/user build-deps
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(XCFLAGS) -Iskel -c $< -o $@

$(BIN): $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Unit tests link every module but main.o.
$(OUTPUT)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) -Iskel -Itests/unit $< $(LIB_OBJS) $(LDLIBS) -o $@

$(OUTPUT)/tools/%: tests/tools/%.c | $(OUTPUT)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) $< -o $@

# Fuzzers and the ASan builds: clang with ASan/UBSan.  Each module is
# compiled once per flavour into its own obj/ directory and linked into
# every binary of that flavour.
SAN_CFLAGS := -g -O1 -fno-sanitize-recover=undefined -D_GNU_SOURCE \
	-DSPROXY_VERSION='"$(VERSION)"' -Iuser -Ibpf -Iskel

# Fuzzers: libFuzzer; the modules carry its coverage hooks
# (fuzzer-no-link), only the harness links the fuzzer's main.
FUZZ_CFLAGS := $(SAN_CFLAGS) -fsanitize=address,undefined
FUZZ_OBJS := $(patsubst user/%.c,$(OUTPUT)/fuzz/obj/%.o,$(FUZZ_LIB_SRCS))
$(FUZZ_OBJS): $(SKELS)
$(OUTPUT)/fuzz/obj/%.o: user/%.c | $(OUTPUT)/fuzz/obj build-deps
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_BINS): $(OUTPUT)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS) $(SKELS) | $(OUTPUT)/fuzz/obj
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MT $@ -MF $(OUTPUT)/fuzz/obj/$*.d \
		$< $(FUZZ_OBJS) $(LDLIBS) -o $@

# The unit tests again under ASan/UBSan (LeakSanitizer included), and the
# daemon for the ASan run of 10_tcp.sh and the soak.
ASAN_CFLAGS := $(SAN_CFLAGS) -fsanitize=address,undefined -fno-omit-frame-pointer \
	-Itests/unit
ASAN_OBJS := $(patsubst user/%.c,$(OUTPUT)/asan/obj/%.o,$(USER_SRCS))
ASAN_LIB_OBJS := $(filter-out $(OUTPUT)/asan/obj/main.o,$(ASAN_OBJS))
ASAN_BINS := $(patsubst $(OUTPUT)/tests/%,$(OUTPUT)/asan/%,$(UNIT_BINS))
$(ASAN_OBJS): $(SKELS)
$(OUTPUT)/asan/obj/%.o: user/%.c | $(OUTPUT)/asan/obj build-deps
	$(call msg,ASAN-CC,$@)
	$(Q)$(CLANG) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@
$(ASAN_BINS): $(OUTPUT)/asan/%: tests/unit/%.c $(ASAN_LIB_OBJS) $(SKELS) | $(OUTPUT)/asan/obj
	$(call msg,ASAN,$@)
	$(Q)$(CLANG) $(ASAN_CFLAGS) -MMD -MP -MT $@ -MF $(OUTPUT)/asan/obj/$*.d \
		$< $(ASAN_LIB_OBJS) $(LDLIBS) -o $@
$(OUTPUT)/asan/$(BIN): $(ASAN_OBJS) | $(OUTPUT)/asan
	$(call msg,ASAN,$@)
	$(Q)$(CLANG) $(ASAN_CFLAGS) $^ $(LDLIBS) -o $@

# The daemon under TSan, for the runs of 52_relay_loops.sh (relays move
# between threads) and 47_config.sh (a reload resolves on a thread).
TSAN_CFLAGS := $(SAN_CFLAGS) -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJS := $(patsubst user/%.c,$(OUTPUT)/tsan/obj/%.o,$(USER_SRCS))
$(TSAN_OBJS): $(SKELS)
$(OUTPUT)/tsan/obj/%.o: user/%.c | $(OUTPUT)/tsan/obj build-deps
	$(call msg,TSAN-CC,$@)
	$(Q)$(CLANG) $(TSAN_CFLAGS) -MMD -MP -c $< -o $@
$(OUTPUT)/tsan/$(BIN): $(TSAN_OBJS)
	$(call msg,TSAN,$@)
	$(Q)$(CLANG) $(TSAN_CFLAGS) $^ $(LDLIBS) -o $@

tools: $(TOOL_BINS)

# Everything the suite runs, built on every core unless the caller's make
# already has a -j (then its jobserver is shared).
NPROC := $(shell nproc 2>/dev/null || echo 1)
test-build:
	$(Q)$(MAKE) --no-print-directory $(if $(filter -j% --jobserver%,$(MAKEFLAGS)),,-j$(NPROC)) \
		$(BIN) $(UNIT_BINS) $(TOOL_BINS) $(FUZZ_BINS) $(ASAN_BINS) $(OUTPUT)/asan/$(BIN) \
		$(OUTPUT)/tsan/$(BIN)

test: deps-bench deps-pkg
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/run

unit: $(UNIT_BINS)
	$(Q)tests/run --only unit

# Each harness for FUZZ_RUNS executions (default 10 million); a table.
fuzz-long: $(FUZZ_BINS)
	$(Q)tests/fuzz/long.sh $(FUZZ_BINS)

# Long mixed load against the ASan daemon; SOAK_SECONDS (default 3600).
soak: deps-test
	$(Q)$(MAKE) --no-print-directory $(OUTPUT)/asan/$(BIN) $(TOOL_BINS)
	$(Q)bash tests/soak/soak.sh

demo: deps-test
	$(Q)$(MAKE) --no-print-directory $(BIN) $(TOOL_BINS)
	$(Q)tests/demo.sh

bench: deps-bench
	$(Q)$(MAKE) --no-print-directory $(BIN) $(TOOL_BINS) bench-rules
	$(Q)tests/bench/bench.sh

# Time per rule decision at 10, 1,000 and 20,000 rules; no root, no network.
$(OUTPUT)/bench/bench_rules: tests/bench/bench_rules.c $(LIB_OBJS) | $(OUTPUT)/bench
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) -Iskel $< $(LIB_OBJS) $(LDLIBS) -o $@
bench-rules: $(OUTPUT)/bench/bench_rules
	$(Q)$(OUTPUT)/bench/bench_rules

bench-smoke: deps-bench
	$(Q)$(MAKE) --no-print-directory $(BIN) $(TOOL_BINS)
	$(Q)tests/bench/bench.sh --smoke

man: $(MAN)
$(MAN): man/sproxy-bpf.8.scd | $(OUTPUT) build-deps
	$(call msg,SCDOC,$@)
	$(Q)scdoc < $< > $@

$(OUTPUT)/systemd/%: systemd/%.in Makefile
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

# The units name $(SBINDIR) and $(SYSCONFDIR): built again when they change.
$(OUTPUT)/systemd/.dirs: FORCE
	$(Q)mkdir -p $(dir $@)
	$(Q)echo '$(SBINDIR) $(SYSCONFDIR)' | cmp -s - $@ || echo '$(SBINDIR) $(SYSCONFDIR)' > $@
$(UNITS): $(OUTPUT)/systemd/.dirs
FORCE:

# The config file is the admin's: installed when absent, never overwritten,
# removed by uninstall only when unchanged.
install: all
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/$(BIN)
	install -D -m 0644 $(MAN) $(DESTDIR)$(MANDIR)/man8/sproxy-bpf.8
	install -D -m 0644 completions/sproxy-bpf.bash $(DESTDIR)$(BASHCOMPDIR)/sproxy-bpf
	install -D -m 0644 completions/_sproxy-bpf $(DESTDIR)$(ZSHCOMPDIR)/_sproxy-bpf
	install -D -m 0644 $(OUTPUT)/systemd/sproxy-bpf.service $(DESTDIR)$(SYSTEMDUNITDIR)/sproxy-bpf.service
	install -D -m 0644 $(OUTPUT)/systemd/sproxy-bpf@.service $(DESTDIR)$(SYSTEMDUNITDIR)/sproxy-bpf@.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/sproxy-bpf/config ] || \
		install -D -m 0600 dist/config $(DESTDIR)$(SYSCONFDIR)/sproxy-bpf/config

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/$(BIN) $(DESTDIR)$(MANDIR)/man8/sproxy-bpf.8 \
		$(DESTDIR)$(BASHCOMPDIR)/sproxy-bpf $(DESTDIR)$(ZSHCOMPDIR)/_sproxy-bpf \
		$(DESTDIR)$(SYSTEMDUNITDIR)/sproxy-bpf.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/sproxy-bpf@.service
	! cmp -s dist/config $(DESTDIR)$(SYSCONFDIR)/sproxy-bpf/config || \
		rm -f $(DESTDIR)$(SYSCONFDIR)/sproxy-bpf/config
	-rmdir $(DESTDIR)$(SYSCONFDIR)/sproxy-bpf 2>/dev/null

# The Debian package, built from a copy of the tree (dpkg-buildpackage
# writes next to the source): $(OUTPUT)/deb/sproxy-bpf_*.deb.
DEB_SRC := $(OUTPUT)/deb/sproxy-bpf-$(VERSION)
deb: deps-deb
	$(Q)rm -rf $(OUTPUT)/deb && mkdir -p $(DEB_SRC)
	$(Q)tar -c --exclude=./build --exclude=./.git --exclude='./skel/*.skel.h' \
		--exclude=./$(BIN) . | tar -x -C $(DEB_SRC)
	$(Q)cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	$(Q)lintian --tag-display-limit 0 $(OUTPUT)/deb/*.changes || true
	$(Q)ls $(OUTPUT)/deb/*.deb

clean:
	rm -rf $(OUTPUT) $(BIN) skel/*.skel.h

-include $(wildcard $(OUTPUT)/user/*.d $(OUTPUT)/tests/*.d $(OUTPUT)/tools/*.d \
	$(OUTPUT)/bench/*.d $(OUTPUT)/asan/obj/*.d $(OUTPUT)/tsan/obj/*.d $(OUTPUT)/fuzz/obj/*.d)
