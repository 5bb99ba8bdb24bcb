#!/bin/bash
# TCP under hostile or unlucky clients: a listen backlog as large as asked;
# slow headers that never end (cut at the header deadline; past the global
# header budget relayed untagged, with memory that stays bounded); idle
# relays cut at --idle-timeout; connections open at SIGTERM logged as
# result=shutdown and reset; the application's TCP keepalive carried to the
# leg out, so that a server that vanished is noticed (set before connect,
# right after it, and long after the proxy accepted); --tag off and a --tag
# template.
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
HOSTILE=$TOOLS/hostile
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl ss "$TOOLS/httpd" "$TOOLS/echod" "$HOSTILE"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish
start_bg echo server "$TOOLS/echod" $V4:7 || finish

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# wait_exit NAME SECONDS: waits for start_bg's NAME to exit; its status in RC.
wait_exit() {
	local pid
	pid=$(cat "$TMP/$1.pid")
	wait_for "$2" eval '! alive '"$pid" || return 1
	wait "$pid"
	RC=$?
	rm -f "$TMP/$1.pid"
}

# The listener's backlog is the one the daemon asks for (4096, or the
# namespace's somaxconn if lower), not libevent's default of 128.
t_backlog() {
	local want got somax
	restart_daemon || return 1
	somax=$(nsenter --net="/run/netns/$NS_C" cat /proc/sys/net/core/somaxconn)
	want=$((somax < 4096 ? somax : 4096))
	got=$(nsenter --net="/run/netns/$NS_C" ss -ltnH 'sport = :3333' | awk '$3 ~ /^[0-9]+$/ { print $3; exit }')
	expect "ss shows a backlog (Send-Q) of '$got' on :3333, want $want" [ "$got" = "$want" ]
}

# Headers that never end are cut at the header deadline, and logged.
t_header_deadline() {
	restart_daemon --header-timeout 2 || return 1
	start_bg slow app "$HOSTILE" slowhdr -n 5 -b 2000 -H 15 $V4:8080 || return 1
	expect "the slow client did not end within 20 s" wait_exit slow 20 || return 1
	expect "the daemon left slow headers open: $(cat "$TMP/slow.out")" [ "$RC" = 0 ] || return 1
	expect "no log line names the header deadline: $(tail -n 2 "$TMP/conn.log")" \
		wait_log 5 "dst=$V4:8080 " "result=error" "header not complete after 2s"
}

# Many connections each holding 60 KB of an unfinished header: past the
# budget they are relayed untagged, the daemon says so, and its memory
# stays near the budget instead of growing with every connection.
t_header_budget() {
	local before after n=100
	restart_daemon --header-budget 1024 || return 1
	sleep 0.5
	before=$(rss_kib "$DAEMON_PID")
	start_bg loris app "$HOSTILE" slowhdr -n $n -b 60000 -H 8 $V4:8080 || return 1
	expect "the slow client did not connect" wait_for 20 grep -q '^ready' "$TMP/loris.out" || return 1
	sleep 1
	after=$(rss_kib "$DAEMON_PID")
	stop_bg loris
	echo "daemon RSS $before -> $after KiB with $n slow headers of 60 KB (budget 1024 KiB)" >&2
	# ASan's quarantine keeps freed memory: RSS says nothing there.
	if ! grep -qa __asan_init "$SPROXY_BIN"; then
		expect "daemon RSS grew from $before to $after KiB for $n slow headers (budget 1024 KiB)" \
			[ $((after - before)) -lt 4096 ] || return 1
	fi
	expect "no log line about the header budget: $(tail -n 2 "$TMP/daemon.err")" \
		grep -q "header budget of 1024 KiB" "$TMP/daemon.err" || return 1
	# Once the slow clients are gone, requests are tagged again.
	ran app_run after-loris curl -sS -m 10 "http://$V4:8080/after-loris" || return 1
	expect "server saw User-Agent '$(http_get /after-loris ua)' after the flood" \
		[ "$(http_get /after-loris ua)" = "curl/$CURL_VER $(tag curl "$RUN_PID")" ]
}

# A relay with no bytes either way for --idle-timeout seconds is ended.
t_idle_timeout() {
	restart_daemon --idle-timeout 2 || return 1
	start_bg idle app "$HOSTILE" idle -H 15 $V4:7 || return 1
	expect "the idle connection was not ended within 20 s" wait_exit idle 20 || return 1
	expect "the idle connection stayed open: $(cat "$TMP/idle.out")" [ "$RC" = 0 ] || return 1
	expect_log "dst=$V4:7 " "result=error" "idle for 2s"
}

# Connections still open at SIGTERM are logged (result=shutdown), and the
# application sees its connection cut.
t_shutdown() {
	local pid
	restart_daemon || return 1
	start_bg held app "$HOSTILE" idle -H 20 $V4:7 || return 1
	expect "the held connection did not connect" wait_for 10 grep -q connected "$TMP/held.out" || return 1
	pid=$(cat "$TMP/held.pid")
	expect "daemon did not stop cleanly (status ${DAEMON_RC:-?})" stop_daemon || return 1
	expect "no result=shutdown line for pid $pid: $(tail -n 2 "$TMP/conn.log")" \
		eval 'log_line "pid=$pid " "dst=$V4:7 " "result=shutdown" >/dev/null' || return 1
	expect "the application's connection was not cut at shutdown" wait_exit held 10 || return 1
	expect "the application saw: $(cat "$TMP/held.out")" grep -q "ended after.*reset" "$TMP/held.out"
}

# The server's namespace drops every packet; keepalive 1/1/2 notices in
# about 3 s, directly and (carried to the leg out) through the proxy.
blackhole() {
	nsenter --net="/run/netns/$NS_S" iptables -w "$1" INPUT -j DROP &&
		nsenter --net="/run/netns/$NS_S" iptables -w "$1" OUTPUT -j DROP
}

keepalive_case() { # NAME WHERE ARGS...
	local name=$1 where=$2 rc
	shift 2
	need iptables || return 1
	start_bg "$name" "$where" "$HOSTILE" keepalive "$@" -H 15 $V4:7 || return 1
	KA_PID=$(cat "$TMP/$name.pid")
	expect "$name did not connect: $(cat "$TMP/$name.err")" \
		wait_for 10 grep -q connected "$TMP/$name.out" || return 1
	blackhole -A || { WHY="iptables in the server namespace failed"; return 1; }
	wait_exit "$name" 20
	rc=$?
	blackhole -D
	expect "$name: the connection to a vanished server did not end within 20 s" [ $rc = 0 ] || return 1
	expect "$name: the application saw: $(cat "$TMP/$name.out")" \
		[ "$RC" = 0 ] && grep -q "ended after" "$TMP/$name.out"
}

t_keepalive_direct() {
	restart_daemon || return 1
	keepalive_case ka-direct client || return 1
	expect "direct keepalive ended otherwise: $(cat "$TMP/ka-direct.out")" \
		grep -q "timed out" "$TMP/ka-direct.out"
}

t_keepalive_before() {
	keepalive_case ka-before app || return 1
	expect_log "pid=$KA_PID " "dst=$V4:7 " "result=error" "timed out"
}

t_keepalive_after() {
	keepalive_case ka-after app -a || return 1
	expect_log "pid=$KA_PID " "dst=$V4:7 " "result=error" "timed out"
}

# Set once the proxy has long accepted: the BPF side tells the daemon.
t_keepalive_late() {
	keepalive_case ka-late app -L || return 1
	expect_log "pid=$KA_PID " "dst=$V4:7 " "result=error" "timed out"
}

t_tag_off() {
	restart_daemon --tag off || return 1
	ran app_run tagoff curl -sS -m 10 "http://$V4:8080/tag-off" || return 1
	expect "no request for /tag-off" wait_http 5 /tag-off || return 1
	expect "server saw User-Agent '$(http_get /tag-off ua)' with --tag off" \
		[ "$(http_get /tag-off ua)" = "curl/$CURL_VER" ]
}

t_tag_template() {
	restart_daemon --tag 'via-proxy (%c, pid %p, uid %u, 100%%)' || return 1
	ran app_run tagtpl curl -sS -m 10 "http://$V4:8080/tag-tpl" || return 1
	expect "no request for /tag-tpl" wait_http 5 /tag-tpl || return 1
	expect "server saw User-Agent '$(http_get /tag-tpl ua)' with a --tag template" \
		[ "$(http_get /tag-tpl ua)" = "curl/$CURL_VER via-proxy (curl, pid $RUN_PID, uid 0, 100%)" ]
}

t_tag_bad() {
	local rc
	"$SPROXY_BIN" attach "$CG" --tag 'x %q' >/dev/null 2>"$TMP/tagbad.err"
	rc=$?
	expect "--tag 'x %q' exited $rc, want 2" [ $rc = 2 ] || return 1
	"$SPROXY_BIN" attach "$CG" --tag "$(printf 'a\rb')" >/dev/null 2>"$TMP/tagbad.err"
	rc=$?
	expect "--tag with a CR exited $rc, want 2" [ $rc = 2 ] || return 1
	expect "--help does not mention --tag" eval '"$SPROXY_BIN" --help | grep -q -- "--tag"'
}

t_stop() {
	if [ -n "$DAEMON_PID" ]; then
		expect "daemon did not stop cleanly (status ${DAEMON_RC:-?})" stop_daemon
	fi
}

run_case listen-backlog t_backlog
run_case header-deadline t_header_deadline
run_case header-budget t_header_budget
run_case idle-timeout t_idle_timeout
run_case shutdown-logged t_shutdown
run_case keepalive-direct t_keepalive_direct
run_case keepalive-before-connect t_keepalive_before
run_case keepalive-after-connect t_keepalive_after
run_case keepalive-after-exchange t_keepalive_late
run_case tag-off t_tag_off
run_case tag-template t_tag_template
run_case tag-bad-refused t_tag_bad
run_case clean-stop t_stop
finish
