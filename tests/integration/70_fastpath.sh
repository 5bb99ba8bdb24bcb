#!/bin/bash
# The kernel fast path: each kind of connection lands on the path it
# should. A tagged HTTP port goes through the proxy and is tagged; a TLS
# port (443, 8443) goes straight to the server (the server sees the
# application's own port), untagged, logged with path=kernel and the bytes
# the server counted; a FakeIP name already resolved goes straight to its
# real address (getpeername still shows the fake one, as on the proxy
# path); REJECT rules by IP-CIDR, DST-PORT, UID and a FakeIP name's domain
# fail connect() at once
# with ECONNREFUSED and nothing reaches the server; an upstream route and
# --fast-path off go through the proxy; a rule the kernel cannot evaluate
# sends what follows it to the proxy; UDP to 443 (QUIC) goes direct and
# is logged; every connection has exactly one log line, on both paths,
# one still open when the daemon stops included.
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
V6=2001:db8::10
RESOLVER=198.51.100.53
CURL=(curl -sS -m 10)
CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")

setup_topology || finish
setup_cgroup || finish
if ! need curl dig dnsmasq microsocks setpriv python3 "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--address=/name.test/$V4 --address=/name.test/$V6 || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 $V4:8443 "[$V6]:8443" || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $V4:443 $V4:4444 203.0.113.11:443 \
	"[$V6]:443" || finish
start_bg socks server microsocks -i 198.51.100.53 -p 1080 -b 198.51.100.53 || finish
if ! wait_for 5 in_client dig +short +time=1 +tries=1 @$RESOLVER name.test; then
	_setup_fail "dnsmasq does not answer on $RESOLVER"
	finish
fi
wait_for 5 eval "in_server ss -Hltn 'sport = :1080' | grep -q ." ||
	{ _setup_fail "microsocks does not listen"; finish; }
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

# --- helpers ---------------------------------------------------------------------

# one_line PID STRING...: exactly one log line for PID, with every STRING.
one_line() {
	local pid=$1 n
	shift
	expect_log "pid=$pid " "$@" || return 1
	sleep 0.3
	n=$(count_with "$TMP/conn.log" "pid=$pid ")
	expect "the log has $n lines for pid $pid, want 1: $(log_line "pid=$pid ")" [ "$n" = 1 ]
}

# seen_from LOCAL PORT: echod logged a connection to LOCAL from port PORT.
seen_from() { grep -F "local=$1 peer=" "$TMP/echo.log" | grep -q ":$2\$"; }

# direct_peer OUT ECHOLOG_LOCAL: netclient's local port (from its "connected"
# line in OUT) is the one the server saw: nothing sat in between.
direct_peer() {
	local local_ep port
	local_ep=$(sed -n 's/.* local=\([^ ]*\).*/\1/p' "$1" | head -n 1)
	port=${local_ep##*:}
	expect "netclient printed no local address" [ -n "$port" ] || return 1
	expect "the server saw no connection from port $port on $2 (proxied?): $(grep "local=$2 " "$TMP/echo.log" | tail -n 2 | tr '\n' ' ')" \
		wait_for 5 seen_from "$2" "$port"
}

# fails_eperm NAME CMD...: CMD (a netclient tcp) fails at connect with
# ECONNREFUSED (the hook sets it; this kernel lets it).
fails_eperm() {
	local name=$1
	shift
	app_run "$name" "$@"
	expect "netclient connected ($RUN_RC): $(cat "$TMP/$name.out")" [ "$RUN_RC" = 2 ] || return 1
	expect "netclient failed, but not with ECONNREFUSED: $(cat "$TMP/$name.out" "$TMP/$name.err")" \
		grep -qi "connect: connection refused" "$TMP/$name.out"
}

# --- cases -------------------------------------------------------------------------

t_http_proxied() {
	ran app_run h1 "${CURL[@]}" "http://$V4:8080/h1" || return 1
	expect "the server got no request" wait_http 5 /h1 || return 1
	expect "the request was not tagged: $(http_get /h1 ua)" \
		eval '[[ "$(http_get /h1 ua)" == *"$(tag curl "$RUN_PID")" ]]' || return 1
	one_line "$RUN_PID" "dst=$V4:8080 " "path=proxy " "result=ok"
}

t_tls_port_kernel() {
	ran app_run k1 "${CURL[@]}" -w '%{local_port} %{size_request} %{size_header} %{size_download}\n' \
		-o /dev/null "http://$V4:8443/k1" || return 1
	local lport up hdr body rx tx
	read -r lport up hdr body <"$TMP/k1.out"
	expect "the server got no request" wait_http 5 /k1 || return 1
	expect "tagged on the kernel path: $(http_get /k1 ua)" \
		[ "$(http_get /k1 ua)" = "curl/$(curl --version | awk 'NR == 1 { print $2 }')" ] || return 1
	expect "the server saw peer $(http_get /k1 peer), curl's port is $lport" \
		[ "$(http_get /k1 peer)" = "203.0.113.1:$lport" ] || return 1
	rx=$(http_get /k1 rx)
	tx=$(http_get /k1 tx)
	one_line "$RUN_PID" "dst=$V4:8443 " "src=203.0.113.1:$lport " "path=kernel " \
		"up=$rx " "down=$tx " "comm=curl " "result=ok"
}

t_echo_bytes() {
	head -c 300000 /dev/urandom >"$TMP/bytes.in"
	ran app_run e1 bash -c 'echo $$ >"$1"; exec socat -t 5 - TCP:'$V4':443 <"$2" >"$3"' _ \
		"$TMP/e1.pid2" "$TMP/bytes.in" "$TMP/bytes.out" || return 1
	RUN_PID=$(cat "$TMP/e1.pid2")
	expect "the echo came back different" cmp -s "$TMP/bytes.in" "$TMP/bytes.out" || return 1
	one_line "$RUN_PID" "dst=$V4:443 " "path=kernel " "up=300000 " "down=300000 " "result=ok"
}

t_getpeername() {
	ran app_run g1 "$TOOLS/netclient" tcp "$V4:443" || return 1
	expect "getpeername on the kernel path: $(cat "$TMP/g1.out")" \
		grep -q "peer=$V4:443 " "$TMP/g1.out" || return 1
	direct_peer "$TMP/g1.out" "$V4:443" || return 1
	one_line "$RUN_PID" "path=kernel " || return 1
	ran app_run g2 "$TOOLS/netclient" tcp "[$V6]:443" || return 1
	expect "getpeername on the kernel path (IPv6): $(cat "$TMP/g2.out")" \
		grep -q "peer=\[$V6\]:443 " "$TMP/g2.out" || return 1
	direct_peer "$TMP/g2.out" "[$V6]:443" || return 1
	one_line "$RUN_PID" "path=kernel " || return 1
	ran app_run g3 "$TOOLS/netclient" tcp "$V4:8080" || return 1
	expect "getpeername on the proxy path: $(cat "$TMP/g3.out")" \
		grep -q "peer=$V4:8080 " "$TMP/g3.out" || return 1
	one_line "$RUN_PID" "path=proxy "
}

t_fakeip_kernel() {
	local fake
	ran app_run f0 dig +short +time=3 +tries=1 name.test A || return 1
	fake=$(head -n 1 "$TMP/f0.out")
	expect "no fake answer for name.test: '$fake'" eval '[[ $fake == 198.18.* ]]' || return 1
	# The daemon looks the name up in the background after answering.
	sleep 1
	ran app_run f1 "$TOOLS/netclient" tcp "$fake:443" || return 1
	expect "getpeername shows $(cat "$TMP/f1.out"), want the fake $fake:443" \
		grep -q "peer=$fake:443 " "$TMP/f1.out" || return 1
	direct_peer "$TMP/f1.out" "$V4:443" || return 1
	one_line "$RUN_PID" "dst=$fake:443 " "host=name.test " "path=kernel " "result=ok" || return 1
	# IPv6: an AAAA fake address to the real IPv6 one.
	ran app_run f2 dig +short +time=3 +tries=1 name.test AAAA || return 1
	fake=$(head -n 1 "$TMP/f2.out")
	expect "no fake AAAA answer for name.test: '$fake'" eval '[[ $fake == fd73:* ]]' || return 1
	sleep 1
	ran app_run f3 "$TOOLS/netclient" tcp "[$fake]:443" || return 1
	expect "getpeername shows $(cat "$TMP/f3.out"), want the fake [$fake]:443" \
		grep -qF "peer=[$fake]:443 " "$TMP/f3.out" || return 1
	direct_peer "$TMP/f3.out" "[$V6]:443" || return 1
	one_line "$RUN_PID" "host=name.test " "path=kernel " "result=ok"
}

t_reject_cidr() {
	restart_daemon --resolver $RESOLVER --rule 'IP-CIDR,203.0.113.11/32,REJECT' \
		--rule 'DST-PORT,4444,REJECT' --rule 'UID,65534,REJECT' \
		--rule 'DOMAIN-SUFFIX,name.test,REJECT' || return 1
	: >"$TMP/echo.log"
	fails_eperm r1 "$TOOLS/netclient" tcp -t 3 203.0.113.11:443 || return 1
	one_line "$RUN_PID" "dst=203.0.113.11:443 " "path=kernel " "route=REJECT " "result=rejected" || return 1
	expect "the server saw the rejected connection" \
		eval '! grep -q "local=203.0.113.11:443" "$TMP/echo.log"'
}

t_reject_port() {
	fails_eperm r2 "$TOOLS/netclient" tcp -t 3 $V4:4444 || return 1
	one_line "$RUN_PID" "dst=$V4:4444 " "route=REJECT " "result=rejected"
}

t_reject_uid() {
	fails_eperm r3 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$TOOLS/netclient" tcp -t 3 $V4:443 || return 1
	one_line "$RUN_PID" "uid=65534 " "route=REJECT " "result=rejected" || return 1
	# Another uid still gets through.
	ran app_run r4 "$TOOLS/netclient" tcp $V4:443 || return 1
	one_line "$RUN_PID" "path=kernel " "result=ok"
}

# UDP (QUIC) to a rejected address: sendto fails, one log line for the
# flow however many datagrams are tried (netclient -n 3: three rounds).
t_reject_udp() {
	app_run ru1 "$TOOLS/netclient" udp -t 2 -n 3 203.0.113.11:443
	expect "netclient sent ($RUN_RC): $(cat "$TMP/ru1.out")" [ "$RUN_RC" = 2 ] || return 1
	expect "sendto failed, but not with ECONNREFUSED: $(cat "$TMP/ru1.out")" \
		grep -qi "connection refused" "$TMP/ru1.out" || return 1
	one_line "$RUN_PID" " udp " "dst=203.0.113.11:443 " "route=REJECT " "result=rejected" || return 1
	app_run ru2 python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
for i in range(5):
    try:
        s.sendto(b"x", ("203.0.113.11", 443))
    except ConnectionRefusedError:
        n += 1
print("refused", n)'
	expect "python: $(cat "$TMP/ru2.out" "$TMP/ru2.err")" grep -q "refused 5" "$TMP/ru2.out" || return 1
	one_line "$RUN_PID" " udp " "dst=203.0.113.11:443 " "route=REJECT " "result=rejected"
}

# A domain rule on a FakeIP name, decided in the kernel once the name's
# address is known (a port rule comes first: rules of every kind mixed).
t_reject_name() {
	local fake
	ran app_run n0 dig +short +time=3 +tries=1 name.test A || return 1
	fake=$(head -n 1 "$TMP/n0.out")
	expect "no fake answer for name.test: '$fake'" eval '[[ $fake == 198.18.* ]]' || return 1
	sleep 1
	fails_eperm n1 "$TOOLS/netclient" tcp -t 3 "$fake:443" || return 1
	one_line "$RUN_PID" "host=name.test " "path=kernel " "route=REJECT " "result=rejected"
}

# A rule the kernel cannot evaluate (PROCESS-PATH) comes first: the proxy
# decides, so a later REJECT is the proxy's, and 443 goes through it.
t_barrier() {
	restart_daemon --resolver $RESOLVER --rule 'PROCESS-PATH,/nonexistent,DIRECT' \
		--rule 'DST-PORT,4444,REJECT' || return 1
	ran app_run b1 "$TOOLS/netclient" tcp $V4:443 || return 1
	one_line "$RUN_PID" "path=proxy "
}

t_upstream() {
	restart_daemon --resolver $RESOLVER --upstream socks5://198.51.100.53:1080 || return 1
	ran app_run u1 "$TOOLS/netclient" tcp $V4:443 || return 1
	expect "getpeername through the upstream: $(cat "$TMP/u1.out")" \
		grep -q "peer=$V4:443 " "$TMP/u1.out" || return 1
	one_line "$RUN_PID" "path=proxy " "via=" || return 1
	expect "the server did not see the upstream" \
		wait_for 5 grep -q "local=$V4:443 peer=198.51.100.53:" "$TMP/echo.log"
}

t_off() {
	restart_daemon --resolver $RESOLVER --fast-path off || return 1
	ran app_run o1 "$TOOLS/netclient" tcp $V4:443 || return 1
	one_line "$RUN_PID" "path=proxy "
}

t_bad_option() {
	"$SPROXY_BIN" attach "$CG" --fast-path maybe >/dev/null 2>"$TMP/bad.err"
	expect "--fast-path maybe: exit $?, want 2" [ $? = 2 ] || return 1
	"$SPROXY_BIN" attach "$CG" --tls-ports 0 >/dev/null 2>"$TMP/bad.err"
	expect "--tls-ports 0: exit $?, want 2" [ $? = 2 ]
}

t_udp_quic() {
	restart_daemon --resolver $RESOLVER --udp-timeout 1 || return 1
	: >"$TMP/echo.log"
	ran app_run q1 "$TOOLS/netclient" udp $V4:443 || return 1
	expect "the server saw a datagram from the proxy's pool, not the app: $(cat "$TMP/echo.log")" \
		wait_for 5 grep -q "udp local=$V4:443 peer=203.0.113.1:" "$TMP/echo.log" || return 1
	expect "no log line for the UDP flow" wait_log 6 "pid=$RUN_PID " " udp " "dst=$V4:443 " "path=kernel " ||
		return 1
	local n
	n=$(count_with "$TMP/conn.log" "pid=$RUN_PID ")
	expect "the flow has $n lines, want 1" [ "$n" = 1 ]
}

# SIGHUP reads the rules again: the kernel's copy follows (--tag off: any
# port may take the kernel path).
t_reload() {
	printf 'rule = DST-PORT,4445,REJECT\n' >"$TMP/rules.conf"
	restart_daemon --resolver $RESOLVER --tag off --config "$TMP/rules.conf" || return 1
	ran app_run l1 "$TOOLS/netclient" tcp $V4:4444 || return 1
	one_line "$RUN_PID" "path=kernel " "result=ok" || return 1
	printf 'rule = DST-PORT,4444,REJECT\n' >"$TMP/rules.conf"
	kill -HUP "$DAEMON_PID"
	expect "no reload line" wait_for 5 grep -q "SIGHUP: 1 rules in use" "$TMP/daemon.err" || return 1
	fails_eperm l2 "$TOOLS/netclient" tcp -t 3 $V4:4444 || return 1
	one_line "$RUN_PID" "dst=$V4:4444 " "route=REJECT " "result=rejected"
}

# A kernel-path connection still open when the daemon stops: one line,
# result=shutdown, and the connection goes on.
t_open_at_exit() {
	restart_daemon --resolver $RESOLVER || return 1
	: >"$TMP/echo.log"
	start_bg holder app bash -c '(echo one; sleep 3; echo two; sleep 20) | exec socat -t 20 - TCP:'$V4':443' ||
		return 1
	expect "the held connection did not reach the server" \
		wait_for 5 grep -q "local=$V4:443 " "$TMP/echo.log" || return 1
	expect "the first line did not come back" wait_for 5 grep -q one "$TMP/holder.out" || return 1
	stop_daemon || return 1
	expect "no shutdown line for the held connection" \
		wait_log 3 "comm=socat " "path=kernel " "result=shutdown" || return 1
	expect "the connection did not go on after the daemon stopped" \
		wait_for 8 grep -q two "$TMP/holder.out"
	stop_bg holder
}

start_daemon --resolver $RESOLVER || { fail daemon "$WHY"; finish; }
run_case http-port-proxied-tagged t_http_proxied
run_case tls-port-kernel-untagged t_tls_port_kernel
run_case kernel-bytes-match t_echo_bytes
run_case getpeername-both-paths t_getpeername
run_case fakeip-kernel-real-address t_fakeip_kernel
run_case reject-cidr t_reject_cidr
run_case reject-port t_reject_port
run_case reject-uid t_reject_uid
run_case reject-fakeip-name t_reject_name
run_case reject-udp t_reject_udp
run_case unevaluable-rule-goes-to-proxy t_barrier
run_case upstream-proxied t_upstream
run_case fast-path-off t_off
run_case bad-options t_bad_option
run_case udp-443-direct t_udp_quic
run_case sighup-reloads-kernel-rules t_reload
run_case open-at-exit t_open_at_exit
finish
