#!/bin/bash
# install-servers.sh: puts Cyrus IMAP 3.6, Courier-IMAP 5.0 (with courier-pop)
# and popa3d where internal/cyrustest, internal/couriertest and
# internal/popa3dtest find them, on Debian bookworm, as root.
#
# Their Debian packages conflict with dovecot-imapd and dovecot-pop3d
# (Conflicts: imap-server / pop3-server), which the other integration tests
# need, so they are never installed: `apt-get download` fetches them and
# `dpkg-deb -x` unpacks them into $MAILMOVE_SERVERS_DIR/root (default
# /var/cache/mailmove-servers). Only the shared libraries they link against,
# which conflict with nothing, are installed with apt-get. The host's /etc is
# not touched: the harnesses give the servers their configuration in a
# private mount namespace.
#
# Idempotent: a second run with everything in place only checks and exits.
set -euo pipefail

DIR=${MAILMOVE_SERVERS_DIR:-/var/cache/mailmove-servers}
ROOT=$DIR/root

# Unpacked, never installed. cyrus-admin and courier-authlib-userdb bring
# the tools the harnesses call (mbexamine is in cyrus-common; makeuserdb is
# in courier-authlib-userdb); sasl2-bin brings saslpasswd2.
UNPACK=(
	cyrus-common cyrus-imapd cyrus-pop3d cyrus-admin sasl2-bin
	courier-base courier-imap courier-pop courier-authlib courier-authdaemon courier-authlib-userdb
	popa3d
)

# Installed: what the unpacked binaries link against (ldd) beyond what a
# Debian base system has, read from the packages' Depends. libsasl2-modules
# has the PLAIN and LOGIN mechanisms and libsasl2-modules-db the sasldb
# auxprop plugin Cyrus checks passwords with; libgamin0 provides libfam.so.0
# for Courier's imapd. socat runs popa3d inetd-style; openssl hashes the
# system passwords popa3d checks; perl runs Courier's makeuserdb. Left out on
# purpose: libclamav12 (only cyr_virusscan), libzephyr4 (only notifyd).
LIBS=(
	libsasl2-2 libsasl2-modules libsasl2-modules-db libdb5.3 libpcre3 libical3 libxapian30
	libicu72 libjansson4 libwrap0 libssl3 libldap-2.5-0 libkrb5-3 libpq5 libsqlite3-0 libxml2
	libcourier-unicode4 libidn12 libgamin0 libltdl7 libgdbm6 libgnutls30 libpam0g libpam-modules
	socat openssl perl
)

# The binaries the harnesses run; each must find all its libraries.
BINS=(
	usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd usr/lib/cyrus/bin/pop3d
	usr/lib/cyrus/bin/reconstruct usr/lib/cyrus/bin/mbexamine usr/lib/cyrus/bin/ctl_cyrusdb
	usr/sbin/saslpasswd2
	usr/sbin/couriertcpd usr/bin/couriertls usr/bin/imapd usr/lib/courier/courier/imaplogin
	usr/lib/courier/courier/courierpop3login usr/lib/courier/courier/courierpop3d
	usr/lib/courier/courier-authlib/authdaemond usr/lib/courier/courier-authlib/makedatprog
	usr/lib/courier-authlib/libauthuserdb.so
	usr/sbin/popa3d
)

die() { echo "install-servers: $*" >&2; exit 1; }

missing_libs() {
	local b out=""
	for b in "${BINS[@]}"; do
		[ -e "$ROOT/$b" ] || { out+=" $b(absent)"; continue; }
		local m
		m=$(LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib ldd "$ROOT/$b" 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
		[ -z "$m" ] || out+=" $b: $m"
	done
	echo "$out"
}

# Quick path: unpacked before from the same package list, nothing missing.
STAMP=$DIR/unpacked.list
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${UNPACK[*]}" ] && [ -z "$(missing_libs)" ] &&
	command -v socat >/dev/null && command -v openssl >/dev/null; then
	echo "install-servers: Cyrus, Courier and popa3d ready in $ROOT"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (it runs apt-get); the Cyrus, Courier and popa3d tests will be skipped"
command -v apt-get >/dev/null || die "apt-get not found: this installer is for Debian bookworm"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this installer is for Debian bookworm"

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	# -s first: refuse anything that would remove a package (Dovecot above all).
	local plan
	plan=$(apt-get install -s --no-install-recommends "$@" 2>&1) || { echo "$plan" >&2; return 1; }
	if grep -q '^Remv ' <<<"$plan"; then
		grep '^Remv ' <<<"$plan" >&2
		die "installing $* would remove the packages above; refusing"
	fi
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

echo "install-servers: installing runtime libraries: ${LIBS[*]}"
if ! apt_install "${LIBS[@]}"; then
	apt-get update -qq || die "apt-get update failed"
	apt_install "${LIBS[@]}" || die "apt-get install ${LIBS[*]} failed"
fi

mkdir -p "$DIR/debs"
echo "install-servers: downloading ${UNPACK[*]} into $DIR/debs"
if ! (cd "$DIR/debs" && apt-get download "${UNPACK[@]}" >/dev/null 2>"$DIR/download.err"); then
	apt-get update -qq || die "apt-get update failed"
	(cd "$DIR/debs" && apt-get download "${UNPACK[@]}" >/dev/null 2>"$DIR/download.err") ||
		die "apt-get download failed: $(cat "$DIR/download.err")"
fi

# A fresh tree, so that an older version's files do not linger.
rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for p in "${UNPACK[@]}"; do
	# The newest downloaded version of each package.
	deb=$(ls -t "$DIR/debs/${p}_"*.deb | head -1)
	echo "install-servers: unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$ROOT.new"
done
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
# Keep only what was unpacked.
for f in "$DIR"/debs/*.deb; do
	keep=
	for p in "${UNPACK[@]}"; do
		[ "$f" != "$(ls -t "$DIR/debs/${p}_"*.deb | head -1)" ] || keep=1
	done
	[ -n "$keep" ] || rm -f "$f"
done

m=$(missing_libs)
[ -z "$m" ] || die "libraries still missing after the install:$m"
echo "${UNPACK[*]}" >"$STAMP"
echo "install-servers: Cyrus, Courier and popa3d unpacked in $ROOT (dovecot untouched: $(dpkg-query -W -f='${Status}' dovecot-imapd 2>/dev/null || echo 'not installed'))"
