#!/bin/bash
# --to: captured TCP handed to an existing REDIRECT-style proxy, with no
# netfilter rule anywhere.  redsocks (redirector = iptables, which asks
# SO_ORIGINAL_DST) runs in a cgroup of its own below the captured one, so
# its own connections out would come back to it if they were captured; it
# forwards through microsocks in the "remote" namespace (203.0.113.11), so
# the web server seeing that address proves the path.  mitmdump --mode
# transparent runs in a sibling cgroup and reads SO_ORIGINAL_DST too.  The
# hook goes on the proxy's cgroup (found from its listener) and away with
# the daemon; the cgroup v2 root and the captured cgroup itself are refused
# with nothing attached.  DNS stays with the daemon, with real answers.
. "$(dirname "$0")/../lib.sh"

WEB=203.0.113.10
UP=203.0.113.11
RESOLVER=198.51.100.53
RS_PORT=12345
MITM_PORT=8081
CURL=(curl -sS -m 20)
DIG=(dig +time=3 +tries=1)
CASE_LOGS=("$HTTP_LOG" "$TMP/redsocks.log" "$TMP/mitm.out" "$TMP/mitm.err")
RS_CG=$CG/redsocks
MITM_CG=$CG2/sproxy-bpf-test-$TEST_ID-mitm

setup_topology || finish
setup_cgroup || finish
if ! need curl dig dnsmasq redsocks mitmdump microsocks nft iptables-save bpftool ss \
	"$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
make_cgroup "$RS_CG" || { _setup_fail "mkdir $RS_CG"; finish; }
make_cgroup "$MITM_CG" || { _setup_fail "mkdir $MITM_CG"; finish; }

netfilter() {
	in_client nft list ruleset 2>&1
	in_client iptables-save 2>&1 | grep -v '^#'
}
NF_BEFORE=$(netfilter)

start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" $WEB:8080 $WEB:443 || finish
start_bg socks server microsocks -i $UP -p 1080 -b $UP || finish
start_bg dnsmasq server dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
	--no-hosts --listen-address=$RESOLVER --bind-interfaces --user=root --group=root \
	--pid-file= --address=/name.test/$WEB || finish

# "${IN_CGROUP[@]}" CGROUP CMD...: CMD joins CGROUP first (the pid stays).
IN_CGROUP=(bash -c 'echo $$ > "$1/cgroup.procs" || exit 125; shift; exec "$@"' _)
listening() { in_client ss -Hltn "sport = :$1" | grep -q .; }

cat >"$TMP/redsocks.conf" <<CONF
base {
	log_debug = off;
	log_info = on;
	log = "file:$TMP/redsocks.log";
	daemon = off;
	redirector = iptables;
}
redsocks {
	local_ip = 127.0.0.1;
	local_port = $RS_PORT;
	ip = $UP;
	port = 1080;
	type = socks5;
}
CONF
start_bg redsocks client "${IN_CGROUP[@]}" "$RS_CG" redsocks -c "$TMP/redsocks.conf" || finish
if ! wait_for 10 listening $RS_PORT; then
	_setup_fail "redsocks does not listen: $(tail -n 3 "$TMP/redsocks.err" "$TMP/redsocks.log")"
	finish
fi

# --- redsocks ----------------------------------------------------------------

t_redsocks() {
	start_daemon --to 127.0.0.1:$RS_PORT --resolver $RESOLVER || return 1
	ran app_run rs "${CURL[@]}" -o /dev/null -w '%{http_code}' http://$WEB:8080/rs || return 1
	expect "curl got '$(cat "$TMP/rs.out")', not 200" grep -qx 200 "$TMP/rs.out" || return 1
	wait_http 5 /rs
	local peer
	peer=$(http_get /rs peer)
	expect "the server saw $peer, not microsocks ($UP): the request did not go through redsocks" \
		[ "${peer%:*}" = $UP ]
}

# A port the kernel fast path would send straight to the server (443: no
# tagging there) is handed off all the same: the other proxy decides.
t_fast_path_port() {
	daemon_running || return 1
	ran app_run tls "${CURL[@]}" -o /dev/null -w '%{http_code}' http://$WEB:443/tls ||
		return 1
	wait_http 5 /tls
	local peer
	peer=$(http_get /tls peer)
	expect "the server saw $peer, not microsocks ($UP): port 443 was not handed off" \
		[ "${peer%:*}" = $UP ] || return 1
	expect_log "route=to:127.0.0.1:$RS_PORT" "pid=$RUN_PID" "dst=$WEB:443"
}

t_hook_on_proxy_cgroup() {
	daemon_running || return 1
	expect "no getsockopt program on $RS_CG: $(attached_progs "$RS_CG" | tr '\n' ' ')" \
		eval 'attached_progs "$RS_CG" | grep -q getsockopt'
}

t_log_route() {
	expect_log "route=to:127.0.0.1:$RS_PORT" path=kernel "pid=$RUN_PID" comm=curl "dst=$WEB:8080" || return 1
	local line
	line=$(log_line "route=to:127.0.0.1:$RS_PORT" "pid=$RUN_PID")
	# redsocks and microsocks relay the bytes as they are: the server's
	# counts are the application's.
	expect "up/down in '$line' are not the server's rx=$(http_get /rs rx) tx=$(http_get /rs tx)" \
		[ "$(field "$line" up)" = "$(http_get /rs rx)" ] &&
		[ "$(field "$line" down)" = "$(http_get /rs tx)" ]
}

# redsocks' own connection to microsocks was not captured (it would have
# come back to redsocks, and been logged).
t_proxy_not_captured() {
	expect "redsocks' own connection was captured: $(log_line comm=redsocks)" \
		eval '! log_line comm=redsocks >/dev/null'
}

t_dns_real() {
	daemon_running || return 1
	ran app_run dig "${DIG[@]}" +short @$RESOLVER name.test || return 1
	expect "dig got '$(cat "$TMP/dig.out")', not the real $WEB (FakeIP is off with --to)" \
		grep -qx $WEB "$TMP/dig.out" || return 1
	expect_log dns "pid=$RUN_PID"
}

t_detached_on_exit() {
	stop_daemon || return 1
	expect "programs left on $RS_CG: $(attached_progs "$RS_CG" | tr '\n' ' ')" \
		eval '[ -z "$(attached_progs "$RS_CG")" ]' || return 1
	expect "programs left on $CG" eval '[ -z "$(attached_progs "$CG")" ]' || return 1
	records_freed
}

# Every record went with its connection (sockops ran for both ends).
records_freed() {
	expect "records left: $(grep 'TCP records open' "$TMP/daemon.err")" \
		grep -q "TCP records open: 0 sockets, 0 connections" "$TMP/daemon.err"
}

# The links are plain ones: a daemon killed takes them along.
t_detached_on_sigkill() {
	start_daemon --to 127.0.0.1:$RS_PORT --resolver $RESOLVER || return 1
	expect "no getsockopt program on $RS_CG" \
		eval 'attached_progs "$RS_CG" | grep -q getsockopt' || return 1
	kill_daemon
	expect "programs left on $RS_CG after SIGKILL: $(attached_progs "$RS_CG" | tr '\n' ' ')" \
		wait_for 5 eval '[ -z "$(attached_progs "$RS_CG")" ]'
}

# --- mitmdump ----------------------------------------------------------------

t_mitmdump() {
	mkdir -p "$TMP/mitmconf"
	start_bg mitm client "${IN_CGROUP[@]}" "$MITM_CG" mitmdump --mode transparent \
		--listen-host 127.0.0.1 --listen-port $MITM_PORT --set confdir="$TMP/mitmconf" \
		|| return 1
	expect "mitmdump does not listen: $(tail -n 2 "$TMP/mitm.err")" \
		wait_for 30 listening $MITM_PORT || return 1
	start_daemon --to 127.0.0.1:$MITM_PORT --resolver $RESOLVER || return 1
	ran app_run mitm-curl "${CURL[@]}" -o /dev/null -w '%{http_code}' \
		http://$WEB:8080/mitm || return 1
	expect "curl got '$(cat "$TMP/mitm-curl.out")', not 200" \
		grep -qx 200 "$TMP/mitm-curl.out" || return 1
	expect "mitmdump did not show the request to $WEB:8080" \
		wait_for 5 grep -q "$WEB:8080/mitm" "$TMP/mitm.out" || return 1
	expect "no getsockopt program on $MITM_CG" \
		eval 'attached_progs "$MITM_CG" | grep -q getsockopt' || return 1
	expect_log "route=to:127.0.0.1:$MITM_PORT" "pid=$RUN_PID" "dst=$WEB:8080" || return 1
	stop_daemon || return 1
	expect "programs left on $MITM_CG" eval '[ -z "$(attached_progs "$MITM_CG")" ]' ||
		return 1
	records_freed
}

t_no_netfilter() {
	local after
	after=$(netfilter)
	expect "the client namespace's netfilter rules changed: '$after'" \
		[ "$after" = "$NF_BEFORE" ] || return 1
	expect "the client namespace has netfilter rules: '$after'" [ -z "$after" ]
}

# --- refusals ----------------------------------------------------------------

# refused NAME WANT ARGS...: the daemon exits with status 2, says WANT, and
# leaves nothing attached.
refused() {
	local name=$1 want=$2 root_before
	shift 2
	root_before=$(attached_progs "$CG2")
	client_run "$name" timeout 20 "$SPROXY_BIN" attach "$CG" --log "$TMP/$name.log" "$@"
	expect "exit status $RUN_RC, not 2: $(tail -n 1 "$TMP/$name.err")" [ "$RUN_RC" = 2 ] ||
		return 1
	expect "no message about '$want': $(tail -n 1 "$TMP/$name.err")" \
		grep -q "$want" "$TMP/$name.err" || return 1
	expect "programs attached to $CG" eval '[ -z "$(attached_progs "$CG")" ]' || return 1
	expect "programs on the cgroup v2 root changed" \
		[ "$(attached_progs "$CG2")" = "$root_before" ]
}

t_root_refused() {
	refused root "cgroup v2 root" --to 127.0.0.1:$RS_PORT --proxy-cgroup "$CG2" || return 1
	expect "the message does not say how to move the proxy" \
		grep -q "cgroup.procs" "$TMP/root.err"
}

t_target_refused() {
	refused target "the captured cgroup itself" --to 127.0.0.1:$RS_PORT --proxy-cgroup "$CG"
}

t_nothing_listening() {
	refused nolistener "nothing listens there" --to 127.0.0.1:1
}

t_proxy_cgroup_alone() {
	client_run alone "$SPROXY_BIN" check --proxy-cgroup "$RS_CG"
	expect "exit status $RUN_RC, not 2" [ "$RUN_RC" = 2 ] || return 1
	expect "no message: $(tail -n 1 "$TMP/alone.err")" \
		grep -q -- "--proxy-cgroup goes with --to" "$TMP/alone.err"
}

run_case redsocks t_redsocks
run_case hook_on_proxy_cgroup t_hook_on_proxy_cgroup
run_case log_route t_log_route
run_case fast_path_port t_fast_path_port
run_case proxy_not_captured t_proxy_not_captured
run_case dns_real_answers t_dns_real
run_case detached_on_exit t_detached_on_exit
run_case detached_on_sigkill t_detached_on_sigkill
run_case mitmdump t_mitmdump
run_case root_refused t_root_refused
run_case target_refused t_target_refused
run_case nothing_listening t_nothing_listening
run_case proxy_cgroup_needs_to t_proxy_cgroup_alone
run_case no_netfilter t_no_netfilter
finish
