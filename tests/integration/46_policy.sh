#!/bin/bash
# The rules on real connections, and sniffing. Covers:
#   a table of rule cases, each checked with a real connection from a process
#   with the right name, uid or cgroup, and the connection log's
#   "rule=N route=..." for it: DOMAIN-SUFFIX through a FakeIP name, IP-CIDR
#   (a FakeIP name resolved for it first, TCP and UDP), DST-PORT, PROCESS-NAME (a copy of
#   curl under another name), UID (setpriv), CGROUP (a child cgroup),
#   NETWORK (UDP), AND/OR/NOT, the first match winning, MATCH at the end;
#   REJECT: a TCP connection reset at once (the server sees nothing), a UDP
#   flow's datagrams dropped, "result=rejected" logged;
#   sniffing to a real address: the TLS ClientHello's SNI (openssl s_server)
#   and the HTTP Host header name the connection for DOMAIN rules and the
#   log (host=NAME sniffed=tls|http); a server that speaks first gets its
#   banner to the client although the client sends nothing; --sniff off;
#   an upstream (microsocks) as a rule's target gets the sniffed name in
#   place of the address, also when no rule needed the name
#   (--sniff-override on: it resolves the name to another server than the
#   address, which shows in the server's log), and the address with
#   --sniff-override off;
#   SIGHUP: a connection open across a reload keeps its rule and route, a
#   new one gets the new rules; the upstreams change with the rules, in one
#   step: a reload that adds an upstream and a rule for it sends new
#   connections through it; one that moves an upstream to another port
#   (another microsocks, which connects out from another address) sends new
#   connections to the new one while a connection opened before goes on to
#   its end over the old one; a bad upstream URL or a rule naming an unknown
#   upstream is refused with a line that names it, the set in use stays and
#   traffic flows; an upstream removed while a connection goes through it
#   leaves that connection to finish (run under the ASan build: no use of
#   freed memory).
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
V4B=203.0.113.11
RESOLVER=198.51.100.53
CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")

setup_topology || finish
setup_cgroup || finish
if ! need curl dnsmasq socat openssl setpriv microsocks jq /bin/busybox "$TOOLS/httpd" "$TOOLS/echod" \
	"$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--address=/name.test/$V4 --address=/ads.test/$V4 --address=/name.test/:: \
	--address=/ads.test/:: || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" \
	$V4:8080 $V4:8081 $V4:8083 $V4:8084 $V4B:8080 || finish
start_bg echo server "$TOOLS/echod" $V4:7 $V4B:7 || finish
# A server that speaks first (SMTP-like): its banner, then it waits.
start_bg banner server socat TCP-LISTEN:2525,bind=$V4,fork,reuseaddr \
	SYSTEM:'echo 220 banner.test ESMTP; sleep 10' || finish
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=tls.test -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 ||
	{ _setup_fail "openssl req: no test certificate"; finish; }
start_bg tls server openssl s_server -quiet -accept $V4:8443 -cert "$TMP/cert.pem" \
	-key "$TMP/key.pem" -www || finish
# The upstream resolves names from a hosts file of its own: viaup.test is
# $V4, never $V4B, the address the app connects to.
printf '127.0.0.1 localhost\n%s viaup.test\n' $V4 >"$TMP/hosts"
printf 'nameserver 127.0.0.1\n' >"$TMP/srv-resolv.conf"
start_bg socks server unshare -m --propagation private -- bash -c '
	mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf || exit 125
	shift 2
	exec "$@"' _ "$TMP/hosts" "$TMP/srv-resolv.conf" microsocks -i $V4B -p 1080 -b $V4B || finish
# A second SOCKS5 upstream that connects out from $V4: the servers tell the
# two apart by the peer they see (direct: 203.0.113.1).
start_bg socks2 server microsocks -i $V4B -p 1081 -b $V4 || finish
# An echo server that logs each connection's peer.
start_bg echolog server "$TOOLS/echod" -o "$TMP/echo.log" $V4:9 || finish
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf
cp "$(command -v curl)" "$TMP/mycurl"
make_cgroup "$CG/child" 2>/dev/null || { _setup_fail "mkdir $CG/child"; finish; }
wait_for 5 in_client socat -u OPEN:/dev/null TCP:$V4:8443 ||
	{ _setup_fail "openssl s_server does not listen: $(tail -n 2 "$TMP/tls.err")"; finish; }

QUIC_INITIAL=$ROOT/tests/fuzz/corpus/fuzz_sniff/quic_rfc9001
CONF=$TMP/rules.conf
RULES=(
	"DOMAIN-SUFFIX,ads.test,REJECT"                               # 1
	"AND,((NETWORK,udp),(IP-CIDR,$V4B/32)),REJECT"                # 2
	"NETWORK,udp,DIRECT"                                          # 3
	"PROCESS-NAME,mycurl,DIRECT"                                  # 4
	"UID,4242,DIRECT"                                             # 5
	"CGROUP,child,DIRECT"                                         # 6
	"DST-PORT,8081,DIRECT"                                        # 7
	"IP-CIDR,$V4B/32,DIRECT"                                      # 8
	"DOMAIN,tls.test,DIRECT"                                      # 9
	"DOMAIN-SUFFIX,name.test,DIRECT"                              # 10
	"DOMAIN,blocked.test,REJECT"                                  # 11
	"DOMAIN,http.test,DIRECT"                                     # 12
	"OR,((DST-PORT,8082),(DST-PORT,8083)),DIRECT"                 # 13
	"AND,((DST-PORT,8084),(NOT,((PROCESS-NAME,curl)))),DIRECT"    # 14
	"MATCH,DIRECT"                                                # 15
)
write_rules() {
	local r
	: >"$CONF"
	for r in "$@"; do echo "rule = $r" >>"$CONF"; done
}
write_rules "${RULES[@]}"

# in_child CMD...: like app_run, in the child cgroup $CG/child.
child_run() {
	local name=$1
	shift
	LAST_RUN=$name
	bash -c "$_ENTER" _ app "$CG/child" "$NS_C" "$TMP/$name.pid" "$RESOLV_CONF" "$@" \
		>"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
	RUN_RC=$?
	RUN_PID=$(cat "$TMP/$name.pid" 2>/dev/null)
	return $RUN_RC
}

# routed N ROUTE [STRING...]: the log line of the last run names rule N and
# ROUTE (and has every STRING).
routed() {
	local n=$1 route=$2
	shift 2
	expect_log "pid=$RUN_PID " "rule=$n " "route=$route" "$@"
}

# served PATH: the server answered a request for PATH.
served() { expect "the server got no request for $1" wait_http 5 "$1"; }

# --- the rule table --------------------------------------------------------------

t_domain_suffix() {
	ran app_run ds curl -sS -m 10 "http://name.test:8080/ds" || return 1
	served /ds && routed 10 DIRECT "host=name.test " "result=ok"
}

t_ip_cidr() {
	ran app_run ipc curl -sS -m 10 "http://$V4B:8080/ipc" || return 1
	served /ipc && routed 8 DIRECT "result=ok"
}

t_dst_port_first() {
	# name.test is also DOMAIN-SUFFIX (10): DST-PORT (7) comes first.
	ran app_run dp curl -sS -m 10 "http://name.test:8081/dp" || return 1
	served /dp && routed 7 DIRECT "host=name.test "
}

t_process_name() {
	ran app_run pn "$TMP/mycurl" -sS -m 10 "http://$V4:8080/pn" || return 1
	served /pn && routed 4 DIRECT "comm=mycurl "
}

t_uid() {
	ran app_run uid setpriv --reuid=4242 --regid=4242 --clear-groups \
		curl -sS -m 10 "http://$V4:8080/uid" || return 1
	served /uid && routed 5 DIRECT "uid=4242 "
}

t_cgroup() {
	ran child_run cgc curl -sS -m 10 "http://$V4:8080/cgc" || return 1
	served /cgc && routed 6 DIRECT "cgroup=${CG#"$CG2"}/child "
}

t_or() {
	ran app_run or curl -sS -m 10 "http://$V4:8083/or" || return 1
	served /or && routed 13 DIRECT
}

t_and_not() {
	ran app_run an busybox wget -q -O /dev/null "http://$V4:8084/an1" || return 1
	served /an1 && routed 14 DIRECT "comm=busybox " || return 1
	ran app_run an2 curl -sS -m 10 "http://$V4:8084/an2" || return 1
	served /an2 && routed 15 DIRECT "comm=curl "
}

t_match() {
	ran app_run match curl -sS -m 10 "http://$V4:8080/match" || return 1
	served /match && routed 15 DIRECT "result=ok"
}

t_udp() {
	ran app_run udp "$TOOLS/netclient" udp $V4:7 || return 1
	routed 3 DIRECT " udp " "result=ok"
}

# A UDP flow to a FakeIP name: rule 2's IP-CIDR has the name resolved
# first (name.test is $V4, not $V4B), then NETWORK decides.
t_udp_fakeip() {
	ran app_run udpf bash -c 'a=$(getent ahostsv4 name.test | awk "NR == 1 { print \$1 }") &&
		exec "$1" udpsend "$a:7" 70696e67' _ "$TOOLS/netclient" || return 1
	routed 3 DIRECT " udp " "host=name.test " "result=ok"
}

t_reject_tcp() {
	app_run rej curl -sS -m 10 "http://www.ads.test:8080/rej"
	# 56 (a read reset), 52, or 7 ("Couldn't connect") when the reset came
	# before curl read SO_ERROR of its non-blocking connect.
	expect "curl exited $RUN_RC, want 56, 52 or 7" \
		eval '[ "$RUN_RC" = 56 ] || [ "$RUN_RC" = 52 ] || [ "$RUN_RC" = 7 ]' || return 1
	expect "curl did not see a reset: $(cat "$TMP/rej.err")" \
		grep -qi "reset\|empty reply\|couldn't connect" "$TMP/rej.err" || return 1
	routed 1 REJECT "host=www.ads.test " "result=rejected" || return 1
	sleep 0.2
	expect "the server got the rejected request" eval '! http_has /rej'
}

t_reject_udp() {
	app_run rejudp "$TOOLS/netclient" udp -t 1 $V4B:7
	expect "netclient exited $RUN_RC, want 3 (no answer)" [ "$RUN_RC" = 3 ] || return 1
	# The flow is logged when it ends (--udp-timeout 2).
	wait_log 8 "pid=$RUN_PID " || true
	routed 2 REJECT " udp " "result=rejected"
}

# --- sniffing --------------------------------------------------------------------

t_sniff_tls() {
	ran app_run tls curl -sS -k -m 10 --resolve tls.test:8443:$V4 \
		"https://tls.test:8443/" || return 1
	expect "no s_server status page: $(head -c 200 "$TMP/tls.out")" \
		grep -q "s_server" "$TMP/tls.out" || return 1
	routed 9 DIRECT "host=tls.test " "sniffed=tls" "result=ok"
}

t_sniff_http() {
	ran app_run http curl -sS -m 10 -H "Host: http.test:8080" "http://$V4:8080/sniffhttp" ||
		return 1
	served /sniffhttp && routed 12 DIRECT "host=http.test " "sniffed=http"
}

t_sniff_http_reject() {
	app_run httprej curl -sS -m 10 -H "Host: blocked.test" "http://$V4:8080/blocked"
	expect "curl exited $RUN_RC, want 56, 52 or 7" \
		eval '[ "$RUN_RC" = 56 ] || [ "$RUN_RC" = 52 ] || [ "$RUN_RC" = 7 ]' || return 1
	expect "curl did not see a reset: $(cat "$TMP/httprej.err")" \
		grep -qi "reset\|empty reply" "$TMP/httprej.err" || return 1
	routed 11 REJECT "host=blocked.test " "sniffed=http" "result=rejected" || return 1
	sleep 0.2
	expect "the server got the rejected request" eval '! http_has /blocked'
}

# The client sends nothing; the server's banner must reach it (the sniffing
# wait is short, then the connection goes on by address). 5 s is generous.
t_server_first() {
	# One line read, 5 s at most, and the connection closed.
	ran app_run banner bash -c "exec 3<>/dev/tcp/$V4/2525 && read -r -t 5 line <&3 &&
		echo \"\$line\"" || return 1
	expect "no banner: '$(cat "$TMP/banner.out")'" grep -q "^220 banner.test" "$TMP/banner.out" ||
		return 1
	routed 15 DIRECT
}

t_sniff_off() {
	restart_daemon --resolver $RESOLVER --udp-timeout 2 --config "$CONF" --sniff off || return 1
	ran app_run soff curl -sS -m 10 -H "Host: blocked.test" "http://$V4:8080/soff" || return 1
	served /soff && routed 15 DIRECT "result=ok" || return 1
	expect "a host was sniffed with --sniff off: $(log_line "pid=$RUN_PID ")" \
		eval '! log_line "pid=$RUN_PID " | grep -q sniffed='
}

# A ClientHello in two pieces, 0.3 s apart (within a long --sniff-timeout):
# the name is read once the rest comes, and the server still gets every
# byte (it answers the hello with its own handshake record).
t_sniff_split() {
	restart_daemon --resolver $RESOLVER --udp-timeout 2 --config "$CONF" \
		--sniff-timeout 3000 || return 1
	local hello=$ROOT/tests/fuzz/corpus/fuzz_sniff/tls_openssl
	ran app_run split bash -c '{ head -c 60 "$1"; sleep 0.3; tail -c +61 "$1"; sleep 1; } |
		socat -t 2 - "TCP:$2"' _ "$hello" $V4:8443 || return 1
	expect "the server did not answer the hello (bytes lost?)" \
		eval '[ "$(head -c 1 "$TMP/split.out" | od -An -tx1 | tr -d " ")" = 16 ]' || return 1
	expect_log " tcp " "comm=socat " "dst=$V4:8443 " "host=tls.test " "sniffed=tls" "rule=9 "
}

# No rule looks at names and no upstream: nothing is sniffed, no wait.
# (--json: rule and route as JSON fields.)
t_no_name_rules() {
	restart_daemon --resolver $RESOLVER --rule "MATCH,DIRECT" --json || return 1
	ran app_run nonames curl -sS -m 10 -H "Host: http.test" "http://$V4:8080/nonames" ||
		return 1
	served /nonames || return 1
	expect "no JSON line with rule 1, route DIRECT, and no host: $(cat "$TMP/conn.log")" \
		wait_for 5 eval "json_lines $RUN_PID | jq -e 'select(.proto == \"tcp\" and
			.rule == 1 and .route == \"DIRECT\" and .host == null and
			.sniffed == null)' >/dev/null"
}

# QUIC: the first datagram of RFC 9001's example connection (appendix
# A.2), sent as it is to a real address, names example.com.
t_sniff_quic() {
	restart_daemon --resolver $RESOLVER --udp-timeout 2 \
		--rule "AND,((NETWORK,udp),(DOMAIN,example.com)),REJECT" --rule "MATCH,DIRECT" ||
		return 1
	app_run quic "$TOOLS/netclient" udpsend -t 1 $V4:443 \
		"$(od -An -tx1 -v "$QUIC_INITIAL" | tr -d ' \n')"
	expect "netclient exited $RUN_RC, want 3 (no answer: dropped)" [ "$RUN_RC" = 3 ] ||
		return 1
	routed 1 REJECT " udp " "host=example.com " "sniffed=quic" "result=rejected"
}

# --- upstreams ---------------------------------------------------------------

# No rule looks at names, the route is an upstream: the name is sniffed
# after the decision, for the upstream.
t_override() {
	restart_daemon --resolver $RESOLVER --upstream up=socks5://$V4B:1080 \
		--rule "IP-CIDR,$V4B/32,up" --rule "MATCH,DIRECT" || return 1
	ran app_run ovr curl -sS -m 10 -H "Host: viaup.test:8080" "http://$V4B:8080/ovr" ||
		return 1
	served /ovr || return 1
	expect "the server was reached at $(http_get /ovr local), not at viaup.test's $V4" \
		[ "$(http_get /ovr local)" = $V4:8080 ] || return 1
	routed 1 up "host=viaup.test " "sniffed=http" "via=up" "result=ok"
}

t_override_off() {
	restart_daemon --resolver $RESOLVER --upstream up=socks5://$V4B:1080 \
		--rule "DOMAIN,viaup.test,up" --rule "MATCH,DIRECT" --sniff-override off || return 1
	ran app_run ovroff curl -sS -m 10 -H "Host: viaup.test:8080" "http://$V4B:8080/ovroff" ||
		return 1
	served /ovroff || return 1
	expect "the server was reached at $(http_get /ovroff local), not at the address $V4B" \
		[ "$(http_get /ovroff local)" = $V4B:8080 ] || return 1
	routed 1 up "host=viaup.test " "sniffed=http" "via=up" "result=ok"
}

# --- reload ----------------------------------------------------------------------

# A connection open across SIGHUP keeps the route it was given (MATCH ->
# DIRECT): its bytes still flow and its line names the old rule; a new
# connection gets the new rules (port 7 rejected).
t_reload_keeps() {
	restart_daemon --resolver $RESOLVER --udp-timeout 2 --config "$CONF" || return 1

	PIDFILE=$TMP/long.pid in_app bash -c \
		"(echo before; sleep 2; echo after) | socat -t 3 - TCP:$V4:7" \
		>"$TMP/long.out" 2>"$TMP/long.err" </dev/null &
	local bgpid=$!
	BG_PIDS+=("$bgpid")
	expect "the long connection did not start" wait_for 5 grep -q before "$TMP/long.out" || return 1
	write_rules "DST-PORT,7,REJECT" "MATCH,DIRECT"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 2 rules in use'" wait_for 5 grep -q "SIGHUP: 2 rules in use" \
		"$TMP/daemon.err" || return 1
	app_run new socat -t 3 - TCP:$V4:7
	routed 1 REJECT "result=rejected" || return 1
	wait_for 8 eval '! alive '"$bgpid"
	expect "the long connection lost bytes after the reload: $(tr '\n' ' ' <"$TMP/long.out")" \
		grep -q after "$TMP/long.out" || return 1
	expect_log " tcp " "comm=socat " "dst=$V4:7 " "rule=15 " "route=DIRECT" "result=ok"
}

# --- reload: upstreams with the rules ---------------------------------------------

CLIENT=203.0.113.1
# reloaded N: the daemon said "SIGHUP: ... rules in use" N times.
reloaded() { [ "$(grep -c "SIGHUP: [0-9]* rules in use" "$TMP/daemon.err")" -ge "$1" ]; }
# peer_of PATH WANT: the server saw the request for PATH come from WANT.
peer_of() {
	served "$1" || return 1
	local peer
	peer=$(http_get "$1" peer)
	expect "the server saw $1 from $peer, not from $2" eval "[[ $peer == $2:* ]]"
}
# long_start NAME: a connection to the echo server that sends a line now and
# one 2 s later (and half-closes 1 s after that: microsocks closes both ways
# on the first end); long_done NAME N: both came back, and the connection
# log has N lines of such connections through corp.
long_start() {
	PIDFILE=$TMP/$1.pid in_app bash -c \
		"(echo before; sleep 2; echo after; sleep 1) | socat -t 3 - TCP:$V4:9" \
		>"$TMP/$1.out" 2>"$TMP/$1.err" </dev/null &
	LONG_BG=$!
	BG_PIDS+=("$LONG_BG")
	expect "the long connection did not start" wait_for 5 grep -q before "$TMP/$1.out"
}
long_done() {
	wait_for 8 eval '! alive '"$LONG_BG"
	expect "the long connection lost bytes after the reload: $(tr '\n' ' ' <"$TMP/$1.out")" \
		grep -q after "$TMP/$1.out" || return 1
	expect "no $2 lines of long connections through corp, with rule 1 and result ok" \
		wait_for 5 eval '[ "$(count_with "$TMP/conn.log" " tcp " "comm=socat " "dst=$V4:9 " \
			"rule=1 " "route=corp" "via=corp " "up=13 down=13 " "result=ok")" -ge '"$2"' ]'
}

# Only DIRECT at start; a reload adds upstream corp and a rule for it.
t_reload_adds_upstream() {
	write_rules "MATCH,DIRECT"
	restart_daemon --resolver $RESOLVER --config "$CONF" || return 1
	ran app_run ru1 curl -sS -m 10 "http://$V4:8080/ru1" || return 1
	peer_of /ru1 $CLIENT || return 1
	write_rules "IP-CIDR,$V4/32,corp" "MATCH,DIRECT"
	echo "upstream = corp=socks5://$V4B:1080" >>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 2 rules in use'" wait_for 5 reloaded 1 || return 1
	ran app_run ru2 curl -sS -m 10 "http://$V4:8080/ru2" || return 1
	peer_of /ru2 $V4B || return 1
	routed 1 corp "via=corp " "result=ok"
}

# corp moves to the other microsocks: new connections go there, one opened
# before keeps the old one to its end.
t_reload_changes_upstream() {
	daemon_running || return 1
	long_start rclong || return 1
	expect "the long connection did not go through corp (port 1080)" \
		wait_for 5 grep -q "tcp local=$V4:9 peer=$V4B:" "$TMP/echo.log" || return 1
	write_rules "IP-CIDR,$V4/32,corp" "MATCH,DIRECT"
	echo "upstream = corp=socks5://$V4B:1081" >>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "no second 'SIGHUP: 2 rules in use'" wait_for 5 reloaded 2 || return 1
	ran app_run rc2 curl -sS -m 10 "http://$V4:8080/rc2" || return 1
	peer_of /rc2 $V4 || return 1
	routed 1 corp "via=corp " "result=ok" || return 1
	long_done rclong 1
}

# A bad URL, then a rule naming an unknown upstream: refused, named, and
# the set in use (corp on port 1081) stays.
t_reload_refused() {
	daemon_running || return 1
	write_rules "IP-CIDR,$V4/32,corp" "MATCH,DIRECT"
	echo "upstream = corp=ftp://$V4B:1080" >>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "the bad upstream was not named" \
		wait_for 5 grep -q "SIGHUP: .*--upstream corp" "$TMP/daemon.err" || return 1
	expect "no 'the 2 rules in use stay'" \
		wait_for 5 grep -q "SIGHUP: the 2 rules in use stay" "$TMP/daemon.err" || return 1
	write_rules "IP-CIDR,$V4/32,elsewhere" "MATCH,DIRECT"
	echo "upstream = corp=socks5://$V4B:1080" >>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "the unknown upstream was not named" \
		wait_for 5 grep -q "SIGHUP: .*unknown target 'elsewhere'" "$TMP/daemon.err" || return 1
	expect "no second 'the 2 rules in use stay'" \
		wait_for 5 eval '[ "$(grep -c "SIGHUP: the 2 rules in use stay" "$TMP/daemon.err")" -ge 2 ]' ||
		return 1
	expect "the daemon died of a refused reload" daemon_running || return 1
	ran app_run rr curl -sS -m 10 "http://$V4:8080/rr" || return 1
	peer_of /rr $V4 || return 1
	routed 1 corp "via=corp " "result=ok"
}

# corp is removed while a connection goes through it: that connection
# finishes, new ones go direct.
t_reload_removes_upstream() {
	daemon_running || return 1
	long_start rmlong || return 1
	local n
	n=$(grep -c "SIGHUP: [0-9]* rules in use" "$TMP/daemon.err")
	write_rules "MATCH,DIRECT"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 1 rules in use'" wait_for 5 reloaded $((n + 1)) || return 1
	ran app_run rm2 curl -sS -m 10 "http://$V4:8080/rm2" || return 1
	peer_of /rm2 $CLIENT || return 1
	long_done rmlong 2 || return 1
	expect "the daemon died" daemon_running
}

if start_daemon --resolver $RESOLVER --udp-timeout 2 --config "$CONF"; then
	pass daemon-start
else
	fail daemon-start "$WHY" "$TMP/daemon.err"
	finish
fi
run_case domain-suffix-fakeip t_domain_suffix
run_case ip-cidr t_ip_cidr
run_case dst-port-first-match t_dst_port_first
run_case process-name t_process_name
run_case uid t_uid
run_case cgroup-child t_cgroup
run_case or t_or
run_case and-not t_and_not
run_case match-default t_match
run_case network-udp t_udp
run_case udp-fakeip-resolved t_udp_fakeip
run_case reject-tcp-reset t_reject_tcp
run_case reject-udp-dropped t_reject_udp
run_case sniff-tls-sni t_sniff_tls
run_case sniff-http-host t_sniff_http
run_case sniff-http-reject t_sniff_http_reject
run_case server-speaks-first t_server_first
run_case sniff-off t_sniff_off
run_case sniff-tls-split t_sniff_split
run_case no-name-rules-no-sniff t_no_name_rules
run_case sniff-quic-initial t_sniff_quic
run_case sniff-override-upstream t_override
run_case sniff-override-off t_override_off
run_case reload-keeps-route t_reload_keeps
run_case reload-adds-upstream t_reload_adds_upstream
run_case reload-changes-upstream t_reload_changes_upstream
run_case reload-refused-set-stays t_reload_refused
run_case reload-removes-upstream t_reload_removes_upstream
# Exit status 0 (an ASan build exits otherwise on a leak).
run_case daemon-stops-clean stop_daemon
finish
