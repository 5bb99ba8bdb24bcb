#!/bin/bash
# The control socket, `status` and `top`. The daemons keep their sockets in
# a directory of this test's (--control-dir, and $SPROXY_BPF_CONTROL_DIR for
# the clients), so that the machine's /run/sproxy-bpf is not touched.
# Covers:
#   the socket: <dir>/<pid>.sock, a socket, mode 0600, root's; a client
#     that is not root is refused; an unknown request gets a JSON error; a
#     client that sends nothing is closed after 5 s and blocks no other;
#     removed when the daemon stops, and a killed daemon's is swept;
#   status --json (checked with jq) against connections the test holds
#     open: a TCP connection to an address and one to a name (FakeIP), a
#     UDP flow: the right pid, comm, uid, destination, host and bytes each
#     way; the cgroup and programs attached; counters and fill levels;
#   status as text: readable, with the same process and destinations;
#   a connection through an upstream proxy names it (via);
#   two daemons (the second given its directory in a config file): two
#     sockets; status without --pid lists both and exits 2;
#     --pid and --socket pick one;
#   top: in a terminal (under script) it shows the captured process and
#     exits on q or Ctrl-C, the terminal restored, and gives it back on
#     Ctrl-Z until continued; not in a terminal, -n 2 prints two
#     frames and exits; a busy process comes first, with its rate.
. "$(dirname "$0")/../lib.sh"

RESOLVER=198.51.100.53
CTL=$TMP/ctl
export SPROXY_BPF_CONTROL_DIR=$CTL
CASE_LOGS=("$TMP/status.err" "$TMP/status.out")

setup_topology || finish
setup_cgroup || finish
if ! need jq socat script setpriv dnsmasq microsocks "$TOOLS/echod"; then
	fail setup "$WHY"
	finish
fi
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --address=/name.test/203.0.113.10 || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" 203.0.113.10:7 "[2001:db8::10]:7" || finish
start_bg socks server microsocks -i 203.0.113.11 -p 1080 -b 203.0.113.11 || finish
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf
mkdir -m 0700 "$CTL"

# st ARGS...: `sproxy-bpf status ARGS`, stdout in $TMP/status.out, stderr
# in $TMP/status.err; its exit status.
st() { timeout 10 "$SPROXY_BIN" status "$@" >"$TMP/status.out" 2>"$TMP/status.err"; }

# jqs FILTER: FILTER (with $p the held process's pid) is true of the
# daemon's document.
jqs() { st --json && jq -e --argjson p "${HOLD_PID:-0}" "$1" "$TMP/status.out" >/dev/null; }

# The held connections: an echo over TCP to an address, over TCP to a name,
# over UDP; each sends its bytes and stays open (echod ends a TCP
# connection idle for 30 s: the cases that look for them come first).
hold() {
	start_bg "$1" app socat SYSTEM:"printf $2; sleep 60" "$3" || return 1
}

start_daemon --resolver $RESOLVER --control-dir "$CTL"
D1=$DAEMON_PID
SOCK=$CTL/$D1.sock

t_socket() {
	daemon_running || return 1
	expect "no socket $SOCK" [ -S "$SOCK" ] || return 1
	expect "mode $(stat -c %a "$SOCK"), not 600" [ "$(stat -c %a "$SOCK")" = 600 ] || return 1
	expect "owner $(stat -c %U "$SOCK"), not root" [ "$(stat -c %U "$SOCK")" = root ]
}

t_not_root() {
	local rc
	timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$SPROXY_BIN" status --socket "$SOCK" >"$TMP/status.out" 2>"$TMP/status.err"
	rc=$?
	expect "status as uid 65534 exited $rc" [ $rc = 1 ] || return 1
	expect "no 'Permission denied' said: $(cat "$TMP/status.err")" \
		grep -q 'Permission denied.*root' "$TMP/status.err"
}

t_bad_request() {
	local out
	out=$(printf 'bogus\n' | timeout 5 socat - "UNIX-CONNECT:$SOCK")
	expect "no answer to 'bogus'" [ -n "$out" ] || return 1
	expect "answer to 'bogus': $out" jq -e '.error | test("unknown request")' <<<"$out" >/dev/null
}

# A client that connects and says nothing neither blocks others nor stays:
# the daemon closes it after 5 s.
t_idle_client() {
	local pid
	timeout 20 socat "UNIX-CONNECT:$SOCK" EXEC:"sleep 12" </dev/null >/dev/null 2>&1 &
	pid=$!
	sleep 0.5
	expect "status failed while an idle client was connected" st || {
		kill "$pid"; wait "$pid"; return 1; }
	expect "the idle client was not closed within 9 s" wait_for 9 eval '! alive '"$pid" || {
		kill "$pid"; wait "$pid"; return 1; }
	wait "$pid"
	daemon_running
}

t_held_tcp() {
	hold tcp4 hello-status TCP:203.0.113.10:7 || return 1
	HOLD_PID=$(cat "$TMP/tcp4.pid")
	expect "no TCP connection of pid $HOLD_PID (socat) to 203.0.113.10:7 with 12 bytes each way" \
		wait_for 5 jqs '.processes[] | select(.pid == $p and .comm == "socat" and .uid == 0)
			| .conns[] | select(.proto == "tcp" and .dst == "203.0.113.10:7"
				and .up == 12 and .down == 12 and .age >= 0)'
}

t_held_name() {
	hold name hello-name TCP:name.test:7 || return 1
	HOLD_PID=$(cat "$TMP/name.pid")
	expect "no connection of pid $HOLD_PID to name.test with 10 bytes each way" \
		wait_for 5 jqs '.processes[] | select(.pid == $p and .comm == "socat")
			| .conns[] | select(.host == "name.test" and (.dst | startswith("198.1"))
				and .up == 10 and .down == 10)'
}

t_udp_flow() {
	hold udp ping UDP:203.0.113.10:7 || return 1
	HOLD_PID=$(cat "$TMP/udp.pid")
	# echod answers "203.0.113.10:7 ping": 19 bytes.
	expect "no UDP flow of pid $HOLD_PID to 203.0.113.10:7 (4 bytes up, 19 down)" \
		wait_for 5 jqs '.processes[] | select(.pid == $p and .comm == "socat")
			| .conns[] | select(.proto == "udp" and .dst == "203.0.113.10:7"
				and .up == 4 and .down == 19)'
}

t_document() {
	HOLD_PID=$D1
	expect "pid, cgroup or attach time wrong" \
		jqs '.pid == $p and .cgroup == "'"$CG"'" and .attached_at > 0 and .now >= .attached_at' || return 1
	expect "no connect4 program on the test cgroup" \
		jqs '.programs | any(.name == "sproxy_connect4" and (.cgroup | endswith("'"${CG##*/}"'")))' || return 1
	expect "no getsockopt program on the daemon's own cgroup" \
		jqs '.programs | any(.name == "sproxy_getsockopt" and .cgroup == "/sproxy-bpf/'"$D1"'")' || return 1
	expect "counters too low" \
		jqs '.stats.tcp_redirected >= 2 and .stats.udp_redirected >= 1 and .stats.dns_redirected >= 1' || return 1
	expect "fill levels wrong" \
		jqs '.fill.tcp_records.used >= 2 and .fill.tcp_records.size == 65536
			and .fill.udp_pool.used >= 1 and .fill.udp_pool.size == 2048
			and .fill.fakeip.used >= 1 and .fill.tcp_sessions >= 2' || return 1
	expect "conns: want 3 at least, all listed" jqs '.conns >= 3 and .unlisted == 0'
}

t_text() {
	local p
	expect "status failed" st || return 1
	[ "${SHOW:-0}" = 1 ] && cat "$TMP/status.out" >&2
	for p in "$(cat "$TMP/tcp4.pid")" "$(cat "$TMP/name.pid")" "$(cat "$TMP/udp.pid")"; do
		expect "no 'pid $p socat (uid 0' line" grep -q "^  pid $p socat (uid 0, " "$TMP/status.out" || return 1
	done
	expect "no tcp line to 203.0.113.10:7 with its bytes" \
		grep -Eq '^    tcp +203\.0\.113\.10:7 +sent +12 B +received +12 B +age ' "$TMP/status.out" || return 1
	expect "no line to name.test:7" grep -Eq '^    tcp +name\.test:7 \(198\.1' "$TMP/status.out" || return 1
	expect "no udp line" grep -Eq '^    udp +203\.0\.113\.10:7 +sent +4 B +received +19 B' "$TMP/status.out" || return 1
	expect "no header naming the cgroup" grep -q "^sproxy-bpf .*, pid $D1, capturing $CG\$" "$TMP/status.out"
}

t_top_tty() {
	local rc
	# q once a frame shows the connection; script gives top a terminal.
	: >"$TMP/top.tty"
	{
		wait_for 30 grep -q '203\.0\.113\.10:7' "$TMP/top.tty" && printf q
		sleep 10
	} | timeout 45 script -qfec \
		"exec $SPROXY_BIN top --interval 1" /dev/null >"$TMP/top.tty" 2>&1
	rc=$?
	expect "top under script exited $rc (124: q did not end it)" [ $rc = 0 ] || return 1
	expect "top showed no socat" grep -q socat "$TMP/top.tty" || return 1
	expect "top showed no 203.0.113.10:7" grep -q '203\.0\.113\.10:7' "$TMP/top.tty" || return 1
	expect "the terminal was not restored (no ESC[?1049l / ESC[?25h at the end)" \
		grep -q $'\e\\[?25h' "$TMP/top.tty"
}

# Ctrl-C (the byte, through the terminal) ends top cleanly too.
# script runs its command with $SHELL -c, /bin/sh when SHELL is unset;
# "exec" makes top the session's only process, so what is tested is top,
# not whether that shell survives a SIGINT from the terminal (dash does
# not).
t_top_ctrl_c() {
	local rc
	: >"$TMP/top.tty"
	# The byte goes once top has taken the terminal (its handlers are set
	# by then): a Ctrl-C before that ends it by the default action.
	{
		wait_for 30 grep -q $'\e\\[?1049h' "$TMP/top.tty" && printf '\003'
		sleep 10
	} | timeout 45 script -qfec \
		"exec $SPROXY_BIN top --interval 1" /dev/null >"$TMP/top.tty" 2>&1
	rc=$?
	expect "top exited $rc after Ctrl-C (124: it did not end)" [ $rc = 0 ] || return 1
	expect "the terminal was not restored after Ctrl-C" \
		eval 'tail -c 20 "$TMP/top.tty" | grep -q $'"'"'\e\\[?1049l'"'"
}

# Ctrl-Z in an interactive shell under script (job control: a top that
# is its session's leader would never get SIGTSTP from the terminal): the
# terminal is given back while top is stopped; after fg it draws again and
# still quits on q.
t_top_suspend() {
	local pid="" i keys=$TMP/keys spid rc
	mkfifo "$keys" || return 1
	TERM=xterm timeout 30 script -qfc "exec bash --norc --noprofile -i" /dev/null <"$keys" >"$TMP/top.tty" 2>&1 &
	spid=$!
	exec 7>"$keys"
	printf '%s top --interval 1\n' "$SPROXY_BIN" >&7
	sleep 2
	printf '\032' >&7
	for i in $(seq 50); do
		pid=$(ps -eo pid=,stat=,args= | awk -v bin="$SPROXY_BIN" '$2 ~ /^T/ && $3 == bin && $4 == "top" { print $1; exit }')
		[ -n "$pid" ] && break
		sleep 0.1
	done
	if [ -z "$pid" ]; then
		printf 'q' >&7
		printf 'exit\n' >&7
		exec 7>&-
		wait "$spid"
		WHY="no stopped top after Ctrl-Z"
		return 1
	fi
	cp "$TMP/top.tty" "$TMP/top.tty.before"
	# The last escape before the shell's job message: the screen given back.
	expect "the terminal was not given back at Ctrl-Z" \
		grep -q $'\e\\[?1049l\e\\[?25h' "$TMP/top.tty.before" || { printf 'fg\nq' >&7; printf 'exit\n' >&7; exec 7>&-; wait "$spid"; return 1; }
	printf 'fg\n' >&7
	sleep 2
	printf q >&7
	sleep 0.5
	printf 'exit\n' >&7
	exec 7>&-
	wait "$spid"
	rc=$?
	expect "the shell under script exited $rc" [ $rc = 0 ] || return 1
	expect "top still there after fg and q" eval '! alive '"$pid" || return 1
	expect "no frame after fg" \
		[ "$(grep -o 'sproxy-bpf top [0-9]' "$TMP/top.tty" | wc -l)" -gt \
		  "$(grep -o 'sproxy-bpf top [0-9]' "$TMP/top.tty.before" | wc -l)" ]
}

t_top_plain() {
	local rc n
	timeout 15 "$SPROXY_BIN" top -n 2 --interval 1 >"$TMP/top.out" 2>"$TMP/status.err" </dev/null
	rc=$?
	expect "top -n 2 exited $rc" [ $rc = 0 ] || return 1
	n=$(grep -c '^sproxy-bpf top' "$TMP/top.out")
	expect "$n frames, not 2" [ "$n" = 2 ] || return 1
	expect "escape sequences in plain output" not_grep $'\e' "$TMP/top.out" || return 1
	[ "${SHOW:-0}" = 1 ] && cat "$TMP/top.out" >&2
	expect "no socat line" grep -Eq "^ *$(cat "$TMP/tcp4.pid") +socat " "$TMP/top.out"
}
not_grep() { ! grep -q "$@"; }

# A process moving about 1 MB/s each way comes first in top's second frame
# (sorted by the last interval's throughput), ahead of the idle ones.
t_top_sorted() {
	local busy first rate
	start_bg busy app socat SYSTEM:"(while :; do head -c 100000 /dev/zero; sleep 0.1; done) & exec cat >/dev/null" \
		TCP:203.0.113.10:7 || return 1
	busy=$(cat "$TMP/busy.pid")
	sleep 1
	timeout 15 "$SPROXY_BIN" top -n 2 --interval 1 >"$TMP/top.out" 2>"$TMP/status.err" </dev/null
	stop_bg busy
	[ "${SHOW:-0}" = 1 ] && cat "$TMP/top.out" >&2
	# The first process row after the second frame's header.
	first=$(awk '/^sproxy-bpf top/ { f++ } f == 2 && /^ +PID / { getline; print; exit }' "$TMP/top.out")
	expect "second frame's first process is not the busy one ($busy): '$first'" \
		[ "$(awk '{ print $1 }' <<<"$first")" = "$busy" ] || return 1
	rate=$(awk '{ print $4, $5 }' <<<"$first")
	expect "busy process's SENT/s is '$rate'" \
		eval '[[ "$rate" == *K/s* || "$rate" == *M/s* ]]'
}

CG_TWO=$CG2/sproxy-bpf-test-$TEST_ID-two
t_two_daemons() {
	local rc
	make_cgroup "$CG_TWO" || { WHY="mkdir $CG_TWO"; return 1; }
	# Its control directory from a config file, the way a service sets it.
	printf 'control-dir = %s\n' "$CTL" >"$TMP/d2.conf"
	start_bg d2 client env -u SPROXY_BPF_CONTROL_DIR "$SPROXY_BIN" attach "$CG_TWO" --listen 127.0.0.1:3334 \
		--resolver $RESOLVER --config "$TMP/d2.conf" || return 1
	D2=$(cat "$TMP/d2.pid")
	DAEMON_PIDS+=("$D2")
	if ! wait_for 10 grep -qw ready "$TMP/d2.err"; then
		WHY="second daemon not ready: $(tail -n 2 "$TMP/d2.err")"
		return 1
	fi
	expect "no socket $CTL/$D2.sock" [ -S "$CTL/$D2.sock" ] || return 1
	st
	rc=$?
	expect "status with two daemons exited $rc, not 2" [ $rc = 2 ] || return 1
	expect "both not listed" \
		eval 'grep -q -- "--pid $D1 " "$TMP/status.err" && grep -q -- "--pid $D2 " "$TMP/status.err"' || return 1
	expect "--pid $D2 did not answer for $CG_TWO" \
		eval 'st --json --pid $D2 && jq -e ".cgroup == \"$CG_TWO\"" "$TMP/status.out" >/dev/null' || return 1
	expect "--socket did not answer for $CG" \
		eval 'st --json --socket $SOCK && jq -e ".cgroup == \"$CG\"" "$TMP/status.out" >/dev/null'
}

t_stale_swept() {
	kill -KILL "$D2" 2>/dev/null
	wait "$D2" 2>/dev/null
	expect "a killed daemon's socket vanished by itself?" [ -S "$CTL/$D2.sock" ] || return 1
	expect "status did not pick the one daemon left" st || return 1
	expect "the dead daemon's socket is still there" [ ! -e "$CTL/$D2.sock" ]
}

# Through an upstream proxy (the default route): its name is on the
# connection.
t_via() {
	local via
	start_daemon --resolver $RESOLVER --control-dir "$CTL" \
		--upstream socks5://203.0.113.11:1080 || return 1
	hold viaconn hello-via TCP:203.0.113.10:7 || return 1
	HOLD_PID=$(cat "$TMP/viaconn.pid")
	expect "no connection of pid $HOLD_PID through the upstream 'default' with 9 bytes each way" \
		wait_for 5 jqs '.processes[] | select(.pid == $p) | .conns[]
			| select(.via == "default" and .up == 9 and .down == 9)' || return 1
	expect "the text form does not say 'via default'" \
		eval 'st && grep -Eq "^    tcp +203\.0\.113\.10:7 .* via default\$" "$TMP/status.out"'
}

# The kernel path's connections are listed too (--tag off sends every
# port there): under their process, marked "kernel", with no byte counts
# (the kernel counts them; they reach the log at close), and by name when
# the application connected to a FakeIP address.
t_kernel_path() {
	local fake
	restart_daemon --resolver $RESOLVER --control-dir "$CTL" --tag off || return 1
	SOCK=$CTL/$DAEMON_PID.sock
	hold kconn hello-kernel TCP:203.0.113.10:7 || return 1
	HOLD_PID=$(cat "$TMP/kconn.pid")
	expect "no kernel-path connection of pid $HOLD_PID to 203.0.113.10:7 without byte counts: $(head -c 600 "$TMP/status.out")" \
		wait_for 5 jqs '.processes[] | select(.pid == $p and .comm == "socat" and .uid == 0)
			| .conns[] | select(.path == "kernel" and .proto == "tcp"
				and .dst == "203.0.113.10:7" and (has("up") | not) and .age >= 0)' ||
		return 1
	expect "the text form has no kernel-path line: $(grep -A3 "pid $HOLD_PID" "$TMP/status.out" | tr '\n' ' ')" \
		eval 'st && grep -Eq "^    tcp +203\.0\.113\.10:7 +sent +- +received +- +age .*  kernel path\$" "$TMP/status.out"' ||
		return 1
	# By name: the daemon resolves a fake answer's name in the background.
	ran app_run kdig dig +short +time=3 +tries=1 name.test A || return 1
	fake=$(head -n 1 "$TMP/kdig.out")
	sleep 1
	hold kname hello-kname "TCP:$fake:7" || return 1
	HOLD_PID=$(cat "$TMP/kname.pid")
	expect "no kernel-path connection of pid $HOLD_PID to name.test ($fake)" \
		wait_for 5 jqs '.processes[] | select(.pid == $p) | .conns[]
			| select(.path == "kernel" and .host == "name.test" and .dst == "'"$fake"':7")' || return 1
	stop_bg kconn
	stop_bg kname
	expect "the closed connections are still listed" \
		wait_for 5 jqs '[.processes[].conns[] | select(.path == "kernel")] | length == 0'
}

t_removed_at_exit() {
	local pid
	# A client still connected at the stop costs nothing (no leak under
	# ASan: stop_daemon wants exit status 0).
	timeout 20 socat "UNIX-CONNECT:$SOCK" EXEC:"sleep 12" </dev/null >/dev/null 2>&1 &
	pid=$!
	sleep 0.5
	stop_daemon || { kill "$pid"; wait "$pid"; return 1; }
	wait "$pid"
	expect "$SOCK still there after the daemon stopped" [ ! -e "$SOCK" ] || return 1
	st
	expect "status with no daemon exited $?, not 1" [ $? = 1 ]
}

run_case socket t_socket
run_case not_root t_not_root
run_case bad_request t_bad_request
run_case idle_client t_idle_client
run_case held_tcp t_held_tcp
run_case held_name t_held_name
run_case udp_flow t_udp_flow
run_case document t_document
run_case text t_text
run_case top_tty t_top_tty
run_case top_plain t_top_plain
run_case top_sorted t_top_sorted
run_case top_ctrl_c t_top_ctrl_c
run_case top_suspend t_top_suspend
run_case two_daemons t_two_daemons
run_case stale_swept t_stale_swept
run_case removed_at_exit t_removed_at_exit
run_case via t_via
run_case kernel_path t_kernel_path
[ -n "$DAEMON_PID" ] && stop_daemon
finish
