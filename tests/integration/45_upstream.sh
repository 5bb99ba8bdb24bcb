#!/bin/bash
# Upstream proxies: captured connections leave through a SOCKS5 upstream
# (microsocks, with and without a password; danted for UDP ASSOCIATE) or an
# HTTP CONNECT one (tinyproxy with BasicAuth), all in the "remote"
# namespace on 203.0.113.11, so the test servers on 203.0.113.10 see the
# proxy as their peer.  A name the app looked up (a FakeIP address) reaches
# the upstream as a name: only the upstreams can resolve onlyup.test (the
# daemon's resolver does not exist), so a page from it proves the name went.  An
# upstream that is down, refuses the credentials, or accepts and never
# answers fails the client's connection at once (reset, long before curl
# gives up), with a log line that names the upstream, the stage and why.
# A reload that removes the upstream leaves a UDP flow through it (UDP
# ASSOCIATE) to go on to its end; a new flow goes direct.
. "$(dirname "$0")/../lib.sh"

WEB=203.0.113.10
UP=203.0.113.11
NAME=onlyup.test
PASS=s3cr3t-pw
CURL=(curl -sS -m 20)
CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")

setup_topology || finish
setup_cgroup || finish
if ! need curl microsocks danted tinyproxy socat ss "$TOOLS/httpd" "$TOOLS/echod" \
	"$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $WEB:8080 "[2001:db8::10]:8080" || finish
# A server that speaks first (as SMTP and SSH do): its banner may come in
# the same segment as the proxy's reply, and must not be lost.
start_bg banner server socat TCP-LISTEN:2525,bind=$WEB,reuseaddr,fork SYSTEM:"echo 220-banner-first" \
	|| finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $WEB:7 || finish

# The upstreams resolve names from a hosts file of their own (nothing else
# knows onlyup.test) and never from the machine's resolvers.
printf '127.0.0.1 localhost\n%s %s\n' $WEB $NAME >"$TMP/hosts"
printf 'nameserver 127.0.0.1\n' >"$TMP/srv-resolv.conf"
up_server() {
	local name=$1
	shift
	start_bg "$name" server unshare -m --propagation private -- bash -c '
		mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf || exit 125
		shift 2
		exec "$@"' _ "$TMP/hosts" "$TMP/srv-resolv.conf" "$@"
}
listening() { in_server ss -Hltn "sport = :$1" | grep -q .; }

danted_conf "$TMP/danted.conf" $UP 1082
cat >"$TMP/tinyproxy.conf" <<EOF
Port 3128
Listen $UP
Timeout 30
LogFile "$TMP/tinyproxy.log"
LogLevel Info
MaxClients 20
BasicAuth user $PASS
Bind $UP
EOF

up_server socks microsocks -i $UP -p 1080 -b $UP || finish
up_server socksauth microsocks -i $UP -p 1081 -b $UP -u user -P "$PASS" || finish
up_server danted danted -f "$TMP/danted.conf" -p "$TMP/danted.pid" -N 1 || finish
up_server tinyproxy tinyproxy -d -c "$TMP/tinyproxy.conf" || finish
# Accepts, reads, never answers.
start_bg silent server socat TCP-LISTEN:1090,bind=$UP,reuseaddr,fork SYSTEM:"cat >/dev/null" || finish
# Answers anything with a line that is no proxy's.
start_bg garbage server socat TCP-LISTEN:1091,bind=$UP,reuseaddr,fork SYSTEM:"echo garbage; sleep 5" \
	|| finish
for port in 1080 1081 1082 3128 1090 1091 2525; do
	if ! wait_for 10 listening $port; then
		_setup_fail "nothing listens on $UP:$port: $(tail -n 3 "$TMP"/*.err | tr '\n' ' ')"
		finish
	fi
done
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf

# --- helpers ----------------------------------------------------------------------

# daemon_via URL [ARGS...]: a daemon whose default route is URL.
daemon_via() {
	local url=$1
	shift
	restart_daemon --resolver 198.51.100.53 --upstream "$url" "$@"
}

# fetch NAME URL: curl in the app cgroup; the request's path is /NAME.
fetch() { ran app_run "$1" "${CURL[@]}" "$2/$1"; }

# went_via PATH: the server saw the request come from the upstream.
went_via() {
	expect "the server got no request for /$1" wait_http 5 "/$1" || return 1
	local peer
	peer=$(http_get "/$1" peer)
	expect "the server saw peer $peer, not the upstream $UP" eval "[[ $peer == $UP:* ]]"
}

# fails_fast NAME URL: curl's connection is reset or closed, well before
# its own 20 s timeout.
fails_fast() {
	local t0 t1
	t0=$(date +%s)
	app_run "$1" "${CURL[@]}" "$2/$1"
	t1=$(date +%s)
	expect "curl succeeded through a broken upstream" [ "$RUN_RC" -ne 0 ] || return 1
	expect "curl timed out (exit 28): the client was left hanging" [ "$RUN_RC" -ne 28 ] || return 1
	expect "curl took $((t1 - t0)) s to fail" [ $((t1 - t0)) -lt 10 ]
}

# --- cases --------------------------------------------------------------------------

t_socks_ip() {
	daemon_via socks5://$UP:1080 || return 1
	fetch s5ip "http://$WEB:8080" || return 1
	went_via s5ip || return 1
	expect_log " tcp " "pid=$RUN_PID " "dst=$WEB:8080 " "via=default " "result=ok"
}

t_socks_name() {
	daemon_running || return 1
	fetch s5name "http://$NAME:8080" || return 1
	went_via s5name || return 1
	expect "the server saw Host '$(http_get /s5name host)'" \
		[ "$(http_get /s5name host)" = $NAME:8080 ] || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=$NAME " "via=default " "result=ok"
}

t_socks_v6() {
	daemon_running || return 1
	ran app_run s5v6 "${CURL[@]}" "http://[2001:db8::10]:8080/s5v6" || return 1
	expect "the server got no request for /s5v6" wait_http 5 /s5v6 || return 1
	expect_log " tcp " "pid=$RUN_PID " "dst=[2001:db8::10]:8080 " "via=default " "result=ok"
}

# banner NAME: the app reads the banner server's first line through the route.
banner() {
	app_run "$1" timeout 10 socat -u TCP:$WEB:2525 STDOUT
	expect "no banner through the upstream (exit $RUN_RC): '$(head -c 100 "$TMP/$1.out")'" \
		grep -qx 220-banner-first "$TMP/$1.out" || return 1
	expect_log " tcp " "comm=socat " "dst=$WEB:2525 " "via=default " "result=ok"
}

t_socks_auth() {
	daemon_via socks5h://user:$PASS@$UP:1081 || return 1
	fetch s5auth "http://$NAME:8080" || return 1
	went_via s5auth || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=$NAME " "via=default " "result=ok"
}

t_socks_badauth() {
	daemon_via socks5://user:wrong@$UP:1081 || return 1
	fails_fast s5bad "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "via=default " "result=error" \
		"upstream default ($UP:1081): auth: wrong username or password" || return 1
	expect "the daemon died" daemon_running
}

t_socks_noauth_given() {
	daemon_via socks5://$UP:1081 || return 1
	fails_fast s5none "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:1081): greeting: the upstream wants a username and password"
}

t_socks_refused_reply() {
	daemon_via socks5://$UP:1080 || return 1
	fails_fast s5ref "http://$WEB:8081" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:1080): request: SOCKS5 reply" || return 1
	expect "the daemon died" daemon_running
}

t_danted_tcp() {
	daemon_via socks5://$UP:1082 || return 1
	fetch dname "http://$NAME:8080" || return 1
	went_via dname || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=$NAME " "via=default " "result=ok"
}

t_danted_udp() {
	daemon_running || return 1
	ran app_run dudp "$TOOLS/netclient" udpc $WEB:7 || return 1
	expect "echod saw no datagram from the relay $UP: $(tail -n 2 "$TMP/echo.log" | tr '\n' ' ')" \
		grep -q "udp local=$WEB:7 peer=$UP:" "$TMP/echo.log" || return 1
	expect "the daemon died" daemon_running
}

# A name over UDP: the app's fake address goes to the relay as the name.
t_danted_udp_name() {
	local fake n
	daemon_running || return 1
	n=$(grep -c "udp local=$WEB:7 peer=$UP:" "$TMP/echo.log")
	ran app_run dig dig +short +time=3 +tries=1 $NAME A || return 1
	fake=$(head -n 1 "$TMP/dig.out")
	expect "no address for $NAME: '$fake'" [ -n "$fake" ] || return 1
	# netclient wants the payload to name the address it sent to; echod
	# names its real one, which is the point: the reply came from there,
	# from the fake address as the app sees it.
	app_run dudpn "$TOOLS/netclient" udpc "$fake:7"
	expect "no echo came back: $(tail -n 1 "$TMP/dudpn.out")" \
		grep -qF "reply from $fake:7: \"$WEB:7 ping" "$TMP/dudpn.out" || return 1
	expect "echod saw no datagram from the relay $UP" \
		[ "$(grep -c "udp local=$WEB:7 peer=$UP:" "$TMP/echo.log")" -gt "$n" ] || return 1
	stop_daemon || return 1
	expect_log " udp " "pid=$RUN_PID " "host=$NAME " "via=default " "result=ok"
}

# A UDP flow through danted across a reload that removes the upstream: the
# flow keeps its association to its end (its second datagram, sent after
# the reload, still goes through the relay), a new flow goes direct.
t_reload_udp() {
	local n m conf=$TMP/up.conf bg
	printf 'upstream = socks5://%s:1082\n' $UP >"$conf"
	restart_daemon --resolver 198.51.100.53 --udp-timeout 3 --config "$conf" || return 1
	n=$(grep -c "udp local=$WEB:7 peer=$UP:" "$TMP/echo.log")
	m=$(grep -c "udp local=$WEB:7 peer=203.0.113.1:" "$TMP/echo.log")
	PIDFILE=$TMP/rudp.pid in_app bash -c \
		"(echo one; sleep 2; echo two; sleep 1) | socat -t 2 - UDP:$WEB:7" \
		>"$TMP/rudp.out" 2>"$TMP/rudp.err" </dev/null &
	bg=$!
	BG_PIDS+=("$bg")
	expect "the first datagram did not come back: $(cat "$TMP/rudp.err")" \
		wait_for 5 grep -q one "$TMP/rudp.out" || return 1
	: >"$conf"
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 0 rules in use, no upstream'" \
		wait_for 5 grep -q "SIGHUP: 0 rules in use, no upstream" "$TMP/daemon.err" || return 1
	ran app_run rudp2 "$TOOLS/netclient" udpc $WEB:7 || return 1
	expect "the new flow did not go direct" \
		[ "$(grep -c "udp local=$WEB:7 peer=203.0.113.1:" "$TMP/echo.log")" -gt "$m" ] || return 1
	wait_for 8 eval '! alive '"$bg"
	expect "the second datagram did not come back: $(tr '\n' ' ' <"$TMP/rudp.out")" \
		grep -q two "$TMP/rudp.out" || return 1
	expect "the relay $UP did not carry both datagrams" \
		[ "$(grep -c "udp local=$WEB:7 peer=$UP:" "$TMP/echo.log")" -ge $((n + 2)) ] || return 1
	stop_daemon || return 1
	expect_log " udp " "comm=socat " "dst=$WEB:7 " "via=default " "result=ok"
}

t_http() {
	daemon_via http://user:$PASS@$UP:3128 || return 1
	fetch hname "http://$NAME:8080" || return 1
	went_via hname || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=$NAME " "via=default " "result=ok" || return 1
	expect "tinyproxy's log has no CONNECT $NAME: $(tail -n 3 "$TMP/tinyproxy.log" | tr '\n' ' ')" \
		grep -q "CONNECT $NAME:8080" "$TMP/tinyproxy.log"
}

# UDP cannot go through an HTTP proxy: refused, by default, and said so.
t_http_udp_reject() {
	local n
	daemon_running || return 1
	n=$(grep -c "udp local=$WEB:7 " "$TMP/echo.log")
	app_run hudp "$TOOLS/netclient" udpc -t 2 $WEB:7
	expect "the datagram went through (exit $RUN_RC)" [ "$RUN_RC" -eq 3 ] || return 1
	expect "echod got a datagram" [ "$(grep -c "udp local=$WEB:7 " "$TMP/echo.log")" = "$n" ] || return 1
	stop_daemon || return 1     # the flow's line comes when it ends
	expect_log " udp " "pid=$RUN_PID " "via=default " "result=refused" \
		"upstream default ($UP:3128) is an HTTP proxy, which cannot carry UDP"
}

t_http_udp_direct() {
	daemon_via http://user:$PASS@$UP:3128 --udp-over-http direct || return 1
	ran app_run hdir "$TOOLS/netclient" udpc $WEB:7 || return 1
	expect "echod saw the datagram come from elsewhere than the client" \
		grep -q "udp local=$WEB:7 peer=203.0.113.1:" "$TMP/echo.log" || return 1
	stop_daemon || return 1
	expect_log " udp " "pid=$RUN_PID " "via=direct " "result=ok"
}

t_http_badauth() {
	daemon_via http://user:wrong@$UP:3128 || return 1
	fails_fast hbad "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:3128): request: HTTP 40" "wrong or missing credentials"
}

t_down() {
	daemon_via socks5://$UP:1099 || return 1
	fails_fast down "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:1099): connect: Connection refused"
}

t_garbage() {
	daemon_via socks5://$UP:1091 || return 1
	fails_fast garbage "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:1091): greeting: not a SOCKS5 server"
}

t_stall() {
	daemon_via http://$UP:1090 --connect-timeout 2 || return 1
	fails_fast stall "http://$WEB:8080" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=error" \
		"upstream default ($UP:1090): request: no answer within 2s" || return 1
	expect "the daemon died" daemon_running
}

t_json() {
	daemon_via socks5://$UP:1080 --json || return 1
	fetch json "http://$NAME:8080" || return 1
	expect "no JSON line with via and host: $(tail -n 2 "$TMP/conn.log")" \
		wait_for 5 eval 'json_lines $RUN_PID | jq -e "select(.proto == \"tcp\" and .via == \"default\" and .host == \"$NAME\")"'
}

# The password shows nowhere: not in ps, not in any log line.
t_secret() {
	daemon_via "corp=socks5://user:$PASS@$UP:1081" --upstream "socks5://user:$PASS@$UP:1081" \
		|| return 1
	fetch sec "http://$WEB:8080" || return 1
	expect "ps shows the password: $(tr '\0' ' ' </proc/"$DAEMON_PID"/cmdline)" \
		eval '! grep -qF "$PASS" /proc/$DAEMON_PID/cmdline' || return 1
	stop_daemon || return 1
	expect "a log names the password" eval '! grep -qF "$PASS" "$TMP/conn.log" "$TMP/daemon.err"'
}

t_file() {
	printf 'socks5://user:%s@%s:1081\n' "$PASS" $UP >"$TMP/up.url"
	chmod 0644 "$TMP/up.url"
	in_client timeout 5 "$SPROXY_BIN" attach "$CG" --upstream "@$TMP/up.url" >"$TMP/file.out" 2>&1
	expect "a world-readable URL file was taken (exit $?)" [ $? -eq 2 ] || return 1
	expect "no word of why: $(cat "$TMP/file.out")" grep -q "readable by every user" "$TMP/file.out" \
		|| return 1
	chmod 0600 "$TMP/up.url"
	daemon_via "@$TMP/up.url" || return 1
	fetch file "http://$NAME:8080" || return 1
	went_via file
}

# Bad values: exit 2 before anything loads, named, no password echoed.
t_bad_values() {
	local args want rc
	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086
		in_client timeout 5 "$SPROXY_BIN" attach "$CG" $args >"$TMP/bad.out" 2>&1
		rc=$?
		expect "'$args' exited $rc, not 2: $(head -n 1 "$TMP/bad.out")" [ $rc -eq 2 ] || return 1
		expect "'$args' said '$(head -n 1 "$TMP/bad.out")', not '$want'" \
			grep -qF -- "$want" "$TMP/bad.out" || return 1
		expect "'$args' echoed the password" eval '! grep -q hideme "$TMP/bad.out"' || return 1
	done <<EOF
--upstream ftp://u:hideme@$UP:21|starts with socks5://
--upstream socks5://u:hideme@$UP:0|port of an upstream URL
--upstream socks5://u:hideme@$UP:1080/x|no path
--upstream socks5://u%zz:hideme@$UP:1080|percent-encoded
--upstream a=direct --upstream a=socks5://$UP:1080|the name 'a' is given twice
--upstream b@d=direct|starts with socks5://
--upstream x=@$TMP/nonexistent|cannot read
--udp-over-http tunnel|--udp-over-http is 'reject' or 'direct'
EOF
}

run_case bad-values t_bad_values
run_case socks5-by-address t_socks_ip
run_case socks5-fakeip-name t_socks_name
run_case socks5-ipv6 t_socks_v6
run_case socks5-server-speaks-first banner s5banner
run_case socks5-auth t_socks_auth
run_case socks5-wrong-password t_socks_badauth
run_case socks5-password-missing t_socks_noauth_given
run_case socks5-reply-code t_socks_refused_reply
run_case danted-connect-name t_danted_tcp
run_case danted-udp-associate t_danted_udp
run_case danted-udp-name t_danted_udp_name
run_case reload-udp-flow-keeps-upstream t_reload_udp
run_case http-connect-auth t_http
run_case http-server-speaks-first banner hbanner
run_case http-udp-rejected t_http_udp_reject
run_case http-udp-direct t_http_udp_direct
run_case http-wrong-password t_http_badauth
run_case upstream-down t_down
run_case upstream-garbage t_garbage
run_case upstream-stall t_stall
run_case json-via t_json
run_case no-secret-in-ps-or-log t_secret
run_case url-from-file t_file
finish
