#!/bin/bash
# The config file and the rules on the command line. Covers:
#   check: reads the options, a --config file and the rules, prints "ok",
#     exit 0, as an unprivileged user and without attaching anything; a bad
#     file: exit 2 and every bad line named by file and line; an unknown
#     rule target is an error, not a silent DIRECT;
#   a daemon started with --config takes its options from the file (json);
#   SIGHUP reads the rules again: a good file replaces them, a bad one is
#     reported line by line and the rules in use stay, the daemon lives on;
#   an upstream whose name the DNS server does not answer: connections are
#     served while the reload waits for it, which then fails and says why; a
#     SIGHUP during it reads again after it; a stop during it drops it.
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl jq setpriv "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish

CONF=$TMP/sproxy.conf

# as_nobody NAME ARGS...: `sproxy-bpf ARGS` as user nobody with no
# capabilities, the config on stdin ($CONF); exit status in RC, output in
# $TMP/NAME.out and $TMP/NAME.err.
as_nobody() {
	local name=$1
	shift
	LAST_RUN=$name
	timeout -k 2 10 setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$SPROXY_BIN" "$@" <"$CONF" >"$TMP/$name.out" 2>"$TMP/$name.err"
	RC=$?
}

t_check_ok() {
	cat >"$CONF" <<-'EOF'
	# rules first, then options
	rule = DOMAIN-SUFFIX,example.com,REJECT
	rule = AND,((NETWORK,UDP),(DST-PORT,443)),REJECT
	rule = IP-CIDR,192.0.2.0/24,DIRECT,no-resolve
	json = true
	udp-timeout = 30
	rule = MATCH,DIRECT
	EOF
	as_nobody check_ok check --config /dev/stdin --rule 'PROCESS-NAME,curl,DIRECT'
	expect "check exited $RC, not 0" [ "$RC" = 0 ] || return 1
	expect "check printed '$(cat "$TMP/check_ok.out")', not 'ok'" \
		[ "$(cat "$TMP/check_ok.out")" = ok ]
}

t_check_bad() {
	cat >"$CONF" <<-'EOF'
	rule = DOMAIN,a..b,DIRECT
	json = maybe

	udp-timeout = 0
	rule = MATCH,DIRECT
	no-such-option = 1
	EOF
	as_nobody check_bad check --config /dev/stdin
	expect "check exited $RC, not 2" [ "$RC" = 2 ] || return 1
	local want
	for want in "/dev/stdin:1: --rule 'DOMAIN,a..b,DIRECT': 'a..b' is not a domain name" \
		"/dev/stdin:2: json is true or false, not 'maybe'" \
		"/dev/stdin:4: --udp-timeout wants a decimal number" \
		"/dev/stdin:6: unknown option 'no-such-option'"; do
		expect "check did not say: $want" grep -qF "$want" "$TMP/check_bad.err" || return 1
	done
	expect "check printed ok on errors" [ ! -s "$TMP/check_bad.out" ]
}

t_check_target() {
	printf 'rule = DOMAIN,a.example,DIRECT\nrule = DOMAIN,b.example,Elsewhere\n' >"$CONF"
	as_nobody check_target check --config /dev/stdin
	expect "check exited $RC, not 2" [ "$RC" = 2 ] || return 1
	expect "the unknown target is not named with its line" grep -qF \
		"/dev/stdin:2: rule 'DOMAIN,b.example,Elsewhere': unknown target 'Elsewhere'" \
		"$TMP/check_target.err"
}

t_daemon_config() {
	printf 'json = true\nrule = DOMAIN-SUFFIX,example.com,REJECT\nrule = MATCH,DIRECT\n' >"$CONF"
	chmod 600 "$CONF"
	start_daemon --config "$CONF" || return 1
	ran app_run cfg1 curl -sS -m 10 "http://$V4:8080/cfg1" || return 1
	expect "no JSON line for the connection (json = true not applied)" \
		wait_for 5 eval "jq -e 'select(.pid == $RUN_PID)' '$TMP/conn.log' >/dev/null 2>&1"
}

t_reload() {
	daemon_running || return 1
	# an upstream named by a host name (from /etc/hosts), resolved off the loop
	printf 'json = true\nupstream = near=socks5://localhost:1080\nrule = DOMAIN,a.example,near\nrule = DOMAIN,b.example,REJECT\nrule = MATCH,DIRECT\n' \
		>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 3 rules in use, ... near' line: $(grep SIGHUP "$TMP/daemon.err" | tail -n 1)" \
		wait_for 5 grep -q "SIGHUP: 3 rules in use, .*near" "$TMP/daemon.err" || return 1
	printf 'json = true\nrule = DOMAIN,a.example,Nowhere\nmap-size = 1\n' >"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "the bad line was not reported" \
		wait_for 5 grep -q "SIGHUP: $CONF:3: --map-size" "$TMP/daemon.err" || return 1
	expect "no 'the 3 rules in use stay' line" \
		wait_for 5 grep -q "SIGHUP: the 3 rules in use stay" "$TMP/daemon.err" || return 1
	sleep 0.3
	expect "the daemon died of a bad config" daemon_running || return 1
	ran app_run cfg2 curl -sS -m 10 "http://$V4:8080/cfg2" || return 1
	expect "no log line after the failed reload" \
		wait_for 5 eval "jq -e 'select(.pid == $RUN_PID)' '$TMP/conn.log' >/dev/null 2>&1" ||
		return 1
	stop_daemon
}

# queries N: the silent DNS server has seen N questions for slowproxy.test.
queries() { [ "$(grep -ao slowproxy "$TMP/silent.q" | wc -l)" -ge "$1" ]; }

t_reload_slow_dns() {
	local n
	: >"$TMP/silent.q"
	start_bg silentdns server socat -u UDP4-RECV:53,bind=203.0.113.11 \
		"OPEN:$TMP/silent.q,creat,append" || return 1
	printf 'nameserver 203.0.113.11\noptions timeout:6 attempts:1\n' >"$TMP/slow.resolv"
	printf 'json = true\nrule = MATCH,DIRECT\n' >"$CONF"
	RESOLV_CONF=$TMP/slow.resolv start_daemon --config "$CONF" || return 1
	printf 'json = true\nupstream = slow=socks5://slowproxy.test:1080\nrule = DOMAIN,a.example,slow\nrule = MATCH,DIRECT\n' \
		>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "the daemon never asked the DNS server for slowproxy.test" \
		wait_for 5 queries 1 || return 1
	ran app_run slow1 curl -sS -m 20 "http://$V4:8080/slow1" || return 1
	expect "the connection was served only once the reload had ended: $(grep SIGHUP "$TMP/daemon.err" | tr '\n' ' ')" \
		eval '! grep -q "SIGHUP: .*\(rules in use\|resolve\)" "$TMP/daemon.err"' || return 1
	n=$(grep -ao slowproxy "$TMP/silent.q" | wc -l)
	kill -HUP "$DAEMON_PID"
	expect "a SIGHUP during the reload was not answered" \
		wait_for 5 grep -q "SIGHUP: a reload is under way" "$TMP/daemon.err" || return 1
	expect "the reload did not say the upstream's name cannot be resolved" \
		wait_for 20 grep -q "SIGHUP: upstream slow.*cannot resolve slowproxy.test" "$TMP/daemon.err" ||
		return 1
	expect "no 'the 1 rules in use stay' line" \
		grep -q "SIGHUP: the 1 rules in use stay" "$TMP/daemon.err" || return 1
	expect "the second SIGHUP did not read the file again (after the first's $n questions)" \
		wait_for 5 queries $((n + 1)) || return 1
	expect "the daemon did not exit 0 when stopped during a reload ($DAEMON_RC)" \
		stop_daemon || return 1
	expect "the dropped reload was not said" \
		grep -q "still resolving the upstreams' names, is dropped" "$TMP/daemon.err" || return 1
	expect "a reload that could not resolve its upstream was applied" \
		eval '! grep -q "SIGHUP: 2 rules in use" "$TMP/daemon.err"'
}

run_case check-ok-unprivileged t_check_ok
run_case check-bad-lines-named t_check_bad
run_case check-unknown-target t_check_target
run_case daemon-reads-config t_daemon_config
run_case sighup-reloads-rules t_reload
run_case sighup-slow-dns t_reload_slow_dns
[ -n "$DAEMON_PID" ] && kill_daemon
finish
