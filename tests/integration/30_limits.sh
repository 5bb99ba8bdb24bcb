#!/bin/bash
# Limits: the daemon run with a small fd limit meets more connections than
# it can hold. It must say so in a log line that names the cause and what
# to do, keep serving the connections it has, and serve new ones once the
# flood is gone. (A UDP pool running dry is covered by 20_udp_dns.)
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
FLOOD=120
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl prlimit "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish

# The daemon under a hard fd limit it cannot raise: the wrapper execs it,
# so the recorded pid stays the daemon's.
cat >"$TMP/limited" <<EOF
#!/bin/bash
exec prlimit --nofile=128:128 -- "$SPROXY_BIN" "\$@"
EOF
chmod +x "$TMP/limited"
REAL_BIN=$SPROXY_BIN
SPROXY_BIN=$TMP/limited

t_start() {
	start_daemon --udp-flows 4
}

# More connections at once than the daemon has fds for, held open.
t_flood() {
	start_bg holder app bash -c '
		for i in $(seq '$FLOOD'); do
			exec {fd}<>/dev/tcp/'$V4'/8080 || break
		done
		echo ready
		exec sleep 30' || return 1
	expect "no log line names the fd limit after $FLOOD connections: $(tail -n 3 "$TMP/daemon.err" "$TMP/conn.log" | tr '\n' ' ')" \
		wait_for 10 eval 'grep -q "Too many open files" "$TMP/daemon.err" "$TMP/conn.log"' || return 1
	expect "no line says what to do: $(grep -h "Too many open files" "$TMP/daemon.err" "$TMP/conn.log" | head -n 2 | tr '\n' ' ')" \
		grep -q "Too many open files.*raise the fd limit" "$TMP/daemon.err" || return 1
	expect "daemon died under the flood" daemon_running
}

# The flood leaves; the daemon serves again, tagging as before.
t_recovers() {
	local pid
	pid=$(cat "$TMP/holder.pid" 2>/dev/null)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	expect "the holder did not go away" wait_for 5 eval '! kill -0 '"${pid:-0}"' 2>/dev/null' || return 1
	ran app_run after curl -sS -m 10 --retry 3 --retry-delay 1 "http://$V4:8080/after" || return 1
	expect "the server got no request after the flood" wait_http 5 /after || return 1
	expect "server saw User-Agent '$(http_get /after ua)' after the flood" \
		[ "$(http_get /after ua)" = "curl/$CURL_VER $(tag curl "$RUN_PID")" ] || return 1
	expect_log " tcp " "pid=$RUN_PID " "dst=$V4:8080 " "result=ok"
}

t_stop() {
	expect "daemon did not stop cleanly (status ${DAEMON_RC:-?})" stop_daemon
}

if t_start; then pass daemon-start; else fail daemon-start "$WHY" "$TMP/daemon.err"; fi
run_case fd-exhaustion-logged t_flood
run_case fd-exhaustion-recovers t_recovers
run_case fd-exhaustion-clean-stop t_stop
SPROXY_BIN=$REAL_BIN
finish
