#!/bin/bash
# Least privilege. Covers:
#   after start the daemon runs as an unprivileged user (sproxy-bpf when it
#     exists, else nobody; --user NAME) with CAP_NET_ADMIN only (--netns
#     current), in CapEff,
#     CapPrm and CapBnd, and says so; the helper it leaves behind keeps uid 0
#     with CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE and holds
#     no fd but its socket (no bpf_link, no listener);
#   after the drop: TCP, UDP and DNS (FakeIP) still captured and logged, with
#     the cgroup's name (the helper's job); SIGHUP moves to a new log file (in a root-only directory)
#     and reads a root-only config file again; --reattach attaches again;
#   SIGTERM: exit 0, the FakeIP store written, no program left on the cgroup,
#     the daemon's own cgroup removed, the helper gone; SIGKILL: the helper
#     still removes the daemon's cgroup;
#   --netns all (the default) keeps CAP_SYS_ADMIN and CAP_SYS_PTRACE too;
#   tproxy drops too, keeping CAP_NET_BIND_SERVICE as well;
#   --no-drop and --user root keep root; a bad --user is exit status 2.
. "$(dirname "$0")/../lib.sh"

CURL_VER=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
V4=203.0.113.10
RESOLVER=198.51.100.53
CASE_LOGS=("$HTTP_LOG")
NET_ADMIN=0000000000001000	# bit 12
NETNS_ALL=0000000000281000	# and SYS_PTRACE 19, SYS_ADMIN 21
HELPER_CAPS=0000000000080006	# DAC_OVERRIDE 1, DAC_READ_SEARCH 2, SYS_PTRACE 19

setup_topology || finish
setup_cgroup || finish
if ! need curl dig dnsmasq "$TOOLS/httpd" "$TOOLS/echod" "$TOOLS/netclient"; then
	fail setup "$WHY"
	finish
fi
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $V4:8080 || finish
start_bg echo server "$TOOLS/echod" -o "$TMP/echo.log" $V4:7 || finish
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=$RESOLVER --bind-interfaces --user=root --group=root --pid-file= \
	--log-facility="$TMP/dnsmasq.log" --address=/name.test/$V4 || finish
printf 'nameserver 192.0.2.53\noptions timeout:3 attempts:1\n' >"$TMP/resolv.conf"
RESOLV_CONF=$TMP/resolv.conf
DROP_USER=$(getent passwd sproxy-bpf >/dev/null && echo sproxy-bpf || echo nobody)
DROP_UID=$(id -u "$DROP_USER")

# A config file only root may read, in a directory only root may enter
# ($TMP is 0700): after the drop, only the helper can read it.
CONF=$TMP/config
write_conf() {
	printf 'resolver = %s\nfakeip-store = %s\nrule = DOMAIN,b.example,REJECT\n' \
		"$RESOLVER" "$TMP/fakeip.store" >"$CONF"
	printf '%s\n' "$@" >>"$CONF"
	chmod 600 "$CONF"
}
write_conf

# status PID KEY: a field of /proc/PID/status ("Uid", "CapEff"...).
status() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }
helper_pid() { sed -n 's/.*privileges: helper pid \([0-9]*\) .*/\1/p' "$TMP/daemon.err" | tail -n 1; }

tagged() {
	expect "the server got no request for $1" wait_http 5 "$1" || return 1
	expect "server saw User-Agent '$(http_get "$1" ua)' for $1, not tagged" \
		[ "$(http_get "$1" ua)" = "curl/$CURL_VER $(tag curl "$2")" ]
}

# --- the drop ------------------------------------------------------------------------

# --netns current: nothing but CAP_NET_ADMIN (no container to enter later).
t_dropped() {
	start_daemon --config "$CONF" --netns current || return 1
	local p=$DAEMON_PID uid gid
	uid=$(status "$p" Uid)
	gid=$(status "$p" Gid)
	expect "Uid is '$uid', want $DROP_UID (user $DROP_USER) four times" \
		[ "$uid" = "$DROP_UID $DROP_UID $DROP_UID $DROP_UID" ] || return 1
	expect "Gid is '$gid': still 0" eval '[[ " $gid " != *" 0 "* ]]' || return 1
	expect "supplementary groups left: $(status "$p" Groups)" [ -z "$(status "$p" Groups)" ] || return 1
	for k in CapEff CapPrm; do
		expect "$k is $(status "$p" $k), want $NET_ADMIN (CAP_NET_ADMIN)" \
			[ "$(status "$p" $k)" = $NET_ADMIN ] || return 1
	done
	for k in CapBnd CapAmb CapInh; do
		expect "$k is $(status "$p" $k), want none" [ "$(status "$p" $k)" = 0000000000000000 ] || return 1
	done
	expect "NoNewPrivs is $(status "$p" NoNewPrivs)" [ "$(status "$p" NoNewPrivs)" = 1 ] || return 1
	expect "no line says what the daemon kept" \
		grep -q "privileges: running as user $DROP_USER (uid $DROP_UID).*CAP_NET_ADMIN only" \
		"$TMP/daemon.err"
}

# --netns all (the default) keeps CAP_SYS_ADMIN and CAP_SYS_PTRACE as well,
# for containers that start later (71_containers.sh tests them after the
# drop); still not root.
t_dropped_netns_all() {
	local p
	start_daemon || return 1
	p=$DAEMON_PID
	expect "Uid is '$(status "$p" Uid)'" \
		[ "$(status "$p" Uid)" = "$DROP_UID $DROP_UID $DROP_UID $DROP_UID" ] || return 1
	expect "CapEff is $(status "$p" CapEff), want $NETNS_ALL (NET_ADMIN, SYS_PTRACE, SYS_ADMIN)" \
		[ "$(status "$p" CapEff)" = $NETNS_ALL ] || return 1
	expect "no line names the two" grep -q "CAP_SYS_ADMIN and CAP_SYS_PTRACE (--netns all" \
		"$TMP/daemon.err" || return 1
	stop_daemon
}

t_helper() {
	daemon_running || return 1
	local h fds
	h=$(helper_pid)
	expect "no 'helper pid' line" [ -n "$h" ] || return 1
	expect "helper $h is not the daemon's child" [ "$(status "$h" PPid)" = "$DAEMON_PID" ] || return 1
	expect "helper Uid $(status "$h" Uid)" [ "$(status "$h" Uid)" = "0 0 0 0" ] || return 1
	expect "helper CapEff $(status "$h" CapEff), want $HELPER_CAPS" \
		[ "$(status "$h" CapEff)" = $HELPER_CAPS ] || return 1
	expect "helper CapBnd $(status "$h" CapBnd), want 0" \
		[ "$(status "$h" CapBnd)" = 0000000000000000 ] || return 1
	# Its socket (3) and the cgroup2 mount (4, for names by id); nothing of
	# the daemon's: a copy of a bpf_link fd would keep capture alive.
	fds=$(ls "/proc/$h/fd" | sort -n | tr '\n' ' ')
	expect "helper holds fds '$fds', want 0 1 2 3 4" [ "$fds" = "0 1 2 3 4 " ] || return 1
	expect "helper fd 4 is $(readlink "/proc/$h/fd/4"), not $CG2" [ "$(readlink "/proc/$h/fd/4")" = "$CG2" ]
}

# --- what still works after it ----------------------------------------------------------

t_tcp() {
	daemon_running || return 1
	ran app_run tcp curl -sS -m 10 "http://$V4:8080/tcp" || return 1
	tagged /tcp "$RUN_PID" || return 1
	expect_log " tcp " "pid=$RUN_PID " "cgroup=/${CG#"$CG2"/} " "result=ok"
}

t_udp() {
	daemon_running || return 1
	ran app_run udp "$TOOLS/netclient" udp -n 3 $V4:7 || return 1
	expect_log " udp " "pid=$RUN_PID " "dst=$V4:7 "
}

t_dns() {
	daemon_running || return 1
	ran app_run dns dig +time=3 +tries=1 +short name.test A || return 1
	local fake
	fake=$(grep -v '^;' "$TMP/dns.out" | head -n 1)
	expect "dig answered '$fake', not a FakeIP address" eval '[[ $fake == 198.1[89].* ]]' || return 1
	ran app_run byname curl -sS -m 10 "http://name.test:8080/byname" || return 1
	tagged /byname "$RUN_PID" || return 1
	expect_log " tcp " "pid=$RUN_PID " "host=name.test " "result=ok"
}

t_sighup() {
	daemon_running || return 1
	mv "$TMP/conn.log" "$TMP/conn.log.1"
	write_conf 'rule = DOMAIN,a.example,DIRECT' 'rule = MATCH,DIRECT'
	kill -HUP "$DAEMON_PID"
	expect "no 'SIGHUP: 3 rules in use' line (the config read again)" \
		wait_for 5 grep -q "SIGHUP: 3 rules in use" "$TMP/daemon.err" || return 1
	expect "no new log file after SIGHUP" wait_for 5 test -f "$TMP/conn.log" || return 1
	expect "the new log is mode $(stat -c %a "$TMP/conn.log"), not 600" \
		[ "$(stat -c %a "$TMP/conn.log")" = 600 ] || return 1
	ran app_run afterhup curl -sS -m 10 "http://$V4:8080/afterhup" || return 1
	expect_log " tcp " "pid=$RUN_PID " "result=ok" || return 1
	expect "the daemon died of SIGHUP" daemon_running
}

t_sigterm() {
	local p=$DAEMON_PID h
	h=$(helper_pid)
	daemon_running || return 1
	stop_daemon || return 1
	expect "its own cgroup $CG2/sproxy-bpf/$p is left" [ ! -d "$CG2/sproxy-bpf/$p" ] || return 1
	expect "programs left on $CG: $(attached_progs "$CG" | tr '\n' ' ')" \
		[ -z "$(attached_progs "$CG")" ] || return 1
	expect "the helper $h outlived the daemon" wait_for 5 eval '! alive '"$h" || return 1
	expect "the FakeIP store lacks name.test" grep -q " name.test$" "$TMP/fakeip.store" || return 1
	expect "a warning at exit: $(grep -m1 'warning\|error' "$TMP/daemon.err")" \
		eval '! grep -q "warning\|error" "$TMP/daemon.err"'
}

t_sigkill() {
	start_daemon --netns current || return 1
	local p=$DAEMON_PID h
	h=$(helper_pid)
	expect "no own cgroup $CG2/sproxy-bpf/$p while running" [ -d "$CG2/sproxy-bpf/$p" ] || return 1
	kill_daemon
	expect "the helper left $CG2/sproxy-bpf/$p after the daemon's SIGKILL" \
		wait_for 5 test ! -d "$CG2/sproxy-bpf/$p" || return 1
	expect "the helper $h outlived the daemon" wait_for 5 eval '! alive '"$h"
}

t_reattach() {
	local gone=$CG2/sproxy-bpf-test-$TEST_ID-gone saved=$CG
	make_cgroup "$gone" || return 1
	ATTACH_TARGET=$gone start_daemon --reattach --netns current || return 1
	rmdir "$gone" || return 1
	expect "no message says the cgroup was removed" \
		wait_for 5 grep -q "$gone.*removed" "$TMP/daemon.err" || return 1
	mkdir "$gone" || return 1
	expect "no 'attached again' after the drop" \
		wait_for 5 grep -q "$gone.*attached again" "$TMP/daemon.err" || return 1
	CG=$gone
	app_run back curl -sS -m 10 "http://$V4:8080/back"
	CG=$saved
	[ "$RUN_RC" = 0 ] || { WHY="curl in the new cgroup failed: $(tail -n 1 "$TMP/back.err")"; return 1; }
	tagged /back "$RUN_PID" || return 1
	stop_daemon
}

# tproxy drops too, and keeps CAP_NET_BIND_SERVICE: its UDP replies leave
# from the original port (53, 7), bound with IP_TRANSPARENT.
t_tproxy() {
	kill_daemon
	: >"$TMP/tproxy.err"
	bash -c "$_ENTER" _ client "$CG" "$NS_C" "" "" "$SPROXY_BIN" tproxy -l 127.0.0.1:4444 \
		--resolver $RESOLVER >/dev/null 2>"$TMP/tproxy.err" </dev/null &
	local p=$!
	BG_PIDS+=("$p")
	expect "tproxy printed no ready line: $(tail -n 1 "$TMP/tproxy.err")" \
		wait_for 10 grep -q '^sproxy-bpf: ready: ' "$TMP/tproxy.err" || return 1
	expect "tproxy Uid $(status "$p" Uid)" \
		[ "$(status "$p" Uid)" = "$DROP_UID $DROP_UID $DROP_UID $DROP_UID" ] || return 1
	expect "tproxy CapEff $(status "$p" CapEff), want 0000000000001400 (NET_ADMIN, NET_BIND_SERVICE)" \
		[ "$(status "$p" CapEff)" = 0000000000001400 ] || return 1
	kill -TERM "$p"
	expect "tproxy still running after SIGTERM" wait_for 10 eval '! alive '"$p" || return 1
	wait "$p"
	local rc=$?
	expect "tproxy exited $rc after SIGTERM: $(tail -n 1 "$TMP/tproxy.err")" [ $rc = 0 ]
}

# --- keeping root -------------------------------------------------------------------

t_keep() {
	local how
	kill_daemon
	for how in --no-drop "--user root"; do
		# shellcheck disable=SC2086
		start_daemon $how || return 1
		expect "$how: Uid $(status "$DAEMON_PID" Uid)" \
			[ "$(status "$DAEMON_PID" Uid)" = "0 0 0 0" ] || return 1
		expect "$how: CapEff $(status "$DAEMON_PID" CapEff) is CAP_NET_ADMIN only" \
			[ "$(status "$DAEMON_PID" CapEff)" != $NET_ADMIN ] || return 1
		expect "$how: no line says all is kept" grep -q "privileges: kept all" "$TMP/daemon.err" || return 1
		stop_daemon || return 1
	done
}

t_user() {
	kill_daemon
	start_daemon --user daemon || return 1
	expect "--user daemon: Uid $(status "$DAEMON_PID" Uid)" \
		[ "$(status "$DAEMON_PID" Uid | cut -d' ' -f1)" = "$(id -u daemon)" ] || return 1
	stop_daemon || return 1
	"$SPROXY_BIN" attach "$CG" --user no-such-user-here >/dev/null 2>"$TMP/baduser.err"
	local rc=$?
	expect "a bad --user: exit $rc, want 2" [ $rc = 2 ] || return 1
	expect "the message does not name the user" grep -q "no-such-user-here" "$TMP/baduser.err"
}

run_case dropped-to-user-with-net-admin t_dropped
run_case helper-root-three-caps-no-fds t_helper
run_case tcp-after-drop t_tcp
run_case udp-after-drop t_udp
run_case dns-after-drop t_dns
run_case sighup-log-and-config-after-drop t_sighup
run_case sigterm-cleans-up t_sigterm
run_case sigkill-helper-removes-cgroup t_sigkill
run_case netns-all-keeps-two-more t_dropped_netns_all
run_case reattach-after-drop t_reattach
run_case tproxy-drops-keeps-bind t_tproxy
run_case no-drop-keeps-root t_keep
run_case user-option t_user
finish
