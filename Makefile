# mailmove: the two set-up commands are `make demo` (zero set-up beyond Go)
# and `make test` (installs and starts what it needs: Dovecot from Debian,
# and Cyrus, Courier and popa3d unpacked from Debian packages).

GO ?= go
export CI
# CI set to any of these makes a missing server or tool a failure (the Go
# tests read the same spellings: internal/mailserver.Required).
CIREQ := $(filter true TRUE True 1 yes,$(CI))

.PHONY: isync all build install demo test interop vet unit dovecot servers goservers clients fuzz bench clean

all: build

build:
	$(GO) build -o mailmove ./cmd/mailmove

install:
	$(GO) install ./cmd/mailmove

demo:
	$(GO) run ./cmd/mailmove demo

vet:
	$(GO) vet ./...

# Dovecot for the integration tests. Under CI=true a failed install is an
# error; elsewhere the tests that need Dovecot are skipped without it.
dovecot:
	@if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then \
		echo "dovecot: $$(/usr/sbin/dovecot --version 2>/dev/null || dovecot --version)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing dovecot-imapd and dovecot-pop3d"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-pop3d >/dev/null \
		|| { echo "dovecot install failed"; [ -z "$(CIREQ)" ] || exit 1; }; \
	elif [ -n "$(CIREQ)" ]; then \
		echo "CI=true: dovecot is required and cannot be installed (need root and apt-get)"; exit 1; \
	else \
		echo "dovecot not installed: integration tests will be skipped"; \
	fi

# Cyrus, Courier and popa3d for the integration tests, unpacked (their
# packages conflict with Dovecot's). Under CI=true a failure is an error;
# elsewhere their tests are skipped, loudly.
servers:
	@bash internal/mailserver/install-servers.sh \
		|| { [ -z "$(CIREQ)" ] || { echo "CI=true: Cyrus, Courier and popa3d are required"; exit 1; }; \
		     echo "note: Cyrus, Courier and popa3d tests will be skipped"; }

# The mail clients whose files the mbox tests read, as independent writers
# and readers of mbox: Python's mailbox module and procmail. Under CI=true
# a failed install is an error; elsewhere those tests are skipped, loudly.
clients:
	@if [ -x /usr/bin/python3 ] && command -v procmail >/dev/null 2>&1; then \
		echo "clients: $$(/usr/bin/python3 --version), procmail"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing python3 and procmail"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 procmail >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 procmail >/dev/null; } \
		|| { echo "clients: install failed"; [ -z "$(CIREQ)" ] || exit 1; }; \
	elif [ -n "$(CIREQ)" ]; then \
		echo "CI=true: python3 and procmail are required and cannot be installed (need root and apt-get)"; exit 1; \
	else \
		echo "python3 or procmail not installed: the independent mbox tests will be skipped"; \
	fi

# maddy and mox, the IMAP servers written in Go that the interop tests use as
# destinations, built from the Go module proxy into /var/cache/mailmove-servers
# (MAILMOVE_SERVERS_DIR). Not part of make test: a cold build takes about
# 2.5 minutes on 2 cores (maddy's SQLite is C); a warm one is instant. Under
# CI=true a failed build is an error; elsewhere their tests are skipped.
goservers:
	@GO="$(GO)" bash internal/mailserver/build-goservers.sh \
		|| { echo "goservers: build failed: the maddy and mox tests will be skipped"; [ -z "$(CIREQ)" ] || exit 1; }

# The longer matrix: the conformance suite against maddy and mox too (built
# here), every one of them required.
interop: vet dovecot servers clients goservers
	MAILMOVE_REQUIRE_SERVERS=all $(GO) test -count=1 -timeout 5m ./internal/maddytest ./internal/moxtest
	MAILMOVE_REQUIRE_SERVERS=all $(GO) test -count=1 -timeout 20m -run 'TestConformance|TestInterop' ./cmd/mailmove

test: vet dovecot servers clients
	$(GO) test -race -count=1 -timeout 12m ./...

# Short fuzzing of every parser of untrusted bytes (not part of make test;
# CI runs it with FUZZTIME=10s). Each target is named by an anchored regex:
# go test refuses a -fuzz pattern that matches more than one target
# (FuzzRepair would match FuzzRepairTo too). Every target's seed corpus is
# committed under <package>/testdata/fuzz/<target>/, which plain go test
# runs as regression inputs.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAppendReplies$$' -fuzztime $(FUZZTIME) ./migrate/imap
	$(GO) test -run '^$$' -fuzz '^FuzzDotReader$$' -fuzztime $(FUZZTIME) ./migrate/pop3
	$(GO) test -run '^$$' -fuzz '^FuzzClientReplies$$' -fuzztime $(FUZZTIME) ./migrate/pop3
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./migrate/mbox
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./migrate/mbox
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./cmd/mailmove
	$(GO) test -run '^$$' -fuzz '^FuzzFingerprint$$' -fuzztime $(FUZZTIME) ./mime
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeader$$' -fuzztime $(FUZZTIME) ./mime
	$(GO) test -run '^$$' -fuzz '^FuzzRemoveFields$$' -fuzztime $(FUZZTIME) ./mime
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./mime
	$(GO) test -run '^$$' -fuzz '^FuzzRepair$$' -fuzztime $(FUZZTIME) ./mime
	$(GO) test -run '^$$' -fuzz '^FuzzRepairTo$$' -fuzztime $(FUZZTIME) ./mime

# mbsync (Debian isync) is the peer the throughput benchmark compares with.
isync:
	@if command -v mbsync >/dev/null 2>&1; then echo "mbsync: $$(mbsync --version)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing isync (mbsync)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends isync >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends isync >/dev/null; } \
		|| echo "isync install failed: the mbsync rows will be skipped"; \
	else echo "mbsync not installed: its rows will be skipped"; fi

# BENCHTIME=3x repeats each row (take the median: the machine is shared with
# Dovecot); BENCH_SCALE=20000 shortens the 100,000-message row.
bench: dovecot isync
	$(GO) test -run '^$$' -bench . -benchmem $(if $(BENCHTIME),-benchtime $(BENCHTIME)) -timeout 90m ./...

clean:
	rm -f mailmove
