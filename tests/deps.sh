#!/bin/sh
# Installs the Debian packages named on the command line that are missing.
# Quick when all are present: one dpkg-query, no apt.
set -u
missing=""
for p in "$@"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "sproxy-bpf: missing Debian packages:$missing" >&2
	echo "sproxy-bpf: run 'sudo make deps' (or apt-get install$missing) as root" >&2
	exit 1
fi
echo "  DEPS     installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Package lists may be absent or stale on a fresh machine: update once, retry.
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq >/dev/null 2>&1
	apt-get install -y -qq --no-install-recommends $missing || {
		echo "sproxy-bpf: could not install:$missing" >&2
		exit 1
	}
fi
# Servers whose Debian package starts a system service on install (on a
# machine that lets it): the tests run their own instances in test
# namespaces, so stop the service this install started.
for p in $missing; do
	case $p in
	tinyproxy) svc=tinyproxy ;;
	dante-server) svc=danted ;;
	*) continue ;;
	esac
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" && echo "  DEPS     stopped the $svc service that installing $p started"
	fi
done
