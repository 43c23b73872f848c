#!/usr/bin/env bash
# build-goservers.sh builds the two mail servers written in Go that the
# interop tests use as IMAP destinations, maddy and mox, into
# $MAILMOVE_SERVERS_DIR/bin (default /var/cache/mailmove-servers/bin), where
# internal/maddytest and internal/moxtest look for them.
#
# Why not `go install X@version`: the module proxy here refuses version lists
# for these modules, and go install asks for one (403). `go get -tool X@vN`
# in a scratch module names the version exactly and works. maddy's go.mod
# has `replace` directives (its forks of go-imap, go-smtp, libdns-gandi); a
# replace applies only in the main module, so the scratch module repeats
# them, read from maddy's own go.mod.
#
# Idempotent: a stamp file beside each binary records what built it (server
# version, Go version, cgo); when it matches, nothing is rebuilt and the
# script takes well under a second. Nothing here is vendored into mailmove:
# the sources stay in the Go module cache, the scratch modules under
# $MAILMOVE_SERVERS_DIR/src.
#
# Environment: MAILMOVE_SERVERS_DIR, MADDY_VERSION, MOX_VERSION, GO (the go
# command), CC (maddy's sqlite needs a C compiler).
set -euo pipefail

MADDY_VERSION=${MADDY_VERSION:-v0.8.1} # v0.9.x: the module proxy answers 403 "not available"
MOX_VERSION=${MOX_VERSION:-v0.0.17} # the newest served; v0.0.15 passes the same moxtest witnesses
root=${MAILMOVE_SERVERS_DIR:-/var/cache/mailmove-servers}
bin=$root/bin
GO=${GO:-go}

# -mod=mod: the scratch modules have no complete go.sum until go resolves
# them. GOWORK=off: a go.work above the cache must not pull these in.
# GOTOOLCHAIN=local unless the caller chose one: a build script must not
# download a toolchain behind the caller's back.
export GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=${GOTOOLCHAIN:-local}

if ! command -v "$GO" >/dev/null 2>&1; then
	echo "build-goservers: no go command ($GO); install Go or set GO" >&2
	exit 1
fi
goversion=$("$GO" env GOVERSION)

if ! mkdir -p "$bin" "$root/src" 2>/dev/null || [ ! -w "$bin" ]; then
	echo "build-goservers: cannot write to $root: run as root or set MAILMOVE_SERVERS_DIR to a writable directory" >&2
	exit 1
fi
# Two builds at once (two make runs) would race on the scratch modules.
exec 9>"$root/.lock"
flock 9

# fresh NAME STAMP: whether bin/NAME was built as STAMP says.
fresh() {
	[ -x "$bin/$1" ] && [ -f "$bin/.$1.stamp" ] && [ "$(cat "$bin/.$1.stamp")" = "$2" ]
}

# scratch DIR: an empty module of our own in DIR, to hold one tool.
scratch() {
	mkdir -p "$1"
	cd "$1"
	if [ ! -f go.mod ]; then
		"$GO" mod init "mailmove.invalid/goservers/$(basename "$1")" >/dev/null 2>&1
	fi
}

# install NAME PKG STAMP [go build flags...]: builds PKG of the scratch module
# in the current directory into bin/NAME; the binary replaces the old one
# only once it is complete, then the stamp is written.
install() {
	local name=$1 pkg=$2 stamp=$3
	shift 3
	"$GO" build -trimpath "$@" -o "$bin/.$name.tmp" "$pkg"
	mv -f "$bin/.$name.tmp" "$bin/$name"
	printf '%s\n' "$stamp" >"$bin/.$name.stamp"
}

build_maddy() {
	local v=$MADDY_VERSION
	# maddy's default storage (imapsql on sqlite) uses mattn/go-sqlite3 when cgo
	# is on, as maddy's own build.sh does; without cgo it silently switches to
	# another driver (modernc). Insist on cgo so every machine runs the same
	# server.
	local cc=${CC:-gcc}
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "build-goservers: maddy's sqlite storage needs a C compiler ($cc): apt-get install gcc libc6-dev" >&2
		return 1
	fi
	local stamp="maddy $v $goversion cgo"
	if fresh maddy "$stamp"; then
		echo "maddy $v: up to date in $bin"
		return 0
	fi
	echo "maddy $v: building into $bin (a cold build takes minutes: sqlite is C)"
	local t0=$SECONDS
	scratch "$root/src/maddy-$v"
	local dl gomod
	# On failure go prints the reason as JSON ("Error": ...) on stdout.
	if ! dl=$("$GO" mod download -json "github.com/foxcpp/maddy@$v"); then
		echo "build-goservers: cannot download github.com/foxcpp/maddy@$v:" >&2
		printf '%s\n' "$dl" | grep '"Error"' >&2 || printf '%s\n' "$dl" >&2
		return 1
	fi
	gomod=$(printf '%s\n' "$dl" | awk -F'"' '$2 == "GoMod" {print $4}')
	if [ ! -f "$gomod" ]; then
		echo "build-goservers: go mod download gave no go.mod for maddy@$v: $dl" >&2
		return 1
	fi
	# Both forms of replace: one line ("replace a => b v") and a block.
	local r
	while read -r r; do
		[ -n "$r" ] && "$GO" mod edit -replace="$r"
	done < <(awk '
		/^replace[ \t]*\(/ { block = 1; next }
		block && /^\)/ { block = 0; next }
		/^replace[ \t]/ { sub(/^replace[ \t]+/, ""); line = 1 }
		block || line {
			sub(/\/\/.*/, "")
			n = split($0, f, /[ \t]+/)
			left = ""; right = ""; side = 0
			for (i = 1; i <= n; i++) {
				if (f[i] == "") continue
				if (f[i] == "=>") { side = 1; continue }
				if (side == 0) left = left (left == "" ? "" : "@") f[i]
				else right = right (right == "" ? "" : "@") f[i]
			}
			if (left != "" && right != "") print left "=" right
			line = 0
		}' "$gomod")
	"$GO" get -tool "github.com/foxcpp/maddy/cmd/maddy@$v"
	CGO_ENABLED=1 install maddy github.com/foxcpp/maddy/cmd/maddy "$stamp" \
		-ldflags "-X github.com/foxcpp/maddy.Version=$v"
	echo "maddy $v: built in $((SECONDS - t0)) s: $("$bin/maddy" version 2>/dev/null | head -n 1)"
}

build_mox() {
	local v=$MOX_VERSION
	local stamp="mox $v $goversion"
	if fresh mox "$stamp"; then
		echo "mox $v: up to date in $bin"
		return 0
	fi
	echo "mox $v: building into $bin"
	local t0=$SECONDS
	scratch "$root/src/mox-$v"
	"$GO" get -tool "github.com/mjl-/mox@$v"
	# Pure Go (mox has no C); CGO off keeps the binary static.
	CGO_ENABLED=0 install mox github.com/mjl-/mox "$stamp"
	echo "mox $v: built in $((SECONDS - t0)) s"
}

start=$SECONDS
build_maddy
build_mox
echo "build-goservers: done in $((SECONDS - start)) s ($goversion)"
