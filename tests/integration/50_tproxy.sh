#!/bin/bash
# Gateway mode: `sproxy-bpf rules` and `sproxy-bpf tproxy` on a router.
# Three namespaces: a LAN client whose default routes go to a gateway, the
# gateway (rules --apply and the daemon run there, nowhere else), and the
# "remote" servers. The gateway does not forward (ip_forward 0), so
# whatever reaches a server went through the proxy, and the server sees
# the gateway's address. Checked: TCP over IPv4 and IPv6, UDP with one
# socket and two peers (each reply from its own peer), FakeIP DNS and curl
# by name, the log naming the client, rules (a REJECT resets TCP and drops
# UDP, a QUIC Initial named by its first datagram), UDP through a SOCKS5
# upstream (its line, a sniffed QUIC name sent in place of the address, a
# flow tried again a second after its upstream failed, the 4 MiB bound on
# datagrams waiting for one), --local capturing the gateway's own
# processes without capturing the daemon (no loop), `rules --remove`
# leaving the ruleset, rules and routes byte for byte as they were (nft
# and iptables), --apply all-or-nothing, and `rules --print` never putting
# TPROXY in OUTPUT nor a route that is not `local` in the table.
#
#   sbt<pid>c  LAN client  eth0 192.0.2.2/24 2001:db8:1::2/64, default via the gateway
#   sbt<pid>g  gateway     lan0 192.0.2.1/24 2001:db8:1::1/64
#                          wan0 203.0.113.1/24 2001:db8:2::1/64, default via the remote
#   sbt<pid>s  remote      eth0 203.0.113.10/24 .11/32 198.51.100.53/32
#                          2001:db8:2::10/64 2001:db8:2::11/128
. "$(dirname "$0")/../lib.sh"

NS_G=sbt${TEST_ID}g
R4=203.0.113.10
R6=2001:db8:2::10
RESOLVER=198.51.100.53
CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")

gw() { nsenter --net="/run/netns/$NS_G" -- "$@"; }

setup_gateway_topology() {
	local ns
	for ns in "$NS_C" "$NS_G" "$NS_S"; do
		ip netns add "$ns" || { _setup_fail "ip netns add $ns"; return 1; }
		MADE_NETNS+=("$ns")
		_ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 0
		_ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 0
		_ns_sysctl "$ns" net.ipv6.conf.default.accept_dad 0
		ip -n "$ns" link set lo up || { _setup_fail "lo up in $ns"; return 1; }
	done
	ip -n "$NS_C" link add eth0 type veth peer name lan0 netns "$NS_G" &&
	ip -n "$NS_G" link add wan0 type veth peer name eth0 netns "$NS_S" &&
	ip -n "$NS_C" addr add 192.0.2.2/24 dev eth0 &&
	ip -n "$NS_C" addr add 2001:db8:1::2/64 dev eth0 nodad &&
	ip -n "$NS_G" addr add 192.0.2.1/24 dev lan0 &&
	ip -n "$NS_G" addr add 2001:db8:1::1/64 dev lan0 nodad &&
	ip -n "$NS_G" addr add 203.0.113.1/24 dev wan0 &&
	ip -n "$NS_G" addr add 2001:db8:2::1/64 dev wan0 nodad &&
	ip -n "$NS_S" addr add $R4/24 dev eth0 &&
	ip -n "$NS_S" addr add 203.0.113.11/32 dev eth0 &&
	ip -n "$NS_S" addr add $RESOLVER/32 dev eth0 &&
	ip -n "$NS_S" addr add $R6/64 dev eth0 nodad &&
	ip -n "$NS_S" addr add 2001:db8:2::11/128 dev eth0 nodad &&
	ip -n "$NS_C" link set eth0 up && ip -n "$NS_G" link set lan0 up &&
	ip -n "$NS_G" link set wan0 up && ip -n "$NS_S" link set eth0 up &&
	ip -n "$NS_C" route add default via 192.0.2.1 &&
	ip -n "$NS_C" -6 route add default via 2001:db8:1::1 &&
	ip -n "$NS_G" route add 198.51.100.0/24 via $R4 &&
	ip -n "$NS_G" route add default via $R4 &&
	ip -n "$NS_G" -6 route add default via $R6 ||
		{ _setup_fail "configuring the veth pairs"; return 1; }
	wait_for 5 eval "ip -n $NS_C link show eth0 | grep -q LOWER_UP && ip -n $NS_S link show eth0 | grep -q LOWER_UP" ||
		{ _setup_fail "veth links did not come up"; return 1; }
	# Link-local addresses come a moment later: the snapshots must not see them arrive.
	wait_for 10 eval "[ \$(gw ip -6 route show table all | grep -c '^fe80::/64') = 2 ] && [ \$(ip -n $NS_C -6 addr show scope link | grep -c inet6) = 1 ]" ||
		{ _setup_fail "no IPv6 link-local addresses"; return 1; }
}

setup_gateway_topology || finish
# What --apply records lives in /run, keyed by the namespace: gone with it.
GW_STATE=/run/sproxy-bpf/rules-netns-$(stat -L -c %i "/run/netns/$NS_G")
trap 'rm -f "$GW_STATE"; cleanup' EXIT
if ! need curl dig nft iptables ip6tables dnsmasq "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $R4:8080 "[$R6]:8080" 203.0.113.11:8080 || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $R4:7 203.0.113.11:7 "[$R6]:7" "[2001:db8:2::11]:7" || finish
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --address=/web.test/203.0.113.11 || finish
printf 'nameserver %s\noptions timeout:3 attempts:1\n' $RESOLVER >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

# --- helpers ---------------------------------------------------------------------

# The gateway's netfilter and policy routing, as text to compare.
snapshot() {
	{
		echo "== nft"; gw nft list ruleset
		echo "== ip rule"; gw ip rule show
		echo "== ip -6 rule"; gw ip -6 rule show
		echo "== routes"; gw ip route show table all
		echo "== routes6"; gw ip -6 route show table all
	} >"$1" 2>&1
}

# The rules and chains of iptables-save (iptables-nft keeps a built-in
# table once made, empty, and so does the legacy kernel module), then the
# policy routing.
ipt_snapshot() {
	{ gw iptables-save; gw ip6tables-save; } 2>&1 | grep -E '^(-A |:[^ ]+ - )' >"$1"
	{ gw ip rule; gw ip -6 rule; gw ip route show table all; gw ip -6 route show table all; } >>"$1" 2>&1
}

rules() { gw "$SPROXY_BIN" rules "$@"; }

# start_tproxy ARGS...: the daemon in the gateway; waits for its ready line.
start_tproxy() {
	: >"$TMP/conn.log"
	: >"$TMP/daemon.err"
	nsenter --net="/run/netns/$NS_G" -- "$SPROXY_BIN" tproxy --log "$TMP/conn.log" \
		--resolver $RESOLVER "$@" >"$TMP/daemon.out" 2>"$TMP/daemon.err" </dev/null &
	DAEMON_PID=$!
	BG_PIDS+=("$DAEMON_PID")
	if ! wait_for 10 eval 'grep -q "^sproxy-bpf: ready: " "$TMP/daemon.err" || ! alive $DAEMON_PID'; then
		WHY="tproxy printed no ready line: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')"
		return 1
	fi
	alive "$DAEMON_PID" || { WHY="tproxy exited: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')"; return 1; }
}

# --- cases -------------------------------------------------------------------------

t_apply() {
	snapshot "$TMP/before.txt"
	ran_rules apply --apply --ipv6 --interface lan0 || return 1
	expect "no TPROXY rule in the gateway's ruleset" eval 'gw nft list ruleset | grep -q "tproxy"' || return 1
	expect "no local route in table 3333: $(gw ip route show table 3333)" \
		eval '[ "$(gw ip route show table 3333)" = "local default dev lo scope host " ] || gw ip route show table 3333 | grep -q "^local default dev lo"'
}

ran_rules() {
	local name=$1
	shift
	rules "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
	RUN_RC=$?
	LAST_RUN=$name
	[ $RUN_RC = 0 ] && return 0
	WHY="rules $* exited $RUN_RC: $(tail -n 1 "$TMP/$name.err")"
	return 1
}

# Short UDP idle time: flows are logged when they end.
t_daemon() {
	start_tproxy --udp-timeout 2
}

t_tcp4() {
	daemon_running || return 1
	ran client_run c4 curl -sS -m 10 "http://$R4:8080/gw4" || return 1
	expect "the server got no request" wait_http 5 /gw4 || return 1
	expect "the server saw $(http_get /gw4 peer), not the gateway 203.0.113.1" \
		eval '[[ $(http_get /gw4 peer) == 203.0.113.1:* ]]' || return 1
	expect_log " tcp " "capture=tproxy " "proc=none " "client=192.0.2.2 " "dst=$R4:8080 " "result=ok"
}

t_tcp6() {
	daemon_running || return 1
	ran client_run c6 curl -sS -g -m 10 "http://[$R6]:8080/gw6" || return 1
	expect "the server got no request" wait_http 5 /gw6 || return 1
	expect "the server saw $(http_get /gw6 peer), not the gateway 2001:db8:2::1" \
		eval '[[ $(http_get /gw6 peer) == "[2001:db8:2::1]:"* ]]' || return 1
	expect_log " tcp " "capture=tproxy " "client=2001:db8:1::2 " "dst=[$R6]:8080 " "result=ok"
}

# A connection straight to the listener is not relayed to itself.
t_direct_listener() {
	daemon_running || return 1
	client_run direct curl -sS -m 5 "http://192.0.2.1:3333/x"
	expect_log " tcp " "dst=192.0.2.1:3333 " "result=refused" || return 1
	daemon_running
}

# One unconnected socket, two peers: each reply comes from the peer asked.
t_udp_two_peers() {
	daemon_running || return 1
	ran client_run u4 "$TOOLS/netclient" udp -n 2 $R4:7 203.0.113.11:7 || return 1
	ran client_run u6 "$TOOLS/netclient" udp -n 2 "[$R6]:7" "[2001:db8:2::11]:7" || return 1
	expect "echod saw the datagrams from $(grep -o 'peer=[^ ]*' "$TMP/echo.log" | sort -u | tr '\n' ' '), not only the gateway" \
		eval '! grep "^udp" "$TMP/echo.log" | grep -v -e "peer=203.0.113.1:" -e "peer=\[2001:db8:2::1\]:" | grep -q .' || return 1
	expect_log " udp " "capture=tproxy " "client=192.0.2.2 " "dst=203.0.113.11:7 "
}

t_dns_fakeip() {
	local a
	daemon_running || return 1
	ran client_run dig dig +short +time=3 +tries=1 @$RESOLVER web.test A || return 1
	a=$(head -n 1 "$TMP/dig.out")
	expect "web.test got '$a', not a FakeIP address (198.18.0.0/15)" eval '[[ $a == 198.1[89].* ]]' || return 1
	ran client_run byname curl -sS -m 10 "http://web.test:8080/byname" || return 1
	expect "the server got no request" wait_http 5 /byname || return 1
	expect_log " tcp " "capture=tproxy " "host=web.test " "result=ok" || return 1
	expect_log " dns " "capture=tproxy " "client=192.0.2.2 " "dst=$RESOLVER:53 "
}

# Rules in gateway mode: no process is known, the destination decides.
# A REJECT rule resets the LAN client's TCP connection and drops its UDP
# flow; the rest goes on; each line names its rule and route.  A QUIC
# Initial (RFC 9001's example) is named by its first datagram.
t_gw_rules() {
	stop_daemon_gw
	start_tproxy --udp-timeout 2 --rule "AND,((NETWORK,udp),(DOMAIN,example.com)),REJECT" \
		--rule "IP-CIDR,203.0.113.11/32,REJECT" --rule "MATCH,DIRECT" || return 1
	client_run gwrej curl -sS -m 10 "http://203.0.113.11:8080/gwrej"
	expect "curl to a rejected destination exited $RUN_RC: $(tail -n 1 "$TMP/gwrej.err")" \
		[ "$RUN_RC" != 0 ] || return 1
	expect_log " tcp " "capture=tproxy " "dst=203.0.113.11:8080 " "rule=2 " "route=REJECT" \
		"result=rejected" || return 1
	client_run gwrejudp "$TOOLS/netclient" udp -t 1 203.0.113.11:7
	expect "netclient exited $RUN_RC, want 3 (dropped)" [ "$RUN_RC" = 3 ] || return 1
	client_run gwquic "$TOOLS/netclient" udpsend -t 1 $R4:443 \
		"$(od -An -tx1 -v "$ROOT/tests/fuzz/corpus/fuzz_sniff/quic_rfc9001" | tr -d ' \n')"
	wait_log 8 " udp " "dst=203.0.113.11:7 " || true
	expect_log " udp " "capture=tproxy " "dst=203.0.113.11:7 " "rule=2 " "route=REJECT" \
		"result=rejected" || return 1
	expect_log " udp " "capture=tproxy " "dst=$R4:443 " "host=example.com " "sniffed=quic" \
		"rule=1 " "route=REJECT" "result=rejected" || return 1
	ran client_run gwok curl -sS -m 10 "http://$R4:8080/gwok" || return 1
	expect_log " tcp " "capture=tproxy " "dst=$R4:8080 " "rule=3 " "route=DIRECT" "result=ok" ||
		return 1
	sleep 0.2
	expect "the server got the rejected request" eval '! http_has /gwrej'
}

# SIGHUP in gateway mode reads the --config file's rules again, as attach
# does: a destination that went DIRECT is rejected after the reload, and a
# file that no longer reads keeps the rules in use.
t_gw_reload() {
	local conf=$TMP/gw.conf
	stop_daemon_gw
	printf 'rule = MATCH,DIRECT\n' >"$conf"
	start_tproxy --udp-timeout 2 --config "$conf" || return 1
	ran client_run gwr1 curl -sS -m 10 "http://$R4:8080/gwr1" || return 1
	printf 'rule = IP-CIDR,%s/32,REJECT\nrule = MATCH,DIRECT\n' $R4 >"$conf"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 2 rules in use' line: $(grep SIGHUP "$TMP/daemon.err" | tail -n 1)" \
		wait_for 5 grep -q "SIGHUP: 2 rules in use" "$TMP/daemon.err" || return 1
	client_run gwr2 curl -sS -m 10 "http://$R4:8080/gwr2"
	expect "curl after the reload exited $RUN_RC, want a refusal" [ "$RUN_RC" != 0 ] || return 1
	expect_log " tcp " "capture=tproxy " "dst=$R4:8080 " "rule=1 " "route=REJECT" \
		"result=rejected" || return 1
	printf 'rule = MATCH,Nowhere\n' >"$conf"
	kill -HUP "$DAEMON_PID"
	expect "no 'the 2 rules in use stay' line" \
		wait_for 5 grep -q "SIGHUP: the 2 rules in use stay" "$TMP/daemon.err" || return 1
	stop_clean
}

# up_danted NAME PORT: danted (UDP ASSOCIATE only) in the remote namespace
# on 203.0.113.11:PORT, resolving example.com to $R4 from a hosts file of
# its own.
up_danted() {
	local name=$1 port=$2
	printf '127.0.0.1 localhost\n%s example.com\n' $R4 >"$TMP/up-hosts"
	printf 'nameserver 127.0.0.1\n' >"$TMP/up-resolv.conf"
	danted_conf "$TMP/$name.conf" 203.0.113.11 "$port" "udpassociate udpreply"
	start_bg "$name" server unshare -m --propagation private -- bash -c '
		mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf || exit 125
		exec danted -f "$3" -p "$4" -N 1' _ "$TMP/up-hosts" "$TMP/up-resolv.conf" \
		"$TMP/$name.conf" "$TMP/$name.dpid" || return 1
	expect "$name does not listen on $port: $(tail -n 2 "$TMP/$name.err" | tr '\n' ' ')" \
		wait_for 10 eval "in_server ss -Hltn 'sport = :$port' | grep -q ."
}

# stop_clean: SIGTERM, and the exit status must be 0 (an ASan build's is
# not on a leak or a memory error, flows still open included).
stop_clean() {
	stop_daemon_gw
	expect "the daemon exited $DAEMON_RC on SIGTERM: $(tail -n 3 "$TMP/daemon.err" | tr '\n' ' ')" \
		[ "${DAEMON_RC:-0}" = 0 ]
}

# A UDP flow through a SOCKS5 upstream (danted, UDP ASSOCIATE, in the
# remote namespace on 203.0.113.11): the relay is the server's peer and the
# flow's line names the upstream.  A QUIC Initial sent to a real address
# goes to the upstream by the name it carries (--sniff-override), which
# the upstream resolves to another server than that address.
t_udp_upstream() {
	local hex
	stop_daemon_gw
	need danted ss || return 1
	up_danted danted 1082 || return 1
	start_bg echo443 server "$TOOLS/echod" -o "$TMP/echo443.log" $R4:443 || return 1
	start_tproxy --udp-timeout 2 --upstream up=socks5://203.0.113.11:1082 \
		--rule "NETWORK,udp,up" --rule "MATCH,DIRECT" || return 1
	ran client_run upudp "$TOOLS/netclient" udp $R4:7 || return 1
	expect "echod saw no datagram from the relay 203.0.113.11: $(tail -n 2 "$TMP/echo.log" | tr '\n' ' ')" \
		grep -q "udp local=$R4:7 peer=203.0.113.11:" "$TMP/echo.log" || return 1
	hex=$(od -An -tx1 -v "$ROOT/tests/fuzz/corpus/fuzz_sniff/quic_rfc9001" | tr -d ' \n')
	client_run upquic "$TOOLS/netclient" udpsend -t 1 203.0.113.11:443 "$hex"
	expect "no datagram reached example.com's $R4:443 (the upstream got the address, not the name)" \
		wait_for 5 grep -q "udp local=$R4:443 peer=203.0.113.11:" "$TMP/echo443.log" || return 1
	wait_log 8 " udp " "dst=203.0.113.11:443 " || true
	expect_log " udp " "capture=tproxy " "client=192.0.2.2 " "dst=$R4:7 " "rule=1 " "route=up" \
		"via=up" "result=ok" || return 1
	expect_log " udp " "capture=tproxy " "dst=203.0.113.11:443 " "host=example.com " \
		"sniffed=quic" "route=up" "via=up" "result=ok" || return 1
	stop_clean
}

# A flow whose upstream is down when it begins is tried again on a
# datagram a second later or more, as a captured flow is: the upstream up
# by then, the client's next datagram goes through it and the echo comes
# back on the same socket.
t_udp_retry() {
	local bg n
	stop_daemon_gw
	need danted ss socat || return 1
	n=$(grep -c "udp local=$R4:7 peer=203.0.113.11:" "$TMP/echo.log")
	start_tproxy --udp-timeout 5 --upstream socks5://203.0.113.11:1083 || return 1
	in_client bash -c "(echo one; sleep 4; echo two; sleep 1) | socat -t 2 - UDP:$R4:7" \
		>"$TMP/retry.out" 2>"$TMP/retry.err" </dev/null &
	bg=$!
	BG_PIDS+=("$bg")
	expect "no line saying the flow is tried again: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')" \
		wait_for 5 grep -q "UDP flow from 192.0.2.2:[0-9]* to $R4:7: .*tried again" \
		"$TMP/daemon.err" || return 1
	up_danted danted2 1083 || return 1
	wait_for 10 eval '! alive '"$bg"
	expect "the datagram after the upstream came up did not come back: $(tr '\n' ' ' <"$TMP/retry.out")" \
		grep -q two "$TMP/retry.out" || return 1
	expect "echod saw nothing from the relay 203.0.113.11" \
		[ "$(grep -c "udp local=$R4:7 peer=203.0.113.11:" "$TMP/echo.log")" -gt "$n" ] || return 1
	stop_clean
}

# Datagrams that wait for their flow's upstream are bounded to 4 MiB in
# all, as captured flows' are: a client opening flow after flow behind an
# upstream that accepts and never answers gets the rest dropped, with a
# line that says so, and the daemon lives on (and frees them all at exit).
t_udp_queue_cap() {
	stop_daemon_gw
	need socat python3 ss || return 1
	start_bg silent server socat TCP-LISTEN:1090,bind=203.0.113.11,reuseaddr,fork \
		SYSTEM:"cat >/dev/null" || return 1
	expect "nothing listens on 203.0.113.11:1090" \
		wait_for 10 eval "in_server ss -Hltn 'sport = :1090' | grep -q ." || return 1
	start_tproxy --udp-timeout 5 --connect-timeout 10 \
		--upstream socks5://203.0.113.11:1090 || return 1
	# 250 flows of 16 datagrams of 1400 bytes: 5.6 MB.
	client_run flood python3 -c '
import socket, sys, time
socks = []
for i in range(250):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for j in range(16):
        s.sendto(b"x" * 1400, (sys.argv[1], 7))
    socks.append(s)
    time.sleep(0.005)
' $R4
	expect "no line about the bytes queued: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')" \
		wait_for 5 grep -q "UDP datagram from 192.0.2.2:[0-9]* to $R4:7 dropped: [0-9]* bytes already queued.*at most 4194304" \
		"$TMP/daemon.err" || return 1
	daemon_running || return 1
	stop_clean
}

# The gateway's own curl, through OUTPUT marking; the daemon's own
# connection out is not captured again (it would loop: a second log line
# with the gateway as client, or no answer at all).
t_local() {
	local n
	stop_daemon_gw
	ran_rules rm1 --remove || return 1
	ran_rules local --apply --ipv6 --local || return 1
	start_tproxy --udp-timeout 2 || return 1
	gw curl -sS -m 10 -o /dev/null "http://$R4:8080/local4" >"$TMP/local.out" 2>&1 ||
		{ WHY="curl in the gateway failed: $(tail -n 1 "$TMP/local.out")"; return 1; }
	expect_log " tcp " "capture=tproxy " "client=203.0.113.1 " "dst=$R4:8080 " "result=ok" || return 1
	n=$(count_with "$TMP/conn.log" "dst=$R4:8080 ")
	expect "$n log lines for one connection (the daemon's own captured: a loop)" [ "$n" = 1 ] || return 1
	gw curl -sS -g -m 10 -o /dev/null "http://[$R6]:8080/local6" >"$TMP/local6.out" 2>&1 ||
		{ WHY="IPv6 curl in the gateway failed: $(tail -n 1 "$TMP/local6.out")"; return 1; }
	expect_log " tcp " "capture=tproxy " "dst=[$R6]:8080 " "result=ok" || return 1
	gw "$TOOLS/netclient" udp $R4:7 203.0.113.11:7 >"$TMP/localu.out" 2>&1 ||
		{ WHY="UDP in the gateway: $(tail -n 1 "$TMP/localu.out")"; return 1; }
	expect_log " udp " "capture=tproxy " "client=203.0.113.1 " "dst=203.0.113.11:7 "
}

# A name looked up and connected to by a process of the gateway, with
# --local: its query gets a FakeIP answer, and the daemon's own lookup of
# the name (to connect out) must reach the real resolver, not itself.
t_local_by_name() {
	daemon_running || return 1
	unshare -m --propagation private -- bash -c 'mount --bind "$1" /etc/resolv.conf &&
		exec nsenter --net="$2" -- curl -sS -m 10 -o /dev/null "http://web.test:8080/localname"' \
		_ "$TMP/resolv.conf" "/run/netns/$NS_G" >"$TMP/localname.out" 2>&1 ||
		{ WHY="curl by name in the gateway failed: $(tail -n 1 "$TMP/localname.out")"; return 1; }
	expect "the server got no request" wait_http 5 /localname || return 1
	expect_log " tcp " "capture=tproxy " "host=web.test " "result=ok"
}

# SIGTERM; DAEMON_RC is the exit status (an ASan build's is not 0 on a leak).
stop_daemon_gw() {
	DAEMON_RC=""
	[ -n "$DAEMON_PID" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait_for 10 eval '! alive '"$DAEMON_PID" || kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_RC=$?
	DAEMON_PID=""
}

t_remove_exact() {
	stop_daemon_gw
	expect "the daemon exited $DAEMON_RC on SIGTERM: $(tail -n 3 "$TMP/daemon.err" | tr '\n' ' ')" \
		[ "${DAEMON_RC:-0}" = 0 ] || return 1
	ran_rules rm2 --remove || return 1
	snapshot "$TMP/after.txt"
	expect "the gateway differs after --remove: $(diff "$TMP/before.txt" "$TMP/after.txt" | head -n 5 | tr '\n' ' ')" \
		cmp -s "$TMP/before.txt" "$TMP/after.txt"
}

t_iptables_exact() {
	ipt_snapshot "$TMP/ipt-before.txt"
	ran_rules ipt --apply --backend iptables --ipv6 --local --cidr 192.0.2.0/24 --cidr 2001:db8:1::/64 || return 1
	expect "no TPROXY in iptables-save" eval 'gw iptables-save | grep -q TPROXY' || return 1
	start_tproxy || return 1
	ran client_run ipt4 curl -sS -m 10 "http://$R4:8080/ipt4" || return 1
	ran client_run ipt6 curl -sS -g -m 10 "http://[$R6]:8080/ipt6" || return 1
	stop_daemon_gw
	ran_rules ipt-rm --remove || return 1
	ipt_snapshot "$TMP/ipt-after.txt"
	expect "iptables/rules/routes differ after --remove: $(diff "$TMP/ipt-before.txt" "$TMP/ipt-after.txt" | head -n 5 | tr '\n' ' ')" \
		cmp -s "$TMP/ipt-before.txt" "$TMP/ipt-after.txt"
}

# A failing step undoes the ones before it: lo down makes the IPv6 route fail.
t_all_or_nothing() {
	snapshot "$TMP/aon-before.txt"
	gw ip link set lo down
	rules --apply --ipv6 >"$TMP/aon.out" 2>&1
	RUN_RC=$?
	gw ip link set lo up
	expect "--apply with a failing step exited $RUN_RC" [ $RUN_RC = 1 ] || return 1
	snapshot "$TMP/aon-after.txt"
	expect "a failed --apply left something behind: $(diff "$TMP/aon-before.txt" "$TMP/aon-after.txt" | head -n 5 | tr '\n' ' ')" \
		cmp -s "$TMP/aon-before.txt" "$TMP/aon-after.txt"
}

# The printed rules, every option combination and both backends: TPROXY
# only in PREROUTING, and every route in the table `local` on lo.
t_print() {
	local b opts out
	for b in nft iptables; do
		for opts in "" "--local" "--local --ipv6" "--local --ipv6 --interface lan0 --cidr 192.0.2.0/24" \
			"--ipv6 --cidr 2001:db8:1::/64 --port 4444 --mark 7 --table 77"; do
			# shellcheck disable=SC2086
			out=$("$SPROXY_BIN" rules --print --backend $b $opts) ||
				{ WHY="rules --print --backend $b $opts failed"; return 1; }
			if [ $b = nft ]; then
				expect "TPROXY in the output chain ($b $opts)" eval \
					'! awk "/chain output/,/^\t}/" <<<"$out" | grep -v "^[[:space:]]*#" | grep -qi tproxy' || return 1
			else
				expect "TPROXY in OUTPUT ($b $opts)" eval \
					'! grep -v "^#" <<<"$out" | grep -E "^-A (OUTPUT|SPROXY_BPF_OUT)" | grep -qi tproxy' || return 1
			fi
			expect "a route in the table that is not local on lo ($b $opts)" eval \
				'! grep -E "^ip (-[46] )?route add" <<<"$out" | grep -vqE "route add local [^ ]+ dev lo table"' || return 1
			expect "no TPROXY at all ($b $opts)" eval 'grep -v "^#" <<<"$out" | grep -qi tproxy' || return 1
			expect "no comments ($b $opts)" eval '[ "$(grep -c "^#" <<<"$out")" -gt 5 ]' || return 1
		done
	done
	expect "--mark equal to the daemon's accepted" eval '! "$SPROXY_BIN" rules --print --mark 0x5350 2>/dev/null'
}

run_case print t_print
run_case apply t_apply
run_case daemon t_daemon
run_case tcp4 t_tcp4
run_case tcp6 t_tcp6
run_case direct_listener t_direct_listener
run_case udp_two_peers t_udp_two_peers
run_case dns_fakeip t_dns_fakeip
run_case gw_rules t_gw_rules
run_case gw_reload t_gw_reload
run_case udp_upstream t_udp_upstream
run_case udp_upstream_retry t_udp_retry
run_case udp_queue_cap t_udp_queue_cap
run_case local t_local
run_case local_by_name t_local_by_name
run_case remove_exact t_remove_exact
run_case all_or_nothing t_all_or_nothing
run_case iptables_exact t_iptables_exact
finish
