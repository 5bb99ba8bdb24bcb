#!/bin/bash
# Containers: processes of the attached cgroup that live in other network
# namespaces. Each "container" is a network namespace of its own (own
# loopback, a veth to the daemon's namespace, a default route through it)
# and a child cgroup of the attached one for its processes. The daemon
# serves each such namespace with a listener and a UDP pool opened inside
# it; connections go out from the daemon's namespace. Covers:
#   a container started before the daemon and one started after: curl is
#     captured (the server sees the daemon namespace's address, not the
#     container's; the tag names the process; the log line names the
#     container's cgroup and netns inode);
#   IPv6 from a container without an IPv6 route;
#   UDP from a container (echo, the reply from the real peer) and DNS to
#     127.0.0.11 (FakeIP answer; curl by name then works);
#   a container whose processes are gone: its listener and pool released
#     (nothing listening in it, the daemon's fd count back, map entries
#     gone);
#   --netns current: containers left alone (the server sees the container);
#   --pin: a container captured across a takeover, failing closed while no
#     daemon runs;
#   a process of the same cgroup in the daemon's own namespace still works.
. "$(dirname "$0")/../lib.sh"

CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")
NS_K1=sbt${TEST_ID}k1
NS_K2=sbt${TEST_ID}k2
RESOLVER=198.51.100.53
KPIDS=()
FDS_BEFORE_K2=""
PORTS4_BEFORE_K2=""

# make_container NS N: namespace NS with eth0 192.0.2.(4N+2)/30 towards the
# client namespace (192.0.2.(4N+1)), a default route through it, and the
# cgroup $CG/kN for its processes. The server namespace routes 192.0.2.0/24
# back through the client one (which forwards), for traffic not captured.
make_container() {
	local ns=$1 n=$2 a b
	a=192.0.2.$((4 * n + 1))
	b=192.0.2.$((4 * n + 2))
	ip netns add "$ns" || return 1
	MADE_NETNS+=("$ns")
	if [ -d /proc/sys/net/ipv6 ]; then
		_ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 0
		_ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 0
	fi
	ip -n "$ns" link set lo up &&
	ip -n "$NS_C" link add "k$n" type veth peer name eth0 netns "$ns" &&
	ip -n "$NS_C" addr add "$a/30" dev "k$n" &&
	ip -n "$ns" addr add "$b/30" dev eth0 &&
	ip -n "$NS_C" link set "k$n" up &&
	ip -n "$ns" link set eth0 up &&
	ip -n "$ns" route add default via "$a" || return 1
	make_cgroup "$CG/k$n" || return 1
	wait_for 5 eval "ip -n $ns link show eth0 | grep -q LOWER_UP"
}

# in_k N CMD...: CMD in container N (its namespace, then its cgroup, in
# that order, as a container runtime does: a process of the cgroup never
# passes through the daemon's namespace), with the container's
# resolv.conf (nameserver 127.0.0.11, as Docker's).
in_k() {
	local n=$1
	shift
	local ns=$NS_K1
	[ "$n" = 2 ] && ns=$NS_K2
	"$TMP/kenter" "$CG/k$n" "$ns" "${PIDFILE:-}" "$TMP/k.resolv" "$@"
}
k_run() {
	local name=$2
	LAST_RUN=$name
	rm -f "$TMP/$name.pid"
	PIDFILE=$TMP/$name.pid in_k "$1" "${@:3}" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
	RUN_RC=$?
	RUN_PID=$(cat "$TMP/$name.pid" 2>/dev/null)
	return $RUN_RC
}

# start_k N: the container's long-lived process (its "init").
start_k() {
	local ns=$NS_K1
	[ "$1" = 2 ] && ns=$NS_K2
	# A simple command: $! is the process itself (a function would be a subshell).
	"$TMP/kenter" "$CG/k$1" "$ns" "" "$TMP/k.resolv" sleep 600 >/dev/null 2>&1 </dev/null &
	KPIDS[$1]=$!
	BG_PIDS+=("$!")
}

ns_inode() { stat -L -c %i "/run/netns/$1"; }

served() { grep -q "netns=$(ns_inode "$1").*serving" "$TMP/daemon.err"; }
released() { grep -q "netns=$(ns_inode "$1").*released" "$TMP/daemon.err"; }

daemon_fds() { ls "/proc/$DAEMON_PID/fd" 2>/dev/null | wc -l; }

# map_entries NAME: entries of the daemon's map NAME (found through the
# map ids in the daemon's fdinfo); -1 when it has no such map.
map_entries() {
	local id
	for id in $(awk '$1 == "map_id:" { print $2 }' /proc/"$DAEMON_PID"/fdinfo/* 2>/dev/null | sort -u); do
		if [ "$(bpftool -j map show id "$id" 2>/dev/null | jq -r .name)" = "$1" ]; then
			bpftool -j map dump id "$id" 2>/dev/null | jq length
			return
		fi
	done
	echo -1
}

# curl_k N NAME URL: curl from container N; sets RUN_PID.
curl_k() {
	k_run "$1" "$2" curl -sS --max-time 5 -o /dev/null "$3"
}

PIN=/sys/fs/bpf/sproxy-bpf-test-$TEST_ID
# Pins first: they hold links on the test cgroup.  Only our own directory,
# on the BPF filesystem.
cleanup_pin() {
	if [ -d "$PIN" ] && [ "$(stat -f -c %T "$PIN" 2>/dev/null)" = bpf_fs ]; then
		rm -rf "$PIN"
	fi
}
trap 'cleanup_pin; cleanup' EXIT

setup_topology || finish
setup_cgroup || finish
if ! need curl dig jq bpftool dnsmasq ss "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
_ns_sysctl "$NS_C" net.ipv4.ip_forward 1
ip -n "$NS_S" route add 192.0.2.0/24 via 203.0.113.1 || { _setup_fail "route back"; finish; }
printf 'nameserver 127.0.0.11\noptions timeout:3 attempts:1\n' >"$TMP/k.resolv"
# kenter CGROUP NS PIDFILE RESOLV CMD...: the pid stays the same throughout
# (unshare, nsenter and bash exec).
cat >"$TMP/kenter" <<'EOF'
#!/bin/bash
cg=$1 ns=$2 pidfile=$3 resolv=$4
shift 4
[ -n "$pidfile" ] && echo $$ >"$pidfile"
if [ -z "${KENTER_INSIDE:-}" ]; then
	export KENTER_INSIDE=1
	exec unshare -m --propagation private -- nsenter --net="/run/netns/$ns" -- "$0" "$cg" "$ns" "" "$resolv" "$@"
fi
unset KENTER_INSIDE
mount --bind "$resolv" /etc/resolv.conf || exit 125
echo $$ >"$cg/cgroup.procs" || exit 125
exec "$@"
EOF
chmod +x "$TMP/kenter"
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--address=/name.test/203.0.113.10 || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" 203.0.113.10:8080 "[2001:db8::10]:8080" || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" 203.0.113.10:7 || finish
make_container "$NS_K1" 1 || { _setup_fail "container 1"; finish; }
start_k 1
start_daemon --resolver $RESOLVER || { fail setup "$WHY"; finish; }

case_before() {
	daemon_running || return 1
	wait_for 5 served "$NS_K1" || { WHY="no 'serving' line for container 1's netns"; return 1; }
	curl_k 1 k1curl http://203.0.113.10:8080/k1 || return 1
	wait_http 5 /k1 || { WHY="the server saw no /k1"; return 1; }
	local peer ua
	peer=$(http_get /k1 peer)
	ua=$(http_get /k1 ua)
	[[ $peer == 203.0.113.1:* ]] || { WHY="the server saw $peer, not the daemon's 203.0.113.1"; return 1; }
	[[ $ua == *"$(tag curl "$RUN_PID")"* ]] || { WHY="User-Agent '$ua' lacks the tag"; return 1; }
	expect_log "pid=$RUN_PID" "comm=curl" "cgroup=/sproxy-bpf-test-$TEST_ID-app/k1" \
		"netns=$(ns_inode "$NS_K1")" "dst=203.0.113.10:8080" "result=ok"
}

case_after() {
	daemon_running || return 1
	FDS_BEFORE_K2=$(daemon_fds)
	PORTS4_BEFORE_K2=$(map_entries ports4)
	make_container "$NS_K2" 2 || { WHY="container 2"; return 1; }
	start_k 2
	wait_for 10 served "$NS_K2" || { WHY="no 'serving' line for container 2's netns"; return 1; }
	curl_k 2 k2curl http://203.0.113.10:8080/k2 || return 1
	wait_http 5 /k2 || { WHY="the server saw no /k2"; return 1; }
	local peer
	peer=$(http_get /k2 peer)
	[[ $peer == 203.0.113.1:* ]] || { WHY="the server saw $peer, not the daemon's 203.0.113.1"; return 1; }
	expect_log "pid=$RUN_PID" "comm=curl" "cgroup=/sproxy-bpf-test-$TEST_ID-app/k2" \
		"netns=$(ns_inode "$NS_K2")" "result=ok"
}

# IPv6: the container has no IPv6 route at all; captured, it needs none.
case_ipv6() {
	daemon_running || return 1
	curl_k 1 k1v6 "http://[2001:db8::10]:8080/k1v6" || return 1
	wait_http 5 /k1v6 || { WHY="the server saw no /k1v6"; return 1; }
	local peer
	peer=$(http_get /k1v6 peer)
	[[ $peer == *2001:db8::1* ]] || { WHY="the server saw $peer, not the daemon's 2001:db8::1"; return 1; }
	expect_log "pid=$RUN_PID" "netns=$(ns_inode "$NS_K1")" "dst=[2001:db8::10]:8080" "result=ok"
}

case_udp() {
	daemon_running || return 1
	# One unconnected socket; netclient checks each reply's source.
	k_run 1 k1udp "$TOOLS/netclient" udp 203.0.113.10:7 || return 1
	expect_log "pid=$RUN_PID" "udp" "netns=$(ns_inode "$NS_K1")" "dst=203.0.113.10:7"
}

case_dns() {
	daemon_running || return 1
	k_run 1 k1dig dig +time=3 +tries=1 +short @127.0.0.11 name.test || return 1
	local a
	a=$(head -n 1 "$TMP/k1dig.out")
	[[ $a == 198.18.* || $a == 198.19.* ]] || { WHY="dig answered '$a', not a fake address"; return 1; }
	curl_k 1 k1name http://name.test:8080/k1name || return 1
	wait_http 5 /k1name || { WHY="the server saw no /k1name"; return 1; }
	expect_log "pid=$RUN_PID" "host=name.test" "netns=$(ns_inode "$NS_K1")"
}

case_same_cgroup_host() {
	daemon_running || return 1
	app_run hostcurl curl -sS --max-time 5 -o /dev/null http://203.0.113.10:8080/host || return 1
	wait_http 5 /host || { WHY="the server saw no /host"; return 1; }
	expect_log "pid=$RUN_PID" "comm=curl" "result=ok"
}

case_released() {
	daemon_running || return 1
	served "$NS_K2" || { WHY="container 2 was never served"; return 1; }
	local lis fds_after ino2 n
	lis=$(nsenter --net="/run/netns/$NS_K2" ss -Hltn | wc -l)
	[ "$lis" -gt 0 ] || { WHY="no listener in container 2 while served"; return 1; }
	ino2=$(ns_inode "$NS_K2")
	n=$(map_entries netns_served)
	[ "$n" = 2 ] || { WHY="netns_served has $n entries, expected 2"; return 1; }
	n=$(map_entries netns_pool4)
	[ "$n" = 2 ] || { WHY="netns_pool4 has $n entries, expected 2"; return 1; }
	# A connected UDP socket that never sends: its pool port is handed out
	# (a record) with no flow behind it, until the socket goes.
	"$TMP/kenter" "$CG/k2" "$NS_K2" "" "$TMP/k.resolv" \
		bash -c 'exec 3<>/dev/udp/203.0.113.10/7; exec sleep 600' >/dev/null 2>&1 </dev/null &
	local holder=$!
	BG_PIDS+=("$holder")
	wait_for 5 eval '[ "$(map_entries ports4)" -gt "$PORTS4_BEFORE_K2" ]' ||
		{ WHY="the connected UDP socket got no pool port"; return 1; }
	kill -KILL "${KPIDS[2]}" "$holder" 2>/dev/null
	wait "${KPIDS[2]}" "$holder" 2>/dev/null
	wait_for 10 released "$NS_K2" || { WHY="no 'released' line for netns $ino2"; return 1; }
	lis=$(nsenter --net="/run/netns/$NS_K2" ss -Hltnu | wc -l)
	[ "$lis" = 0 ] || { WHY="still $lis sockets in container 2"; return 1; }
	fds_after=$(daemon_fds)
	[ "$fds_after" = "$FDS_BEFORE_K2" ] ||
		{ WHY="daemon fds: $FDS_BEFORE_K2 before container 2, $fds_after after its release"; return 1; }
	n=$(map_entries netns_served)
	[ "$n" = 1 ] || { WHY="netns_served has $n entries after release, expected 1"; return 1; }
	n=$(map_entries netns_pool4)
	[ "$n" = 1 ] || { WHY="netns_pool4 has $n entries after release, expected 1"; return 1; }
	n=$(map_entries ports4)
	[ "$n" = "$PORTS4_BEFORE_K2" ] ||
		{ WHY="ports4 has $n entries after release, $PORTS4_BEFORE_K2 before container 2"; return 1; }
}

case_current() {
	restart_daemon --resolver $RESOLVER --netns current || return 1
	sleep 1
	served "$NS_K1" && { WHY="container 1 served with --netns current"; return 1; }
	curl_k 1 k1cur http://203.0.113.10:8080/k1cur || return 1
	wait_http 5 /k1cur || { WHY="the server saw no /k1cur"; return 1; }
	local peer
	peer=$(http_get /k1cur peer)
	[[ $peer == 192.0.2.6:* ]] || { WHY="the server saw $peer, not the container's 192.0.2.6"; return 1; }
	! log_line "pid=$RUN_PID" >/dev/null || { WHY="logged with --netns current"; return 1; }
}

case_bad_value() {
	"$SPROXY_BIN" attach "$CG" --netns other >"$TMP/bad.out" 2>&1
	local rc=$?
	[ "$rc" = 2 ] || { WHY="--netns other exited $rc, not 2"; return 1; }
	grep -q -- "--netns" "$TMP/bad.out" || { WHY="the message does not name --netns: $(cat "$TMP/bad.out")"; return 1; }
}

# --pin: a container stays captured across a takeover, and fails closed
# while no daemon runs (SIGKILL, and SIGTERM of a pinned daemon).
case_pinned() {
	restart_daemon --resolver $RESOLVER --pin "$PIN" || return 1
	wait_for 5 served "$NS_K1" || { WHY="no 'serving' line for container 1's netns"; return 1; }
	curl_k 1 k1pin1 http://203.0.113.10:8080/k1pin1 || return 1
	kill_daemon
	curl_k 1 k1dead1 http://203.0.113.10:8080/k1dead1 && { WHY="a container's curl succeeded with the pinned daemon killed"; return 1; }
	start_daemon --resolver $RESOLVER --pin "$PIN" || return 1
	wait_for 5 served "$NS_K1" || { WHY="no 'serving' line after the takeover"; return 1; }
	curl_k 1 k1pin2 http://203.0.113.10:8080/k1pin2 || return 1
	expect_log "pid=$RUN_PID" "netns=$(ns_inode "$NS_K1")" "result=ok" || return 1
	stop_daemon || return 1
	curl_k 1 k1dead2 http://203.0.113.10:8080/k1dead2 && { WHY="a container's curl succeeded after a pinned daemon stopped"; return 1; }
	sleep 0.5
	local p
	for p in /k1dead1 /k1dead2; do
		http_has $p && { WHY="the server saw $p: it went around the proxy"; return 1; }
	done
	"$SPROXY_BIN" detach "$CG" --pin "$PIN" >"$TMP/detach.out" 2>&1 || { WHY="detach: $(tail -n 1 "$TMP/detach.out")"; return 1; }
	wait_http 5 /k1pin2 || { WHY="the server saw no /k1pin2"; return 1; }
	[[ $(http_get /k1pin2 peer) == 203.0.113.1:* ]] || { WHY="after the takeover the server saw $(http_get /k1pin2 peer)"; return 1; }
}

run_case netns_bad_value case_bad_value
run_case container_before_daemon case_before
run_case container_after_daemon case_after
run_case container_gone_released case_released
run_case container_ipv6 case_ipv6
run_case container_udp case_udp
run_case container_dns_fakeip case_dns
run_case same_cgroup_own_netns case_same_cgroup_host
run_case netns_current case_current
run_case pinned_fail_closed case_pinned
finish
