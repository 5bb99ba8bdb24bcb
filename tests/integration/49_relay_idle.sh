#!/bin/bash
# A relay between requests holds no parser, buffer or timer of its own
# (relay.h): they are made again when the next bytes come. On one
# keep-alive connection with pauses between its requests (the relay at rest
# each time), every request is still tagged exactly once, a header that
# arrives in two parts with a pause between them too; a second request
# whose header never ends is still cut at --header-timeout, and logged; the
# connection's log line counts the bytes of all its requests.
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
PY=/usr/bin/python3
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need "$PY" "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish

# The client: MODE ka sends /ka1, /ka2 (its header in two parts) and /ka3
# on one connection, pausing before each send, and prints "ok SENT"; MODE
# stall sends /st1, then a header for /st2 that never ends, and waits up to
# 15 s for the proxy to end the connection ("ended after SEC", exit 0).
cat >"$TMP/ka.py" <<'PYEOF'
import socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
sent = 0
def send(b):
    global sent
    s.sendall(b)
    sent += len(b)
def req(path):
    return ("GET %s HTTP/1.1\r\nHost: t\r\nUser-Agent: ka/1\r\n\r\n" % path).encode()
def response():
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            sys.exit("EOF in a response header")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            sys.exit("EOF in a response body")
        body += d
if mode == "ka":
    for path in ("/ka1", "/ka2", "/ka3"):
        time.sleep(0.4)
        r = req(path)
        if path == "/ka2":
            send(r[:20])
            time.sleep(0.4)
            r = r[20:]
        send(r)
        response()
    print("ok", sent)
else:
    send(req("/st1"))
    response()
    time.sleep(0.4)
    send(b"GET /st2 HTTP/1.1\r\nHost: t\r\n")
    t0 = time.time()
    s.settimeout(15)
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        sys.exit(3)
    except OSError:
        pass
    print("ended after %.1f" % (time.time() - t0))
PYEOF

# tagged_once PATH PID: the server saw PATH with "ka/1 TAG", one User-Agent.
tagged_once() {
	local want ua
	want="ka/1 $(tag python3 "$2")"
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	ua=$(http_get "$1" ua)
	expect "server saw User-Agent '$ua' for $1, want '$want'" [ "$ua" = "$want" ] || return 1
	expect "server saw $(http_get "$1" uas) User-Agent headers for $1, want 1" \
		[ "$(http_get "$1" uas)" = 1 ]
}

t_keepalive_at_rest() {
	local sent up logged
	daemon_running || return 1
	ran app_run ka "$PY" "$TMP/ka.py" ka $V4 8080 || return 1
	tagged_once /ka1 "$RUN_PID" && tagged_once /ka2 "$RUN_PID" &&
		tagged_once /ka3 "$RUN_PID" || return 1
	logged=$(wait_log 5 "pid=$RUN_PID " "result=ok" && log_line "pid=$RUN_PID " | head -n 1)
	expect "no log line for pid $RUN_PID with result=ok" [ -n "$logged" ] || return 1
	# up= counts what the client sent (the tags are added after counting)
	sent=$(awk '{ print $2 }' "$TMP/ka.out")
	up=$(field "$logged" up)
	expect "the log says up=$up, the client sent $sent bytes: $logged" [ "$up" = "$sent" ]
}

t_second_header_deadline() {
	restart_daemon --header-timeout 2 || return 1
	ran app_run stall "$PY" "$TMP/ka.py" stall $V4 8080 || return 1
	tagged_once /st1 "$RUN_PID" || return 1
	expect_log "pid=$RUN_PID " "result=error" "header not complete after 2s"
}

start_daemon || { fail daemon-start "$WHY"; finish; }
run_case keepalive-at-rest t_keepalive_at_rest
run_case second-header-deadline t_second_header_deadline
finish
