#!/bin/bash
# Hostile DNS clients and hostile answers. dnsmasq in the server namespace
# (198.51.100.53) is the real resolver; captured apps ask the daemon's
# FakeIP server. Covers:
#   DNS over TCP: a client that pipelines queries and never reads (the
#     daemon's memory stays bounded, others are still served), one that
#     then reads a trickle (closed within the idle bound), more TCP
#     sessions from one process than the cap (the extra ones are closed,
#     logged with the pid), a session left with half a query after
#     SHUT_WR (closed within the idle bound);
#   a 64 KiB query whose records point into a long pointer chain, sent
#     over and over on many connections: other clients are still answered
#     within dig's 2 s while it runs;
#   answers the proxy must not use: a name that resolves to loopback or
#     to the cloud metadata address is refused (logged with the name, the
#     address and the option), unless --allow-private-answers; a resolver
#     inside the cgroup that asks the daemon back (a loop) is named as such;
#   FakeIP reuse: with a pool of two addresses a third name within the
#     hold gets its real address, and the first two keep theirs; past
#     --fakeip-per-process new names, one process gets real answers.
. "$(dirname "$0")/../lib.sh"

RESOLVER=198.51.100.53
DIG=(dig +time=3 +tries=1)
HTTP_LOG=$TMP/http.log
LOCAL_LOG=$TMP/local-http.log
CASE_LOGS=("$HTTP_LOG" "$LOCAL_LOG" "$TMP/dnsmasq.log")

setup_topology || finish
setup_cgroup || finish
if ! need dig curl dnsmasq "$TOOLS/httpd" "$TOOLS/dnshostile"; then
	fail setup "$WHY"
	finish
fi
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --log-queries \
	--address=/name.test/203.0.113.10 --address=/loop.test/127.0.0.1 \
	--address=/meta.test/169.254.169.254 \
	--txt-record=txt.test,"hello sproxy" || finish
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" 203.0.113.10:8080 || finish
# A service on the client namespace's loopback, outside the cgroup: what an
# app could reach through the daemon with a name that resolves to 127.0.0.1.
start_bg localweb client "$TOOLS/httpd" -o "$LOCAL_LOG" 127.0.0.1:8080 || finish
if ! wait_for 5 in_client "${DIG[@]}" +short @$RESOLVER name.test; then
	_setup_fail "dnsmasq does not answer on $RESOLVER: $(tail -n 3 "$TMP/dnsmasq.err")"
	finish
fi
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null; }

# A fake answer over TCP, while the attack runs: the server still serves.
served() {
	app_run dig "${DIG[@]}" +tcp +short @192.0.2.53 name.test A || return 1
	grep -q '^198\.1[89]\.' "$TMP/dig.out"
}

t_start() {
	start_daemon --resolver $RESOLVER
}

# A process pipelines A queries for 5 s over one connection and never reads
# an answer. The daemon stops reading it once its answers pile up, so the
# sender stalls and the daemon's memory stays put.
t_flood() {
	local before after sent
	daemon_running || return 1
	before=$(rss_kib)
	start_bg flood app "$TOOLS/dnshostile" flood -t 5 -h 30 192.0.2.53:53 || return 1
	expect "the flooder did not finish sending within 15 s" \
		wait_for 15 grep -q '^sent' "$TMP/flood.out" || return 1
	after=$(rss_kib)
	sent=$(awk '/^sent/ { print $2 }' "$TMP/flood.out")
	expect "daemon died under the flood" daemon_running || return 1
	expect "daemon grew from ${before} KiB to ${after} KiB while a client sent $sent bytes of queries and read nothing" \
		[ $((after - before)) -lt 49152 ] || return 1
	expect "no fake answer over TCP for another process during the flood" served || return 1
	stop_bg flood
}

# The same, then reading 100 bytes a second: enough to keep a write
# timeout alive, not enough to be a client. The idle bound (10 s without
# a query taken in) ends it.
t_trickle() {
	ran app_run trickle "$TOOLS/dnshostile" flood -t 2 -h 30 -r 192.0.2.53:53 || return 1
	expect "the daemon did not close the trickling reader: $(tail -n 1 "$TMP/trickle.out")" \
		grep -q '^closed after' "$TMP/trickle.out" || return 1
	expect_log " dns " "pid=$RUN_PID " "idle timeout"
}

# One process opens 48 TCP sessions to port 53 and holds them all: past the
# per-process cap the daemon closes the new ones, saying why.
t_sessions() {
	local answered closed
	ran app_run sessions "$TOOLS/dnshostile" sessions -t 5 -n 48 192.0.2.53:53 || return 1
	read -r _ answered _ closed <"$TMP/sessions.out"
	expect "48 sessions from one process: $answered answered, $closed closed; want at least 8 closed" \
		[ "${closed:-0}" -ge 8 ] || return 1
	expect "and the first ones served: only $answered answered" [ "${answered:-0}" -ge 16 ] || return 1
	expect "no log line names the pid and the cap: $(grep -i 'tcp' "$TMP/daemon.err" | tail -n 2 | tr '\n' ' ')" \
		grep -q "pid $RUN_PID .*DNS-over-TCP sessions" "$TMP/daemon.err" || return 1
	expect "the cap stays: $(tail -n 1 "$TMP/dig.err")" served
}

# Pointer-chain queries on 48 connections (three processes) for 8 s; three
# lookups by another process meanwhile, each answered within 2 s.
t_chain() {
	local i ok=0
	for i in 1 2 3; do
		start_bg chain$i app "$TOOLS/dnshostile" chain -t 8 -n 16 192.0.2.53:53 || return 1
	done
	sleep 1
	for i in 1 2 3; do
		app_run dig dig +time=2 +tries=1 +short @192.0.2.53 name.test A &&
			grep -q '^198\.1[89]\.' "$TMP/dig.out" && ok=$((ok + 1))
	done
	for i in 1 2 3; do
		wait_for 15 grep -q '^sent' "$TMP/chain$i.out"
		stop_bg chain$i
	done
	expect "$ok of 3 lookups answered within 2 s during the attack ($(cat "$TMP"/chain*.out | tr '\n' ' '))" [ "$ok" -eq 3 ] || return 1
	expect "daemon died under the attack" daemon_running
}

# A forwarded query, half of the next one, then SHUT_WR: the daemon answers
# the first and closes the session within its idle bound.
t_half_query() {
	ran app_run hang "$TOOLS/dnshostile" hang -t 25 192.0.2.53:53 txt.test || return 1
	expect "the session was logged without its error: $(tail -n 1 "$TMP/conn.log")" \
		wait_log 5 " dns " "pid=$RUN_PID " "result=error"
}

# Names that resolve to loopback or to link-local addresses: the daemon
# would connect as root, with its mark, where the app's own firewall rules
# may not let it.
t_private_refused() {
	app_run curl curl -sS -m 10 "http://loop.test:8080/private"
	expect "curl reached the client's loopback service through the daemon" \
		[ "$(grep -c /private "$LOCAL_LOG" 2>/dev/null)" -eq 0 ] || return 1
	expect "no log line names loop.test, 127.0.0.1 and --allow-private-answers: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')" \
		wait_for 5 eval 'grep -h "loop.test" "$TMP/daemon.err" "$TMP/conn.log" | grep "127.0.0.1" | grep -q -- "--allow-private-answers"' || return 1
	app_run curl curl -sS -m 10 "http://meta.test/latest/meta-data/"
	expect "no log line names meta.test and 169.254.169.254" \
		wait_for 5 eval 'grep -h "meta.test" "$TMP/daemon.err" "$TMP/conn.log" | grep -q "169.254.169.254.*--allow-private-answers"'
}

t_private_allowed() {
	restart_daemon --resolver $RESOLVER --allow-private-answers || return 1
	ran app_run curl curl -sS -m 10 "http://loop.test:8080/allowed" || return 1
	expect "the loopback service saw no request with --allow-private-answers" \
		wait_for 5 grep -q /allowed "$LOCAL_LOG"
}

# A caching resolver inside the cgroup forwards to "the" DNS server, which
# is the daemon: the daemon, using it, would get its own fake addresses.
t_resolver_loop() {
	start_bg loopdns app dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
		--no-hosts --listen-address=127.0.0.1 --port=5353 --bind-interfaces \
		--server=192.0.2.53 --cache-size=0 --user=root --group=root --pid-file= || return 1
	restart_daemon --resolver 127.0.0.1:5353 || return 1
	app_run curl curl -sS -m 10 "http://name.test:8080/loop"
	expect "the web server saw /loop through a resolver loop" \
		[ "$(grep -c /loop "$HTTP_LOG" 2>/dev/null)" -eq 0 ] || return 1
	expect "no log line names the loop: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')" \
		wait_for 5 eval 'grep -h "name.test" "$TMP/daemon.err" "$TMP/conn.log" | grep -q "resolver loop"' || return 1
	stop_bg loopdns
}

# Two fake addresses, three names within the hold: the third gets its real
# address rather than one a client may still hold.
t_no_reuse() {
	local first second third again
	restart_daemon --resolver $RESOLVER --fakeip-range 198.18.0.0/30 || return 1
	app_run dig "${DIG[@]}" +short @192.0.2.53 name.test A && first=$(cat "$TMP/dig.out")
	app_run dig "${DIG[@]}" +short @192.0.2.53 meta.test A && second=$(cat "$TMP/dig.out")
	app_run dig "${DIG[@]}" +short @192.0.2.53 loop.test A && third=$(cat "$TMP/dig.out")
	app_run dig "${DIG[@]}" +short @192.0.2.53 name.test A && again=$(cat "$TMP/dig.out")
	expect "answers '$first' '$second' '$third': want two fake ones" \
		eval '[[ $first == 198.18.0.[12] && $second == 198.18.0.[12] ]]' || return 1
	expect "the third name got '$third', want its real address 127.0.0.1" [ "$third" = 127.0.0.1 ] || return 1
	expect "name.test moved from $first to $again" [ "$first" = "$again" ] || return 1
	expect "no log line says the pool is full" grep -q "FakeIP pool full.*loop.test" "$TMP/daemon.err"
}

# One dig process, four new names, a bound of three.
t_per_process() {
	restart_daemon --resolver $RESOLVER --fakeip-per-process 3 || return 1
	ran app_run dig "${DIG[@]}" +short @192.0.2.53 name.test A meta.test A txt.test A loop.test A || return 1
	expect "answers $(tr '\n' ' ' <"$TMP/dig.out"): want three fake ones, then 127.0.0.1" \
		[ "$(grep -c '^198\.18\.' "$TMP/dig.out")" -eq 3 ] || return 1
	expect "loop.test did not get its real address" grep -qx 127.0.0.1 "$TMP/dig.out" || return 1
	expect "no log line names the pid and the bound" \
		grep -q "pid $RUN_PID got 3 new FakeIP names.*--fakeip-per-process.*loop.test" "$TMP/daemon.err"
}

t_stop() {
	expect "daemon did not stop cleanly (status ${DAEMON_RC:-?})" stop_daemon
}

if t_start; then pass daemon-start; else fail daemon-start "$WHY" "$TMP/daemon.err"; fi
run_case tcp-flood-bounded t_flood
run_case tcp-trickling-reader-closed t_trickle
run_case tcp-sessions-per-process t_sessions
run_case tcp-half-query-closed t_half_query
run_case pointer-chains-others-served t_chain
run_case private-answer-refused t_private_refused
run_case private-answer-allowed t_private_allowed
run_case resolver-loop-named t_resolver_loop
run_case fakeip-no-reuse-within-hold t_no_reuse
run_case fakeip-names-per-process t_per_process
run_case clean-stop t_stop
finish
