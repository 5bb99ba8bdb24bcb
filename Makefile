# sproxy-bpf build.  `make V=1` prints full commands.
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX   ?= /usr/local
DESTDIR  ?=
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
XCFLAGS  := -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE \
	-DSPROXY_VERSION='"$(VERSION)"' -Iuser -Ibpf -I$(OUTPUT)
LDLIBS   := $(shell $(PKG_CONFIG) --libs libbpf libevent inih 2>/dev/null || \
	echo -lbpf -levent -linih) -lelf -lz

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

# Debian packages: to build, to test, to benchmark.
DEPS_BUILD := gcc make clang llvm pkg-config libbpf-dev bpftool libelf-dev \
	zlib1g-dev libevent-dev libinih-dev
DEPS_TEST  := iproute2 procps psmisc curl dnsutils busybox-static \
	dnsmasq-base libclang-rt-14-dev jq socat
DEPS_BENCH := iperf3 wrk apache2-utils dnsperf redsocks proxychains4 \
	microsocks gnuplot-nox iptables

.PHONY: all deps deps-test deps-bench test unit fuzz fuzz-long integration \
	sanitize demo bench bench-smoke bench-rules soak install uninstall clean \
	vmlinux tools

all: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)

deps:
	$(Q)tests/deps.sh $(DEPS_BUILD)
deps-test: deps
	$(Q)tests/deps.sh $(DEPS_TEST)
deps-bench: deps-test
	$(Q)tests/deps.sh $(DEPS_BENCH)

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests $(OUTPUT)/tools $(OUTPUT)/fuzz $(OUTPUT)/asan $(OUTPUT)/bench:
	$(Q)mkdir -p $@

# vmlinux.h is checked in per architecture (see README); regenerate with
# `make vmlinux` on a kernel with BTF.
vmlinux:
	$(call msg,GEN,$(VMLINUX))
	$(Q)mkdir -p $(dir $(VMLINUX))
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c bpf/sproxy.h $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp
	$(Q)rm -f $@.tmp

skel/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(USER_OBJS): $(SKELS)

$(OUTPUT)/user/%.o: user/%.c | $(OUTPUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) -Iskel -c $< -o $@

$(BIN): $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Unit tests link every module but main.o.
$(OUTPUT)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) -Iskel -Itests/unit $< $(LIB_OBJS) $(LDLIBS) -o $@

$(OUTPUT)/tools/%: tests/tools/%.c | $(OUTPUT)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(XCFLAGS) $< -o $@

# Fuzzers: clang + libFuzzer + ASan/UBSan, built from the module sources.
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -D_GNU_SOURCE -DSPROXY_VERSION='"$(VERSION)"' \
	-Iuser -Ibpf -Iskel
FUZZ_LIB_SRCS := $(filter-out user/main.c,$(USER_SRCS))
$(OUTPUT)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) $(SKELS) | $(OUTPUT)/fuzz
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(FUZZ_LIB_SRCS) $(LDLIBS) -o $@

# The unit tests again under ASan/UBSan (LeakSanitizer included).
ASAN_CFLAGS := -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -D_GNU_SOURCE -DSPROXY_VERSION='"$(VERSION)"' \
	-Iuser -Ibpf -Iskel -Itests/unit
$(OUTPUT)/asan/%: tests/unit/%.c $(FUZZ_LIB_SRCS) $(SKELS) | $(OUTPUT)/asan
	$(call msg,ASAN,$@)
	$(Q)$(CLANG) $(ASAN_CFLAGS) $< $(FUZZ_LIB_SRCS) $(LDLIBS) -o $@
$(OUTPUT)/asan/$(BIN): $(USER_SRCS) $(SKELS) | $(OUTPUT)/asan
	$(call msg,ASAN,$@)
	$(Q)$(CLANG) $(ASAN_CFLAGS) $(USER_SRCS) $(LDLIBS) -o $@

tools: $(TOOL_BINS)

test: deps-bench
	$(Q)$(MAKE) --no-print-directory $(BIN) $(UNIT_BINS) $(TOOL_BINS) $(FUZZ_BINS) \
		$(patsubst $(OUTPUT)/tests/%,$(OUTPUT)/asan/%,$(UNIT_BINS)) $(OUTPUT)/asan/$(BIN)
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

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/$(BIN)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/$(BIN)

clean:
	rm -rf $(OUTPUT) $(BIN) skel/*.skel.h

-include $(wildcard $(OUTPUT)/user/*.d $(OUTPUT)/tests/*.d $(OUTPUT)/tools/*.d)
