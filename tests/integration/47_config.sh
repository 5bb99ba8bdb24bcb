#!/bin/bash
# The config file and the rules on the command line. Covers:
#   check: reads the options, a --config file and the rules, prints "ok",
#     exit 0, as an unprivileged user and without attaching anything; a bad
#     file: exit 2 and every bad line named by file and line; an unknown
#     rule target is an error, not a silent DIRECT;
#   a daemon started with --config takes its options from the file (json);
#   SIGHUP reads the rules again: a good file replaces them, a bad one is
#     reported line by line and the rules in use stay, the daemon lives on.
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
	printf 'json = true\nrule = DOMAIN,a.example,DIRECT\nrule = DOMAIN,b.example,REJECT\nrule = MATCH,DIRECT\n' \
		>"$CONF"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 3 rules in use' line" \
		wait_for 5 grep -q "SIGHUP: 3 rules in use" "$TMP/daemon.err" || return 1
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

run_case check-ok-unprivileged t_check_ok
run_case check-bad-lines-named t_check_bad
run_case check-unknown-target t_check_target
run_case daemon-reads-config t_daemon_config
run_case sighup-reloads-rules t_reload
[ -n "$DAEMON_PID" ] && kill_daemon
finish
