#!/bin/bash
# UDP capture and the FakeIP DNS server. dnsmasq in the server namespace
# (198.51.100.53) is the real resolver the daemon is given; the client
# namespace's resolv.conf names 192.0.2.53, where nothing listens, so every
# answer a captured app gets comes from the daemon. Covers:
#   DNS: fake A/AAAA over UDP and TCP (stable, in range, TTL 1, one address
#     per name whatever its case), any server address on port 53 (loopback
#     included), nothing for processes outside the cgroup, PTR of fake
#     addresses, other types passed through unchanged, glibc (getent),
#     busybox nslookup;
#   FakeIP connections: curl to a name (Host, tag, host= in the log), a
#     fake address used directly (getpeername shows it), a name the
#     resolver refuses (prompt failure, logged) without taking the resolver
#     out of service, --fakeip-store across restarts, stale fake addresses
#     without it, --disable-fakeip (real answers, their TTL, no host=),
#     --fakeip-exclude, --fakeip-range;
#   UDP: one unconnected socket to several peers (IPv4, IPv6, v4-mapped),
#     each reply from the right source; connected UDP getpeername; UDP to a
#     fake address; an 8000-byte datagram; flows logged with byte counts;
#     nothing for processes outside the cgroup; the IPv6 token pool running
#     dry and refilling;
#   bad input: malformed queries over UDP and TCP (the daemon lives on and
#     answers; each is logged as an error), a resolver that never answers
#     (SERVFAIL in bounded time, logged with the resolver's address).
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
RESOLVER=198.51.100.53
FAKE4=198.18.0.0/15
FAKE6=fd73:7072:6f78:7900::/64
DIG=(dig +time=3 +tries=1)
CASE_LOGS=("$HTTP_LOG" "$TMP/dnsmasq.log")

setup_topology || finish
setup_cgroup || finish
if ! need curl dig getent dnsmasq socat /bin/busybox "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
# svc.test HTTPS: priority 1, target ".", alpn=h2, ipv4hint=203.0.113.10,
# ech (3 bytes), ipv6hint=2001:db8::10
SVC_RDATA=0001000001000302683200040004cb00710a00050003aabbcc0006001020010db8000000000000000000000010
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --log-queries --local-ttl=77 \
	--address=/name.test/203.0.113.10 --address=/name.test/2001:db8::10 \
	--address=/real.test/203.0.113.11 --address=/real.test/2001:db8::11 \
	--address=/store.test/203.0.113.10 --address=/stale.test/203.0.113.10 \
	--address=/other.test/203.0.113.10 \
	--mx-host=mail.test,mx.mail.test,10 --txt-record=txt.test,"hello sproxy" \
	--dns-rr=svc.test,65,$SVC_RDATA || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" \
	203.0.113.10:8080 203.0.113.11:8080 "[2001:db8::10]:8080" "[2001:db8::11]:8080" || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" \
	203.0.113.10:7 203.0.113.11:7 $RESOLVER:7 "[2001:db8::10]:7" "[2001:db8::11]:7" \
	"[2001:db8::10]:17" || finish
if ! wait_for 5 in_client "${DIG[@]}" +short @$RESOLVER name.test; then
	_setup_fail "dnsmasq does not answer on $RESOLVER: $(tail -n 3 "$TMP/dnsmasq.err")"
	finish
fi
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

# --- helpers ---------------------------------------------------------------------

# in_cidr4 ADDR NET/LEN
in_cidr4() {
	local a b c d x y len=${2#*/} mask
	[[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
	IFS=. read -r a b c d <<<"$1"
	x=$(((a << 24) | (b << 16) | (c << 8) | d))
	IFS=. read -r a b c d <<<"${2%/*}"
	y=$(((a << 24) | (b << 16) | (c << 8) | d))
	mask=$(((0xffffffff << (32 - len)) & 0xffffffff))
	[ $((x & mask)) -eq $((y & mask)) ]
}

# expand6 ADDR: the eight groups, four hex digits each.
expand6() {
	local head=$1 tail="" g i n out=""
	local -a h=() t=()
	if [[ $1 == *::* ]]; then
		head=${1%%::*}
		tail=${1#*::}
	fi
	[ -n "$head" ] && IFS=: read -ra h <<<"$head"
	[ -n "$tail" ] && IFS=: read -ra t <<<"$tail"
	n=$((8 - ${#h[@]} - ${#t[@]}))
	for g in "${h[@]}"; do out+=$(printf '%04x:' "0x$g"); done
	for ((i = 0; i < n; i++)); do out+="0000:"; done
	for g in "${t[@]}"; do out+=$(printf '%04x:' "0x$g"); done
	echo "${out%:}"
}

# in_cidr6 ADDR NET/LEN (LEN a multiple of 16)
in_cidr6() {
	local chars
	[[ $1 =~ ^[0-9a-fA-F:]+$ && $1 == *:* ]] || return 1
	chars=$((${2#*/} / 16 * 5))	# "xxxx:" per 16 bits
	[ "$(expand6 "$1" | cut -c1-$chars)" = "$(expand6 "${2%/*}" | cut -c1-$chars)" ]
}

# query NAME DIG-ARGS...: dig in the app cgroup (through resolv.conf unless
# an @server is given); Q is the +short answer, one line per record.
query() {
	local name=$1
	shift
	app_run "$name" "${DIG[@]}" +short "$@"
	Q=$(grep -v '^;' "$TMP/$name.out")
}

# fake_a NAME DIG-ARGS...: the query answered one address in RANGE4 (A) or
# RANGE6 (AAAA, when the args contain AAAA); ADDR is that address.
RANGE4=$FAKE4
RANGE6=$FAKE6
fake_answer() {
	local name=$1 six=0 a
	shift
	[[ " $* " == *" AAAA "* ]] && six=1
	query "$name" "$@"
	ADDR=$Q
	expect "dig $* failed (exit $RUN_RC): $(head -n 1 "$TMP/$name.out")" [ "$RUN_RC" = 0 ] || return 1
	expect "dig $* answered '$(tr '\n' ' ' <<<"$Q")', want one address" [ "$(echo "$Q" | grep -c .)" = 1 ] || return 1
	if [ $six = 1 ]; then
		expect "dig $* answered $Q, not in $RANGE6" in_cidr6 "$Q" "$RANGE6"
	else
		expect "dig $* answered $Q, not in $RANGE4" in_cidr4 "$Q" "$RANGE4"
	fi
}

logged() { expect_log "$@"; }

# wait_udp_flows PID DST...: after the UDP timeout, one udp line per
# destination for PID.
wait_udp_flows() {
	local pid=$1 dst
	shift
	for dst in "$@"; do
		expect_log " udp " "pid=$pid " "dst=$dst " || return 1
	done
}

# --- cases -------------------------------------------------------------------------

t_a_fake() {
	local first ttl
	daemon_running || return 1
	fake_answer a1 name.test A || return 1
	first=$ADDR
	fake_answer a2 name.test A || return 1
	expect "the fake address changed between two queries: $first then $ADDR" [ "$ADDR" = "$first" ] || return 1
	app_run a3 "${DIG[@]}" +noall +answer name.test A
	ttl=$(awk '$4 == "A" { print $2; exit }' "$TMP/a3.out")
	expect "fake A answer has TTL '$ttl', want 1: $(head -n 1 "$TMP/a3.out")" [ "$ttl" = 1 ] || return 1
	FAKE_NAME_V4=$first
	# No comm=dig: dig queries from its thread "isc-net-0000", and comm is the
	# calling thread's name.
	logged " dns " "pid=$RUN_PID " "dst=192.0.2.53:53 " "result=ok"
}

t_aaaa_fake() {
	local first
	daemon_running || return 1
	fake_answer aaaa1 name.test AAAA || return 1
	first=$ADDR
	fake_answer aaaa2 name.test AAAA || return 1
	expect "the fake address changed between two queries: $first then $ADDR" [ "$ADDR" = "$first" ] || return 1
	FAKE_NAME_V6=$first
}

t_tcp_dns() {
	daemon_running || return 1
	fake_answer tcp4 +tcp name.test A || return 1
	expect "over TCP name.test is $ADDR, over UDP ${FAKE_NAME_V4:-?}" [ "$ADDR" = "${FAKE_NAME_V4:-}" ] || return 1
	fake_answer tcp6 +tcp name.test AAAA || return 1
	expect "over TCP name.test is $ADDR, over UDP ${FAKE_NAME_V6:-?}" [ "$ADDR" = "${FAKE_NAME_V6:-}" ]
}

# DNS to any address on port 53 is captured, loopback (127.0.0.53) included.
t_any_server() {
	local server
	daemon_running || return 1
	for server in 192.0.2.53 127.0.0.53 2001:db8::53; do
		fake_answer "srv-$server" @"$server" name.test A || return 1
		expect "@$server answered $ADDR, via resolv.conf it was ${FAKE_NAME_V4:-?}" \
			[ "$ADDR" = "${FAKE_NAME_V4:-}" ] || return 1
	done
}

# DNS names are case-insensitive: one name, one fake address.
t_name_case() {
	daemon_running || return 1
	expect "no fake A address from the earlier case" [ -n "${FAKE_NAME_V4:-}" ] || return 1
	fake_answer case1 NaMe.TeSt A || return 1
	expect "NaMe.TeSt got $ADDR, name.test got $FAKE_NAME_V4" [ "$ADDR" = "$FAKE_NAME_V4" ]
}

t_outside_cgroup_dns() {
	daemon_running || return 1
	client_run dns-out "${DIG[@]}" +short @192.0.2.53 name.test
	expect "a process outside the cgroup got an answer from 192.0.2.53: $(cat "$TMP/dns-out.out")" \
		eval '! grep -q "^[0-9]" "$TMP/dns-out.out"'
}

t_ptr() {
	daemon_running || return 1
	expect "no fake A address from the earlier case" [ -n "${FAKE_NAME_V4:-}" ] || return 1
	query ptr4 -x "$FAKE_NAME_V4"
	expect "dig -x $FAKE_NAME_V4 answered '$Q', want name.test." [ "$Q" = name.test. ] || return 1
	[ -n "${FAKE_NAME_V6:-}" ] || return 0
	query ptr6 -x "$FAKE_NAME_V6"
	expect "dig -x $FAKE_NAME_V6 answered '$Q', want name.test." [ "$Q" = name.test. ]
}

# Types FakeIP does not fake come from the resolver, unchanged.
t_mx_txt() {
	local type name direct
	daemon_running || return 1
	for type in MX:mail.test TXT:txt.test; do
		name=${type#*:} type=${type%%:*}
		direct=$(in_client "${DIG[@]}" +short @$RESOLVER "$name" "$type")
		query "q-$type" "$name" "$type"
		expect "$type $name through the daemon: '$Q', from dnsmasq: '$direct'" \
			eval '[ -n "$direct" ] && [ "$Q" = "$direct" ]' || return 1
	done
}

# An HTTPS record's address hints would give a browser the real addresses
# behind FakeIP's back: they are taken out, the rest kept.
t_https_hints() {
	local direct
	daemon_running || return 1
	direct=$(in_client "${DIG[@]}" +short @$RESOLVER svc.test HTTPS)
	expect "dnsmasq's own answer lacks the hints: '$direct'" \
		eval '[[ $direct == *ipv4hint=203.0.113.10* && $direct == *ipv6hint=2001:db8::10* ]]' ||
		return 1
	query https svc.test HTTPS
	expect "address hints came through FakeIP: '$Q'" eval '[[ -n $Q && $Q != *hint* ]]' || return 1
	expect "alpn or ech was lost on the way: '$Q'" \
		eval '[[ $Q == "1 . alpn=\"h2\" ech="* ]]'
}

t_getent() {
	daemon_running || return 1
	ran app_run getent4 getent ahostsv4 name.test || return 1
	ADDR=$(awk 'NR == 1 { print $1 }' "$TMP/getent4.out")
	expect "getent ahostsv4 name.test gave '$ADDR', not a fake address" in_cidr4 "$ADDR" $FAKE4 || return 1
	ran app_run getent getent hosts name.test || return 1
	ADDR=$(awk 'NR == 1 { print $1 }' "$TMP/getent.out")
	expect "getent hosts name.test gave '$ADDR', not a fake address" \
		eval 'in_cidr4 "$ADDR" $FAKE4 || in_cidr6 "$ADDR" $FAKE6'
}

t_busybox_nslookup() {
	local addrs a
	daemon_running || return 1
	ran app_run bbns /bin/busybox nslookup name.test || return 1
	addrs=$(awk '/^Name:/ { n = 1 } n && /^Address/ { print $NF }' "$TMP/bbns.out" | sed 's/#.*//')
	expect "busybox nslookup printed no address: $(tr '\n' ' ' <"$TMP/bbns.out")" [ -n "$addrs" ] || return 1
	for a in $addrs; do
		expect "busybox nslookup got $a, not a fake address" \
			eval 'in_cidr4 "$a" $FAKE4 || in_cidr6 "$a" $FAKE6' || return 1
	done
}

# curl to a name: it connects to a fake address; the daemon maps it back to
# name.test, resolves that through dnsmasq and connects to the real server.
t_curl_name() {
	local line
	daemon_running || return 1
	ran app_run curlname curl -sS -m 10 http://name.test:8080/by-name || return 1
	expect "the server got no request" wait_http 5 /by-name || return 1
	expect "server saw Host '$(http_get /by-name host)', want name.test:8080" \
		[ "$(http_get /by-name host)" = name.test:8080 ] || return 1
	expect "server saw User-Agent '$(http_get /by-name ua)'" \
		[ "$(http_get /by-name ua)" = "curl/$CURL_VER $(tag curl "$RUN_PID")" ] || return 1
	expect "the server was reached at $(http_get /by-name local), not at name.test's real address" \
		eval '[[ $(http_get /by-name local) == @(203.0.113.10:8080|\[2001:db8::10\]:8080) ]]' || return 1
	logged " tcp " "pid=$RUN_PID " "host=name.test " "result=ok"
}

# A fake address used directly: getpeername shows the fake address (what
# the app connected to), the server is the real one.
t_connect_fake() {
	local spec=$1 path=$2
	daemon_running || return 1
	ran app_run "fk$path" "$TOOLS/netclient" tcp -g name.test -P "/$path" "$spec" || return 1
	expect "getpeername: want $spec, got: $(head -n 1 "$TMP/fk$path.out")" \
		grep -qF "connected peer=$spec " "$TMP/fk$path.out" || return 1
	expect "server saw User-Agent '$(http_get "/$path" ua)'" \
		[ "$(http_get "/$path" ua)" = "netclient/1 $(tag netclient "$RUN_PID")" ] || return 1
	logged " tcp " "pid=$RUN_PID " "host=name.test " "result=ok"
}

# A dual-stack app that takes the IPv6 fake address of a name with only
# IPv4 addresses (other.test) still gets through: the daemon picks the leg
# to the server.
t_connect_fake_v6_v4only() {
	local fake
	daemon_running || return 1
	app_run aaaa-other dig +short +time=3 +tries=1 other.test AAAA
	fake=$(head -n 1 "$TMP/aaaa-other.out")
	expect "AAAA for other.test: '$fake', want a FakeIP address" \
		eval '[[ $fake == fd73:7072:6f78:7900:* ]]' || return 1
	ran app_run v6v4 "$TOOLS/netclient" tcp -g other.test -P /v6-to-v4only "[$fake]:8080" || return 1
	expect "server saw User-Agent '$(http_get /v6-to-v4only ua)'" \
		[ "$(http_get /v6-to-v4only ua)" = "netclient/1 $(tag netclient "$RUN_PID")" ] || return 1
	expect "the server saw the request from $(http_get /v6-to-v4only peer), want the client's IPv4 address" \
		eval '[[ $(http_get /v6-to-v4only peer) == 203.0.113.1:* ]]' || return 1
	logged " tcp " "pid=$RUN_PID " "host=other.test " "result=ok"
}

# A name the resolver does not know still gets a fake address (no lookup
# at query time); connecting to it then fails promptly, and the log names it.
t_fake_unresolvable() {
	local t0 t1
	daemon_running || return 1
	t0=$(date +%s%N)
	app_run unres curl -sS -m 15 http://nothere.test:8080/unresolvable
	t1=$(date +%s%N)
	expect "curl exit $RUN_RC, want 7, 52 or 56 (refused, empty reply, reset): $(cat "$TMP/unres.err")" \
		eval '[[ $RUN_RC == @(7|52|56) ]]' || return 1
	expect "curl took $(((t1 - t0) / 1000000)) ms to fail, want < 8 s" [ $(((t1 - t0) / 1000000)) -lt 8000 ] || return 1
	expect "it reached a server" eval '! http_has /unresolvable' || return 1
	logged " tcp " "pid=$RUN_PID " "host=nothere.test " "result=error"
}

# One name the resolver refuses must not take the resolver out of service
# for the others.
t_resolver_after_refused() {
	daemon_running || return 1
	ran app_run afterref curl -sS -m 10 -o /dev/null http://other.test:8080/after-refused || return 1
	expect "the server got no request" wait_http 5 /after-refused || return 1
	logged " tcp " "pid=$RUN_PID " "host=other.test " "result=ok"
}

# One unconnected socket, several peers: each reply from the right one.
t_udp_multi() {
	ran app_run "$1" "$TOOLS/netclient" udp -n 3 "${@:2}" || return 1
}

t_udp_v4() {
	daemon_running || return 1
	t_udp_multi udp4 203.0.113.10:7 203.0.113.11:7 $RESOLVER:7 || return 1
	wait_udp_flows "$RUN_PID" 203.0.113.10:7 203.0.113.11:7 $RESOLVER:7 || return 1
	# Three rounds: "ping-R-0" (8 bytes) out, "203.0.113.10:7 ping-R-0" (23) back.
	expect_log " udp " "pid=$RUN_PID " "dst=203.0.113.10:7 " "up=24 " "down=69 "
}

t_udp_v6() {
	daemon_running || return 1
	t_udp_multi udp6 "[2001:db8::10]:7" "[2001:db8::11]:7" || return 1
	wait_udp_flows "$RUN_PID" "[2001:db8::10]:7" "[2001:db8::11]:7"
}

t_udp_mapped() {
	daemon_running || return 1
	t_udp_multi udpm "[::ffff:203.0.113.10]:7" "[::ffff:203.0.113.11]:7" || return 1
	expect_log " udp " "pid=$RUN_PID " "203.0.113.10:7 "
}

t_udp_connected() {
	local name=$1 spec=$2
	daemon_running || return 1
	ran app_run "$name" "$TOOLS/netclient" udpc "$spec" || return 1
	expect "getpeername: want $spec, got: $(head -n 1 "$TMP/$name.out")" \
		grep -qF "connected peer=$spec " "$TMP/$name.out" || return 1
	expect_log " udp " "pid=$RUN_PID " "dst=$spec "
}

# UDP to a fake address reaches the name's real address; replies come back
# from the fake one.
t_udp_fake() {
	local want_hex
	daemon_running || return 1
	expect "no fake A address from the earlier case" [ -n "${FAKE_NAME_V4:-}" ] || return 1
	ran app_run udpfake "$TOOLS/netclient" udpsend "$FAKE_NAME_V4:7" "$(printf 'fake-udp' | od -An -v -tx1 | tr -d ' \n')" || return 1
	want_hex=$(printf '203.0.113.10:7 fake-udp' | od -An -v -tx1 | tr -d ' \n')
	expect "reply: $(tail -n 1 "$TMP/udpfake.out"), want from $FAKE_NAME_V4:7 hex=$want_hex" \
		grep -qx "reply len=[0-9]* from $FAKE_NAME_V4:7 hex=$want_hex" "$TMP/udpfake.out" || return 1
	expect_log " udp " "pid=$RUN_PID " "host=name.test "
}

# A datagram of 8000 bytes goes through whole.
t_udp_large() {
	local hex
	daemon_running || return 1
	hex=$(head -c 8000 /dev/zero | tr '\0' x | od -An -v -tx1 | tr -d ' \n')
	ran app_run udpbig "$TOOLS/netclient" udpsend 203.0.113.10:7 "$hex" || return 1
	expect "reply: $(tail -n 1 "$TMP/udpbig.out" | cut -c1-60), want 8015 bytes from 203.0.113.10:7" \
		grep -q '^reply len=8015 from 203.0.113.10:7 ' "$TMP/udpbig.out"
}

# DESIGN: the pool of IPv6 UDP tokens bounds concurrent flows; running dry
# gets a log line, and the pool refills when flows end.
t_udp_pool_dry() {
	restart_daemon --resolver $RESOLVER --udp-flows 2 --udp-timeout 2 || return 1
	app_run dry "$TOOLS/netclient" udp -t 2 "[2001:db8::10]:7" "[2001:db8::11]:7" "[2001:db8::10]:17"
	expect "three IPv6 flows with --udp-flows 2 all worked" [ "$RUN_RC" != 0 ] || return 1
	expect "no log line says that the UDP pool ran dry" \
		grep -qi 'pool.*dry\|dry.*pool' "$TMP/daemon.err" "$TMP/conn.log" || return 1
	ran app_run undry "$TOOLS/netclient" udp "[2001:db8::10]:7" "[2001:db8::11]:7"
}

t_udp_outside() {
	daemon_running || return 1
	ran client_run udpout "$TOOLS/netclient" udp 203.0.113.10:7 203.0.113.11:7 || return 1
	# Flows are logged when they expire (--udp-timeout 2).
	sleep 3
	expect "the daemon logged a flow of a process outside the cgroup: $(log_line "pid=$RUN_PID ")" \
		eval '! log_line "pid=$RUN_PID " >/dev/null'
}

# An address handed out before a restart still leads to its name after it.
t_fakeip_store() {
	local before
	restart_daemon --resolver $RESOLVER --fakeip-store "$TMP/fakeip.store" || return 1
	fake_answer st1 store.test A || return 1
	before=$ADDR
	restart_daemon --resolver $RESOLVER --fakeip-store "$TMP/fakeip.store" || return 1
	ran app_run st2 "$TOOLS/netclient" tcp -g store.test -P /store "$before:8080" || return 1
	expect "server saw no request through the stored address $before" wait_http 5 /store || return 1
	logged " tcp " "pid=$RUN_PID " "host=store.test " "result=ok" || return 1
	fake_answer st3 store.test A || return 1
	expect "store.test was $before before the restart, $ADDR after" [ "$ADDR" = "$before" ]
}

# Without a store, a fake address from before a restart means nothing: the
# connection is refused, not relayed somewhere, and logged.
t_fakeip_stale() {
	local stale
	restart_daemon --resolver $RESOLVER || return 1
	fake_answer sl1 stale.test A || return 1
	stale=$ADDR
	restart_daemon --resolver $RESOLVER || return 1
	app_run sl2 "$TOOLS/netclient" tcp -t 5 -g stale.test -P /stale "$stale:8080"
	expect "a connection to the stale fake address $stale was answered: $(tail -n 1 "$TMP/sl2.out")" \
		eval '! grep -q "^responses=[1-9]" "$TMP/sl2.out"' || return 1
	expect "a connection to the stale fake address $stale was relayed" eval '! http_has /stale' || return 1
	expect_log " tcp " "pid=$RUN_PID " "$stale" || return 1
	expect "the log line for the stale address says neither result=refused nor result=error: $(log_line "pid=$RUN_PID ")" \
		eval 'log_line "pid=$RUN_PID " | grep -q "result=\(refused\|error\)"'
}

t_disable_fakeip() {
	local ttl
	restart_daemon --resolver $RESOLVER --disable-fakeip || return 1
	app_run df1 "${DIG[@]}" +noall +answer name.test A
	read -r _ ttl _ _ ADDR < <(awk '$4 == "A"' "$TMP/df1.out")
	expect "--disable-fakeip: name.test A is '${ADDR:-}', want 203.0.113.10: $(head -n 1 "$TMP/df1.out")" \
		[ "${ADDR:-}" = 203.0.113.10 ] || return 1
	expect "--disable-fakeip: TTL $ttl, want dnsmasq's 77" eval '[ "$ttl" -le 77 ] && [ "$ttl" -ge 70 ]' || return 1
	query df2 name.test AAAA
	expect "--disable-fakeip: name.test AAAA is '$Q', want 2001:db8::10" [ "$Q" = 2001:db8::10 ] || return 1
	ran app_run df3 curl -sS -m 10 http://name.test:8080/no-fake || return 1
	expect "server saw User-Agent '$(http_get /no-fake ua)'" \
		[ "$(http_get /no-fake ua)" = "curl/$CURL_VER $(tag curl "$RUN_PID")" ] || return 1
	logged " tcp " "pid=$RUN_PID " "result=ok" || return 1
	expect "host= in the log although the destination was a real address: $(log_line "pid=$RUN_PID ")" \
		eval '! log_line "pid=$RUN_PID " | grep -q " host="' || return 1
	# Without FakeIP the real addresses are the answer: hints stay.
	query df4 svc.test HTTPS
	expect "--disable-fakeip: the HTTPS record lost its hints: '$Q'" \
		eval '[[ $Q == *ipv4hint=203.0.113.10* && $Q == *ipv6hint=2001:db8::10* ]]'
}

t_fakeip_exclude() {
	restart_daemon --resolver $RESOLVER --fakeip-exclude real.test || return 1
	query ex1 real.test A
	expect "excluded real.test A is '$Q', want dnsmasq's 203.0.113.11" [ "$Q" = 203.0.113.11 ] || return 1
	query ex2 sub.real.test A
	expect "sub.real.test (under the excluded suffix) A is '$Q', want 203.0.113.11" [ "$Q" = 203.0.113.11 ] || return 1
	fake_answer ex3 name.test A
}

t_fakeip_range() {
	local RANGE4=198.19.7.0/24 RANGE6=fd73:7072:6f78:7a00::/64	# seen by fake_answer
	restart_daemon --resolver $RESOLVER --fakeip-range $RANGE4 --fakeip-range $RANGE6 || return 1
	fake_answer rg4 name.test A || return 1
	fake_answer rg6 name.test AAAA || return 1
	ran app_run rgc curl -sS -m 10 http://other.test:8080/range || return 1
	logged " tcp " "pid=$RUN_PID " "host=other.test " "result=ok"
}

# Garbage to port 53 over UDP and TCP: the daemon lives on and answers.
# BAD_PIDS: the pid of each sender, with what it sent.
t_malformed() {
	local hex
	BAD_PIDS=()
	restart_daemon --resolver $RESOLVER || return 1
	for hex in \
		5a0f3c7e9912ffee00c1d4a8b6e3f20718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9000ffee00c1d4a8b6e3f20718293a4b5c6d7e8f90a1b2 \
		123401000001000000000000 \
		1234010000010000000000000474657374 \
		123401000001000000000000c00c00010001 \
		123401000001000000000000c01200010001 \
		12340100ffff0000000000000474657374000001 \
		00 ""; do
		app_run bad-udp "$TOOLS/netclient" udpsend -t 1 192.0.2.53:53 "$hex"
		BAD_PIDS+=("$RUN_PID:udp '$hex'")
		expect "daemon died after the datagram '$hex'" daemon_running || return 1
	done
	# Over TCP: a length beyond what follows, a compression loop, a zero length.
	for hex in '\xff\xff\x12\x34' \
		'\x00\x10\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01' \
		'\x00\x00'; do
		# exec with no pipe: the logged pid is the one app_run recorded
		app_run bad-tcp bash -c 'exec socat -t 2 -T 3 - TCP:192.0.2.53:53 < <(printf "$1")' _ "$hex"
		BAD_PIDS+=("$RUN_PID:tcp '$hex'")
		expect "daemon died after the TCP message '$hex'" daemon_running || return 1
	done
	fake_answer after-bad name.test A
}

# TESTING.md: bad input gets a clear log line. A malformed query is a
# failure of that query: result=error with an error= saying why.
t_malformed_logged() {
	local p pid
	expect "the malformed-dns case did not run" [ "${#BAD_PIDS[@]}" -gt 0 ] || return 1
	for p in "${BAD_PIDS[@]}"; do
		pid=${p%%:*}
		expect_log "pid=$pid " || { WHY="no log line for ${p#*:}"; return 1; }
		expect "${p#*:} is logged as: $(log_line "pid=$pid " | head -n 1)" \
			eval 'log_line "pid=$pid " | grep -q "result=error error="'  || return 1
	done
}

# A resolver that never answers: a query that needs it gets SERVFAIL in
# bounded time, not a client timeout.
t_resolver_down() {
	local t0 t1
	restart_daemon --resolver 198.51.100.99 || return 1
	t0=$(date +%s%N)
	app_run down dig +time=15 +tries=1 mail.test MX
	t1=$(date +%s%N)
	expect "dig MX with a dead resolver: $(grep -m1 -o 'status: [A-Z]*\|timed out' "$TMP/down.out"), want SERVFAIL" \
		grep -q 'status: SERVFAIL' "$TMP/down.out" || return 1
	expect "SERVFAIL took $(((t1 - t0) / 1000000)) ms" [ $(((t1 - t0) / 1000000)) -lt 15000 ] || return 1
	expect "daemon died" daemon_running
}

# STYLE.md: a failure the user can hit has a log line naming the thing and
# the cause: the query's line says it failed, and the resolver is named.
t_resolver_down_logged() {
	expect "no log line for the SERVFAIL query" expect_log " dns " "pid=$RUN_PID " || return 1
	expect "the SERVFAIL query is logged as: $(log_line "pid=$RUN_PID ")" \
		eval 'log_line "pid=$RUN_PID " | grep -q "result=error error="' || return 1
	expect "no log line names the dead resolver 198.51.100.99" \
		grep -qF 198.51.100.99 "$TMP/conn.log" "$TMP/daemon.err"
}

# --- run -------------------------------------------------------------------------

if start_daemon --resolver $RESOLVER --udp-timeout 2; then pass daemon-start; else fail daemon-start "$WHY" "$TMP/daemon.err"; fi
run_case a-fake t_a_fake
run_case aaaa-fake t_aaaa_fake
run_case tcp-dns t_tcp_dns
run_case any-server t_any_server
run_case name-case-insensitive t_name_case
run_case outside-cgroup-dns t_outside_cgroup_dns
run_case ptr t_ptr
run_case mx-txt-passthrough t_mx_txt
run_case https-hints-hidden t_https_hints
run_case getent t_getent
run_case busybox-nslookup t_busybox_nslookup
run_case curl-by-name t_curl_name
run_case fake-unresolvable t_fake_unresolvable
run_case resolver-after-refused t_resolver_after_refused
run_case connect-fake-v4 t_connect_fake "${FAKE_NAME_V4:-198.18.0.0}:8080" fake4
run_case connect-fake-v6 t_connect_fake "[${FAKE_NAME_V6:-fd73:7072:6f78:7900::}]:8080" fake6
run_case connect-fake-v6-to-v4-only t_connect_fake_v6_v4only
run_case udp-unconnected-v4 t_udp_v4
run_case udp-unconnected-v6 t_udp_v6
run_case udp-unconnected-mapped t_udp_mapped
run_case udp-connected-v4 t_udp_connected udpc4 203.0.113.10:7
run_case udp-connected-v6 t_udp_connected udpc6 "[2001:db8::11]:7"
run_case udp-fake t_udp_fake
run_case udp-large-datagram t_udp_large
run_case udp-outside-cgroup t_udp_outside
run_case udp-pool-dry t_udp_pool_dry
run_case fakeip-store t_fakeip_store
run_case fakeip-stale t_fakeip_stale
run_case disable-fakeip t_disable_fakeip
run_case fakeip-exclude t_fakeip_exclude
run_case fakeip-range t_fakeip_range
run_case malformed-dns t_malformed
run_case malformed-dns-logged t_malformed_logged
run_case resolver-down t_resolver_down
run_case resolver-down-logged t_resolver_down_logged
[ -n "$DAEMON_PID" ] && { stop_daemon || fail final-stop "$WHY" "$TMP/daemon.err"; }
finish
