#!/bin/bash
# UDP flows and who owns them: a pool port belongs to the application
# socket it was handed to, a connected socket keeps its flow as long as it
# lives (and after the daemon stops, it reaches its peer directly), one
# application cannot take the pool (nor DNS) from the others, a flow still
# resolving holds bounded memory, ping sockets and subnet broadcast go
# direct.
. "$(dirname "$0")/../lib.sh"

ECHO4=203.0.113.10:7
DEAD_RESOLVER=198.51.100.99
CASE_LOGS=("$TMP/echo.log")
P=$TOOLS/udpprobe

setup_topology || finish
setup_cgroup || finish
if ! need dig ss socat prlimit "$TOOLS/echod" "$P"; then
	fail setup "$WHY"
	finish
fi
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $ECHO4 "[2001:db8::10]:7" || finish
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"

# pool_peer LOCALPORT: the real peer (a pool port on 127.0.0.1) of the
# client namespace's UDP socket bound to LOCALPORT; sock_diag is not
# rewritten by the BPF side.
pool_peer() {
	in_client ss -Huan | awk -v lp=":$1" '$4 ~ lp"$" && $5 ~ /^127\.0\.0\.1:/ { sub(/.*:/, "", $5); print $5; exit }'
}

# tries N CMD...: CMD until it succeeds, at most N times (CMD bounds its own
# time; wait_for counts 0.1 s steps, not attempts).
tries() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.3
	done
	return 1
}

# wait_ready NAME: the background udpprobe NAME printed "ready".
wait_ready() { wait_for 10 grep -q '^ready' "$TMP/$1.out"; }

# icmp_in_echos: echo requests the server namespace has received.
icmp_in_echos() {
	in_server cat /proc/net/snmp | awk '$1 == "Icmp:" { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }'
}

# --- cases -------------------------------------------------------------------------

# Another process (outside the cgroup, in the same namespace) writes to the
# pool port of an application's connected socket before the application
# sends: it must not become the flow nor get the replies, and the
# application's own datagram must still go through.
t_hijack_connected() {
	local lport port
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	start_bg victim app "$P" udp4 connect $ECHO4 local ready wait "$TMP/hijack.go" \
		send mine recv || return 1
	expect "the victim did not get ready: $(cat "$TMP/victim.out")" wait_ready victim || return 1
	lport=$(sed -n 's/^local=.*:\([0-9]*\)$/\1/p' "$TMP/victim.out")
	port=$(pool_peer "$lport")
	expect "no pool port found for the victim's socket (local port '$lport')" [ -n "$port" ] || return 1
	client_run thief "$P" -t 2 udp4 sendto "127.0.0.1:$port" stolen recv
	touch "$TMP/hijack.go"
	expect "the victim did not finish" wait_for 10 eval '! alive $(cat "$TMP/victim.pid")' || return 1
	expect "the outsider got a reply through the victim's flow: $(grep reply "$TMP/thief.out")" \
		eval '! grep -q "^reply" "$TMP/thief.out"' || return 1
	expect "the victim got no reply to its own datagram: $(tail -n 1 "$TMP/victim.out")" \
		grep -q "^reply from $ECHO4 text=$ECHO4 mine" "$TMP/victim.out" || return 1
	expect "no log line says the outsider's datagram was dropped" \
		grep -q "pool port $port .*dropped: not the socket" "$TMP/daemon.err"
}

# Senders that exit right after their datagram (logger, socat, statsd
# clients): the socket is gone before the daemon reads, the datagram is
# still theirs and still goes out.
t_fire_and_forget() {
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	ran app_run fire1 "$P" udp4 sendto $ECHO4 fire-and-forget-unconnected || return 1
	ran app_run fire2 "$P" udp4 connect $ECHO4 send fire-and-forget-connected-socket || return 1
	expect "the unconnected sender's datagram did not reach the server" \
		wait_for 5 grep -q "len=27\$" "$TMP/echo.log" || return 1
	expect "the connected sender's datagram did not reach the server" \
		wait_for 5 grep -q "len=32\$" "$TMP/echo.log"
}

# A connected socket idle for longer than --udp-timeout keeps its flow:
# the second round trip works and getpeername still shows the peer.
t_connected_outlives_timeout() {
	restart_daemon --resolver $DEAD_RESOLVER --udp-timeout 1 || return 1
	ran app_run idle "$P" udp4 connect $ECHO4 send one recv sleep 3500 send two recv peer || return 1
	expect "first round trip failed: $(sed -n 3p "$TMP/idle.out")" \
		grep -q "^reply from $ECHO4 text=$ECHO4 one" "$TMP/idle.out" || return 1
	expect "after the idle timeout: $(sed -n 6p "$TMP/idle.out")" \
		grep -q "^reply from $ECHO4 text=$ECHO4 two" "$TMP/idle.out" || return 1
	expect "getpeername after the idle timeout: $(tail -n 1 "$TMP/idle.out")" \
		grep -q "^peer=$ECHO4$" "$TMP/idle.out"
}

# A connected socket that connects elsewhere is done with its first pool
# port: that port goes back to the pool, although the socket lives on.
t_reconnect_frees_port() {
	restart_daemon --resolver $DEAD_RESOLVER --udp-flows 2 --udp-timeout 2 || return 1
	start_bg mover app "$P" udp4 connect $ECHO4 send first recv connect 203.0.113.10:9 \
		send second ready wait "$TMP/mover.go" || return 1
	expect "the mover did not get ready: $(cat "$TMP/mover.out")" wait_ready mover || return 1
	expect "no flow for another process while the mover holds one port: $(cat "$TMP/other.out" 2>/dev/null)" \
		tries 8 eval 'app_run other "$P" -t 1 udp4 sendto $ECHO4 other recv && grep -q "^reply from $ECHO4 " "$TMP/other.out"' || { touch "$TMP/mover.go"; return 1; }
	touch "$TMP/mover.go"
}

# Four processes each try two flows with a pool of 4: they cannot take the
# ports DNS needs. dig (a UDP flow to port 53) still gets its answer.
t_dns_reserve() {
	local i
	restart_daemon --resolver $DEAD_RESOLVER --udp-flows 4 || return 1
	for i in 1 2 3 4; do
		start_bg "hog$i" app "$P" udp4 spray 203.0.113.10 7000 2 2 x ready wait "$TMP/hogs.go" || return 1
	done
	for i in 1 2 3 4; do
		expect "hog$i did not get ready" wait_ready "hog$i" || return 1
	done
	RESOLV_CONF=$TMP/resolv.conf app_run dns-dry dig +short +time=2 +tries=1 @192.0.2.53 name.test A
	touch "$TMP/hogs.go"
	expect "dig with the pool taken: exit $RUN_RC, $(tail -n 1 "$TMP/dns-dry.out")" \
		grep -q '^198\.1[89]\.' "$TMP/dns-dry.out"
}

# --udp-flows-per-process bounds one process's flows; others still get theirs.
t_per_process() {
	restart_daemon --resolver $DEAD_RESOLVER --udp-flows 16 --udp-flows-per-process 3 || return 1
	ran app_run greedy "$P" udp4 spray 203.0.113.10 7100 5 5 x || return 1
	expect "5 flows with a bound of 3: $(cat "$TMP/greedy.out")" \
		grep -q '^spray ok=3 error=2$' "$TMP/greedy.out" || return 1
	expect "no log line names the bound" \
		wait_for 5 grep -q 'udp-flows-per-process' "$TMP/daemon.err" || return 1
	ran app_run modest "$P" udp4 sendto $ECHO4 hello recv || return 1
	expect "another process got no flow: $(cat "$TMP/modest.out")" \
		grep -q "^reply from $ECHO4 " "$TMP/modest.out"
}

# A bad value is a usage error (exit 2) that names the option.
t_per_process_bad() {
	local rc
	"$SPROXY_BIN" attach "$CG" --udp-flows-per-process lots >"$TMP/bad.out" 2>&1
	rc=$?
	expect "exit $rc for --udp-flows-per-process lots, want 2: $(head -n 1 "$TMP/bad.out")" [ $rc = 2 ] || return 1
	expect "the message does not name the option: $(head -n 1 "$TMP/bad.out")" \
		grep -q -- "--udp-flows-per-process wants a decimal number" "$TMP/bad.out"
}

# A burst of refused datagrams while the pool is dry does not keep the
# pool dry once the flows that held it close.
t_dry_burst() {
	restart_daemon --resolver $DEAD_RESOLVER --udp-flows 4 --udp-flows-per-process 8 || return 1
	start_bg holder app "$P" udp4 spray 203.0.113.10 7200 4 4 x ready wait "$TMP/holder.go" || return 1
	expect "the holder did not get ready" wait_ready holder || return 1
	ran app_run burst "$P" udp4 spray 203.0.113.10 7300 1000 3000 x
	expect "the burst got flows from a dry pool: $(cat "$TMP/burst.out")" \
		grep -q '^spray ok=0 error=3000$' "$TMP/burst.out" || return 1
	touch "$TMP/holder.go"
	expect "the holder did not finish" wait_for 10 eval '! alive $(cat "$TMP/holder.pid")' || return 1
	expect "the pool did not refill after the holder closed: $(cat "$TMP/refill.out" 2>/dev/null)" \
		tries 8 eval 'app_run refill "$P" -t 1 udp4 sendto $ECHO4 again recv && grep -q "^reply from $ECHO4 " "$TMP/refill.out"' || return 1
	# 3000 refusals in about 3 s: a few events, the rest only counted.
	stop_daemon || return 1
	expect "the statistics count no dry event held back: $(grep -o 'UDP pool dry.*' "$TMP/daemon.err")" \
		grep -q "UDP events not sent (rate limit) [1-9][0-9][0-9]" "$TMP/daemon.err"
}

# Flows waiting for a name that does not resolve hold bounded memory: 64
# flows x 16 datagrams of 60000 bytes would be 61 MB.
t_queue_bound() {
	local fake rss0 rss1
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	RESOLV_CONF=$TMP/resolv.conf app_run qfake dig +short +time=2 +tries=1 @192.0.2.53 slow.test A
	fake=$(head -n 1 "$TMP/qfake.out")
	expect "no fake address for slow.test: '$fake'" eval '[[ $fake == 198.1[89].* ]]' || return 1
	rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status")
	# The sender stays: its flows end when its socket closes.
	start_bg qspray app "$P" udp4 spray "$fake" 9000 64 1024 @60000 ready wait "$TMP/qspray.go" || return 1
	expect "the sender did not finish sending: $(cat "$TMP/qspray.out")" \
		wait_for 20 grep -q '^ready' "$TMP/qspray.out" || return 1
	sleep 0.5
	rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status")
	touch "$TMP/qspray.go"
	expect "the daemon grew by $(((rss1 - rss0) / 1024)) MB ($rss0 kB to $rss1 kB) queueing datagrams" \
		[ $((rss1 - rss0)) -lt 24000 ] || return 1
	expect "no log line says queued datagrams were dropped" \
		wait_for 5 grep -q 'queued.*dropped\|dropped.*queued' "$TMP/daemon.err"
}

# Out of fds, a new flow is refused (socket: EMFILE); once fds free up,
# the same flow works on the application's next datagram.
t_emfile_recovers() {
	local nfd lim free
	restart_daemon --resolver $DEAD_RESOLVER --udp-flows 8 || return 1
	nfd=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
	stop_daemon || return 1
	# The daemon under a hard fd limit, with a few fds to spare; a hog
	# takes exactly those (an fd numbered above the limit does not count).
	lim=$((nfd + 2))
	printf '#!/bin/bash\nexec prlimit --nofile=%d:%d -- "%s" "$@"\n' $lim $lim "$SPROXY_BIN" >"$TMP/limited"
	chmod +x "$TMP/limited"
	SPROXY_BIN=$TMP/limited start_daemon --resolver $DEAD_RESOLVER --udp-flows 8 || return 1
	free=$((lim - $(ls "/proc/$DAEMON_PID/fd" | awk -v l=$lim '$1 < l' | wc -l)))
	expect "$free fds to spare, want 1 to 6" [ "$free" -ge 1 ] && [ "$free" -le 6 ] || return 1
	start_bg fdhog app "$P" udp4 spray 203.0.113.10 7400 $free $free x ready wait "$TMP/fdhog.go" || return 1
	expect "the fd hog did not get ready" wait_ready fdhog || return 1
	start_bg emfile app "$P" -t 1 udp4 sendto $ECHO4 one recv ready wait "$TMP/emfile.go" \
		sleep 1200 sendto $ECHO4 two recv || return 1
	expect "the second app did not get ready" wait_ready emfile || return 1
	touch "$TMP/fdhog.go"
	expect "the fd hog did not finish" wait_for 10 eval '! alive $(cat "$TMP/fdhog.pid")' || return 1
	sleep 0.5
	touch "$TMP/emfile.go"
	expect "the second app did not finish" wait_for 10 eval '! alive $(cat "$TMP/emfile.pid")' || return 1
	expect "the flow refused for EMFILE stayed refused: $(tr '\n' ' ' <"$TMP/emfile.out")" \
		grep -q "^reply from $ECHO4 text=$ECHO4 two" "$TMP/emfile.out" || return 1
	expect "the first datagram was answered although the fds were taken" \
		grep -q "^recv timeout" "$TMP/emfile.out" || return 1
	expect "no log line names the fd limit" \
		grep -q "Too many open files.*raise the fd limit" "$TMP/daemon.err"
}

# A ping socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6, as iputils ping uses
# without CAP_NET_RAW) is not UDP: the echo request reaches the server,
# not a pool port on 127.0.0.1 (which would answer it too).
t_ping_socket() {
	local before after
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	_ns_sysctl "$NS_C" net.ipv4.ping_group_range "0 2147483647"
	before=$(icmp_in_echos)
	ran app_run ping4 "$P" icmp4 connect 203.0.113.10:0 ping 203.0.113.10 peer || return 1
	after=$(icmp_in_echos)
	expect "ICMP ping socket: the server saw $((after - before)) echo requests: $(cat "$TMP/ping4.out")" \
		[ "$((after - before))" -ge 1 ] || return 1
	expect "ICMP ping socket: $(cat "$TMP/ping4.out")" \
		grep -q '^icmp reply from 203.0.113.10:' "$TMP/ping4.out" || return 1
	ran app_run ping6 "$P" icmp6 connect "[2001:db8::10]:0" ping 2001:db8::10 || return 1
	expect "ICMPv6 ping socket: $(cat "$TMP/ping6.out")" \
		grep -q '^icmp reply from \[2001:db8::10\]' "$TMP/ping6.out"
}

# Broadcast to the subnet goes direct, as --help says, also on a subnet
# added while the daemon runs (no prefix route: 192.0.2.0/24 stays routed
# through the server).
t_broadcast() {
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	: >"$TMP/bcast.got"
	start_bg bcastrx server socat -u UDP4-RECV:9999 "OPEN:$TMP/bcast.got,append" || return 1
	sleep 0.3
	ran app_run bcast "$P" udp4 broadcast sendto 203.0.113.255:9999 hello-broadcast || return 1
	expect "the broadcast was not sent: $(cat "$TMP/bcast.out")" grep -q '^send ok' "$TMP/bcast.out" || return 1
	expect "the server namespace did not receive the broadcast" \
		wait_for 5 grep -q hello-broadcast "$TMP/bcast.got" || return 1
	ip -n "$NS_S" addr add 192.0.2.201/24 dev eth0 noprefixroute &&
	ip -n "$NS_C" addr add 192.0.2.200/24 dev eth0 noprefixroute || { WHY="cannot add 192.0.2.200/24"; return 1; }
	expect "a broadcast to 192.0.2.255 (an address added later) did not reach the server" \
		tries 5 eval 'app_run bcast2 "$P" udp4 broadcast sendto 192.0.2.255:9999 later-broadcast; sleep 0.5; grep -q later-broadcast "$TMP/bcast.got"'
}

# The daemon stops while applications hold connected UDP sockets (IPv4,
# and a dual-stack socket connected to an IPv4-mapped peer): their next
# datagrams reach their peers directly, and getpeername names the peer.
t_connected_fail_open() {
	local k
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	start_bg keeper4 app "$P" udp4 connect $ECHO4 send before recv ready wait "$TMP/keeper.go" \
		send after recv peer || return 1
	start_bg keeper6 app "$P" udp6 connect "[::ffff:203.0.113.10]:7" send before recv ready \
		wait "$TMP/keeper.go" send after recv peer || return 1
	for k in keeper4 keeper6; do
		expect "$k did not get ready: $(cat "$TMP/$k.out")" wait_ready $k || return 1
		expect "$k: first round trip failed: $(cat "$TMP/$k.out")" \
			grep -q "text=$ECHO4 before" "$TMP/$k.out" || return 1
	done
	stop_daemon || return 1
	touch "$TMP/keeper.go"
	for k in keeper4 keeper6; do
		expect "$k did not finish" wait_for 10 eval '! alive $(cat "$TMP/$k.pid")' || return 1
		expect "$k after the daemon stopped: $(sed -n '/^ready/,$p' "$TMP/$k.out" | tr '\n' ' ')" \
			grep -q "text=$ECHO4 after" "$TMP/$k.out" || return 1
		expect "$k: getpeername after the daemon stopped: $(tail -n 1 "$TMP/$k.out")" \
			grep -q "^peer=\(\[::ffff:\)\?203.0.113.10\]\?:7$" "$TMP/$k.out" || return 1
	done
	expect "no log line says the connected sockets were sent direct" \
		grep -q "2 connected UDP sockets now reach their peers directly, 0 not" "$TMP/daemon.err"
}

# Killed (SIGKILL), the daemon cannot hand the socket over, and README
# says what the application sees: ECONNREFUSED on its next datagram; a
# plain connect() again fails (EINVAL: the socket's source address is
# still 127.0.0.1); after a disconnect (AF_UNSPEC) it connects and reaches
# the peer directly.
t_connected_sigkill() {
	restart_daemon --resolver $DEAD_RESOLVER || return 1
	start_bg killed app "$P" udp4 connect $ECHO4 send before recv ready wait "$TMP/killed.go" \
		send after recv connect $ECHO4 disconnect connect $ECHO4 send again recv || return 1
	expect "the app did not get ready: $(cat "$TMP/killed.out")" wait_ready killed || return 1
	kill_daemon
	touch "$TMP/killed.go"
	expect "the app did not finish" wait_for 10 eval '! alive $(cat "$TMP/killed.pid")' || return 1
	sed -n '/^ready/,$p' "$TMP/killed.out" | tr '\n' ' ' >"$TMP/killed.seen"
	expect "after SIGKILL the app saw: $(cat "$TMP/killed.seen")" \
		grep -q "^ready send ok recv error=Connection refused connect error=Invalid argument disconnect ok connect ok send ok reply from $ECHO4 text=$ECHO4 again" "$TMP/killed.seen"
}

# --- run -------------------------------------------------------------------------

run_case hijack-connected t_hijack_connected
run_case fire-and-forget t_fire_and_forget
run_case connected-outlives-timeout t_connected_outlives_timeout
run_case reconnect-frees-port t_reconnect_frees_port
run_case dns-reserve t_dns_reserve
run_case per-process-bound t_per_process
run_case per-process-bad-value t_per_process_bad
run_case dry-burst-refills t_dry_burst
run_case queue-bound t_queue_bound
run_case emfile-recovers t_emfile_recovers
run_case ping-socket t_ping_socket
run_case broadcast-direct t_broadcast
run_case connected-fail-open t_connected_fail_open
run_case connected-after-sigkill t_connected_sigkill
[ -n "$DAEMON_PID" ] && { stop_daemon || fail final-stop "$WHY" "$TMP/daemon.err"; }
finish
