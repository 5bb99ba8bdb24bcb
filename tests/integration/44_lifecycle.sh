#!/bin/bash
# The daemon's life and its command line. Covers:
#   the command line: every bad value ends with exit status 2 and a message
#     that names it, before anything is loaded (numbers in base 10, CIDR
#     prefixes, FakeIP ranges that would break traffic, a directory as the
#     store, a file as the cgroup, unknown commands and options); a kernel
#     older than 5.18 is refused at start;
#   the ready line: exactly "sproxy-bpf: ready: ..." once capturing, never
#     on a failed start (a listener address in use);
#   SIGHUP: reopens the connection log (logrotate) and keeps running; a new
#     log file is 0600; a log that cannot be written is reported once;
#   --listen for one family: the other family is captured too;
#   the captured cgroup removed: exit status 3 by default; with --reattach,
#     capture resumes when the path comes back;
#   comm: valid UTF-8 stays UTF-8 in JSON, control bytes are escaped on
#     stderr too;
#   no IPv6 loopback in the namespace: the default start is IPv4-only, with
#     a warning.
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
V6=2001:db8::10
CASE_LOGS=("$HTTP_LOG")

setup_topology || finish
setup_cgroup || finish
if ! need curl jq socat setarch "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 "[$V6]:8080" || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" "[$V6]:7" "[$V6]:17" || finish

READY_RE='^sproxy-bpf: ready: '

# tagged PATH COMM PID: the server saw PATH with the daemon's tag.
tagged() {
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	expect "server saw User-Agent '$(http_get "$1" ua)' for $1, not tagged" \
		[ "$(http_get "$1" ua)" = "curl/$CURL_VER $(tag "$2" "$3")" ]
}

# fresh ARGS...: a daemon of its own for the case (start_daemon ARGS),
# whatever became of the previous one.
fresh() {
	if [ -n "$DAEMON_PID" ] && alive "$DAEMON_PID"; then
		stop_daemon 2>/dev/null || kill_daemon
	fi
	kill_daemon
	start_daemon "$@"
}

# try NAME ARGS...: `sproxy-bpf ARGS` through bounded_start (TRY_PRE, an
# array, comes before the binary); TRY_RC is "attached", "hung" or its exit
# status.
try() {
	local name=$1
	shift
	bounded_start "$name" "$READY_RE\|: info: ready: " ${TRY_PRE:+"${TRY_PRE[@]}"} "$SPROXY_BIN" "$@"
	TRY_RC=$BOUNDED
}

# --- the command line ------------------------------------------------------------

# Each row: expected status | a string the message must hold | arguments
# after "attach $CG" (a leading "!" replaces "attach $CG" altogether).
CLI_ROWS=(
	"2|--udp-flows|--udp-flows 0x10"
	"2|--udp-flows|--udp-flows +5"
	"2|--map-size|--map-size 1e5"
	"2|--bypass|--bypass 10.0.0.0/-1"
	"2|--bypass|--bypass 10.0.0.0/+8"
	"2|--bypass|--bypass 10.0.0.0/33"
	"2|--fakeip-range|--fakeip-range 0.0.0.0/0"
	"2|--fakeip-range|--fakeip-range 127.0.0.0/16"
	"2|--fakeip-range|--fakeip-range 224.1.0.0/16"
	"2|--fakeip-range|--fakeip-range 203.0.113.0/28"
	"2|--fakeip-range|--fakeip-range ::/0"
	"2|--fakeip-range|--fakeip-range ff02::/64"
	"2|--fakeip-range|--fakeip-range 2001:db8::/64"
	"2|--fakeip-store|--fakeip-store $TMP"
	"2|--log $TMP/no/such.log|--log $TMP/no/such.log"
	"2|--listen|--listen 127.0.0.1:70000"
	"2|--listen|--listen 192.0.2.99:3333"
	"2|--no-such|--no-such"
	"2|cgroup.procs|!attach $CG/cgroup.procs"
	"2|attach needs a CGROUP|!attach"
	"2|unknown command|!frobnicate $CG"
	"2|Usage|!"
)

t_cli_table() {
	local row rc want args bad="" n=0
	for row in "${CLI_ROWS[@]}"; do
		rc=${row%%|*}
		row=${row#*|}
		want=${row%%|*}
		args=${row#*|}
		n=$((n + 1))
		if [[ $args == '!'* ]]; then
			# shellcheck disable=SC2086
			try "cli$n" ${args#!}
		else
			# shellcheck disable=SC2086
			try "cli$n" attach "$CG" $args
		fi
		if [ "$TRY_RC" != "$rc" ]; then
			bad="$bad [$args: status $TRY_RC, want $rc: $(head -n 1 "$TMP/cli$n.err")]"
		elif ! grep -qF -- "$want" "$TMP/cli$n.err"; then
			bad="$bad [$args: message lacks '$want': $(head -n 1 "$TMP/cli$n.err")]"
		elif grep -q "libbpf:" "$TMP/cli$n.err"; then
			bad="$bad [$args: loaded BPF before refusing]"
		fi
	done
	expect "$bad" [ -z "$bad" ]
}

t_old_kernel() {
	# setarch's UNAME26 makes uname(2) report 2.6.x.
	TRY_PRE=(setarch "$(uname -m)" --uname-2.6)
	try oldkernel attach "$CG"
	TRY_PRE=()
	expect "with uname 2.6.x: status $TRY_RC, want 1: $(head -n 1 "$TMP/oldkernel.err")" \
		[ "$TRY_RC" = 1 ] || return 1
	expect "the message does not name the minimum: $(head -n 1 "$TMP/oldkernel.err")" \
		grep -q "5\.18" "$TMP/oldkernel.err"
}

# --- the ready line --------------------------------------------------------------

t_ready_line() {
	fresh || return 1
	expect "no line starts with 'sproxy-bpf: ready: ': $(grep ready "$TMP/daemon.err")" \
		grep -q "$READY_RE" "$TMP/daemon.err"
}

t_ready_not_on_failure() {
	kill_daemon
	start_bg holder client socat TCP4-LISTEN:3333,bind=127.0.0.1,reuseaddr,fork /dev/null || return 1
	wait_for 5 eval "nsenter --net=/run/netns/$NS_C ss -ltn | grep -q 127.0.0.1:3333" || true
	try inuse attach "$CG"
	stop_bg holder
	expect "a failed start printed a ready line" eval "! grep -q '$READY_RE' '$TMP/inuse.err'" || return 1
	expect "status $TRY_RC with the listener's address in use, want 1" [ "$TRY_RC" = 1 ] || return 1
	expect "no message names the address in use: $(tail -n 2 "$TMP/inuse.err")" \
		grep -q "127.0.0.1:3333.*in use" "$TMP/inuse.err"
}

# --- SIGHUP and the log file --------------------------------------------------------

t_sighup_lives() {
	fresh || return 1
	kill -HUP "$DAEMON_PID"
	sleep 0.5
	expect "SIGHUP killed the daemon" daemon_running || return 1
	ran app_run hup1 curl -sS -m 10 "http://$V4:8080/hup1" || return 1
	tagged /hup1 curl "$RUN_PID" || return 1
	expect_log "pid=$RUN_PID " "result=ok"
}

t_sighup_reopens() {
	daemon_running || return 1
	mv "$TMP/conn.log" "$TMP/conn.log.1"
	kill -HUP "$DAEMON_PID"
	expect "no new log file after SIGHUP" wait_for 5 test -f "$TMP/conn.log" || return 1
	ran app_run hup2 curl -sS -m 10 "http://$V4:8080/hup2" || return 1
	expect_log "pid=$RUN_PID " "result=ok" || return 1
	expect "the line went to the rotated file" eval "! grep -q 'pid=$RUN_PID ' '$TMP/conn.log.1'"
}

t_log_mode() {
	fresh --log "$TMP/fresh.log" || return 1
	expect "a new --log file is mode $(stat -c %a "$TMP/fresh.log"), not 600" \
		[ "$(stat -c %a "$TMP/fresh.log")" = 600 ]
}

t_log_full() {
	fresh --log /dev/full || return 1
	ran app_run full1 curl -sS -m 10 "http://$V4:8080/full1" || return 1
	ran app_run full2 curl -sS -m 10 "http://$V4:8080/full2" || return 1
	expect "the server got no request" wait_http 5 /full2 || return 1
	expect "no message says the log cannot be written" \
		wait_for 5 grep -q "/dev/full.*No space left" "$TMP/daemon.err" || return 1
	sleep 0.5
	expect "the write error was reported $(grep -c "/dev/full" "$TMP/daemon.err") times, not once" \
		[ "$(grep -c "/dev/full.*No space left" "$TMP/daemon.err")" = 1 ] || return 1
	daemon_running
}

# --- one family given ------------------------------------------------------------------

t_listen_v4_only() {
	fresh --listen 127.0.0.1:3344 || return 1
	ran app_run only4 curl -sS -g -m 10 "http://[$V6]:8080/only4" || return 1
	tagged /only4 curl "$RUN_PID"
}

t_listen_v6_only() {
	fresh --listen "[::1]:3345" || return 1
	ran app_run only6 curl -sS -m 10 "http://$V4:8080/only6" || return 1
	tagged /only6 curl "$RUN_PID"
}

# --- comm --------------------------------------------------------------------------------

t_comm_utf8() {
	cp "$(command -v curl)" "$TMP/café" || return 1
	fresh --json || return 1
	ran app_run cafe "$TMP/café" -sS -m 10 "http://$V4:8080/cafe" || return 1
	expect "no JSON line for pid $RUN_PID" wait_for 5 json_lines "$RUN_PID" || return 1
	expect "comm in JSON is '$(json_lines "$RUN_PID" | jq -r .comm)', not café" \
		[ "$(json_lines "$RUN_PID" | jq -r .comm | head -n 1)" = "café" ]
}

# A dry UDP pool names the process on stderr: its control bytes escaped.
t_comm_stderr() {
	local name
	name=$(printf 'e\033[31mx')
	cp "$TOOLS/netclient" "$TMP/$name" || return 1
	fresh --udp-flows 1 --udp-timeout 2 || return 1
	app_run dry "$TMP/$name" udp -t 2 "[$V6]:7" "[$V6]:17"
	expect "no message says the pool is dry" \
		wait_for 5 grep -q "dry" "$TMP/daemon.err" || return 1
	expect "a raw ESC byte reached stderr: $(grep dry "$TMP/daemon.err" | cat -v)" \
		eval "! grep -q $'\033' '$TMP/daemon.err'"
}

# --- the captured cgroup removed ----------------------------------------------------------

GONE=$CG2/sproxy-bpf-test-$TEST_ID-gone

t_cgroup_removed_exit() {
	local rc
	make_cgroup "$GONE" || return 1
	ATTACH_TARGET=$GONE fresh || return 1
	rmdir "$GONE" || return 1
	expect "the daemon runs on 5 s after its cgroup was removed" \
		wait_for 5 eval '! alive '"$DAEMON_PID" || return 1
	wait "$DAEMON_PID"
	rc=$?
	DAEMON_PID=""
	expect "status $rc after the cgroup was removed, want 3" [ "$rc" = 3 ] || return 1
	expect "no message names the removed cgroup: $(tail -n 2 "$TMP/daemon.err")" \
		grep -q "$GONE.*removed" "$TMP/daemon.err"
}

t_cgroup_removed_reattach() {
	local saved=$CG
	[ -d "$GONE" ] || make_cgroup "$GONE" || return 1
	ATTACH_TARGET=$GONE fresh --reattach || return 1
	rmdir "$GONE" || return 1
	expect "no message says the cgroup was removed" \
		wait_for 5 grep -q "$GONE.*removed" "$TMP/daemon.err" || return 1
	expect "the daemon died with its cgroup despite --reattach" daemon_running || return 1
	mkdir "$GONE" || return 1
	expect "no message says capture resumed" \
		wait_for 5 grep -q "$GONE.*attached again" "$TMP/daemon.err" || return 1
	CG=$GONE
	app_run back curl -sS -m 10 "http://$V4:8080/back"
	CG=$saved
	[ "$RUN_RC" = 0 ] || { WHY="curl in the new cgroup failed: $(tail -n 1 "$TMP/back.err")"; return 1; }
	tagged /back curl "$RUN_PID" || return 1
	stop_daemon
}

# --- no IPv6 ------------------------------------------------------------------------------

t_no_ipv6() {
	_ns_sysctl "$NS_C" net.ipv6.conf.all.disable_ipv6 1 || return 1
	fresh || return 1
	expect "no warning says IPv6 is not captured" \
		grep -qi "warning.*IPv6" "$TMP/daemon.err" || return 1
	ran app_run no6 curl -sS -m 10 "http://$V4:8080/no6" || return 1
	tagged /no6 curl "$RUN_PID" || return 1
	stop_daemon
}

run_case cli-bad-values-exit-2 t_cli_table
run_case kernel-too-old t_old_kernel
run_case ready-line t_ready_line
run_case ready-not-on-failure t_ready_not_on_failure
run_case sighup-keeps-running t_sighup_lives
run_case sighup-reopens-log t_sighup_reopens
run_case log-file-mode-0600 t_log_mode
run_case log-write-error-once t_log_full
run_case listen-v4-only-captures-v6 t_listen_v4_only
run_case listen-v6-only-captures-v4 t_listen_v6_only
run_case comm-utf8-in-json t_comm_utf8
run_case comm-escaped-on-stderr t_comm_stderr
run_case cgroup-removed-exits t_cgroup_removed_exit
run_case cgroup-removed-reattach t_cgroup_removed_reattach
run_case no-ipv6-starts-ipv4-only t_no_ipv6
[ -n "$DAEMON_PID" ] && kill_daemon
finish
