#!/bin/bash
# Per-app capture: `sproxy-bpf run -- CMD`. Covers:
#   CMD runs as the invoking user (SUDO_UID/SUDO_GID, --user; as root only
#     with --user root, refused otherwise), captured from its first
#     connection, named in the log (comm, uid, its own cgroup);
#   CMD's stdout is CMD's alone; the exit status is CMD's, 128+N for a
#     signal; a signal sent to run reaches CMD (or, once CMD has exited,
#     what it left in the cgroup); on a terminal, Ctrl-C
#     reaches CMD once, and run waits for it;
#   a CMD that leaves a child behind: capture goes on until the child is
#     gone; a request sent just before CMD exits arrives; a static binary
#     (busybox wget) is captured;
#   two runs at once, each with its own cgroup and listener port;
#   the cgroup (and the daemon's own) is removed afterwards, in the
#     default parent <cg2>/sproxy-bpf.run as well.
# Every run but one uses --cgroup-parent, a cgroup this test made; every
# daemon runs in the test's client namespace.
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
CASE_LOGS=("$HTTP_LOG")
PARENT=$CG2/sproxy-bpf-test-$TEST_ID-run
NOBODY=65534
RUNS=()			# pids of every run started: their default-parent cgroups

# The default parent's cgroups of runs that were killed, then the parent
# when empty (another run on the machine may hold it).
cleanup_runs() {
	local pid
	for pid in "${RUNS[@]}"; do
		[ -d "$CG2/sproxy-bpf.run/$pid" ] || continue
		_empty_cgroup "$CG2/sproxy-bpf.run/$pid"
		rmdir "$CG2/sproxy-bpf.run/$pid" 2>/dev/null
	done
	[ -n "$CG2" ] && rmdir "$CG2/sproxy-bpf.run" 2>/dev/null
	cleanup
}
trap cleanup_runs EXIT

setup_topology || finish
[ -n "$CG2" ] && make_cgroup "$PARENT" || { _setup_fail "mkdir $PARENT"; finish; }
if ! need curl /bin/busybox "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish

# srun_bg NAME ARGS...: `sproxy-bpf run --log $TMP/NAME.log ARGS` in the
# client namespace, in the background, as if from `sudo` by $NOBODY: with
# RUN_ENV (VAR=VALUE words) in its environment instead of SUDO_UID and
# SUDO_GID, and never those of the test's own environment. Output in
# $TMP/NAME.out/.err, its pid in $TMP/NAME.pid; the run's cgroup is
# <parent>/<that pid>. Its stdin is RUN_STDIN (default /dev/null).
SUDO_ENV=(SUDO_UID=$NOBODY SUDO_GID=$NOBODY)
RUN_ENV=("${SUDO_ENV[@]}")
srun_bg() {
	local name=$1 pid
	shift
	: >"$TMP/$name.err"
	bash -c "$_ENTER" _ client "" "$NS_C" "" "" \
		env -u SUDO_UID -u SUDO_GID -u SUDO_USER -u PKEXEC_UID "${RUN_ENV[@]}" \
		"$SPROXY_BIN" run --log "$TMP/$name.log" "$@" \
		>"$TMP/$name.out" 2>"$TMP/$name.err" <"${RUN_STDIN:-/dev/null}" &
	pid=$!
	echo "$pid" >"$TMP/$name.pid"
	BG_PIDS+=("$pid")
	DAEMON_PIDS+=("$pid")
	RUNS+=("$pid")
	RUN_PID=$pid
	LAST_RUN=$name
}

# srun_wait NAME SECONDS: waits for that run; RUN_RC is its status
# ("hung" after SECONDS, when it is killed).
srun_wait() {
	local pid
	pid=$(cat "$TMP/$1.pid")
	if ! wait_for "$2" eval '! alive '"$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		RUN_RC=hung
		return 1
	fi
	wait "$pid"
	RUN_RC=$?
}

# srun NAME ARGS...: srun_bg, then srun_wait 30 s.
srun() {
	srun_bg "$@"
	srun_wait "$1" 30
}

# gone NAME [PARENT]: the run's cgroup and the daemon's own are removed.
gone() {
	local pid cg
	pid=$(cat "$TMP/$1.pid")
	cg=${2:-$PARENT}/$pid
	expect "$cg is still there after the run" [ ! -d "$cg" ] || return 1
	expect "$CG2/sproxy-bpf/$pid (the daemon's own) is still there" [ ! -d "$CG2/sproxy-bpf/$pid" ]
}

# rc_is NAME WANT: the run's status.
rc_is() {
	expect "run $1 exited with $RUN_RC, want $2: $(grep -v ': info: \|^sproxy-bpf: ready' "$TMP/$1.err" | tail -n 1)" \
		[ "$RUN_RC" = "$2" ]
}

# logged_in NAME STRING...: run NAME's connection log has a line with all.
logged_in() {
	expect "no line in $1.log with: $(printf "'%s' " "${@:2}")" \
		wait_for 5 line_with "$TMP/$1.log" "${@:2}"
}

# ua_tagged PATH COMM: the server saw PATH, its User-Agent tagged with COMM.
ua_tagged() {
	local ua
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	ua=$(http_get "$1" ua)
	[[ $ua == *"sproxy-bpf (comm=$2; pid="* ]] && return 0
	WHY="server saw User-Agent '$ua' for $1, not tagged with comm=$2"
	return 1
}

# --- cases -------------------------------------------------------------------------

t_curl_as_user() {
	srun curl --cgroup-parent "$PARENT" -- curl -sS -m 10 "http://$V4:8080/run-curl"
	rc_is curl 0 || return 1
	ua_tagged /run-curl curl || return 1
	logged_in curl " tcp " "comm=curl " "uid=$NOBODY " \
		"cgroup=${PARENT#"$CG2"}/$RUN_PID " "dst=$V4:8080 " "result=ok" || return 1
	gone curl
}

t_stdout_is_cmds() {
	srun ids --cgroup-parent "$PARENT" -- sh -c 'id -u; id -g'
	rc_is ids 0 || return 1
	expect "stdout is '$(tr '\n' ' ' <"$TMP/ids.out")', want '$NOBODY $NOBODY' and nothing else" \
		[ "$(tr '\n' ' ' <"$TMP/ids.out")" = "$NOBODY $NOBODY " ] || return 1
	gone ids || return 1
	# Without "--", run's options still end at CMD: -u is id's.
	srun idu --cgroup-parent "$PARENT" id -u
	rc_is idu 0 || return 1
	expect "'run id -u' printed '$(cat "$TMP/idu.out")'" [ "$(cat "$TMP/idu.out")" = "$NOBODY" ] || return 1
	# stdin is CMD's too.
	printf 'from-stdin\n' >"$TMP/stdin.txt"
	chmod 644 "$TMP/stdin.txt"
	RUN_STDIN=$TMP/stdin.txt srun cat --cgroup-parent "$PARENT" -- cat
	rc_is cat 0 || return 1
	expect "'run cat' printed '$(cat "$TMP/cat.out")', not its stdin" [ "$(cat "$TMP/cat.out")" = from-stdin ]
}

t_user_option() {
	RUN_ENV=(SUDO_UID=1 SUDO_GID=1)
	srun byname --cgroup-parent "$PARENT" --user nobody -- id -u
	RUN_ENV=()
	srun root --cgroup-parent "$PARENT" --user root -- id -u
	RUN_ENV=("${SUDO_ENV[@]}")
	rc_is byname 0 || return 1
	expect "--user nobody ran as $(cat "$TMP/byname.out")" [ "$(cat "$TMP/byname.out")" = "$NOBODY" ] || return 1
	rc_is root 0 || return 1
	expect "--user root ran as $(cat "$TMP/root.out")" [ "$(cat "$TMP/root.out")" = 0 ] || return 1
	gone root
}

t_root_refused() {
	RUN_ENV=()
	srun noroot --cgroup-parent "$PARENT" -- id -u
	RUN_ENV=(SUDO_UID=0 SUDO_GID=0)
	srun sudoroot --cgroup-parent "$PARENT" -- id -u
	RUN_ENV=("${SUDO_ENV[@]}")
	rc_is noroot 2 || return 1
	expect "ran something as root: $(cat "$TMP/noroot.out")" [ ! -s "$TMP/noroot.out" ] || return 1
	expect "the message does not name --user: $(head -n 1 "$TMP/noroot.err")" \
		grep -q -- "--user" "$TMP/noroot.err" || return 1
	rc_is sudoroot 2 || return 1
	expect "ran something as root: $(cat "$TMP/sudoroot.out")" [ ! -s "$TMP/sudoroot.out" ] || return 1
	expect "left a cgroup below $PARENT: $(ls "$PARENT")" [ -z "$(ls -d "$PARENT"/*/ 2>/dev/null)" ]
}

t_exit_status() {
	srun st7 --cgroup-parent "$PARENT" -- sh -c 'exit 7'
	rc_is st7 7 || return 1
	srun selfkill --cgroup-parent "$PARENT" -- sh -c 'kill -USR1 $$'
	rc_is selfkill 138 || return 1
	srun nocmd --cgroup-parent "$PARENT" -- /nonexistent/cmd
	rc_is nocmd 127 || return 1
	gone selfkill
}

t_signal_passed_on() {
	srun_bg sig --cgroup-parent "$PARENT" -- sleep 30
	expect "the run did not start sleep" wait_for 10 grep -q "running sleep" "$TMP/sig.err" || return 1
	kill -TERM "$RUN_PID"
	srun_wait sig 10
	rc_is sig 143 || return 1
	gone sig
}

t_child_outlives_cmd() {
	local cg
	srun_bg fork --cgroup-parent "$PARENT" -- sh -c \
		"(sleep 2; curl -sS -m 10 -o /dev/null http://$V4:8080/run-late) </dev/null >/dev/null 2>&1 & exit 5"
	cg=$PARENT/$RUN_PID
	expect "run did not say it waits for what sh left" \
		wait_for 10 grep -q "capture goes on" "$TMP/fork.err" || return 1
	expect "$cg is gone while the child lives" [ -d "$cg" ] || return 1
	expect "run exited while the child lives" alive "$RUN_PID" || return 1
	srun_wait fork 20
	rc_is fork 5 || return 1
	ua_tagged /run-late curl || return 1
	logged_in fork " tcp " "comm=curl " "uid=$NOBODY " "cgroup=${cg#"$CG2"} " "result=ok" || return 1
	gone fork
}

# Once CMD has exited, a signal sent to run goes to what CMD left behind.
t_signal_to_leftovers() {
	srun_bg left --cgroup-parent "$PARENT" -- sh -c 'sleep 60 </dev/null >/dev/null 2>&1 & exit 4'
	expect "run did not say it waits for what sh left" \
		wait_for 10 grep -q "capture goes on" "$TMP/left.err" || return 1
	kill -TERM "$RUN_PID"
	srun_wait left 10
	rc_is left 4 || return 1
	expect "run did not say it passed SIGTERM on" grep -q "passing Terminated on to the 1 process" "$TMP/left.err" || return 1
	gone left
}

# A request written just before CMD exits, its answer never read: the
# cgroup is empty at once, but the request is still on its way through
# the daemon, which lets it arrive before detaching. The server's
# namespace drops SYNs until the cgroup is empty, so that the daemon's
# connection out is still being made then (the SYN retried a second later
# gets through).
syn_drop() { nsenter --net="/run/netns/$NS_S" iptables -w "$1" INPUT -p tcp --syn --dport 8080 -j DROP; }
t_last_request() {
	local cg
	need socat iptables || return 1
	syn_drop -A || { WHY="iptables in the server namespace failed"; return 1; }
	srun_bg last --cgroup-parent "$PARENT" -- sh -c \
		"printf 'GET /run-last HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' |
		socat -u - TCP:$V4:8080"
	cg=$PARENT/$RUN_PID
	wait_for 10 eval 'grep -q "populated 0" "$cg/cgroup.events" || ! alive $RUN_PID'
	syn_drop -D
	srun_wait last 15
	rc_is last 0 || return 1
	ua_tagged /run-last socat || return 1
	logged_in last " tcp " "comm=socat " "uid=$NOBODY " "dst=$V4:8080 " "up=54 "
}

t_static_busybox() {
	srun bb --cgroup-parent "$PARENT" -- /bin/busybox wget -q -O /dev/null "http://$V4:8080/run-bb"
	rc_is bb 0 || return 1
	ua_tagged /run-bb busybox || return 1
	logged_in bb " tcp " "comm=busybox " "uid=$NOBODY " "dst=$V4:8080 " "result=ok" || return 1
	gone bb
}

t_two_at_once() {
	local pa pb n
	srun_bg twoa --cgroup-parent "$PARENT" -- sh -c "sleep 2; curl -sS -m 10 http://$V4:8080/run-a"
	pa=$RUN_PID
	srun_bg twob --cgroup-parent "$PARENT" -- sh -c "sleep 2; curl -sS -m 10 http://$V4:8080/run-b"
	pb=$RUN_PID
	expect "both runs did not start" wait_for 10 eval \
		'grep -q "running sh" "$TMP/twoa.err" && grep -q "running sh" "$TMP/twob.err"' || return 1
	expect "the runs are not both alive at once" eval 'alive $pa && alive $pb' || return 1
	n=$(grep -ho 'listening on [^ ]*' "$TMP/twoa.err" "$TMP/twob.err" | sort -u | wc -l)
	expect "the two runs did not listen on two ports: $(grep -h ready "$TMP/twoa.err" "$TMP/twob.err")" \
		[ "$n" = 2 ] || return 1
	srun_wait twoa 20
	rc_is twoa 0 || return 1
	srun_wait twob 20
	rc_is twob 0 || return 1
	ua_tagged /run-a curl || return 1
	ua_tagged /run-b curl || return 1
	logged_in twoa "comm=curl " "cgroup=${PARENT#"$CG2"}/$pa " "result=ok" || return 1
	logged_in twob "comm=curl " "cgroup=${PARENT#"$CG2"}/$pb " "result=ok" || return 1
	gone twoa && gone twob
}

# On a terminal (script(1) makes one), Ctrl-C goes to the foreground
# process group, CMD and run alike: CMD (which traps it and exits 9) gets
# it, run does not stop for it, nor pass it on a second time (which the
# kernel may merge with the first: not asserted), and detaches after.
t_ctrl_c() {
	local ts=$TMP/tty.typescript inner rc
	need script || return 1
	: >"$ts"
	inner="exec nsenter --net=/run/netns/$NS_C env -u SUDO_UID -u SUDO_GID -u PKEXEC_UID ${SUDO_ENV[*]} \
		$SPROXY_BIN run --cgroup-parent $PARENT --log $TMP/tty.log -- \
		sh -c 'trap \"echo got-int | tr a-z A-Z; exit 9\" INT; echo armed | tr a-z A-Z; read x'"
	# Ctrl-C only once CMD has its trap: before that, the default action
	# of SIGINT ends CMD (130), which is right but not what is tested.
	# CMD says so in capitals: the typescript's first line holds the
	# command as typed, so the word as written there is no sign.
	# "exec": script runs it with $SHELL -c (/bin/sh when SHELL is unset),
	# and a shell left waiting above run would die of the same SIGINT.
	rm -f "$TMP/tty.sent"
	{
		if wait_for 40 grep -q ARMED "$ts"; then
			printf '\003'
			: >"$TMP/tty.sent"
			sleep 5
		fi
	} | timeout 60 script -qfec "$inner" "$ts" >/dev/null 2>&1
	rc=$?
	expect "CMD never said it was armed within 40 s: $(tail -n 3 "$ts" | tr '\r\n' '  ')" \
		[ -e "$TMP/tty.sent" ] || return 1
	expect "under a terminal, run exited with $rc after Ctrl-C, want CMD's 9: $(tail -n 2 "$ts" | tr '\r\n' '  ')" \
		[ "$rc" = 9 ] || return 1
	expect "CMD got SIGINT $(grep -c GOT-INT "$ts") times, want once" [ "$(grep -c GOT-INT "$ts")" = 1 ] || return 1
	expect "left a cgroup below $PARENT: $(ls -d "$PARENT"/*/ 2>/dev/null)" [ -z "$(ls -d "$PARENT"/*/ 2>/dev/null)" ]
}

t_default_parent() {
	srun dflt -- curl -sS -m 10 -o /dev/null "http://$V4:8080/run-default"
	rc_is dflt 0 || return 1
	logged_in dflt "comm=curl " "uid=$NOBODY " "cgroup=/sproxy-bpf.run/$RUN_PID " "result=ok" || return 1
	gone dflt "$CG2/sproxy-bpf.run"
}

run_case curl_as_user t_curl_as_user
run_case stdout_is_cmds t_stdout_is_cmds
run_case user_option t_user_option
run_case root_refused t_root_refused
run_case exit_status t_exit_status
run_case signal_passed_on t_signal_passed_on
run_case child_outlives_cmd t_child_outlives_cmd
run_case signal_to_leftovers t_signal_to_leftovers
run_case last_request t_last_request
run_case static_busybox t_static_busybox
run_case two_at_once t_two_at_once
run_case ctrl_c t_ctrl_c
run_case default_parent t_default_parent
finish
