#!/bin/bash
# Bulk relays spread over the event loops (--threads): with two loops and
# several downloads and uploads at once, the second loop takes some of
# them (status says how many), and every byte arrives: the files'
# checksums match, and each log line counts what the server sent and got.
# A daemon stopped while transfers run on the second loop takes them back,
# logs each (result=shutdown) and exits cleanly (an ASan build checks the
# hand-back for memory errors and leaks). --threads 1 keeps everything on
# one loop; --threads 0 is refused with a message.
. "$(dirname "$0")/../lib.sh"

V4=203.0.113.10
CTL=$TMP/ctl
export SPROXY_BPF_CONTROL_DIR=$CTL
CASE_LOGS=("$HTTP_LOG" "$TMP/status.out")

setup_topology || finish
setup_cgroup || finish
if ! need curl jq sha256sum "$TOOLS/httpd"; then
	fail setup "$WHY"
	finish
fi
mkdir -m 0700 "$CTL"
mkdir -p "$TMP/www"
# 24 MiB at 4 MB/s: longer than the kernel's socket buffers can hide, so
# the transfers overlap. The slow ones are sparse and far longer than any
# case: they run until the daemon stops.
head -c 25165824 /dev/urandom >"$TMP/www/big.bin"
for i in 1 2 3 4; do ln "$TMP/www/big.bin" "$TMP/www/big$i.bin"; done
truncate -s 1G "$TMP/www/slow.bin"
for i in 1 2 3 4; do ln "$TMP/www/slow.bin" "$TMP/www/slow$i.bin"; done
head -c 4194304 /dev/urandom >"$TMP/up.bin"
start_bg web server "$TOOLS/httpd" -o "$HTTP_LOG" -d "$TMP/www" $V4:8080 || finish

st() { timeout 10 "$SPROXY_BIN" status --json >"$TMP/status.out" 2>"$TMP/status.err"; }
# loops FILTER: jq FILTER of the daemon's fill.relay_loops, printed.
loops() { st && jq -r ".fill.relay_loops | $1" "$TMP/status.out"; }

# N downloads and 2 uploads at once, each slowed by the client so that
# they overlap; every one checked against its file.
transfers() {
	local n=$1 i pids=() req upl
	for i in $(seq "$n"); do
		app_run "dl$i" curl -sS -m 120 --limit-rate 4M -o "$TMP/dl$i.bin" \
			"http://$V4:8080/files/big$i.bin" &
		pids+=($!)
	done
	for i in 1 2; do
		app_run "ul$i" curl -sS -m 60 --limit-rate 4M -o /dev/null \
			-w '%{size_request} %{size_upload}\n' --data-binary @"$TMP/up.bin" "http://$V4:8080/upload/up$i.bin" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || { WHY="a transfer failed: $(cat "$TMP"/dl*.err "$TMP"/ul*.err | head -n 3)"; return 1; }
	done
	for i in $(seq "$n"); do
		expect "download $i differs from the file (sha256)" \
			[ "$(sha256sum <"$TMP/dl$i.bin")" = "$(sha256sum <"$TMP/www/big.bin")" ] || return 1
		expect_log "pid=$(cat "$TMP/dl$i.pid") " "result=ok" "down=$(http_get "/files/big$i.bin" tx) " ||
			return 1
	done
	for i in 1 2; do
		expect "upload $i differs from the file (sha256)" \
			[ "$(sha256sum <"$TMP/www/up$i.bin")" = "$(sha256sum <"$TMP/up.bin")" ] || return 1
		# up= counts what curl sent (the tag is added after counting)
		read -r req upl <"$TMP/ul$i.out"
		expect_log "pid=$(cat "$TMP/ul$i.pid") " "result=ok" "up=$((req + upl)) " \
			"down=$(http_get /upload/up$i.bin tx) " || return 1
	done
}

t_spread() {
	local taken
	start_daemon --threads 2 --control-dir "$CTL" || return 1
	transfers 4 || return 1
	expect "status shows $(loops length) relay loops, want 2" [ "$(loops length)" = 2 ] || return 1
	taken=$(loops '.[1].taken')
	expect "the second loop took $taken bulk relays of 6 at once, want at least 1" \
		[ "${taken:-0}" -ge 1 ] || return 1
	expect "status says $(loops 'map(.bulk) | add') bulk relays still running, want 0" \
		[ "$(loops 'map(.bulk) | add')" = 0 ] || return 1
	expect "the text status has no line for the loops" \
		eval '"$SPROXY_BIN" status | grep -Eq "^  Bulk relays per loop +0 \([0-9]+\) 0 \($taken\)\$"'
}

# Stopped mid-transfer: the relays on the second loop come back to be
# logged and closed; the daemon exits 0 (under ASan: no error, no leak).
t_stop_mid_stream() {
	local i pids=() n
	daemon_running || return 1
	for i in 1 2 3 4; do
		app_run "slow$i" curl -sS -m 60 --limit-rate 1M -o /dev/null \
			"http://$V4:8080/files/slow$i.bin" &
		pids+=($!)
	done
	expect "no transfer reached the second loop within 10 s" \
		wait_for 10 eval '[ "$(loops ".[1].bulk")" -ge 1 ]' || return 1
	stop_daemon || return 1
	for i in "${pids[@]}"; do wait "$i"; done
	for i in 1 2 3 4; do
		expect_log "pid=$(cat "$TMP/slow$i.pid") " "result=shutdown" || return 1
	done
	n=$(grep -c 'result=shutdown' "$TMP/conn.log")
	expect "$n lines with result=shutdown, want 4" [ "$n" = 4 ]
}

t_one_loop() {
	start_daemon --threads 1 --control-dir "$CTL" || return 1
	transfers 2 || return 1
	expect "status lists $(loops length) relay loops with --threads 1, want none" \
		[ "$(loops length)" = 0 ] || return 1
	expect "the text status shows loops with --threads 1" \
		eval '! "$SPROXY_BIN" status | grep -q "Bulk relays"' || return 1
	stop_daemon
}

t_zero_refused() {
	local rc
	"$SPROXY_BIN" attach "$CG" --threads 0 >/dev/null 2>"$TMP/zero.err"
	rc=$?
	expect "--threads 0 exited $rc, want 2" [ $rc = 2 ] || return 1
	expect "no message naming --threads: $(cat "$TMP/zero.err")" \
		grep -q -- "--threads wants a decimal number from 1 to 64, not '0'" "$TMP/zero.err"
}

run_case spread t_spread
run_case stop-mid-stream t_stop_mid_stream
run_case one-loop t_one_loop
run_case zero-refused t_zero_refused
finish
