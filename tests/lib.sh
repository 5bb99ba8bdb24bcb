# shellcheck shell=bash
# Integration test library, sourced by every tests/integration/*.sh and by
# tests/demo.sh. The project's testing rules (TESTING.md) live here:
#   - the only cgroups touched are <cg2>/sproxy-bpf-test-<pid>-*, made here
#     and removed by the EXIT trap;
#   - every process runs in the namespaces sbt<pid>c (client: apps and the
#     daemon) and sbt<pid>s ("remote" servers), made here, joined with
#     nsenter; they have no default route, only the documentation prefixes
#     192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32;
#   - nothing changes in the root network namespace;
#   - every wait is bounded, every process started is killed by pid, then
#     whatever still lives in our namespaces.
#
# Topology (one veth pair):
#   sbt<pid>c  eth0 203.0.113.1/24  2001:db8::1/64
#              routes 198.51.100.0/24, 192.0.2.0/24 via 203.0.113.10,
#                     2001:db8::11 via 2001:db8::10
#   sbt<pid>s  eth0 203.0.113.10/24 203.0.113.11/32 198.51.100.53/32
#                   2001:db8::10/64 2001:db8::11/128
#
# A script does:
#   . "$(dirname "$0")/../lib.sh"
#   setup_topology && setup_cgroup
#   start_bg web server "$TOOLS/httpd" -o "$TMP/http.log" 203.0.113.10:8080
#   start_daemon
#   run_case NAME function_name      # or pass/fail/check directly
#   finish
# and every case prints exactly one "PASS name" or "FAIL name: why" line.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
TOOLS=$ROOT/build/tools
SPROXY_BIN=${SPROXY_BIN:-./sproxy-bpf}
case $SPROXY_BIN in /*) ;; *) SPROXY_BIN=$ROOT/${SPROXY_BIN#./} ;; esac
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
TEST_ID=$$
NS_C=sbt${TEST_ID}c
NS_S=sbt${TEST_ID}s
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=${CG2:+$CG2/sproxy-bpf-test-$TEST_ID-app}
TMP=$(mktemp -d "/tmp/sproxy-bpf-$TEST_NAME.XXXXXX") || exit 2
RESOLV_CONF=""		# set to a file: in_app/in_client then see it as /etc/resolv.conf
NPASS=0
NFAIL=0
BG_PIDS=()		# every process start_bg started
DAEMON_PID=""
DAEMON_PIDS=()		# every daemon started: their own cgroups are removed at exit
MADE_CGROUPS=()
MADE_NETNS=()
WHY=""
RUN_RC=0
RUN_PID=""
CASE_LOGS=()		# more files whose tails a failing case shows (server logs)
LAST_RUN=""

# --- reporting ---------------------------------------------------------------

pass() { echo "PASS $TEST_NAME/$1"; NPASS=$((NPASS + 1)); }

# fail NAME WHY [FILE...]: the FAIL line, then the tails of FILEs for context.
fail() {
	local name=$1 why=$2 f
	shift 2
	echo "FAIL $TEST_NAME/$name: $why"
	NFAIL=$((NFAIL + 1))
	for f in "$@"; do
		[ -s "$f" ] || continue
		echo "    --- ${f#"$TMP"/} (last lines)"
		tail -n 8 "$f" | sed 's/^/    | /'
	done
}

# check NAME CMD...: PASS if CMD succeeds, else FAIL with its last output line.
check() {
	local name=$1
	shift
	if "$@" >"$TMP/check.out" 2>&1; then
		pass "$name"
	else
		fail "$name" "\`$*\` failed: $(tail -n 1 "$TMP/check.out")"
	fi
}

# Inside a case function: `expect WHY CMD...` runs CMD and, when it fails,
# records WHY so that run_case can report it. Use as `expect ... || return 1`.
expect() {
	local why=$1
	shift
	"$@" && return 0
	WHY=$why
	return 1
}

# ran app_run|client_run NAME CMD...: the run, and on failure WHY names the
# command, its exit status and the last line it printed.
ran() {
	"$@" && return 0
	local last
	last=$(tail -n 1 "$TMP/$LAST_RUN.err" 2>/dev/null)
	[ -n "$last" ] || last=$(tail -n 1 "$TMP/$LAST_RUN.out" 2>/dev/null)
	WHY="${3##*/} ($2) failed with exit $RUN_RC: $last"
	return 1
}

# run_case NAME FUNCTION [ARGS...]: runs the case in this shell (it may start
# and stop daemons) and prints its PASS/FAIL line. With CASES="NAME..." in
# the environment, only those cases run (later ones may need earlier ones). On failure, the tails of
# the daemon's stderr and connection log and of the server logs follow.
run_case() {
	local name=$1
	shift
	# CASES="a b" runs only those cases (a debugging aid, said out loud).
	if [ -n "${CASES:-}" ] && [[ " $CASES " != *" $name "* ]]; then
		echo "skipped $TEST_NAME/$name (CASES=$CASES)" >&2
		return 0
	fi
	WHY=""
	LAST_RUN=""
	if "$@"; then
		pass "$name"
	else
		fail "$name" "${WHY:-$1 returned non-zero}" "$TMP/daemon.err" "$TMP/conn.log" \
			"${CASE_LOGS[@]}" ${LAST_RUN:+"$TMP/$LAST_RUN.out" "$TMP/$LAST_RUN.err"}
	fi
}

# finish: exit status for tests/run.
finish() {
	[ "$NFAIL" -eq 0 ]
	exit $?
}

# --- small helpers -------------------------------------------------------------

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local tries=$(($1 * 10))
	shift
	while [ "$tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# need TOOL...: every named program is installed (for a FAIL with a reason).
need() {
	local t missing=""
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || [ -x "$t" ] || missing="$missing $t"
	done
	[ -z "$missing" ] && return 0
	WHY="missing:$missing (run 'make deps-test tools')"
	return 1
}

# line_with FILE STRING...: some line of FILE contains every STRING (fixed
# strings, in any order). Prints that line.
line_with() {
	local file=$1
	shift
	[ -f "$file" ] || return 1
	awk 'BEGIN { for (i = 2; i < ARGC; i++) want[i] = ARGV[i]; n = ARGC; ARGC = 2 }
	     { ok = 1; for (i = 2; i < n; i++) if (index($0, want[i]) == 0) { ok = 0; break }
	       if (ok) { print; found = 1 } }
	     END { exit !found }' "$file" "$@"
}

# count_with FILE STRING...: how many lines contain every STRING.
count_with() {
	local n
	n=$(line_with "$@" | wc -l)
	echo "$n"
}

# log_line STRING...: the daemon's connection log has a line with all STRINGs.
log_line() { line_with "$TMP/conn.log" "$@"; }

# wait_log SECONDS STRING...: waits for such a line (connections are logged
# when they close, a moment after the client exits).
wait_log() {
	local secs=$1
	shift
	wait_for "$secs" line_with "$TMP/conn.log" "$@" >/dev/null
}

# expect_log STRING...: like wait_log (5 s), but on failure WHY says which
# STRINGs the line of the same pid= lacks, or that there is no line at all.
expect_log() {
	wait_log 5 "$@" && return 0
	local a pidarg="" line missing=""
	for a in "$@"; do [[ $a == pid=* ]] && pidarg=$a; done
	line=$([ -n "$pidarg" ] && log_line "$pidarg" | head -n 1)
	if [ -n "$line" ]; then
		for a in "$@"; do [[ $line == *"$a"* ]] || missing="$missing '$a'"; done
		WHY="the log line for ${pidarg% } lacks$missing: $line"
	else
		WHY="no connection-log line with: $(printf "'%s' " "$@")"
	fi
	return 1
}

# json_lines PID: the lines of a --json log whose pid is PID (number or string).
json_lines() {
	jq -cR --arg p "$1" 'fromjson? | select((.pid | tostring) == $p)' "$TMP/conn.log" 2>/dev/null | grep .
}

# field LINE KEY: the value of KEY=VALUE in a text log line ("" if absent).
field() {
	local v=" $1"
	case $v in *" $2="*) ;; *) return 1 ;; esac
	v=${v#*" $2="}
	echo "${v%% *}"
}

# The test httpd's log ($HTTP_LOG, one tab-separated line per request, see
# tests/tools/httpd.c), looked up by request path; tests give every request
# a path of its own.
HTTP_LOG=$TMP/http.log
http_count() { awk -F'\t' -v p="$1" '$2 == p { n++ } END { print n + 0 }' "$HTTP_LOG" 2>/dev/null; }
http_has() { [ "$(http_count "$1")" -gt 0 ]; }
# http_get PATH KEY [N]: KEY's value in the Nth (default: last) request for PATH.
http_get() {
	awk -F'\t' -v p="$1" -v k="$2=" -v want="${3:-0}" '
		$2 == p { n++; for (i = 3; i <= NF; i++) if (index($i, k) == 1) { v[n] = substr($i, length(k) + 1); has[n] = 1 } }
		END { if (want == 0) want = n; if (!has[want]) exit 1; print v[want] }' "$HTTP_LOG" 2>/dev/null
}
# wait_http SECONDS PATH: the server logs a request after answering it, so
# the client may be done a moment before the line is there.
wait_http() { wait_for "$1" http_has "$2"; }

# tag COMM PID: what the daemon appends to a User-Agent.
tag() { echo "sproxy-bpf (comm=$1; pid=$2)"; }

# --- topology ------------------------------------------------------------------

_ns_sysctl() { # NS KEY VALUE: net sysctls are per namespace; /proc/sys follows the writer's netns
	nsenter --net="/run/netns/$1" sh -c "echo $3 > /proc/sys/${2//.//}"
}

setup_topology() {
	local ns
	need ip nsenter || { echo "FAIL $TEST_NAME/setup: $WHY"; NFAIL=$((NFAIL + 1)); return 1; }
	for ns in "$NS_C" "$NS_S"; do
		ip netns add "$ns" || { _setup_fail "ip netns add $ns"; return 1; }
		MADE_NETNS+=("$ns")
		if [ -d /proc/sys/net/ipv6 ]; then
			_ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 0
			_ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 0
			_ns_sysctl "$ns" net.ipv6.conf.default.accept_dad 0
		fi
		ip -n "$ns" link set lo up || { _setup_fail "lo up in $ns"; return 1; }
	done
	# Created inside the client namespace, peer moved straight to the server
	# one: the veth never exists in the root namespace.
	ip -n "$NS_C" link add eth0 type veth peer name eth0 netns "$NS_S" &&
	ip -n "$NS_C" addr add 203.0.113.1/24 dev eth0 &&
	ip -n "$NS_C" addr add 2001:db8::1/64 dev eth0 nodad &&
	ip -n "$NS_S" addr add 203.0.113.10/24 dev eth0 &&
	ip -n "$NS_S" addr add 203.0.113.11/32 dev eth0 &&
	ip -n "$NS_S" addr add 198.51.100.53/32 dev eth0 &&
	ip -n "$NS_S" addr add 2001:db8::10/64 dev eth0 nodad &&
	ip -n "$NS_S" addr add 2001:db8::11/128 dev eth0 nodad &&
	ip -n "$NS_C" link set eth0 up &&
	ip -n "$NS_S" link set eth0 up &&
	ip -n "$NS_C" route add 198.51.100.0/24 via 203.0.113.10 &&
	ip -n "$NS_C" route add 192.0.2.0/24 via 203.0.113.10 &&
	ip -n "$NS_C" -6 route add 2001:db8::11/128 via 2001:db8::10 ||
		{ _setup_fail "configuring the veth pair"; return 1; }
	# Carrier on both ends; the addresses are usable at once (nodad).
	wait_for 5 eval "ip -n $NS_C link show eth0 | grep -q LOWER_UP && ip -n $NS_S link show eth0 | grep -q LOWER_UP" ||
		{ _setup_fail "veth link did not come up"; return 1; }
}

_setup_fail() {
	echo "FAIL $TEST_NAME/setup: $1"
	NFAIL=$((NFAIL + 1))
}

# setup_cgroup: <cg2>/sproxy-bpf-test-<pid>-app, the cgroup the daemon attaches to.
setup_cgroup() {
	[ -n "$CG2" ] || { _setup_fail "no cgroup2 mount in /proc/mounts"; return 1; }
	make_cgroup "$CG" || { _setup_fail "mkdir $CG"; return 1; }
}

# make_cgroup PATH: creates a test cgroup (must be ours: sproxy-bpf-test-<pid>-*)
# and remembers it for cleanup.
make_cgroup() {
	case $1 in "$CG2"/sproxy-bpf-test-"$TEST_ID"-*) ;; *) echo "refusing to create $1" >&2; return 1 ;; esac
	mkdir "$1" || return 1
	MADE_CGROUPS+=("$1")
}

# --- running things --------------------------------------------------------------

# The code every process runs before it becomes the command: join the app
# cgroup (app only), optionally record its pid and bind a resolv.conf, enter
# the network namespace, exec. The pid never changes along the way (bash,
# unshare and nsenter all exec), so the recorded pid is the command's.
# Arguments: WHERE CGROUP NETNS PIDFILE RESOLV CMD...
# shellcheck disable=SC2016
_ENTER='
	where=$1 cg=$2 ns=$3 pidfile=$4 resolv=$5
	shift 5
	if [ "$where" = app ]; then
		echo $$ > "$cg/cgroup.procs" || { echo "cannot join $cg" >&2; exit 125; }
	fi
	[ -n "$pidfile" ] && echo $$ > "$pidfile"
	if [ -n "$resolv" ]; then
		exec unshare -m --propagation private -- bash -c '\''
			mount --bind "$1" /etc/resolv.conf || exit 125
			ns=$2
			shift 2
			exec nsenter --net="$ns" -- "$@"'\'' _ "$resolv" "/run/netns/$ns" "$@"
	fi
	exec nsenter --net="/run/netns/$ns" -- "$@"
'

_where_ns() {
	case $1 in
	app | client) echo "$NS_C" ;;
	server) echo "$NS_S" ;;
	*) echo "unknown place $1" >&2; return 1 ;;
	esac
}

# in_app CMD...: CMD inside the app cgroup and the client namespace (captured).
# in_client CMD...: client namespace, outside the cgroup (not captured).
# in_server CMD...: server namespace.
# With PIDFILE=FILE in the environment, FILE gets the command's pid.
in_app() { bash -c "$_ENTER" _ app "$CG" "$NS_C" "${PIDFILE:-}" "$RESOLV_CONF" "$@"; }
in_client() { bash -c "$_ENTER" _ client "$CG" "$NS_C" "${PIDFILE:-}" "$RESOLV_CONF" "$@"; }
in_server() { bash -c "$_ENTER" _ server "$CG" "$NS_S" "${PIDFILE:-}" "" "$@"; }

# app_run NAME CMD... / client_run NAME CMD...: runs CMD (in_app / in_client)
# in the foreground with stdout in $TMP/NAME.out, stderr in $TMP/NAME.err and
# its pid in $TMP/NAME.pid; RUN_PID is that pid, RUN_RC its exit status,
# which is also returned. Failing cases show these files.
app_run() { _run in_app "$@"; }
client_run() { _run in_client "$@"; }
_run() {
	local how=$1 name=$2
	shift 2
	LAST_RUN=$name
	rm -f "$TMP/$name.pid"
	PIDFILE=$TMP/$name.pid "$how" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
	RUN_RC=$?
	RUN_PID=$(cat "$TMP/$name.pid" 2>/dev/null)
	return $RUN_RC
}

# start_bg NAME WHERE CMD...: starts CMD in the background (WHERE = app,
# client or server) with stdout/stderr in $TMP/NAME.out/.err; its real pid
# goes to BG_PIDS and $TMP/NAME.pid. If CMD prints "ready" (our tools do),
# waits for it (10 s).
start_bg() {
	local name=$1 where=$2 ns pid
	shift 2
	ns=$(_where_ns "$where") || return 1
	local resolv=$RESOLV_CONF
	[ "$where" = server ] && resolv=""
	: >"$TMP/$name.out"
	: >"$TMP/$name.err"
	# A simple command in the background: $! is the process itself, which
	# execs its way to CMD.
	bash -c "$_ENTER" _ "$where" "$CG" "$ns" "" "$resolv" "$@" \
		>"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	pid=$!
	BG_PIDS+=("$pid")
	echo "$pid" >"$TMP/$name.pid"
	case ${1##*/} in
	httpd | echod)
		if ! wait_for 10 grep -q '^ready' "$TMP/$name.out"; then
			_setup_fail "$name ($*) did not start: $(tail -n 3 "$TMP/$name.err")"
			return 1
		fi ;;
	esac
}

# stop_bg NAME: SIGTERM, bounded wait, SIGKILL.
stop_bg() {
	local pid
	pid=$(cat "$TMP/$1.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	wait_for 5 eval '! alive '"$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$TMP/$1.pid"
	return 0
}

# --- the daemon --------------------------------------------------------------------

# start_daemon [--in-app] [ARGS...]: `sproxy-bpf attach $CG --log $TMP/conn.log
# ARGS` in the client namespace (in the app cgroup with --in-app), stderr in
# $TMP/daemon.err. Waits up to 10 s for "ready". DAEMON_PID is its pid.
# The log file starts empty. ATTACH_TARGET, if set, replaces $CG on the
# command line (another spelling of the same cgroup).
start_daemon() {
	local where=client
	if [ "${1:-}" = --in-app ]; then
		where=app
		shift
	fi
	DAEMON_PID=""
	if [ ! -x "$SPROXY_BIN" ]; then
		WHY="daemon binary $SPROXY_BIN not found (run 'make')"
		return 1
	fi
	# Emptied here, not by the child's redirection, which may come too late:
	# the previous daemon's "ready" must not count for this one.
	: >"$TMP/conn.log"
	: >"$TMP/daemon.err"
	bash -c "$_ENTER" _ "$where" "$CG" "$NS_C" "" "$RESOLV_CONF" \
		"$SPROXY_BIN" attach "${ATTACH_TARGET:-$CG}" --log "$TMP/conn.log" "$@" \
		>"$TMP/daemon.out" 2>"$TMP/daemon.err" </dev/null &
	DAEMON_PID=$!
	DAEMON_PIDS+=("$DAEMON_PID")
	BG_PIDS+=("$DAEMON_PID")
	if ! wait_for 10 eval 'grep -qw ready "$TMP/daemon.err" || ! alive $DAEMON_PID'; then
		WHY="daemon printed no 'ready' within 10 s: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')"
		kill_daemon
		return 1
	fi
	if ! alive "$DAEMON_PID"; then
		wait "$DAEMON_PID"
		WHY="daemon exited with status $? before 'ready': $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')"
		DAEMON_PID=""
		return 1
	fi
	if ! grep -qw ready "$TMP/daemon.err"; then
		WHY="daemon exited without 'ready'"
		return 1
	fi
}

# stop_daemon: SIGTERM, waits up to 10 s; succeeds only on exit status 0
# (an ASan build exits non-zero on a leak). DAEMON_RC holds the status.
stop_daemon() {
	local pid=$DAEMON_PID
	DAEMON_RC=""
	[ -n "$pid" ] || { WHY="no daemon running"; return 1; }
	kill -TERM "$pid" 2>/dev/null
	if ! wait_for 10 eval '! alive '"$pid"; then
		WHY="daemon (pid $pid) still running 10 s after SIGTERM"
		kill_daemon
		return 1
	fi
	wait "$pid"
	DAEMON_RC=$?
	DAEMON_PID=""
	if [ "$DAEMON_RC" -ne 0 ]; then
		WHY="daemon exited with status $DAEMON_RC after SIGTERM: $(tail -n 2 "$TMP/daemon.err" | tr '\n' ' ')"
		return 1
	fi
}

# kill_daemon: SIGKILL, bounded wait (no status check).
kill_daemon() {
	local pid=$DAEMON_PID
	[ -n "$pid" ] || return 0
	# Killed and reaped at once: a SIGKILLed process dies promptly, and bash
	# prints no "Killed" job notice for a child reaped by wait.
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	DAEMON_PID=""
	return 0
}

# restart_daemon ARGS...: stop the running daemon (if any), start a new one.
restart_daemon() {
	if [ -n "$DAEMON_PID" ]; then
		stop_daemon || return 1
	fi
	start_daemon "$@"
}

# daemon_running: for cases that need it; sets WHY.
daemon_running() {
	[ -n "$DAEMON_PID" ] && alive "$DAEMON_PID" && return 0
	if [ -z "$DAEMON_PID" ]; then
		WHY="no daemon running (it did not start, see above)"
	else
		WHY="the daemon (pid $DAEMON_PID) died: $(tail -n 2 "$TMP/daemon.err" 2>/dev/null | tr '\n' ' ')"
	fi
	return 1
}

# attached_progs CGROUP: the programs bpftool lists on CGROUP (one per line).
attached_progs() {
	bpftool cgroup show "$1" 2>/dev/null | awk '$1 ~ /^[0-9]+$/'
}

# --- cleanup -------------------------------------------------------------------------

cleanup() {
	local pid ns cg i
	set +e
	# Our processes, by pid: first politely, then not.
	for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for i in $(seq 50); do
		local left=0
		for pid in "${BG_PIDS[@]}"; do alive "$pid" && left=1; done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for pid in "${BG_PIDS[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
	# Whatever else lives in our namespaces (forked servers, stray clients).
	for i in $(seq 50); do
		local left=0
		for ns in "${MADE_NETNS[@]}"; do
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null
				left=1
			done
		done
		[ $left = 0 ] && break
		sleep 0.1
	done
	# Our cgroups, deepest first. A process still inside is ours (only our
	# commands join them): kill it, move it out to the root, then rmdir.
	for ((i = ${#MADE_CGROUPS[@]} - 1; i >= 0; i--)); do
		cg=${MADE_CGROUPS[i]}
		[ -d "$cg" ] || continue
		local d
		while read -r d; do
			_empty_cgroup "$d"
			rmdir "$d" 2>/dev/null
		done < <(find "$cg" -mindepth 1 -depth -type d 2>/dev/null)
		_empty_cgroup "$cg"
		wait_for 5 rmdir "$cg" || echo "cleanup: could not remove $cg" >&2
	done
	# The cgroups our daemons made for themselves (<cg2>/sproxy-bpf/<pid>):
	# left behind after a SIGKILL; empty once the daemon is dead.
	for pid in "${DAEMON_PIDS[@]}"; do
		[ -d "$CG2/sproxy-bpf/$pid" ] && ! alive "$pid" && rmdir "$CG2/sproxy-bpf/$pid" 2>/dev/null
	done
	for ns in "${MADE_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null || echo "cleanup: could not delete netns $ns" >&2
	done
	wait 2>/dev/null
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}

# bounded_start NAME READY_RE CMD...: runs CMD (a daemon that should not
# attach, or should stop at once) in the client namespace and cgroup, for
# at most 5 s.  Should a line of its stderr match READY_RE (it attached!),
# it is SIGKILLed at once (its bpf_links die with it) and BOUNDED is
# "attached"; still running after 5 s, it is killed and BOUNDED is "hung";
# else BOUNDED is its exit status.  Output in $TMP/NAME.out and .err.
bounded_start() {
	local name=$1 ready=$2 pid i
	shift 2
	LAST_RUN=$name
	: >"$TMP/$name.err"
	bash -c "$_ENTER" _ client "$CG" "$NS_C" "" "" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	pid=$!
	BG_PIDS+=("$pid")
	DAEMON_PIDS+=("$pid")
	BOUNDED=hung
	for i in $(seq 500); do
		if grep -q "$ready" "$TMP/$name.err"; then
			BOUNDED=attached
			break
		fi
		alive "$pid" || break
		sleep 0.01
	done
	if [ "$BOUNDED" != hung ] || alive "$pid"; then
		# Reaped right here by wait: no "Killed" job notice.
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 0
	fi
	wait "$pid" 2>/dev/null
	BOUNDED=$?
}

_empty_cgroup() {
	local pid
	[ -f "$1/cgroup.procs" ] || return 0
	for pid in $(cat "$1/cgroup.procs" 2>/dev/null); do
		kill -KILL "$pid" 2>/dev/null
		echo "$pid" >"$CG2/cgroup.procs" 2>/dev/null
	done
	wait_for 5 sh -c "! [ -s '$1/cgroup.procs' ]"
}

trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# danted_conf FILE ADDR PORT [COMMANDS]: a danted (SOCKS5) that listens on
# ADDR:PORT, relays from ADDR, asks no credentials, logs to FILE.log and
# runs as root; COMMANDS default to "connect udpassociate udpreply".
danted_conf() {
	cat >"$1" <<EOF
logoutput: $1.log
internal: $2 port = $3
external: $2
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: root
client pass {
	from: 0.0.0.0/0 to: 0.0.0.0/0
}
socks pass {
	from: 0.0.0.0/0 to: 0.0.0.0/0
	command: ${4:-connect udpassociate udpreply}
	log: connect
}
EOF
}
