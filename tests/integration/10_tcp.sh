#!/bin/bash
# TCP capture: the daemon attached to a test cgroup relays every TCP
# connection of the cgroup's processes (curl, busybox wget, our netclient;
# IPv4, IPv6, IPv4-mapped), tags HTTP User-Agents with the process (keep-
# alive, pipelined, chunked, slow, HTTP/1.0, lowercase header, none at all,
# big headers; bodies untouched), relays non-HTTP byte for byte, large
# transfers intact with matching byte counts, half-close, a closed port;
# logs one line per connection (text and --json); leaves alone processes
# outside the cgroup, --bypass destinations and direct connections to its
# listener (refused); works with --listen, from inside the cgroup, with a
# relative cgroup path; detaches on SIGTERM, SIGINT and SIGKILL; refuses the
# cgroup v2 root (tried in a sandbox first) and paths that are not cgroup v2.
# What the server saw (tests/tools/httpd log), what the client saw
# (getpeername, bodies) and the daemon's log are all checked.
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
V6=2001:db8::10
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl bpftool socat sha256sum /bin/busybox "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
mkdir -p "$TMP/www"
head -c 20971520 /dev/urandom >"$TMP/www/big.bin"
head -c 1048576 /dev/urandom >"$TMP/www/1m.bin"
head -c 3000000 /dev/urandom >"$TMP/medium.bin"
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" -d "$TMP/www" \
	$V4:8080 $V4:8081 203.0.113.11:8080 "[$V6]:8080" || finish
start_bg echo server "$TOOLS/echod" $V4:7 "[$V6]:7" || finish

# --- helpers ---------------------------------------------------------------------

# tagged PATH COMM PID BASE: the server saw exactly one User-Agent for PATH,
# "BASE sproxy-bpf (comm=COMM; pid=PID)" (or just the tag when BASE is "").
tagged() {
	local path=$1 comm=$2 pid=$3 base=$4 want ua
	want="${base:+$base }$(tag "$comm" "$pid")"
	expect "the server got no request for $path" wait_http 5 "$path" || return 1
	ua=$(http_get "$path" ua)
	expect "server saw User-Agent '$ua' for $path, want '$want'" [ "$ua" = "$want" ] || return 1
	expect "server saw $(http_get "$path" uas) User-Agent headers for $path, want 1" \
		[ "$(http_get "$path" uas)" = 1 ]
}

# untagged PATH UA: the server saw PATH with User-Agent exactly UA.
untagged() {
	local ua
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	ua=$(http_get "$1" ua)
	expect "server saw User-Agent '$ua' for $1, want '$2' (untouched)" [ "$ua" = "$2" ]
}

# logged STRING...: a connection-log line with all STRINGs shows up within 5 s.
logged() { expect_log "$@"; }

# not_logged PID: no log line for PID, checked once a captured sentinel
# connection made after it has been logged (connections log when they close).
not_logged() {
	local pid=$1
	app_run sentinel curl -sS -m 10 -o /dev/null "http://$V4:8080/sentinel-$pid"
	expect "sentinel curl (inside the cgroup) was not logged" wait_log 5 "pid=$RUN_PID " || return 1
	expect "the log has a line for pid $pid: $(log_line "pid=$pid ")" eval '! log_line "pid=$pid " >/dev/null'
}

# --- cases -------------------------------------------------------------------------

t_ipv4_curl() {
	daemon_running || return 1
	ran app_run c4 curl -sS -m 10 "http://$V4:8080/v4" || return 1
	tagged /v4 curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "curl's body does not show the tagged User-Agent" \
		grep -qF "ua=curl/$CURL_VER $(tag curl "$RUN_PID")" "$TMP/c4.out" || return 1
	logged " tcp " "pid=$RUN_PID " "comm=curl " "uid=0 " "cgroup=/sproxy-bpf-test-$TEST_ID-app " \
		"dst=$V4:8080 " "result=ok"
}

t_ipv6_curl() {
	daemon_running || return 1
	ran app_run c6 curl -sS -g -m 10 "http://[$V6]:8080/v6" || return 1
	tagged /v6 curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "the server saw the request from $(http_get /v6 peer), not from the client's IPv6 address" \
		eval '[[ $(http_get /v6 peer) == "[2001:db8::1]:"* ]]' || return 1
	logged " tcp " "pid=$RUN_PID " "dst=[$V6]:8080 " "result=ok"
}

# A dual-stack app connecting to ::ffff:203.0.113.10 goes through connect6.
t_ipv4_mapped() {
	daemon_running || return 1
	ran app_run mapped "$TOOLS/netclient" tcp -g $V4 -P /mapped "[::ffff:$V4]:8080" || return 1
	expect "getpeername did not show [::ffff:$V4]:8080: $(head -n 1 "$TMP/mapped.out")" \
		grep -qF "connected peer=[::ffff:$V4]:8080 " "$TMP/mapped.out" || return 1
	tagged /mapped netclient "$RUN_PID" netclient/1 || return 1
	logged " tcp " "pid=$RUN_PID " "$V4:8080 " "result=ok"
}

# getpeername NAME ADDR:PORT: the app sees the address it connected to, not
# the listener's, and the connection did go through the daemon.
t_getpeername() {
	daemon_running || return 1
	ran app_run "$1" "$TOOLS/netclient" tcp "$2" || return 1
	expect "getpeername: want $2, got: $(head -n 1 "$TMP/$1.out")" \
		grep -qF "connected peer=$2 " "$TMP/$1.out" || return 1
	logged " tcp " "pid=$RUN_PID " "dst=$2 "
}

# Two URLs on one curl command share one connection: both requests tagged.
t_keepalive() {
	daemon_running || return 1
	ran app_run ka curl -sS -m 10 -o /dev/null -o /dev/null \
		-w '%{num_connects}\n' "http://$V4:8080/ka1" "http://$V4:8080/ka2" || return 1
	expect "curl did not reuse its connection (num_connects: $(tr '\n' ' ' <"$TMP/ka.out"))" \
		[ "$(tr '\n' ' ' <"$TMP/ka.out")" = "1 0 " ] || return 1
	tagged /ka1 curl "$RUN_PID" "curl/$CURL_VER" || return 1
	tagged /ka2 curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "server saw two connections: $(http_get /ka1 peer) and $(http_get /ka2 peer)" \
		[ "$(http_get /ka1 peer)" = "$(http_get /ka2 peer)" ] || return 1
	logged "pid=$RUN_PID " "dst=$V4:8080 " || return 1
	expect "one connection, but $(count_with "$TMP/conn.log" "pid=$RUN_PID ") log lines" \
		[ "$(count_with "$TMP/conn.log" "pid=$RUN_PID ")" = 1 ]
}

# Three requests in one write: every one of them tagged.
t_pipelined() {
	local i
	daemon_running || return 1
	ran app_run pipe "$TOOLS/netclient" tcp -g $V4 -P /pipe -n 3 $V4:8080 || return 1
	wait_for 5 eval '[ "$(http_count /pipe)" = 3 ]'
	expect "server saw $(http_count /pipe) of 3 pipelined requests" [ "$(http_count /pipe)" = 3 ] || return 1
	for i in 1 2 3; do
		expect "pipelined request $i has User-Agent '$(http_get /pipe ua $i)'" \
			[ "$(http_get /pipe ua $i)" = "netclient/1 $(tag netclient "$RUN_PID")" ] || return 1
	done
}

# The headers arrive one byte per segment: the proxy must gather them.
t_slow_request() {
	daemon_running || return 1
	ran app_run slow "$TOOLS/netclient" tcp -S -t 20 -g $V4 -P /slow $V4:8080 || return 1
	tagged /slow netclient "$RUN_PID" netclient/1
}

# Header names are case-insensitive: "user-agent:" is the User-Agent.
t_ua_case() {
	daemon_running || return 1
	ran app_run uacase curl -sS -m 10 -o /dev/null -H 'user-agent: Lower/1.0' "http://$V4:8080/ua-case" || return 1
	tagged /ua-case curl "$RUN_PID" Lower/1.0
}

t_http10() {
	daemon_running || return 1
	ran app_run http10 curl -sS -m 10 -0 -o /dev/null "http://$V4:8080/http10" || return 1
	tagged /http10 curl "$RUN_PID" "curl/$CURL_VER"
}

# A big Cookie (6 KB, common on real sites) is still a request to tag; a
# 40 KB header block must at least get through.
t_large_header() {
	local cookie
	daemon_running || return 1
	cookie="Cookie: c=$(head -c 6000 /dev/zero | tr '\0' a)"
	ran app_run hdr6k "$TOOLS/netclient" tcp -g $V4 -P /hdr-6k -x "$cookie" $V4:8080 || return 1
	tagged /hdr-6k netclient "$RUN_PID" netclient/1 || return 1
	cookie="Cookie: c=$(head -c 40000 /dev/zero | tr '\0' b)"
	ran app_run hdr40k "$TOOLS/netclient" tcp -g $V4 -P /hdr-40k -x "$cookie" $V4:8080 || return 1
	expect "the server got no request with a 40 KB header" wait_http 5 /hdr-40k
}

# A body that looks like HTTP is still a body: not a byte changes.
t_body_untouched() {
	daemon_running || return 1
	printf 'GET /inner HTTP/1.1\r\nHost: x\r\nUser-Agent: inner/1\r\n\r\n' >"$TMP/inner.bin"
	ran app_run inner curl -sS -m 10 -o /dev/null --data-binary "@$TMP/inner.bin" \
		"http://$V4:8080/upload/inner.bin" || return 1
	tagged /upload/inner.bin curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "the body was altered: $(od -c "$TMP/www/inner.bin" | head -n 3 | tr '\n' ' ')" \
		cmp -s "$TMP/inner.bin" "$TMP/www/inner.bin" || return 1
	expect "a request inside the body was seen as one" eval '! http_has /inner'
}

# DESIGN: a request without a User-Agent gets one.
t_no_user_agent() {
	daemon_running || return 1
	ran app_run noua "$TOOLS/netclient" tcp -g $V4 -P /noua -u '' $V4:8080 || return 1
	tagged /noua netclient "$RUN_PID" ""
}

# A static binary: no libc hooks could ever see it.
t_busybox_wget() {
	local ua
	daemon_running || return 1
	ran app_run bb /bin/busybox wget -q -O - "http://$V4:8080/busybox" || return 1
	expect "the server got no request" wait_http 5 /busybox || return 1
	ua=$(http_get /busybox ua)
	expect "server saw User-Agent '$ua', want 'Wget $(tag busybox "$RUN_PID")' (or comm=wget)" \
		eval '[ "$ua" = "Wget $(tag busybox "$RUN_PID")" ] || [ "$ua" = "Wget $(tag wget "$RUN_PID")" ]' || return 1
	logged " tcp " "pid=$RUN_PID " "dst=$V4:8080 " "result=ok"
}

t_outside_cgroup() {
	daemon_running || return 1
	ran client_run out curl -sS -m 10 "http://$V4:8080/outside" || return 1
	untagged /outside "curl/$CURL_VER" || return 1
	not_logged "$RUN_PID"
}

# A connection to the listener that no capture recorded: closed or reset
# without being relayed anywhere (the reset may already arrive while
# connecting), and logged as refused.
# direct_listener NAME ADDR:PORT
t_direct_listener() {
	local name=$1 local_addr	# no $1 inside eval: it would be expect's
	daemon_running || return 1
	client_run "$1" "$TOOLS/netclient" tcp -t 5 -g $V4 -P "/$1" "$2"
	expect "nothing listens on $2: $(head -n 1 "$TMP/$1.out")" \
		eval '! grep -q "Connection refused" "$TMP/$name.out"' || return 1
	expect "the listener answered a direct connection: $(tail -n 1 "$TMP/$1.out")" \
		eval '! grep -q "^responses=[1-9]" "$TMP/$name.out"' || return 1
	expect "it was relayed to the server" eval '! http_has "/$name"' || return 1
	local_addr=$(sed -n 's/.* local=\([^ ]*\).*/\1/p' "$TMP/$1.out" | head -n 1)
	expect "netclient printed no local address" [ -n "$local_addr" ] || return 1
	logged " tcp " "src=$local_addr " "result=refused"
}

t_large_download() {
	local hdr dl req line down up rx tx
	daemon_running || return 1
	ran app_run dl curl -sS -m 60 -o "$TMP/dl.bin" \
		-w '%{size_header} %{size_download} %{size_request}\n' "http://$V4:8080/files/big.bin" || return 1
	read -r hdr dl req <"$TMP/dl.out"
	expect "the download differs from the file (sha256)" \
		[ "$(sha256sum <"$TMP/dl.bin")" = "$(sha256sum <"$TMP/www/big.bin")" ] || return 1
	tagged /files/big.bin curl "$RUN_PID" "curl/$CURL_VER" || return 1
	logged "pid=$RUN_PID " "result=ok" || return 1
	line=$(log_line "pid=$RUN_PID ")
	down=$(field "$line" down) up=$(field "$line" up)
	tx=$(http_get /files/big.bin tx) rx=$(http_get /files/big.bin rx)
	expect "log says down=$down, the server sent $tx bytes (curl got $((hdr + dl)))" \
		[ "$down" = "$tx" ] || return 1
	expect "log says up=$up, curl sent $req bytes and the server received $rx" \
		eval '[ "$up" = "$req" ] || [ "$up" = "$rx" ]'
}

t_large_upload() {
	local req upl line down up rx tx
	daemon_running || return 1
	ran app_run ul curl -sS -m 60 -o /dev/null -w '%{size_request} %{size_upload}\n' \
		--data-binary "@$TMP/www/big.bin" "http://$V4:8080/upload/up.bin" || return 1
	read -r req upl <"$TMP/ul.out"
	expect "the upload arrived damaged (sha256)" \
		[ "$(sha256sum <"$TMP/www/up.bin")" = "$(sha256sum <"$TMP/www/big.bin")" ] || return 1
	tagged /upload/up.bin curl "$RUN_PID" "curl/$CURL_VER" || return 1
	logged "pid=$RUN_PID " "result=ok" || return 1
	line=$(log_line "pid=$RUN_PID ")
	down=$(field "$line" down) up=$(field "$line" up)
	tx=$(http_get /upload/up.bin tx) rx=$(http_get /upload/up.bin rx)
	expect "log says up=$up, curl sent $((req + upl)) bytes and the server received $rx" \
		eval '[ "$up" = $((req + upl)) ] || [ "$up" = "$rx" ]' || return 1
	expect "log says down=$down, the server sent $tx bytes" [ "$down" = "$tx" ]
}

# A chunked body, then a second request on the same connection: the proxy
# must find where the body ends to tag the next request.
t_chunked_keepalive() {
	daemon_running || return 1
	ran app_run chunk curl -sS -m 30 -o /dev/null -H 'Transfer-Encoding: chunked' \
		--data-binary "@$TMP/medium.bin" "http://$V4:8080/upload/chunked.bin" \
		--next -o /dev/null "http://$V4:8080/after-chunked" || return 1
	expect "the chunked upload arrived damaged (sha256)" \
		[ "$(sha256sum <"$TMP/www/chunked.bin")" = "$(sha256sum <"$TMP/medium.bin")" ] || return 1
	tagged /upload/chunked.bin curl "$RUN_PID" "curl/$CURL_VER" || return 1
	tagged /after-chunked curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "curl did not reuse the connection: $(http_get /upload/chunked.bin peer) vs $(http_get /after-chunked peer)" \
		[ "$(http_get /upload/chunked.bin peer)" = "$(http_get /after-chunked peer)" ]
}

# The client sends its request and shuts its write side: the response must
# still arrive in full, then EOF.
t_half_close() {
	daemon_running || return 1
	ran app_run half "$TOOLS/netclient" tcp -t 20 \
		-g $V4 -P /files/1m.bin -H $V4:8080 || return 1
	expect "incomplete response after half-close: $(tail -n 1 "$TMP/half.out")" \
		grep -qx 'responses=1 body=1048576' "$TMP/half.out" || return 1
	expect "$(grep 'no EOF' "$TMP/half.out")" eval '! grep -q "no EOF" "$TMP/half.out"' || return 1
	tagged /files/1m.bin netclient "$RUN_PID" netclient/1 || return 1
	logged "pid=$RUN_PID " "result=ok"
}

# Nothing listens on port 9: the app must learn it promptly.
t_closed_port() {
	local t0 t1
	daemon_running || return 1
	t0=$(date +%s%N)
	app_run closed curl -sS -m 15 "http://$V4:9/"
	t1=$(date +%s%N)
	expect "curl exit $RUN_RC, want 7 (refused), 52 (empty reply) or 56 (reset): $(cat "$TMP/closed.err")" \
		eval '[[ $RUN_RC == @(7|52|56) ]]' || return 1
	expect "curl took $(((t1 - t0) / 1000000)) ms to fail, want < 5 s" \
		[ $(((t1 - t0) / 1000000)) -lt 5000 ] || return 1
	logged " tcp " "pid=$RUN_PID " "dst=$V4:9 " "result=error"
}

# Not HTTP: relayed byte for byte, even when it contains "User-Agent:".
t_non_http() {
	daemon_running || return 1
	{
		printf 'SSH-2.0-OpenSSH_9.2\r\nUser-Agent: not-http\r\n\r\n'
		head -c 200000 /dev/urandom
	} >"$TMP/raw.in"
	ran app_run raw bash -c 'exec socat -t 5 -T 10 - TCP:203.0.113.10:7 <"$1" >"$2"' _ \
		"$TMP/raw.in" "$TMP/raw.back" || return 1
	expect "the echo came back altered ($(stat -c %s "$TMP/raw.back") of $(stat -c %s "$TMP/raw.in") bytes, cmp: $(cmp "$TMP/raw.in" "$TMP/raw.back" 2>&1))" \
		cmp -s "$TMP/raw.in" "$TMP/raw.back" || return 1
	logged " tcp " "pid=$RUN_PID " "dst=$V4:7 "
}

t_json_log() {
	local line
	expect "jq is missing" need jq || return 1
	restart_daemon --json || return 1
	ran app_run json curl -sS -m 10 -o /dev/null "http://$V4:8080/json" || return 1
	expect "no JSON line for pid $RUN_PID; the log ends with: $(tail -n 1 "$TMP/conn.log")" \
		wait_for 5 json_lines "$RUN_PID" || return 1
	line=$(json_lines "$RUN_PID" | head -n 1)
	expect "not one JSON object with the contract's fields and values: $line" jq -e \
		--arg pid "$RUN_PID" --arg cg "/sproxy-bpf-test-$TEST_ID-app" '
		(.pid | tostring) == $pid and .proto == "tcp" and .comm == "curl" and
		(.uid | tostring) == "0" and .cgroup == $cg and .dst == "203.0.113.10:8080" and
		.result == "ok" and (.up | type) == "number" and (.down | type) == "number" and
		has("time") and has("src") and has("duration")' <<<"$line" >/dev/null
}

# --bypass CIDR and CIDR:PORT go direct: untagged, not logged.
t_bypass() {
	restart_daemon --bypass 203.0.113.11/32 --bypass $V4/32:8081 || return 1
	ran app_run by1 curl -sS -m 10 -o /dev/null "http://203.0.113.11:8080/bypass-cidr" || return 1
	untagged /bypass-cidr "curl/$CURL_VER" || return 1
	not_logged "$RUN_PID" || return 1
	ran app_run by2 curl -sS -m 10 -o /dev/null "http://$V4:8081/bypass-port" || return 1
	untagged /bypass-port "curl/$CURL_VER" || return 1
	not_logged "$RUN_PID" || return 1
	ran app_run by3 curl -sS -m 10 -o /dev/null "http://$V4:8080/not-bypassed" || return 1
	tagged /not-bypassed curl "$RUN_PID" "curl/$CURL_VER"
}

# --listen moves the listener; capture follows.
t_listen() {
	restart_daemon --listen 127.0.0.1:4444 || return 1
	ran app_run lis curl -sS -m 10 -o /dev/null "http://$V4:8080/listen" || return 1
	tagged /listen curl "$RUN_PID" "curl/$CURL_VER" || return 1
	client_run lis-direct "$TOOLS/netclient" tcp -t 5 -g $V4 -P /listen-direct 127.0.0.1:4444
	expect "nothing listens on 127.0.0.1:4444: $(head -n 1 "$TMP/lis-direct.out")" \
		eval '! grep -q "Connection refused" "$TMP/lis-direct.out"' || return 1
	expect "the listener relayed a direct connection" eval '! http_has /listen-direct' || return 1
	logged " tcp " "result=refused"
}

# sudo from a desktop terminal runs the daemon inside the captured cgroup:
# its own connections must not loop back into it.
t_daemon_in_cgroup() {
	restart_daemon --in-app || return 1
	expect "the daemon (pid $DAEMON_PID) is not in $CG" grep -qx "$DAEMON_PID" "$CG/cgroup.procs" || return 1
	ran app_run incg curl -sS -m 10 -o /dev/null "http://$V4:8080/in-cgroup" || return 1
	tagged /in-cgroup curl "$RUN_PID" "curl/$CURL_VER" || return 1
	expect "the server saw $(http_count /in-cgroup) requests, want 1" [ "$(http_count /in-cgroup)" = 1 ] || return 1
	logged "pid=$RUN_PID " "dst=$V4:8080 " "result=ok" || return 1
	expect "the daemon logged a connection of its own (a loop): $(log_line "pid=$DAEMON_PID ")" \
		eval '! log_line "pid=$DAEMON_PID " >/dev/null' || return 1
	stop_daemon
}

# after_detach NAME: nothing attached to the test cgroup any more, and its
# processes connect directly again (fail-open).
after_detach() {
	if ! wait_for 5 eval '[ -z "$(attached_progs "$CG")" ]'; then
		WHY="bpftool still lists programs on $CG: $(attached_progs "$CG" | tr '\n' ' ')"
		return 1
	fi
	ran app_run "$1" curl -sS -m 10 -o /dev/null "http://$V4:8080/$1" || return 1
	untagged "/$1" "curl/$CURL_VER"
}

t_sigterm() {
	local pid
	restart_daemon || return 1
	pid=$DAEMON_PID
	expect "bpftool lists nothing on $CG while the daemon runs" \
		eval '[ -n "$(attached_progs "$CG")" ]' || return 1
	# Started from the cgroup v2 root, it lives in a cgroup of its own.
	expect "the daemon is in '$(grep '^0::' "/proc/$pid/cgroup")', want 0::/sproxy-bpf/$pid" \
		grep -qx "0::/sproxy-bpf/$pid" "/proc/$pid/cgroup" || return 1
	stop_daemon || return 1
	after_detach after-sigterm || return 1
	expect "the daemon's own cgroup $CG2/sproxy-bpf/$pid stayed after a clean exit" \
		[ ! -d "$CG2/sproxy-bpf/$pid" ]
}

# SIGINT (Ctrl-C) detaches like SIGTERM: exit status 0.
t_sigint() {
	local pid
	restart_daemon || return 1
	pid=$DAEMON_PID
	kill -INT "$pid"
	if ! wait_for 10 eval '! alive '"$pid"; then
		WHY="daemon still running 10 s after SIGINT"
		kill_daemon
		return 1
	fi
	wait "$pid"
	DAEMON_RC=$?
	DAEMON_PID=""
	expect "daemon exited with status $DAEMON_RC after SIGINT" [ "$DAEMON_RC" = 0 ] || return 1
	after_detach after-sigint
}

# CGROUP relative to the cgroup v2 mount.
t_relative_path() {
	ATTACH_TARGET=sproxy-bpf-test-$TEST_ID-app restart_daemon || return 1
	ran app_run rel curl -sS -m 10 -o /dev/null "http://$V4:8080/relative" || return 1
	tagged /relative curl "$RUN_PID" "curl/$CURL_VER" || return 1
	stop_daemon
}

t_sigkill() {
	local pid
	restart_daemon || return 1
	pid=$DAEMON_PID
	kill_daemon
	after_detach after-sigkill || return 1
	# Its own cgroup stays after SIGKILL (contract); empty now, so ours to remove.
	[ -d "$CG2/sproxy-bpf/$pid" ] && rmdir "$CG2/sproxy-bpf/$pid"
	start_daemon || { WHY="a fresh daemon did not start after SIGKILL: $WHY"; return 1; }
	ran app_run fresh curl -sS -m 10 -o /dev/null "http://$V4:8080/fresh" || return 1
	tagged /fresh curl "$RUN_PID" "curl/$CURL_VER"
}

# guarded NAME CMD...: runs an `attach` that must be refused, in the client
# namespace. Should it print "ready" (it attached!), it is SIGKILLed at once
# (bpf_links die with it) and GUARD is "attached"; after 5 s without exiting
# it is killed and GUARD is "hung"; else GUARD is "exit N". Output in
# $TMP/NAME.err.
guarded() {
	local name=$1
	shift
	bounded_start "$name" '\<ready\>' "$@"
	case $BOUNDED in
	attached | hung) GUARD=$BOUNDED ;;
	*) GUARD="exit $BOUNDED" ;;
	esac
}

# refused NAME WHAT: the guarded attach exited with 2 and said something.
refused() {
	expect "attach on $2: $GUARD (want exit 2): $(tail -n 1 "$TMP/$1.err")" [ "$GUARD" = "exit 2" ] || return 1
	expect "attach on $2 exited 2 without a message" [ -s "$TMP/$1.err" ]
}

# The cgroup v2 root without --all. First inside a cgroup namespace whose
# root is a test cgroup, with cgroup2 mounted afresh at the same path (in a
# private mount namespace: the umount there does not reach the host): a
# daemon that does not recognise that root attaches only to the sandbox
# (a container's root is a root too). Only if it refuses there is it asked
# about the real root, still under the guard.
t_attach_root() {
	local sb=$CG2/sproxy-bpf-test-$TEST_ID-rootns spec
	expect "daemon binary $SPROXY_BIN not found (run 'make')" [ -x "$SPROXY_BIN" ] || return 1
	make_cgroup "$sb" && make_cgroup "$sb/sub" || { WHY="cannot create $sb/sub"; return 1; }
	# In the sandbox, $CG2 shows $sb's tree: $CG2/sub is $sb/sub.
	for spec in "$CG2" "$CG2/" "$CG2/sub/.." sub/..; do
		# shellcheck disable=SC2016
		guarded root-sandbox bash -c '
			echo $$ > "$1/cgroup.procs" || exit 125
			exec unshare -C -m --propagation private -- bash -c "
				umount \"\$1\" && mount -t cgroup2 cgroup2 \"\$1\" || exit 125
				exec \"\$2\" attach \"\$3\"" _ "$2" "$3" "$4"' _ "$sb" "$CG2" "$SPROXY_BIN" "$spec"
		if [ "$GUARD" = attached ]; then
			WHY="attached to a cgroup-namespace root given as '$spec' (sandboxed: only a test cgroup was affected; the real root was not tried)"
			return 1
		fi
		if [ "$spec" = sub/.. ]; then
			# Relative to the mount (the root) or to the cwd (no such path): an error either way.
			expect "attach on '$spec': $GUARD (want an error exit): $(tail -n 1 "$TMP/root-sandbox.err")" \
				eval '[[ $GUARD == "exit "[1-9]* && $GUARD != "exit 125" ]]' || return 1
		else
			refused root-sandbox "the cgroup-namespace root given as '$spec'" || return 1
		fi
	done
	guarded root "$SPROXY_BIN" attach "$CG2"
	expect "ATTACHED TO THE CGROUP V2 ROOT without --all (killed at once)" [ "$GUARD" != attached ] || return 1
	refused root "the cgroup v2 root" || return 1
	expect "the refusal does not name the root ($CG2): $(tail -n 1 "$TMP/root.err")" \
		eval 'grep -qF "$CG2" "$TMP/root.err" || grep -qiw root "$TMP/root.err"'
}

t_attach_not_cgroup() {
	local v1
	expect "daemon binary $SPROXY_BIN not found (run 'make')" [ -x "$SPROXY_BIN" ] || return 1
	guarded plaindir "$SPROXY_BIN" attach "$TMP/www"
	refused plaindir "a plain directory ($TMP/www)" || return 1
	guarded missing "$SPROXY_BIN" attach "$CG2/sproxy-bpf-test-$TEST_ID-does-not-exist"
	expect "attach on a missing cgroup: $GUARD (want an error exit)" eval '[[ $GUARD == "exit "[1-9]* ]]' || return 1
	expect "attach on a missing cgroup exited without a message" [ -s "$TMP/missing.err" ] || return 1
	v1=$(awk '$3 == "cgroup" { print $2; exit }' /proc/mounts)
	if [ -n "$v1" ]; then
		guarded v1 "$SPROXY_BIN" attach "$v1"
		refused v1 "a cgroup v1 hierarchy ($v1)" || return 1
	fi
}

# --- run -------------------------------------------------------------------------

if start_daemon; then pass daemon-start; else fail daemon-start "$WHY" "$TMP/daemon.err"; fi
run_case ipv4-curl t_ipv4_curl
run_case ipv6-curl t_ipv6_curl
run_case ipv4-mapped t_ipv4_mapped
run_case getpeername-v4 t_getpeername gp4 "$V4:8080"
run_case getpeername-v6 t_getpeername gp6 "[$V6]:8080"
run_case keepalive t_keepalive
run_case pipelined t_pipelined
run_case no-user-agent t_no_user_agent
run_case slow-request t_slow_request
run_case user-agent-lowercase t_ua_case
run_case http-1.0 t_http10
run_case large-header t_large_header
run_case body-untouched t_body_untouched
run_case busybox-wget t_busybox_wget
run_case outside-cgroup t_outside_cgroup
run_case direct-listener-v4 t_direct_listener direct-v4 127.0.0.1:3333
run_case direct-listener-v6 t_direct_listener direct-v6 "[::1]:3333"
run_case large-download t_large_download
run_case large-upload t_large_upload
run_case chunked-keepalive t_chunked_keepalive
run_case half-close t_half_close
run_case closed-port t_closed_port
run_case non-http t_non_http
run_case json-log t_json_log
run_case bypass t_bypass
run_case listen t_listen
run_case daemon-in-cgroup t_daemon_in_cgroup
run_case sigterm-detach t_sigterm
run_case sigint-detach t_sigint
run_case relative-cgroup-path t_relative_path
run_case sigkill-detach t_sigkill
[ -n "$DAEMON_PID" ] && { stop_daemon || fail final-stop "$WHY" "$TMP/daemon.err"; }
run_case attach-root-refused t_attach_root
run_case attach-not-cgroup-refused t_attach_not_cgroup
finish
