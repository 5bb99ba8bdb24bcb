#!/bin/bash
# make soak: SOAK_SECONDS (default 3600) of mixed load against the daemon
# built with ASan/UBSan, then a check that it gave back what it took.
#
# Load (tests/soak/load.sh, all in the test cgroup and namespaces of
# tests/lib.sh): TCP churn (v4, v6, refused, echo), keep-alive and pipelined
# HTTP, HTTP to FakeIP names, UDP from fresh sockets to 40 peers, DNS (FakeIP,
# forwarded, TCP, PTR) and hostile DNS (malformed datagrams, compression
# loops, a pipeline of 4000 queries over TCP, a reader that never reads,
# cut messages).
#
# Samples of the daemon: RSS, open fds, the entry count of each of its BPF
# hash maps (bpftool map dump).  "start" is taken after a warm-up, with the
# load stopped and settled; "end" the same way after the soak.  Fails when
#   RSS end > start + SOAK_RSS_PCT % (default 20),
#   fds end > start + SOAK_FDS (default 16),
#   a map's entries end > start + SOAK_MAP (default 4),
#   the daemon died, stopped uncleanly, or ASan/UBSan/LSan said anything,
#   a load kind never once succeeded.
# Not part of `make test`: it is long, and it asserts nothing about speed.
#   SOAK_SECONDS=N   length of the load (default 3600)
#   SOAK_WARMUP=N    warm-up seconds (default min(120, SOAK_SECONDS/4))
#   SOAK_SAMPLES=N   samples during the load (default 10)
SPROXY_BIN=${SPROXY_BIN:-build/asan/sproxy-bpf}
. "$(dirname "$0")/../lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-3600}
WARMUP=${SOAK_WARMUP:-$((SOAK_SECONDS / 4 < 120 ? SOAK_SECONDS / 4 : 120))}
SAMPLES=${SOAK_SAMPLES:-10}
RSS_PCT=${SOAK_RSS_PCT:-20}
FDS_MAX=${SOAK_FDS:-16}
MAP_MAX=${SOAK_MAP:-4}
UDP_TIMEOUT=5
RESOLVER=198.51.100.53
KINDS=(churn keepalive udp dns hostile)
# A small quarantine: ASan's default (256 MB of freed memory held back)
# would itself look like growth.  Leaks are checked at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=4:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

note() { echo "soak: $*"; }

setup_topology || finish
setup_cgroup || finish
if ! need curl dig dnsmasq socat bpftool jq "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
# 40 more peers for UDP: 203.0.113.20-51 and 2001:db8::20-27 (0x20-0x27).
for i in $(seq 20 51); do ip -n "$NS_S" addr add 203.0.113.$i/32 dev eth0 || finish; done
for i in $(seq 32 39); do ip -n "$NS_S" addr add "2001:db8::$(printf %x "$i")/128" dev eth0 nodad || finish; done
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility=/dev/null --address=/soak.test/203.0.113.10 --address=/soak.test/2001:db8::10 \
	--mx-host=mail.test,mx.mail.test,10 --txt-record=txt.test,"soak" --cache-size=0 || finish
start_bg web server "$TOOLS/httpd" -o /dev/null 203.0.113.10:8080 "[2001:db8::10]:8080" || finish
start_bg echo server "$TOOLS/echod" 203.0.113.11:7 203.0.113.10:7 || finish
args=()
for i in $(seq 20 35); do args+=("203.0.113.$i:7"); done
start_bg echo1 server "$TOOLS/echod" "${args[@]}" || finish
args=()
for i in $(seq 36 51); do args+=("203.0.113.$i:7"); done
for i in $(seq 32 39); do args+=("[2001:db8::$(printf %x "$i")]:7"); done
start_bg echo2 server "$TOOLS/echod" "${args[@]:0:16}" || finish
start_bg echo3 server "$TOOLS/echod" "${args[@]:16}" || finish
if ! wait_for 5 in_client dig +time=1 +tries=1 +short @$RESOLVER mail.test MX; then
	_setup_fail "dnsmasq does not answer on $RESOLVER"
	finish
fi
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

# The TCP pipeline: length-prefixed queries for the soak's names, A and
# AAAA in turn (awk writes the bytes as \x escapes, printf makes them).
awk 'BEGIN {
	for (c = 33; c < 127; c++)
		ord[sprintf("%c", c)] = c
	for (i = 1; i <= 1000; i++) {
		q = sprintf("%04x01000001000000000000", i)
		n = split("n" (i % 300) ".soak.test", l, ".")
		for (k = 1; k <= n; k++) {
			q = q sprintf("%02x", length(l[k]))
			for (c = 1; c <= length(l[k]); c++)
				q = q sprintf("%02x", ord[substr(l[k], c, 1)])
		}
		q = q sprintf("00%04x0001", i % 2 ? 1 : 28)
		printf "%04x%s", length(q) / 2, q
	}
}' | sed 's/../\\x&/g' >"$TMP/pipeline.hex"
printf '%b' "$(cat "$TMP/pipeline.hex")" >"$TMP/pipeline1.bin"
# four times over: 4000 queries, about 140 KB in one stream
cat "$TMP/pipeline1.bin" "$TMP/pipeline1.bin" "$TMP/pipeline1.bin" "$TMP/pipeline1.bin" >"$TMP/pipeline.bin"

# --- sampling ----------------------------------------------------------------

# The daemon's maps: ids from the fdinfo of its bpf-map fds, with names.
declare -A MAP_NAME MAP_TYPE
find_maps() {
	local fd id
	for fd in /proc/"$DAEMON_PID"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:bpf-map" ] || continue
		id=$(awk '$1 == "map_id:" { print $2 }' "/proc/$DAEMON_PID/fdinfo/${fd##*/}")
		[ -n "$id" ] || continue
		MAP_TYPE[$id]=$(awk '$1 == "map_type:" { print $2 }' "/proc/$DAEMON_PID/fdinfo/${fd##*/}")
		MAP_NAME[$id]=$(bpftool -j map show id "$id" 2>/dev/null | jq -r .name)
	done
}

# map_count ID: entries of a hash-like map; "-" for kinds that have no
# keys to count (arrays are constant, queues and ring buffers cannot be
# listed without draining them).
map_count() {
	case ${MAP_TYPE[$1]} in
	1 | 5 | 9 | 10 | 11) bpftool -j map dump id "$1" 2>/dev/null | jq length ;;
	*) echo - ;;
	esac
}

declare -A S		# S[label,metric] = value
LABELS=()
METRICS=()
sample() {
	local label=$1 id v
	LABELS+=("$label")
	S[$label,rss_kB]=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$DAEMON_PID/status")
	S[$label,fds]=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
	for id in $(printf '%s\n' "${!MAP_NAME[@]}" | sort -n); do
		v=$(map_count "$id")
		S[$label,map:${MAP_NAME[$id]}]=${v:--}
	done
}

metrics() {
	local id
	METRICS=(rss_kB fds)
	for id in $(printf '%s\n' "${!MAP_NAME[@]}" | sort -n); do
		[ "${MAP_TYPE[$id]}" = 1 ] || [ "${MAP_TYPE[$id]}" = 5 ] ||
			[ "${MAP_TYPE[$id]}" = 9 ] || [ "${MAP_TYPE[$id]}" = 10 ] ||
			[ "${MAP_TYPE[$id]}" = 11 ] || continue
		METRICS+=("map:${MAP_NAME[$id]}")
	done
}

# bound METRIC START: the largest end value that passes.
bound() {
	case $1 in
	rss_kB) echo $(($2 + $2 * RSS_PCT / 100)) ;;
	fds) echo $(($2 + FDS_MAX)) ;;
	*) echo $(($2 + MAP_MAX)) ;;
	esac
}

table() {
	local m l peak v b verdict
	printf '%-18s' metric
	for l in "${LABELS[@]}"; do printf ' %9s' "$l"; done
	printf ' %9s %9s  %s\n' peak bound verdict
	for m in "${METRICS[@]}"; do
		printf '%-18s' "$m"
		peak=0
		for l in "${LABELS[@]}"; do
			v=${S[$l,$m]:--}
			printf ' %9s' "$v"
			[[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt "$peak" ] && peak=$v
		done
		b=$(bound "$m" "${S[start,$m]:-0}")
		v=${S[end,$m]:--}
		if [[ $v =~ ^[0-9]+$ ]] && [ "$v" -le "$b" ]; then verdict=ok; else verdict=FAIL; fi
		printf ' %9s %9s  %s\n' "$peak" "$b" "$verdict"
	done
}

# --- load --------------------------------------------------------------------

LOAD_NAMES=()
start_load() { # SECONDS
	local k deadline=$(($(date +%s) + $1 + 60))
	rm -f "$TMP/stop"
	LOAD_NAMES=()
	for k in "${KINDS[@]}"; do
		start_bg "load-$k" app bash "$ROOT/tests/soak/load.sh" "$k" "$TMP/stop" \
			"$deadline" "$TOOLS" "$TMP" || return 1
		LOAD_NAMES+=("load-$k")
	done
}

stop_load() {
	local n pid
	touch "$TMP/stop"
	# every client has a timeout of 30 s at most: let the rounds end
	for n in "${LOAD_NAMES[@]}"; do
		pid=$(cat "$TMP/$n.pid" 2>/dev/null) || continue
		wait_for 60 eval '! alive '"$pid" || stop_bg "$n"
		wait "$pid" 2>/dev/null
		rm -f "$TMP/$n.pid"
	done
}

# settle: idle until the UDP flows have timed out and connections closed.
# Bounded; the check afterwards says whether what is left is too much.
settle() {
	sleep $((UDP_TIMEOUT * 3))
}

# rounds KIND: "ok/total" of its rounds so far.
rounds() {
	local ok all
	ok=$(grep -c '^ok' "$TMP/$1.rounds" 2>/dev/null)
	all=$(wc -l <"$TMP/$1.rounds" 2>/dev/null)
	echo "${ok:-0}/${all:-0}"
}

# --- run -------------------------------------------------------------------------

note "daemon $SPROXY_BIN, $SOAK_SECONDS s of load after $WARMUP s of warm-up"
if ! start_daemon --resolver $RESOLVER --udp-timeout $UDP_TIMEOUT; then
	fail daemon-start "$WHY" "$TMP/daemon.err"
	finish
fi
find_maps
metrics
sample idle

# Warm-up: every FakeIP name of the set once, then the mixed load.
for i in $(seq 0 299); do printf 'n%d.soak.test A\nn%d.soak.test AAAA\n' "$i" "$i"; done >"$TMP/names"
in_app dig +time=3 +tries=1 +short -f "$TMP/names" >"$TMP/warm.out" 2>&1
note "warm-up: $(grep -c '^198\.1[89]\.' "$TMP/warm.out") A and $(grep -c '^fd73:' "$TMP/warm.out") AAAA FakeIP answers for 300 names"
start_load "$WARMUP" || finish
sleep "$WARMUP"
stop_load
settle
sample start

t_start=$(date +%s)
start_load "$SOAK_SECONDS" || finish
step=$((SOAK_SECONDS / SAMPLES))
[ "$step" -ge 1 ] || step=1
k=0
while [ $(($(date +%s) - t_start)) -lt "$SOAK_SECONDS" ]; do
	left=$((t_start + SOAK_SECONDS - $(date +%s)))
	sleep $((left < step ? left : step))
	daemon_running || break
	k=$((k + 1))
	sample "t+$(($(date +%s) - t_start))"
	note "$(date -u +%H:%M:%S) sample ${LABELS[-1]}: rss ${S[${LABELS[-1]},rss_kB]} kB, fds ${S[${LABELS[-1]},fds]}, rounds $(for x in "${KINDS[@]}"; do printf '%s %s ' "$x" "$(rounds "$x")"; done)"
done
stop_load
if daemon_running; then
	settle
	sample end
fi

# Still serving after it all: one proxied request and one FakeIP answer.
if daemon_running &&
	in_app curl -sS -m 10 -o /dev/null "http://203.0.113.10:8080/after" &&
	in_app dig +time=3 +tries=1 +short n1.soak.test A | grep -q '^198\.1[89]\.'; then
	pass still-serving
else
	fail still-serving "${WHY:-a request or a query after the soak failed}" "$TMP/daemon.err"
fi

echo
table | tee "$TMP/table"
echo
for k in "${KINDS[@]}"; do
	printf 'rounds %-10s %s ok\n' "$k" "$(rounds "$k")"
done
echo "connections logged: $(wc -l <"$TMP/conn.log"), of which errors: $(grep -c 'result=error' "$TMP/conn.log")"
# what the errors were (the hostile load makes most of them), numbers out
grep 'result=error' "$TMP/conn.log" | sed 's/.*error=//; s/[0-9][0-9]*/N/g' |
	sort | uniq -c | sort -rn | head -n 12 | sed 's/^/    /'

if grep -q FAIL "$TMP/table"; then
	fail bounds "a metric ended outside its bound (table above)"
else
	pass bounds
fi
for k in "${KINDS[@]}"; do
	r=$(rounds "$k")
	if [ "${r%/*}" -gt 0 ]; then
		pass "load-$k"
	else
		fail "load-$k" "no round of $k load succeeded ($r)" "$TMP/$k.err"
	fi
done
if stop_daemon; then
	pass clean-exit
else
	fail clean-exit "$WHY" "$TMP/daemon.err"
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$TMP/daemon.err"; then
	fail sanitizers "the daemon's stderr has a sanitizer report" "$TMP/daemon.err"
	grep -m 20 -A 12 -E 'ERROR: |runtime error:' "$TMP/daemon.err" | sed 's/^/    | /'
else
	pass sanitizers
fi
finish
