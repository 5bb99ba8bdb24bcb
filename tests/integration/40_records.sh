#!/bin/bash
# The BPF records behind each captured connection: who may use them, how
# long they live, what happens when they run out, and the daemon's own
# sockets. A record of a connection that never reached the proxy must not
# serve a process outside the cgroup that later takes the same source port,
# yet a request written just before closing must outlive the application's
# socket, and every record goes with its connection; a small --map-size refuses connections loudly (never lets them leak past
# the proxy), warns before it is full and counts what it refused; a daemon
# inside a PID namespace, inside the captured cgroup, still recognises its
# own resolver traffic; nested --bypass prefixes with different ports mean
# the same in any order (a destination goes direct when any entry covering
# it names its port).
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
V4B=203.0.113.11
RESOLVER=198.51.100.53
VPORT=41234
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl dnsmasq unshare "$TOOLS/httpd" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --log-queries --address=/name.test/$V4 || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" \
	$V4:8080 $V4:8081 $V4B:8080 $V4B:8081 || finish
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
REAL_BIN=$SPROXY_BIN

# direct PATH: the server saw PATH untouched (not through the proxy).
direct() {
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	expect "server saw User-Agent '$(http_get "$1" ua)' for $1: it went through the proxy, want direct" \
		[ "$(http_get "$1" ua)" = "curl/$CURL_VER" ]
}

# proxied PATH PID: the server saw PATH tagged with curl's PID.
proxied() {
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	expect "server saw User-Agent '$(http_get "$1" ua)' for $1, want it tagged (captured)" \
		[ "$(http_get "$1" ua)" = "curl/$CURL_VER $(tag curl "$2")" ]
}

# --- a record of a connection that never reached the proxy ------------------------

# The listener's accept queue is full (backlog 1, the daemon stopped), so
# the captured connection of a process in the cgroup never gets past
# SYN_SENT and gives up. A process outside the cgroup then connects to the
# listener from the same source port: it must be refused, not relayed to
# the first process's destination under its name.
t_stale_record() {
	local victim
	_ns_sysctl "$NS_C" net.core.somaxconn 1
	restart_daemon
	local rc=$?
	_ns_sysctl "$NS_C" net.core.somaxconn 4096
	[ $rc = 0 ] || return 1
	kill -STOP "$DAEMON_PID"
	start_bg fill1 client bash -c 'exec 3<>/dev/tcp/127.0.0.1/3333 && echo ready && exec sleep 20'
	start_bg fill2 client bash -c 'exec 3<>/dev/tcp/127.0.0.1/3333 && echo ready && exec sleep 20'
	if ! wait_for 5 eval 'grep -q ready "$TMP/fill1.out" && grep -q ready "$TMP/fill2.out"'; then
		kill -CONT "$DAEMON_PID"
		WHY="could not fill the listener's accept queue"
		return 1
	fi
	app_run victim curl -sS -m 3 --connect-timeout 2 --local-port $VPORT "http://$V4:8080/victim"
	stop_bg fill1
	stop_bg fill2
	kill -CONT "$DAEMON_PID"
	expect "the victim's connection got through, the accept queue was not full" \
		[ "$RUN_RC" != 0 ] || return 1
	victim=$(cat "$TMP/victim.pid")
	client_run thief curl -sS -m 5 -o /dev/null --local-port $VPORT "http://127.0.0.1:3333/stolen"
	ran app_run sentinel curl -sS -m 10 -o /dev/null "http://$V4:8080/after-thief" || return 1
	expect "the sentinel was not relayed" wait_http 5 /after-thief || return 1
	expect "a process outside the cgroup was relayed to $V4:8080 as curl (pid $victim): $(http_get /stolen ua)" \
		[ "$(http_count /stolen)" = 0 ] || return 1
	expect_log " tcp " "src=127.0.0.1:$VPORT " "result=refused"
}

# --- a small --map-size ------------------------------------------------------------------

# HOLD connections held open by one process in the cgroup, with room for
# 64 (the smallest --map-size): the first 64 go through, the rest fail at
# connect() (never around the proxy); the log names the process and what to
# raise, warns once before the map is full, and the counter printed at exit
# moves.
HOLD=68
t_map_full() {
	local pid n
	restart_daemon --map-size 64 || return 1
	start_bg holder app bash -c 'n=0
		for i in $(seq '$HOLD'); do
			exec {fd}<>/dev/tcp/'$V4'/8080 && n=$((n + 1))
		done 2>/dev/null
		echo "ready $n"
		exec sleep 20'
	expect "the holder did not finish connecting" wait_for 10 grep -q ready "$TMP/holder.out" || return 1
	pid=$(cat "$TMP/holder.pid")
	n=$(awk '{ print $2 }' "$TMP/holder.out")
	expect "$n of $HOLD connections succeeded with --map-size 64, want 64 (the rest refused)" \
		[ "$n" = 64 ] || return 1
	expect "no log line says a connection of bash (pid $pid) was refused for a full map: $(grep -i map "$TMP/daemon.err" | head -n 3 | tr '\n' ' ')" \
		wait_for 5 line_with "$TMP/daemon.err" "connection of bash (pid $pid) was refused" "record map is full" "raise --map-size" || return 1
	expect "no warning before the map was full" \
		eval 'line_with "$TMP/daemon.err" "80%" "--map-size" >/dev/null' || return 1
	expect "the 80% warning came $(count_with "$TMP/daemon.err" "80%") times, want once" \
		[ "$(count_with "$TMP/daemon.err" "80%")" = 1 ] || return 1
	stop_bg holder
	# The held connections' records go with them: room again.
	expect "no room after the holder left" \
		wait_for 5 app_run after curl -sS -m 5 -o /dev/null "http://$V4:8080/after-full" || return 1
	proxied /after-full "$RUN_PID" || return 1
	stop_daemon || return 1
	expect "the exit statistics do not count the refused connections: $(grep -o 'map full [0-9]*' "$TMP/daemon.err")" \
		eval '[ "$(grep -o "map full [0-9]*" "$TMP/daemon.err" | awk "{ print \$3 }")" -ge $((HOLD - 64)) ]'
}

# --- records live as long as their connections -----------------------------------------

# The application writes its request and closes at once, before the proxy
# has accepted (the daemon is stopped meanwhile): the record must outlive
# the application's socket, or the request is lost.
t_fire_and_forget() {
	restart_daemon || return 1
	kill -STOP "$DAEMON_PID"
	app_run fire bash -c 'exec 3<>/dev/tcp/'$V4'/8080 || exit 1
		printf "GET /fire HTTP/1.0\r\nHost: x\r\nUser-Agent: curl/'"$CURL_VER"'\r\n\r\n" >&3
		exec 3>&-'
	local rc=$RUN_RC pid=$RUN_PID
	kill -CONT "$DAEMON_PID"
	expect "the application could not connect" [ "$rc" = 0 ] || return 1
	expect "the request sent just before closing was lost" wait_http 5 /fire || return 1
	expect "server saw User-Agent '$(http_get /fire ua)', want it tagged" \
		[ "$(http_get /fire ua)" = "curl/$CURL_VER $(tag bash "$pid")" ]
}

# proxied_open: TCP sockets on the listener's port other than the
# listener and TIME_WAIT (the proxy's ends of connections not yet over).
proxied_open() {
	nsenter --net="/run/netns/$NS_C" ss -Htn state all '( sport = :3333 )' |
		awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' >"$TMP/open.out"
	[ -s "$TMP/open.out" ]
}

# all_closed: waits (10 s) until no connection through the proxy is open.
all_closed() {
	wait_for 10 eval '! proxied_open' && return 0
	WHY="connections through the proxy still open: $(awk '{ print $1 }' "$TMP/open.out" | sort | uniq -c | tr '\n' ' ')"
	return 1
}

# More than --map-size connections one after the other, closed either way
# (server first, application first; 40 at a time, fewer than 80% of the
# map): each record goes with its connection, so none is refused, and none
# is left at the end.
t_records_freed() {
	restart_daemon --map-size 64 || return 1
	ran app_run seq1 curl -sS -m 20 -H "Connection: close" -o /dev/null \
		"http://$V4:8080/seq-a[1-40]" || return 1
	all_closed || return 1
	ran app_run seq2 bash -c 'for i in $(seq 40); do
			exec 3<>/dev/tcp/'$V4'/8080 || exit 1
			printf "GET /seq-b$i HTTP/1.0\r\nHost: x\r\n\r\n" >&3
			exec 3>&-
		done' || return 1
	expect "the server saw $(grep -c "/seq-b" "$HTTP_LOG") of the 40 requests that closed first" \
		wait_for 10 eval '[ "$(grep -c "	/seq-b" "$HTTP_LOG")" = 40 ]' || return 1
	expect "the server saw $(grep -c "/seq-a" "$HTTP_LOG") of curl's 40 requests" \
		[ "$(grep -c "	/seq-a" "$HTTP_LOG")" = 40 ] || return 1
	all_closed || return 1
	expect "the daemon said a record map is full: $(grep -m 1 "map is" "$TMP/daemon.err")" \
		eval '! grep -q "map is" "$TMP/daemon.err"' || return 1
	stop_daemon || return 1
	expect "records left behind: $(grep -o "TCP records open.*" "$TMP/daemon.err")" \
		grep -q "TCP records open: 0 sockets, 0 connections" "$TMP/daemon.err"
}

# --- nested --bypass prefixes --------------------------------------------------------------

# bypass_nested ORDER ARGS...: with a /24 that bypasses port 8080 and a /32
# inside it that bypasses 8081, 203.0.113.10:8080 is covered by the /24 and
# goes direct whatever the order; 203.0.113.11:8081 is covered by no entry
# with its port and is captured.
t_bypass_nested() {
	local o=$1
	shift
	restart_daemon "$@" || return 1
	ran app_run "b$o-1" curl -sS -m 10 -o /dev/null "http://$V4:8080/$o-outer" || return 1
	direct "/$o-outer" || return 1
	ran app_run "b$o-2" curl -sS -m 10 -o /dev/null "http://$V4:8081/$o-inner" || return 1
	direct "/$o-inner" || return 1
	ran app_run "b$o-3" curl -sS -m 10 -o /dev/null "http://$V4B:8080/$o-sibling" || return 1
	direct "/$o-sibling" || return 1
	ran app_run "b$o-4" curl -sS -m 10 -o /dev/null "http://$V4B:8081/$o-none" || return 1
	proxied "/$o-none" "$RUN_PID"
}

# --- the daemon in a PID namespace -----------------------------------------------------------

# The daemon in the captured cgroup and in a PID namespace of its own (as
# under systemd's PrivatePIDs): a connection by name makes it resolve the
# name through dnsmasq; that lookup must go out direct, not into its own
# FakeIP server.
t_pidns() {
	cat >"$TMP/pidns" <<EOF
#!/bin/bash
exec unshare -p -f --kill-child=SIGTERM -- "$REAL_BIN" "\$@"
EOF
	chmod +x "$TMP/pidns"
	if [ -n "$DAEMON_PID" ]; then stop_daemon || return 1; fi
	SPROXY_BIN=$TMP/pidns
	RESOLV_CONF=$TMP/resolv.conf
	start_daemon --in-app --resolver $RESOLVER
	local rc=$?
	SPROXY_BIN=$REAL_BIN
	[ $rc = 0 ] || { RESOLV_CONF=""; return 1; }
	app_run byname curl -sS -m 10 -o /dev/null "http://name.test:8080/pidns"
	RESOLV_CONF=""
	[ "$RUN_RC" = 0 ] || { ran false byname curl; return 1; }
	proxied /pidns "$RUN_PID" || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=name.test " "result=ok" || return 1
	expect "the daemon captured its own traffic: $(log_line "comm=sproxy-bpf " | head -n 1)" \
		eval '! log_line "comm=sproxy-bpf " >/dev/null' || return 1
	expect "dnsmasq never saw the daemon's lookup of name.test" \
		grep -q "query.*name.test" "$TMP/dnsmasq.log" || return 1
	# Every UDP socket of the daemon carries its mark, evdns's (bound to
	# the wildcard address, not to loopback like the pool's) included.
	nsenter --net="/run/netns/$NS_C" ss -Huanpe >"$TMP/ss.out"
	expect "ss shows no UDP socket of the daemon on the wildcard address" \
		eval 'grep "\"sproxy-bpf\"" "$TMP/ss.out" | grep -q "^UNCONN .* 0\.0\.0\.0:[0-9]"' || return 1
	expect "$(grep "\"sproxy-bpf\"" "$TMP/ss.out" | grep -vc fwmark) UDP sockets of the daemon have no mark: $(grep "\"sproxy-bpf\"" "$TMP/ss.out" | grep -v fwmark | head -n 2 | cut -c 1-120)" \
		eval '! grep "\"sproxy-bpf\"" "$TMP/ss.out" | grep -vq fwmark'
}

# SIGTERM to the daemon (unshare's child, pid 1 of its namespace): it
# detaches and exits 0, and unshare with it.
t_pidns_stop() {
	local pid=$DAEMON_PID child rc
	[ -n "$pid" ] || { WHY="no daemon"; return 1; }
	child=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	expect "no daemon under unshare (pid $pid)" [ -n "$child" ] || return 1
	kill -TERM $child
	expect "the daemon in the PID namespace did not stop" wait_for 10 eval '! alive '"$pid" || return 1
	wait "$pid" 2>/dev/null
	rc=$?
	DAEMON_PID=""
	expect "the daemon exited with status $rc: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')" \
		[ $rc = 0 ]
}

run_case stale-record-refused t_stale_record
run_case map-full-refused-and-logged t_map_full
run_case record-outlives-closed-socket t_fire_and_forget
run_case records-freed-with-connections t_records_freed
run_case bypass-nested-outer-first t_bypass_nested a --bypass $V4/24:8080 --bypass $V4:8081
run_case bypass-nested-inner-first t_bypass_nested b --bypass $V4:8081 --bypass $V4/24:8080
run_case pidns-daemon-own-lookups-direct t_pidns
run_case pidns-daemon-stops t_pidns_stop
finish
