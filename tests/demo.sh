#!/bin/bash
# `make demo`: sproxy-bpf in one minute, in a sandbox that is removed
# afterwards. Builds two network namespaces and a test cgroup (see
# tests/lib.sh), runs a web server on the "remote" side, attaches the daemon
# to the cgroup, runs curl inside it, and shows what the server and the
# daemon saw. Nothing outside the sandbox is touched.
TEST_NAME=demo
. "$(dirname "$0")/lib.sh"

B="" N=""
[ -t 1 ] && B=$(tput bold 2>/dev/null) N=$(tput sgr0 2>/dev/null)
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
die() {
	printf '\n%sdemo failed:%s %s\n' "$B" "$N" "$*" >&2
	[ -s "$TMP/daemon.err" ] && sed 's/^/    daemon: /' "$TMP/daemon.err" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (BPF programs and network namespaces need it): sudo make demo"
need curl dig "$TOOLS/httpd" "$TOOLS/netclient" || die "$WHY"
[ -x "$SPROXY_BIN" ] || die "$SPROXY_BIN is missing: run 'make' first"

step "A sandbox: two network namespaces and a cgroup"
setup_topology >/dev/null || die "could not create the network namespaces"
setup_cgroup >/dev/null || die "could not create the cgroup $CG"
say "client side  $NS_C: 203.0.113.1     (apps and sproxy-bpf run here)"
say "server side  $NS_S: 203.0.113.10    (the \"internet\")"
say "test cgroup  $CG"

step "A web server on http://203.0.113.10:8080/ (server side)"
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" 203.0.113.10:8080 >/dev/null || die "the web server did not start"
say "it logs the User-Agent of every request it gets"

step "Attaching sproxy-bpf to the cgroup"
say "\$ sproxy-bpf attach $CG --resolver 198.51.100.53 --log conn.log"
start_daemon --resolver 198.51.100.53 || die "$WHY"
say "$(grep -w -m1 ready "$TMP/daemon.err")"

step "curl, run inside the cgroup"
say "\$ curl http://203.0.113.10:8080/hello"
app_run curl curl -sS -m 10 http://203.0.113.10:8080/hello || die "curl failed: $(cat "$TMP/curl.err")"
say "(curl's pid was $RUN_PID)"
CURL_PID=$RUN_PID
wait_http 5 /hello || die "the server got no request"
say "the server saw  User-Agent: $(http_get /hello ua)"

step "The daemon's connection log"
wait_log 5 "pid=$CURL_PID " || die "no log line for curl"
log_line "pid=$CURL_PID " | sed 's/^/    /'

step "What the app sees: the address it connected to"
app_run peer "$TOOLS/netclient" tcp 203.0.113.10:8080 >/dev/null
say "$(head -n 1 "$TMP/peer.out")"

step "DNS inside the cgroup: FakeIP"
app_run dig dig +short +time=3 +tries=1 @192.0.2.53 example.test
say "\$ dig @192.0.2.53 example.test   ->  $(head -n 1 "$TMP/dig.out")"
say "(nothing listens on 192.0.2.53: the daemon answered, from 198.18.0.0/15)"

step "The same curl outside the cgroup, for comparison"
client_run outside curl -sS -m 10 http://203.0.113.10:8080/outside >/dev/null
wait_http 5 /outside
say "the server saw  User-Agent: $(http_get /outside ua)   (not captured)"

step "What happened"
cat <<EOF
    1. curl called connect(203.0.113.10:8080). A BPF program attached to the
       cgroup (cgroup/connect4) rewrote the destination to the daemon's
       listener, 127.0.0.1:3333, and recorded the original one together with
       the process: pid, comm, uid, cgroup.
    2. The daemon accepted the connection, looked up that record, connected
       to 203.0.113.10:8080 itself, appended "sproxy-bpf (comm=curl; pid=...)"
       to the request's User-Agent, relayed the bytes, and wrote one log line
       when the connection closed.
    3. curl never noticed: getpeername() still says 203.0.113.10:8080. No
       iptables rule, no LD_PRELOAD, and it works for static binaries too.
    Processes outside the cgroup are not touched at all.
EOF

step "Cleaning up"
stop_daemon || die "$WHY"
say "sproxy-bpf detached (exit status 0); namespaces, cgroup and servers go next"
# The EXIT trap (tests/lib.sh) removes the rest.
