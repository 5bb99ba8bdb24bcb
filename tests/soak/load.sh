#!/bin/bash
# One kind of soak load, in a loop, run by tests/soak/soak.sh inside the
# test's app cgroup and client namespace (so every connection is captured).
#   load.sh KIND STOPFILE DEADLINE TOOLS DATA
# Loops until STOPFILE exists or the clock passes DEADLINE (epoch seconds),
# whichever comes first; every client has a timeout of its own.  Each round
# appends one line to DATA/KIND.rounds ("ok" or what failed), which the
# soak reads for its summary; failures of single clients are expected in a
# hostile mix and are counted, not fatal.
set -u
kind=$1 stop=$2 deadline=$3 tools=$4 data=$5
pause=${SOAK_PAUSE:-0.1}
V4=203.0.113.10
DNS=192.0.2.53:53
NAMES=${SOAK_NAMES:-300}
round=0

# Every UDP peer address the soak gave the server namespace.
peers4() { local i; for i in $(seq "$1" "$2"); do printf '203.0.113.%d:7 ' "$i"; done; }
peers6() { local i; for i in $(seq "$1" "$2"); do printf '[2001:db8::%x]:7 ' "$i"; done; }

# churn: short TCP connections, each closed after one request; IPv4 and
# IPv6; some refused (nothing listens on port 9), some echo.
churn() {
	curl -sS -m 20 -o /dev/null -H 'Connection: close' \
		"http://$V4:8080/churn/[1-40]" || return 1
	curl -sS -m 20 -g -o /dev/null -H 'Connection: close' \
		"http://[2001:db8::10]:8080/churn6/[1-10]" || return 1
	curl -sS -m 5 -o /dev/null "http://$V4:9/refused" 2>/dev/null
	"$tools/netclient" tcp -t 5 203.0.113.11:7 >/dev/null || return 1
	"$tools/netclient" tcp -t 5 -g soak -n 1 -H $V4:8080 >/dev/null || return 1
}

# keepalive: many requests on few connections, pipelined too, and HTTP to
# FakeIP names (the proxy resolves the name behind the fake address).
keepalive() {
	local n=$((round % NAMES))
	curl -sS -m 30 -o /dev/null "http://$V4:8080/ka/[1-200]" || return 1
	"$tools/netclient" tcp -t 10 -g soak -n 64 $V4:8080 >/dev/null || return 1
	curl -sS -m 20 -o /dev/null "http://n$n.soak.test:8080/fake/[1-5]" || return 1
	curl -sS -m 20 -6 -g -o /dev/null "http://n$n.soak.test:8080/fake6/[1-5]" || return 1
}

# udp: one socket to many peers (each pair a flow), connected UDP, v4 and v6.
udp() {
	"$tools/netclient" udp -t 5 -n 2 $(peers4 20 35) >/dev/null || return 1
	"$tools/netclient" udp -t 5 -n 2 $(peers4 36 51) >/dev/null || return 1
	"$tools/netclient" udp -t 5 -n 2 $(peers6 32 39) >/dev/null || return 1
	"$tools/netclient" udpc -t 5 203.0.113.$((20 + round % 32)):7 >/dev/null || return 1
}

# dns: FakeIP answers for a bounded set of names (the pool stops growing
# once warm-up has asked for each), forwarded types, TCP, PTR.
dns() {
	local n=$((round % NAMES)) a
	a=$(dig +time=3 +tries=1 +short "n$n.soak.test" A | tail -n 1)
	dig +time=3 +tries=1 +short "n$n.soak.test" AAAA >/dev/null || return 1
	dig +time=3 +tries=1 +tcp +short "n$(((n + 7) % NAMES)).soak.test" A >/dev/null || return 1
	dig +time=3 +tries=1 +short mail.test MX >/dev/null || return 1
	dig +time=3 +tries=1 +short txt.test TXT >/dev/null || return 1
	dig +time=3 +tries=1 +short nx.invalid.test SRV >/dev/null
	[ -n "$a" ] && dig +time=3 +tries=1 +short -x "$a" >/dev/null
	[ -n "$a" ]
}

# hostile: malformed datagrams, compression loops, a TCP pipeline of
# 4000 queries (read back), the same pipeline to a reader that never
# reads and leaves, cut and zero-length TCP messages.
hostile() {
	local hex
	for hex in \
		5a0f3c7e9912ffee00c1d4a8b6e3f20718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9000ffee00c1d4a8b6e3f20718293a4b5c6d7e8f90a1b2 \
		123401000001000000000000 \
		1234010000010000000000000474657374 \
		123401000001000000000000c00c00010001 \
		123401000001000000000000c01200010001 \
		12340100000100000000000003616263c00c00010001 \
		12340100ffff0000000000000474657374000001 \
		1234010000010000000000003f41 \
		00; do
		"$tools/netclient" udpsend -t 1 $DNS "$hex" >/dev/null 2>&1
	done
	# every query answered: 4000 answers are well over 120 KB
	local got
	got=$(timeout 30 socat -t 5 -T 10 - TCP:$DNS <"$data/pipeline.bin" | wc -c)
	[ "$got" -ge 120000 ] || { echo "pipeline: $got bytes of answers" >&2; return 1; }
	# writes the pipeline, reads nothing, closes after a second
	timeout 10 bash -c 'exec 3<>/dev/tcp/192.0.2.53/53 && cat "$1" >&3 && sleep 1' _ "$data/pipeline.bin" 2>/dev/null
	for hex in '\xff\xff\x12\x34' \
		'\x00\x10\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01' \
		'\x00\x00'; do
		timeout 10 socat -t 2 -T 3 - TCP:$DNS < <(printf "$hex") >/dev/null 2>&1
	done
	return 0
}

case $kind in churn | keepalive | udp | dns | hostile) ;; *) echo "load.sh: unknown kind $kind" >&2; exit 64 ;; esac
echo ready
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$deadline" ]; do
	if "$kind" 2>>"$data/$kind.err"; then
		echo ok
	else
		echo "failed round $round"
	fi >>"$data/$kind.rounds"
	round=$((round + 1))
	sleep "$pause"
done
