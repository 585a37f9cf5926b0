# wsflow — build, test and benchmark.
#
#   make            build build/wsflowd (and build/wsflowctl)
#   make deps       install the Debian packages the build and tests need
#   make run        deps + build + run wsflowd in the foreground with conf/
#   make check      deps + build + every test; last line "N passed, N failed"
#   make check SANITIZE=1   the same, built with ASan+UBSan (into build/asan)
#   make bench      throughput and CPU figures against the peers and the hash
#   make clean

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
PKG_CONFIG ?= pkg-config
DAEMON_PKGS := libwebsockets libconfig libsystemd openssl
PKGS := $(DAEMON_PKGS) json-c
OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	-Wsign-compare -Wformat=2 -Wundef -Wvla -Wimplicit-fallthrough
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(DAEMON_PKGS) 2>/dev/null)
CTL_LIBS = $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null)
ALL_CFLAGS = -std=c11 -pthread -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) $(PKG_CFLAGS) \
	-Idaemon -MMD -MP $(CFLAGS)
ALL_LDFLAGS = -pthread $(SANFLAGS) $(LDFLAGS)

PREFIX ?= /usr/local
DESTDIR ?=
# Another apt or dpkg at work (unattended-upgrades, a second shell): wait
# for its lock, up to 10 minutes, instead of failing at once.
APT_WAIT := -o DPkg::Lock::Timeout=600

# Debian packages: build, tests, benchmarks.
DEPS := build-essential pkg-config libwebsockets-dev libconfig-dev \
	libsystemd-dev libssl-dev libjson-c-dev openssl python3 python3-autobahn \
	python3-twisted procps clang libclang-rt-14-dev prometheus \
	systemd-container mandoc curl valgrind linux-perf \
	chromium nginx haproxy python3-websockets

# Daemon modules shared with the unit tests (everything but main).
DAEMON_LIB := config log batch stream server wsserver serverlws ws upgrade \
	tls listen http gen url producer control ctl_proto reload sd worker hist \
	live
# The live page (daemon/live/page.html) is compiled in as a C array.
DAEMON_OBJS := $(DAEMON_LIB:%=$(BUILD)/daemon/%.o) $(BUILD)/daemon/live_page.o
# wsflowctl shares only the control protocol (and its histogram) with the daemon.
CTL_OBJS := $(BUILD)/ctl/wsflowctl.o $(BUILD)/ctl/parser.o $(BUILD)/ctl/client.o \
	$(BUILD)/ctl/run.o \
	$(BUILD)/ctl/output_text.o $(BUILD)/ctl/output_json.o \
	$(BUILD)/ctl/watch.o \
	$(BUILD)/daemon/ctl_proto.o $(BUILD)/daemon/hist.o
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
# Each unit test links only the pure modules it tests: nothing proves a
# module pure like a link that would fail if it reached for more.
UNIT_OBJS_batch := batch
UNIT_OBJS_hist := hist
UNIT_OBJS_config := config ctl_proto url
UNIT_OBJS_ctlproto := ctl_proto
UNIT_OBJS_frame := ws gen url
UNIT_OBJS_upgrade := upgrade
UNIT_OBJS_wsparse := ws
UNIT_LIBS = $(shell $(PKG_CONFIG) --libs libconfig openssl 2>/dev/null) -lm

# libFuzzer targets (clang): make fuzz [FUZZ_SECONDS=60]
FUZZ_SECONDS ?= 60
FUZZ_DIR := build/fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DWSFLOW_NO_CLONES -g -O1 \
	-fsanitize=fuzzer,address,undefined -Idaemon
FUZZ_TARGETS := $(FUZZ_DIR)/fuzz_ctl $(FUZZ_DIR)/fuzz_config \
	$(FUZZ_DIR)/fuzz_wsparse $(FUZZ_DIR)/fuzz_upgraded
# fuzz_upgraded (frames behind a valid handshake) may get a time of its own.
FUZZ_UPGRADED_SECONDS ?= $(FUZZ_SECONDS)

.PHONY: all deps run check bench clean unit fuzz install
all: $(BUILD)/wsflowd $(BUILD)/wsflowctl

# The generator and the mask are the data path's hot loops: let the
# compiler vectorise them (both are built for baseline x86-64 and AVX2,
# daemon/simd.h; WSFLOW_GENERIC=1 makes an AVX2 machine run the former).
$(BUILD)/daemon/gen.o $(BUILD)/daemon/ws.o: OPT = -O3 -g

$(BUILD)/daemon/%.o: daemon/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# od and sed, not xxd: both are in every base system.
$(BUILD)/daemon/live_page.c: daemon/live/page.html
	@mkdir -p $(@D)
	{ echo '/* Generated from $< by the Makefile. */'; \
	  echo 'extern const char live_page_html[];'; \
	  echo 'extern const unsigned long live_page_html_len;'; \
	  echo 'const char live_page_html[] = {'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0 };'; \
	  echo 'const unsigned long live_page_html_len = sizeof(live_page_html) - 1;'; \
	} >$@.tmp && mv $@.tmp $@

$(BUILD)/daemon/live_page.o: $(BUILD)/daemon/live_page.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/ctl/%.o: ctl/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ictl -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/wsflowd: $(BUILD)/daemon/wsflowd.o $(DAEMON_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/wsflowctl: $(CTL_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CTL_LIBS)

.SECONDEXPANSION:
$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o \
    $$(addprefix $(BUILD)/daemon/,$$(addsuffix .o,$$(UNIT_OBJS_$$*)))
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(UNIT_LIBS)

unit: $(UNIT_TESTS)

deps:
	@missing=$$(for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get $(APT_WAIT) update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get $(APT_WAIT) install -y -qq $$missing >/dev/null; \
	fi

run: deps all
	$(BUILD)/wsflowd -d -f conf/wsflow.conf

check: deps all unit
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run

bench: deps all
	@BUILD=$(BUILD) tests/bench/run

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c daemon/ctl_proto.c daemon/config.c \
    daemon/url.c daemon/ws.c daemon/upgrade.c \
    daemon/ctl_proto.h daemon/config.h daemon/ws.h daemon/simd.h daemon/upgrade.h \
    tests/fuzz/seen.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) \
		$(shell $(PKG_CONFIG) --libs libconfig openssl)

# Each target for FUZZ_SECONDS from its seed corpus; a crash fails.
fuzz: deps $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
		n=$${t##*/fuzz_}; mkdir -p $(FUZZ_DIR)/corpus-$$n; \
		secs=$(FUZZ_SECONDS); \
		[ $$n != upgraded ] || secs=$(FUZZ_UPGRADED_SECONDS); \
		echo "fuzzing $$n for $$secs s"; \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$$t -max_total_time=$$secs -timeout=5 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/crash-$$n- \
			$(FUZZ_DIR)/corpus-$$n tests/fuzz/corpus/$$n \
			>$(FUZZ_DIR)/$$n.log 2>&1 || \
			{ tail -40 $(FUZZ_DIR)/$$n.log; exit 1; }; \
		grep -aE 'stat::number_of_executed_units' $(FUZZ_DIR)/$$n.log; \
	done

# make install [DESTDIR=...] [PREFIX=/usr/local]
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR ?= $(PREFIX)/share/doc/wsflow
SYSCONFDIR ?= /etc
MANPAGES := daemon/wsflowd.8 ctl/wsflowctl.8 daemon/wsflow.conf.5

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(COMPLETIONDIR) \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/wsflow
	install -m 755 $(BUILD)/wsflowd $(BUILD)/wsflowctl $(DESTDIR)$(BINDIR)
	install -m 644 daemon/wsflowd.8 ctl/wsflowctl.8 $(DESTDIR)$(MANDIR)/man8
	install -m 644 daemon/wsflow.conf.5 $(DESTDIR)$(MANDIR)/man5
	sed 's|/usr/local/bin/|$(BINDIR)/|g; s|/etc/wsflow/|$(SYSCONFDIR)/wsflow/|g' \
		systemd/wsflow.service >$(DESTDIR)$(UNITDIR)/wsflow.service
	install -m 644 systemd/wsflow.socket $(DESTDIR)$(UNITDIR)
	install -m 644 systemd/wsflow.sysusers $(DESTDIR)$(SYSUSERSDIR)/wsflow.conf
	install -m 644 systemd/wsflow-localhost.conf conf/wsflow.conf $(DESTDIR)$(DOCDIR)
	install -m 644 ctl/wsflowctl.bash $(DESTDIR)$(COMPLETIONDIR)/wsflowctl
	@# The user and group now, not at the next boot (a package's postinst
	@# does the same); with DESTDIR the target system makes them.
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		echo "systemd-sysusers $(SYSUSERSDIR)/wsflow.conf"; \
		systemd-sysusers $(SYSUSERSDIR)/wsflow.conf; fi
	@# An existing configuration is the admin's: never overwrite it.  A
	@# new one starts no producer: conf/wsflow.conf's (make run's) loop is
	@# left in it commented out.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/wsflow/wsflow.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/wsflow/wsflow.conf"; \
	else \
		sed '/^producers = (/,/^);/s/^/#/' conf/wsflow.conf \
		    >$(DESTDIR)$(SYSCONFDIR)/wsflow/wsflow.conf && \
		chmod 644 $(DESTDIR)$(SYSCONFDIR)/wsflow/wsflow.conf; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && \
	    [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf build

-include $(shell find $(BUILD) -path '$(BUILD)/sysroot' -prune -o -name '*.d' -type f -print 2>/dev/null)
