#!/bin/bash
# `sproxy-bpf doctor`: a healthy setup (daemon attached to the test cgroup,
# a process in it) is healthy, exit 0; broken ones each get their diagnosis
# with a fix, exit 1: a cgroup path that does not exist or is not cgroup v2,
# a pid outside the cgroup, a pid in another network namespace, TPROXY
# rules with a piece removed by hand, a daemon that accepts but never
# answers (stopped); --local rules without a default route warn. A
# connection without an original destination is logged with its likely
# causes and a pointer to doctor. Everything runs in the test's client
# namespace.
. "$(dirname "$0")/../lib.sh"

STATE_FILES=()
PIN_DIR=/sys/fs/bpf/sproxy-bpf-test-$TEST_ID
trap 'rm -f "${STATE_FILES[@]}"; cleanup; rm -rf "$PIN_DIR"' EXIT

setup_topology || finish
setup_cgroup || finish
if ! need curl nft "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" 203.0.113.10:8080 || finish
start_bg inside app sleep 600 || finish
start_bg outside client sleep 600 || finish
# In the cgroup, but in the server's network namespace.
bash -c 'echo $$ > "$1/cgroup.procs" && exec nsenter --net="/run/netns/$2" sleep 600' _ "$CG" "$NS_S" \
	>/dev/null 2>&1 </dev/null &
ELSEWHERE=$!
BG_PIDS+=("$ELSEWHERE")
STATE_FILES+=("/run/sproxy-bpf/rules-netns-$(stat -L -c %i "/run/netns/$NS_C")")
start_daemon || { fail setup "$WHY"; finish; }
PID_IN=$(cat "$TMP/inside.pid")
PID_OUT=$(cat "$TMP/outside.pid")

# doctor NAME ARGS...: doctor in the client namespace; DOC_RC its status.
doctor() {
	local name=$1
	shift
	LAST_RUN=$name
	nsenter --net="/run/netns/$NS_C" -- "$SPROXY_BIN" doctor "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
	DOC_RC=$?
}

# says NAME STRING...: a line of doctor's output with every STRING.
says() {
	local name=$1
	shift
	expect "doctor did not say: $(printf "'%s' " "$@")" line_with "$TMP/$name.out" "$@" >/dev/null
}

t_healthy() {
	doctor healthy "$CG" --pid "$PID_IN"
	expect "doctor exited $DOC_RC on a healthy setup: $(grep FAIL "$TMP/healthy.out" | head -n 2)" [ "$DOC_RC" = 0 ] || return 1
	says healthy "ok" "pid $PID_IN is in $CG" || return 1
	says healthy "ok" "pid $PID_IN is in this network namespace" || return 1
	says healthy "sproxy-bpf's own connect4 program" || return 1
	says healthy "ok" "a daemon answers on 127.0.0.1 port 3333" || return 1
	says healthy "healthy: 0 problems"
}

t_no_cgroup() {
	doctor nocg "$CG2/sproxy-bpf-test-$TEST_ID-none"
	expect "doctor exited $DOC_RC for a missing cgroup" [ "$DOC_RC" = 1 ] || return 1
	says nocg "FAIL" "sproxy-bpf-test-$TEST_ID-none" "No such file" || return 1
	says nocg "fix:" "cgroup v2 directory" || return 1
	doctor notcg /tmp
	expect "doctor exited $DOC_RC for /tmp" [ "$DOC_RC" = 1 ] || return 1
	says notcg "FAIL" "'/tmp' is not a cgroup v2 directory"
}

t_pid_outside() {
	doctor outside "$CG" --pid "$PID_OUT"
	expect "doctor exited $DOC_RC for a pid outside the cgroup" [ "$DOC_RC" = 1 ] || return 1
	says outside "FAIL" "pid $PID_OUT is in" "not in $CG" || return 1
	says outside "fix:" "echo $PID_OUT > $CG/cgroup.procs"
}

t_pid_other_netns() {
	doctor netns "$CG" --pid "$ELSEWHERE"
	expect "doctor exited $DOC_RC for a pid in another netns" [ "$DOC_RC" = 0 ] || return 1
	says netns "ok" "pid $ELSEWHERE is in $CG" || return 1
	says netns "info" "pid $ELSEWHERE is in another network namespace" || return 1
	says netns "info" "--netns current"
}

t_rules_missing() {
	local gwrun=(nsenter --net="/run/netns/$NS_C" --)
	"${gwrun[@]}" "$SPROXY_BIN" rules --apply --port 3399 >"$TMP/apply.out" 2>&1 ||
		{ WHY="rules --apply failed: $(tail -n 1 "$TMP/apply.out")"; return 1; }
	"${gwrun[@]}" ip rule del fwmark 0x5354 lookup 3333
	doctor rules "$CG" --port 3333
	expect "doctor exited $DOC_RC with a rule missing" [ "$DOC_RC" = 1 ] || return 1
	says rules "FAIL" "TPROXY rules" "no 'ip -4 rule" "something removed part of them" || return 1
	says rules "fix:" "sproxy-bpf rules --remove" || return 1
	"${gwrun[@]}" "$SPROXY_BIN" rules --remove >"$TMP/remove.out" 2>&1 ||
		{ WHY="rules --remove after a piece went missing failed: $(tail -n 1 "$TMP/remove.out")"; return 1; }
	doctor rules2 "$CG"
	expect "doctor exited $DOC_RC once the rules were removed" [ "$DOC_RC" = 0 ] || return 1
	says rules2 "info" "TPROXY rules: none"
}

# --local rules where the main table has no default route (this
# namespace): a warning that names the family, not a failure.
t_local_no_default() {
	local gwrun=(nsenter --net="/run/netns/$NS_C" --)
	"${gwrun[@]}" "$SPROXY_BIN" rules --apply --local >"$TMP/apply2.out" 2>&1 ||
		{ WHY="rules --apply --local failed: $(tail -n 1 "$TMP/apply2.out")"; return 1; }
	doctor nodefault "$CG"
	"${gwrun[@]}" "$SPROXY_BIN" rules --remove >"$TMP/remove2.out" 2>&1 ||
		{ WHY="rules --remove failed: $(tail -n 1 "$TMP/remove2.out")"; return 1; }
	expect "doctor exited $DOC_RC with --local and no default route (a warning only)" [ "$DOC_RC" = 0 ] || return 1
	says nodefault "warn" "IPv4 has no default route" || return 1
	says nodefault "fix:" "a default route"
}

# A stopped daemon still completes TCP handshakes (the kernel does that)
# but never answers.
t_stuck_daemon() {
	daemon_running || return 1
	kill -STOP "$DAEMON_PID"
	doctor stuck "$CG"
	kill -CONT "$DAEMON_PID"
	expect "doctor exited $DOC_RC with the daemon stopped" [ "$DOC_RC" = 1 ] || return 1
	says stuck "FAIL" "127.0.0.1 port 3333 accepts but does not answer"
}

# Straight to the listener from outside the cgroup: no original
# destination; the log line says why and points at doctor.
t_no_origdst_line() {
	daemon_running || return 1
	client_run direct curl -sS -m 5 http://127.0.0.1:3333/
	expect_log "result=refused" "no original destination" "sproxy-bpf doctor"
}

# Another program on the cgroup that rewrites connect() too: named, as a
# warning (it may be meant to be there).
t_foreign_program() {
	need clang bpftool || return 1
	printf '%s\n' '#include <linux/bpf.h>' \
		'__attribute__((section("cgroup/connect4"), used))' \
		'int other_connect4(struct bpf_sock_addr *ctx) { return 1; }' \
		'__attribute__((section("license"), used)) char _license[] = "GPL";' >"$TMP/other.c"
	clang -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c "$TMP/other.c" -o "$TMP/other.o" 2>"$TMP/clang.err" ||
		{ WHY="clang: $(tail -n 1 "$TMP/clang.err")"; return 1; }
	mkdir -p "$PIN_DIR" &&
	bpftool prog load "$TMP/other.o" "$PIN_DIR/other" type cgroup/connect4 2>"$TMP/bpftool.err" &&
	bpftool cgroup attach "$CG" connect4 pinned "$PIN_DIR/other" multi 2>>"$TMP/bpftool.err" ||
		{ WHY="bpftool: $(tail -n 1 "$TMP/bpftool.err")"; return 1; }
	doctor foreign "$CG"
	bpftool cgroup detach "$CG" connect4 pinned "$PIN_DIR/other" 2>/dev/null
	expect "doctor exited $DOC_RC with a foreign program (a warning only)" [ "$DOC_RC" = 0 ] || return 1
	says foreign "warn" "connect4 program 'other_connect4'" "also rewrites addresses" || return 1
	says foreign "fix:" "bpftool cgroup tree"
}

run_case healthy t_healthy
run_case foreign_program t_foreign_program
run_case no_cgroup t_no_cgroup
run_case pid_outside t_pid_outside
run_case pid_other_netns t_pid_other_netns
run_case rules_missing t_rules_missing
run_case local_no_default t_local_no_default
run_case stuck_daemon t_stuck_daemon
run_case no_origdst_line t_no_origdst_line
finish
