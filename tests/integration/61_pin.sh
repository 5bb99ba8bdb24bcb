#!/bin/bash
# Crash behaviour: fail-open by default, fail-closed with --pin. Covers:
#   the default: a SIGKILLed daemon leaves nothing attached and traffic goes
#     direct (the server sees an untagged request);
#   --pin DIR: refused (status 2, nothing attached) when DIR is not on a BPF
#     filesystem; pins links and maps there; after a SIGKILL the cgroup's
#     programs stay attached and a captured connect fails, nothing reaches
#     the server; a restart with other --listen addresses is refused; a
#     restart with the same --pin takes over: the same links (updated in
#     place, never a moment without a program), traffic flows, and a
#     connected UDP socket made before the crash still gets its echo
#     through the same pool port; SIGTERM with --pin leaves the capture on;
#   a second daemon on a captured cgroup is refused and named by pid;
#   the daemon inside the cgroup, killed and taken over from inside;
#   a program of ours attached without a link: refused, and detached;
#   detach CGROUP --pin DIR removes links, programs and pins and lists
#     them; detach CGROUP without --pin finds the pins itself; detach on a
#     clean cgroup says "nothing attached" (status 0); a bad CGROUP is
#     status 2; the dead daemons' own cgroups are gone afterwards.
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
CASE_LOGS=("$HTTP_LOG" "$TMP/echo.log")
PIN=/sys/fs/bpf/sproxy-bpf-test-$TEST_ID
PIN2=/sys/fs/bpf/sproxy-bpf-test-$TEST_ID-b

# Pins first: they hold links on the test cgroup.  Only our own directory,
# on the BPF filesystem.
cleanup_pin() {
	local d
	for d in "$PIN" "$PIN2"; do
		if [ -d "$d" ] && [ "$(stat -f -c %T "$d" 2>/dev/null)" = bpf_fs ]; then
			rm -rf "$d"
		fi
	done
	[ -n "${UDP_FD:-}" ] && exec 3>&-
}
trap 'cleanup_pin; cleanup' EXIT

setup_topology || finish
setup_cgroup || finish
if ! need curl jq socat bpftool "$TOOLS/httpd" "$TOOLS/echod"; then
	fail setup "$WHY"
	finish
fi
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	fail setup "/sys/fs/bpf is not a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 $V4:8081 || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $V4:7 || finish
CGID=$(stat -c %i "$CG")

# --- helpers ---------------------------------------------------------------------

# n_attached: how many programs bpftool lists on the test cgroup.
n_attached() { attached_progs "$CG" | wc -l; }

# link_ids: the ids of the links on the test cgroup, sorted, on one line.
link_ids() {
	bpftool -j link show 2>/dev/null |
		jq -r --argjson c "$CGID" '.[] | select(.type == "cgroup" and .cgroup_id == $c) | .id' |
		sort -n | tr '\n' ' '
}

# get PATH [PORT]: a captured curl; succeeds when it got an answer.
get() { app_run "get${1//\//_}" curl -sS -m 5 -o /dev/null "http://$V4:${2:-8080}$1"; }

# sp NAME ARGS...: sproxy-bpf ARGS in the client namespace (not captured),
# output in $TMP/NAME.out/.err, status in RUN_RC.
sp() {
	local name=$1
	shift
	client_run "$name" timeout 20 "$SPROXY_BIN" "$@"
}

# --- cases -----------------------------------------------------------------------

t_default_start() {
	start_daemon || return 1
	expect "nothing attached while the daemon runs" [ "$(n_attached)" -gt 0 ]
}

t_default_fail_open() {
	daemon_running || return 1
	kill_daemon
	expect "programs still attached after SIGKILL without --pin: $(attached_progs "$CG" | head -n 2)" \
		wait_for 5 eval '[ "$(n_attached)" = 0 ]' || return 1
	ran get /open || return 1
	expect "the server saw no request for /open" wait_http 5 /open || return 1
	expect "the request went direct, yet its User-Agent was tagged: $(http_get /open ua)" \
		eval '! http_get /open ua | grep -q sproxy-bpf'
}

t_pin_not_bpffs() {
	mkdir -p "$TMP/notbpf"
	sp notbpf attach "$CG" --pin "$TMP/notbpf"
	expect "status $RUN_RC, want 2: $(head -n 1 "$TMP/notbpf.err")" [ "$RUN_RC" = 2 ] || return 1
	expect "the message does not say it is not a BPF filesystem: $(head -n 1 "$TMP/notbpf.err")" \
		grep -qi "not.*BPF filesystem" "$TMP/notbpf.err" || return 1
	expect "programs attached after a refused start" [ "$(n_attached)" = 0 ] || return 1
	sp bpfroot attach "$CG" --pin /sys/fs/bpf
	expect "--pin /sys/fs/bpf (the mount's root): status $RUN_RC, want 2" [ "$RUN_RC" = 2 ]
}

t_pinned_start() {
	start_daemon --pin "$PIN" --bypass $V4:8081 || return 1
	ran get /pinned || return 1
	expect "the request was not tagged: $(http_get /pinned ua)" \
		eval 'http_get /pinned ua | grep -q sproxy-bpf' || return 1
	ran get /bypassed 8081 || return 1
	expect "a --bypass destination was tagged" eval '! http_get /bypassed ua | grep -q sproxy-bpf' || return 1
	expect "no links pinned under $PIN: $(ls -R "$PIN" 2>&1 | head -n 5 | tr '\n' ' ')" \
		[ -n "$(ls "$PIN/links" 2>/dev/null)" ] || return 1
	expect "no maps pinned under $PIN" [ -e "$PIN/maps/conns" ] || return 1
	LINKS_BEFORE=$(link_ids)
	expect "bpftool shows no links on the cgroup" [ -n "$LINKS_BEFORE" ]
}

# A connected UDP socket in the cgroup, kept across the crash: socat reads
# what to send from a fifo the test holds open.
t_udp_before() {
	daemon_running || return 1
	mkfifo "$TMP/udp.in"
	start_bg udpc app sh -c "exec socat -t 30 - UDP:$V4:7 <'$TMP/udp.in'" || return 1
	exec 3>"$TMP/udp.in"
	UDP_FD=3
	echo before >&3
	expect "no echo for the datagram sent before the crash: $(cat "$TMP/udpc.out" "$TMP/udpc.err")" \
		wait_for 5 grep -q "$V4:7 before" "$TMP/udpc.out"
}

t_kill_fail_closed() {
	daemon_running || return 1
	OLD_PID=$DAEMON_PID
	kill_daemon
	expect "programs gone after SIGKILL with --pin" [ "$(n_attached)" -gt 0 ] || return 1
	expect "links changed after SIGKILL: '$(link_ids)', were '$LINKS_BEFORE'" \
		[ "$(link_ids)" = "$LINKS_BEFORE" ] || return 1
	get /closed
	expect "a captured curl succeeded with the daemon dead" [ "$RUN_RC" != 0 ] || return 1
	sleep 0.5
	expect "the server saw /closed: it leaked around the proxy" eval '! http_has /closed'
}

t_no_pin_refused_when_pinned() {
	sp nopin attach "$CG" --listen 127.0.0.1:4444
	expect "a daemon without --pin started over pinned programs (status $RUN_RC)" \
		[ "$RUN_RC" != 0 ] || return 1
	expect "the message does not say how to go on: $(grep -v libbpf "$TMP/nopin.err" | tail -n 1)" \
		grep -q "detach" "$TMP/nopin.err"
}

t_takeover_other_listen() {
	sp otherlisten attach "$CG" --pin "$PIN" --listen 127.0.0.1:4444
	expect "a takeover with other listeners: status $RUN_RC, want 2" [ "$RUN_RC" = 2 ] || return 1
	expect "the message does not name the listener: $(grep -v libbpf "$TMP/otherlisten.err" | tail -n 1)" \
		grep -q "127.0.0.1:3333" "$TMP/otherlisten.err" || return 1
	expect "programs gone after a refused takeover" [ "$(n_attached)" -gt 0 ]
}

t_takeover() {
	start_daemon --pin "$PIN" || return 1
	expect "the links were replaced, not updated: '$(link_ids)', were '$LINKS_BEFORE'" \
		[ "$(link_ids)" = "$LINKS_BEFORE" ] || return 1
	ran get /after || return 1
	expect "the request after the takeover was not tagged: $(http_get /after ua)" \
		eval 'http_get /after ua | grep -q sproxy-bpf' || return 1
	# The earlier daemon's --bypass is not this one's: its entry is gone.
	ran get /unbypassed 8081 || return 1
	expect "the earlier daemon's --bypass still applies after the takeover" \
		eval 'http_get /unbypassed ua | grep -q sproxy-bpf'
}

t_udp_survives() {
	daemon_running || return 1
	[ -n "${UDP_FD:-}" ] || { WHY="no UDP client from udp_before"; return 1; }
	echo after >&3
	expect "no echo for the datagram sent after the takeover on the old socket: $(cat "$TMP/udpc.out" "$TMP/udpc.err" | tr '\n' ' ')" \
		wait_for 5 grep -q "$V4:7 after" "$TMP/udpc.out"
}

t_second_refused() {
	daemon_running || return 1
	sp second attach "$CG" --listen 127.0.0.1:4444
	expect "a second daemon attached (status $RUN_RC)" [ "$RUN_RC" != 0 ] || return 1
	expect "the refusal does not name pid $DAEMON_PID: $(grep -v libbpf "$TMP/second.err" | tail -n 1)" \
		grep -q "captured already by sproxy-bpf pid $DAEMON_PID\b" "$TMP/second.err" || return 1
	sp second2 attach "$CG" --listen 127.0.0.1:4444 --pin "$PIN2"
	expect "a second daemon with --pin attached (status $RUN_RC)" [ "$RUN_RC" != 0 ] || return 1
	expect "a refused daemon left its --pin directory: $(ls -R "$PIN2" 2>&1 | head -n 3 | tr '\n' ' ')" \
		[ ! -e "$PIN2" ] || return 1
	local path=/still${1:-}
	ran get "$path" || return 1
	expect "the first daemon no longer tags" eval "http_get $path ua | grep -q sproxy-bpf"
}

t_detach_live_refused() {
	daemon_running || return 1
	sp detachlive detach "$CG" --pin "$PIN"
	expect "detach under a running daemon: status $RUN_RC, want 1" [ "$RUN_RC" = 1 ] || return 1
	expect "the refusal does not name pid $DAEMON_PID" grep -q "pid $DAEMON_PID\b" "$TMP/detachlive.err"
}

# udp_peer: the peer of the UDP client's socket (ss, in the client namespace).
udp_peer() {
	local pid
	pid=$(cat "$TMP/udpc.pid" 2>/dev/null) || return 1
	nsenter --net="/run/netns/$NS_C" ss -uanpH 2>/dev/null |
		awk -v p="pid=$pid," 'index($0, p) { print $5; exit }'
}

t_sigterm_keeps_pins() {
	daemon_running || return 1
	stop_daemon || return 1
	expect "programs gone after SIGTERM with --pin" [ "$(n_attached)" -gt 0 ] || return 1
	expect "links gone after SIGTERM with --pin" [ -n "$(link_ids)" ] || return 1
	# Stopping a pinned daemon is no fail-open: its connected UDP sockets
	# are not pointed at their real peers.
	expect "the UDP client's socket was moved off the pool port: peer '$(udp_peer)'" \
		eval '[[ "$(udp_peer)" == 127.0.0.1:* ]]'
}

t_detach_pin() {
	local want
	sp detach detach "$CG" --pin "$PIN"
	expect "detach: status $RUN_RC: $(tail -n 1 "$TMP/detach.err")" [ "$RUN_RC" = 0 ] || return 1
	expect "still attached after detach: $(attached_progs "$CG" | head -n 2)" [ "$(n_attached)" = 0 ] || return 1
	expect "$PIN still there after detach: $(ls -R "$PIN" 2>&1 | head -n 3)" [ ! -e "$PIN" ] || return 1
	for want in "$PIN/links/" "$PIN/maps/conns" "sproxy_connect4" "link "; do
		expect "detach's report lacks '$want'" grep -qF -- "$want" "$TMP/detach.out" || return 1
	done
	expect "a dead daemon's own cgroup is left: $(ls "$CG2/sproxy-bpf" 2>/dev/null | tr '\n' ' ')" \
		[ ! -d "$CG2/sproxy-bpf/$OLD_PID" ]
}

t_detach_nothing() {
	sp nothing detach "$CG"
	expect "detach on a clean cgroup: status $RUN_RC, want 0" [ "$RUN_RC" = 0 ] || return 1
	expect "it does not say 'nothing attached': $(cat "$TMP/nothing.out" "$TMP/nothing.err")" \
		grep -q "nothing attached" "$TMP/nothing.out"
}

t_detach_bad_cgroup() {
	sp badcg detach "$CG2/sproxy-bpf-test-$TEST_ID-nosuch"
	expect "detach on a missing cgroup: status $RUN_RC, want 2" [ "$RUN_RC" = 2 ]
}

# The daemon inside the captured cgroup: its getsockopt hook is there too,
# unpinned; a takeover from inside works the same.
t_in_app_takeover() {
	start_daemon --in-app --pin "$PIN" || return 1
	kill_daemon
	get /inapp-closed
	expect "a captured curl succeeded with the in-app daemon dead" [ "$RUN_RC" != 0 ] || return 1
	start_daemon --in-app --pin "$PIN" || return 1
	ran get /inapp || return 1
	expect "the request after an in-app takeover was not tagged: $(http_get /inapp ua)" \
		eval 'http_get /inapp ua | grep -q sproxy-bpf' || return 1
	kill_daemon
}

# A program of ours attached without a link (bpftool, BPF_PROG_ATTACH):
# no daemon stacks on it, and detach takes it off too.
t_unlinked() {
	expect "no pinned connect4 program to attach from the last case" \
		[ -e "$PIN/progs/sproxy_connect4" ] || return 1
	bpftool cgroup attach "$CG" connect4 pinned "$PIN/progs/sproxy_connect4" multi ||
		{ WHY="bpftool cgroup attach failed"; return 1; }
	sp unlinked attach "$CG" --pin "$PIN"
	expect "a daemon started over a program attached without a link (status $RUN_RC)" \
		[ "$RUN_RC" != 0 ] || return 1
	expect "the refusal does not say 'without a link': $(grep -v libbpf "$TMP/unlinked.err" | tail -n 1)" \
		grep -q "without a link" "$TMP/unlinked.err" || return 1
	sp detach3 detach "$CG" --pin "$PIN"
	expect "detach: status $RUN_RC: $(tail -n 1 "$TMP/detach3.err")" [ "$RUN_RC" = 0 ] || return 1
	expect "detach does not report the program attached without a link" \
		grep -q "without a link" "$TMP/detach3.out" || return 1
	expect "still attached after detach: $(attached_progs "$CG" | head -n 2)" [ "$(n_attached)" = 0 ]
}

t_detach_finds_pins() {
	start_daemon --pin "$PIN" || return 1
	kill_daemon
	expect "programs gone after SIGKILL with --pin" [ "$(n_attached)" -gt 0 ] || return 1
	sp detach2 detach "$CG"
	expect "detach without --pin: status $RUN_RC: $(tail -n 1 "$TMP/detach2.err")" [ "$RUN_RC" = 0 ] || return 1
	expect "still attached after detach without --pin" [ "$(n_attached)" = 0 ] || return 1
	expect "$PIN still there after detach without --pin" [ ! -e "$PIN" ] || return 1
	ran get /detached || return 1
	expect "the request after detach was tagged" eval '! http_get /detached ua | grep -q sproxy-bpf'
}

# The captured cgroup removed under a pinned daemon, and made again.
t_reattach_pinned() {
	stop_bg udpc
	start_daemon --pin "$PIN" --reattach || return 1
	rmdir "$CG" || { WHY="cannot remove $CG: $(cat "$CG/cgroup.procs" 2>/dev/null | tr '\n' ' ')"; return 1; }
	expect "the daemon did not see $CG go" wait_for 5 grep -q "capture paused" "$TMP/daemon.err" || return 1
	mkdir "$CG" || { WHY="cannot make $CG again"; return 1; }
	CGID=$(stat -c %i "$CG")
	expect "the daemon did not attach to $CG again" wait_for 5 grep -q "attached again" "$TMP/daemon.err" || return 1
	expect "the pinned links are not on the new $CG: '$(link_ids)'" [ -n "$(link_ids)" ] || return 1
	kill_daemon
	get /reattached-closed
	expect "a captured curl succeeded with the reattached daemon dead" [ "$RUN_RC" != 0 ] || return 1
	sp detach4 detach "$CG"
	expect "detach after a reattach: status $RUN_RC" [ "$RUN_RC" = 0 ] || return 1
	expect "$PIN left after detach" [ ! -e "$PIN" ]
}

# Without --reattach the daemon exits (status 3) and takes its pins along:
# there is nothing left to keep closed.
t_cgroup_gone_unpins() {
	local rc
	start_daemon --pin "$PIN" || return 1
	rmdir "$CG" || { WHY="cannot remove $CG"; return 1; }
	expect "the daemon did not exit when $CG went" wait_for 5 eval '! alive $DAEMON_PID' || return 1
	wait "$DAEMON_PID"
	rc=$?
	DAEMON_PID=""
	mkdir "$CG"
	CGID=$(stat -c %i "$CG")
	expect "exit status $rc, want 3" [ "$rc" = 3 ] || return 1
	expect "$PIN left by a daemon whose cgroup went: $(ls -R "$PIN" 2>&1 | head -n 3 | tr '\n' ' ')" \
		[ ! -e "$PIN" ]
}

# Pins left by a killed daemon on a cgroup that was removed and made again
# (a logout and a login): a daemon with the same --pin takes them over onto
# the new cgroup, and detach finds them by the cgroup's path.
t_recreated_takeover() {
	start_daemon --pin "$PIN" || return 1
	kill_daemon
	rmdir "$CG" && mkdir "$CG" || { WHY="cannot remove and make $CG again"; return 1; }
	CGID=$(stat -c %i "$CG")
	start_daemon --pin "$PIN" || return 1
	ran get /recreated || return 1
	expect "the request on the cgroup made again was not tagged" \
		eval 'http_get /recreated ua | grep -q sproxy-bpf' || return 1
	kill_daemon
	rmdir "$CG" && mkdir "$CG" || { WHY="cannot remove and make $CG again"; return 1; }
	CGID=$(stat -c %i "$CG")
	sp detach5 detach "$CG"
	expect "detach on a cgroup made again: status $RUN_RC" [ "$RUN_RC" = 0 ] || return 1
	expect "$PIN left after detach on a cgroup made again" [ ! -e "$PIN" ]
}

run_case default_start t_default_start
run_case second_refused t_second_refused
run_case default_fail_open t_default_fail_open
run_case pin_not_bpffs t_pin_not_bpffs
run_case pinned_start t_pinned_start
run_case udp_before t_udp_before
run_case kill_fail_closed t_kill_fail_closed
run_case no_pin_refused_when_pinned t_no_pin_refused_when_pinned
run_case takeover_other_listen t_takeover_other_listen
run_case takeover t_takeover
run_case udp_survives t_udp_survives
run_case second_refused_pinned t_second_refused 2
run_case detach_live_refused t_detach_live_refused
run_case sigterm_keeps_pins t_sigterm_keeps_pins
run_case detach_pin t_detach_pin
run_case detach_nothing t_detach_nothing
run_case detach_bad_cgroup t_detach_bad_cgroup
run_case in_app_takeover t_in_app_takeover
run_case unlinked t_unlinked
run_case detach_finds_pins t_detach_finds_pins
run_case reattach_pinned t_reattach_pinned
run_case cgroup_gone_unpins t_cgroup_gone_unpins
run_case recreated_takeover t_recreated_takeover
finish
