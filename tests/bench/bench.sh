#!/bin/bash
# make bench: sproxy-bpf against a direct connection and against the
# alternatives from Debian, measured in one run with the same client tools.
#
#   tests/bench/bench.sh [--smoke] [--reps N] [--only WL[,WL...]]
#
#   --smoke    every workload once, briefly (harness check; exits non-zero
#              only if a workload could not run at all)
#   --reps N   repetitions per cell (default 5; medians and spread)
#   --mem-conns N  idle connections the mem workload holds per proxy
#              (default 10000; 1000 with --smoke), as many as the fd
#              hard limit lets each proxy hold
#   --only     a subset of workloads: iperf1_up iperf1_down iperf8_up
#              curl_bulk conn_close keepalive dns mem ready
#   --with-copy  one more configuration, "copy": sproxy-bpf --relay copy
#              (user-space copy instead of splice), to compare relay modes
#   --with-threads N  one more configuration instead, "threadsN":
#              sproxy-bpf --threads N (bulk relays over N event loops), to
#              compare against the default
#   --plot FILE.json  only draw build/bench/bench-latest.png again from a saved run
#   --anchor OPTS  the options of the anchor relay (tests/bench/minrelay.c);
#              given again, one more anchor column each (anchor2, anchor3...),
#              to compare its settings in one run
#   --configs LIST  only these columns (direct is always measured)
#   SPROXY_BPF=path  the daemon to measure (default ./sproxy-bpf)
#   SPROXY_BPF_OPTS="..."  more options for every start of the daemon
#              (e.g. --threads 1, to compare against the default)
#
# Topology (every name carries this script's pid; all removed on exit):
#
#   ns C  192.0.2.1  --veth--  192.0.2.2 / 198.51.100.2   ns S
#   (clients, sproxy-bpf,                (httpd :8080, iperf3 :5201,
#    proxychains4)                        dnsmasq :53 -> dnsmasq :5353,
#                                         microsocks :1080)
#   ns R  203.0.113.1 --veth-- 203.0.113.2 (same ns S)
#   (clients of redsocks, redsocks, iptables REDIRECT for the cgroup
#    <cg2>/sproxy-bpf-test-PID-redsocks only; conntrack lives in R only)
#
# Configurations (columns):
#   direct       client in ns C, no programs attached anywhere
#   sproxy       client in <cg2>/sproxy-bpf-test-PID-bench, sproxy-bpf attached
#                to it (direct relay); the daemon runs in ns C
#   copy         (--with-copy) the same with --relay copy
#   threadsN     (--with-threads N) the same with --threads N
#   anchor       client in ns C connects to 127.0.0.1, where minrelay (a bare
#                splice relay, no BPF) relays to the server: the same two TCP
#                legs as the daemon's path, so anchor/direct is what this
#                kernel allows a user-space relay; anchorN: 127.0.0.N
#   fast         the same with --tag off: nothing needs the proxy, so every
#                connection takes the kernel fast path (not relayed, logged)
#   hooks        client in the cgroup, the daemon stopped, tests/bench/minhooks
#                attached instead: a connect hook that changes nothing and a
#                sockops program sending one ring-buffer record per closed
#                connection to a reader that only counts; what any per-
#                connection report through cgroup BPF costs, the kernel
#                path's anchor
#   out          programs attached, client outside the cgroup
#   incg         client inside the cgroup, no programs attached (the daemon
#                is stopped): what the cgroup itself costs (memory
#                accounting of socket buffers), apart from the hooks
#   bypass       programs attached, client inside the cgroup, destination in
#                the --bypass CIDR 198.51.100.0/24 (same server, other address)
#   redsocks     iptables REDIRECT (ns R, OUTPUT, -m cgroup --path) to redsocks,
#                chained to microsocks in ns S
#   proxychains  proxychains4 (LD_PRELOAD, strict_chain) to microsocks
#   microsocks   the client speaks SOCKS5 itself (curl --socks5 only)
#
# Output: a table on stdout, build/bench/bench-DATE.json (raw samples and
# summaries), build/bench/bench-latest.png (gnuplot).
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD

SMOKE=0 REPS="" ONLY="" WITH_COPY=0 ALT=copy ALT_OPTS=(--relay copy) PLOT_JSON="" MEM_CONNS="" ONLY_CFGS=""
# The anchor's settings: what the grid in README's Performance section found
# best for the daemon's own relay (see user/relay.c), so that the two compare.
ANCHOR_OPTS=() DEFAULT_ANCHOR="--pipe-size 1048576"
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) SMOKE=1 ;;
	--reps) REPS=$2; shift ;;
	--mem-conns) MEM_CONNS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--with-copy) WITH_COPY=1 ALT=copy ALT_OPTS=(--relay copy) ;;
	--with-threads)
		[[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "bench: --with-threads wants a number of loops" >&2; exit 2; }
		WITH_COPY=1 ALT=threads$2 ALT_OPTS=(--threads "$2"); shift ;;
	--plot) PLOT_JSON=$2; shift ;;
	--anchor) ANCHOR_OPTS+=("$2"); shift ;;
	--configs) ONLY_CFGS=$2; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

[ ${#ANCHOR_OPTS[@]} = 0 ] && ANCHOR_OPTS=("$DEFAULT_ANCHOR")
if [ $SMOKE = 1 ]; then
	: "${REPS:=1}"
	T_IPERF=1 T_WRK=1 T_CURL=1 T_DNS=1 MEM_N=1000 MEM_REPS=1 READY_N=2
else
	: "${REPS:=5}"
	T_IPERF=3 T_WRK=3 T_CURL=2 T_DNS=2 MEM_N=10000 MEM_REPS=2 READY_N=7
fi
MODE=$([ $SMOKE = 1 ] && echo smoke || echo full)
if [ -n "$MEM_CONNS" ]; then
	[[ $MEM_CONNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: --mem-conns wants a positive number" >&2; exit 2; }
	MEM_N=$MEM_CONNS
fi

OUT=$ROOT/build/bench
BIN=$OUT/bin
SPROXY=${SPROXY_BPF:-$ROOT/sproxy-bpf}
mkdir -p "$BIN"
die() { echo "bench: $*" >&2; exit 2; }
log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }

# The chart of a run (reads $TMP/summary.tsv): build/bench/bench-latest.png
chart() {
	local d=$TMP/plot cols="${CONFIGS[*]:1}" pcols="sproxy redsocks"
	[ $WITH_COPY = 1 ] && pcols="sproxy $ALT redsocks"
	local nc np
	nc=$(wc -w <<<"$cols"); np=$(wc -w <<<"$pcols")
	mkdir -p "$d"
	# ratio rows: label wl metric
	dat() { # file cols rows...
		local f=$1 c=$2; shift 2
		awk -F'\t' -v cols="$c" -v rows="$*" '
			{ k = $1 SUBSEP $2 SUBSEP $3; r[k] = $8; lo[k] = $9; hi[k] = $10; m[k] = $5; mn[k] = $6; mx[k] = $7 }
			END {
				nc = split(cols, C, " "); nr = split(rows, R, " ")
				for (i = 1; i <= nr; i++) {
					split(R[i], p, ":"); gsub(/_/, " ", p[1]); printf "\"%s\"", p[1]
					for (c = 1; c <= nc; c++) {
						k = p[2] SUBSEP C[c] SUBSEP p[3]
						if (p[4] == "abs") { if (k in m) printf " %s %s %s", m[k], mn[k], mx[k]; else printf " ? ? ?" }
						else if ((k in r) && r[k] != "") printf " %s %s %s", r[k], lo[k], hi[k]
						else printf " ? ? ?"
					}
					printf "\n"
				}
			}' "$TMP/summary.tsv" >"$f"
	}
	dat "$d/up.dat" "$cols" iperf3_1_up:iperf1_up:bit_s iperf3_1_down:iperf1_down:bit_s \
		iperf3_8_up:iperf8_up:bit_s curl_bulk:curl_bulk:bit_s conn/s:conn_close:req_s \
		keep-alive:keepalive:req_s DNS_qps:dns:qps
	dat "$d/down.dat" "$cols" new-conn_p50:conn_close:p50_us new-conn_p99:conn_close:p99_us \
		keep-alive_p99:keepalive:p99_us machine_CPU/GiB_1_up:iperf1_up:machine_s_per_gib
	dat "$d/mem.dat" "$pcols" RSS_KiB/idle_conn:mem:kib_per_conn:abs \
		microsocks_in_redsocks_chain:mem:socks_kib_per_conn:abs
	dat "$d/cpu.dat" "$pcols" iperf3_1_up:iperf1_up:relay_s_per_gib:abs \
		iperf3_1_down:iperf1_down:relay_s_per_gib:abs iperf3_8_up:iperf8_up:relay_s_per_gib:abs
	panel() { # file titles n: the plot command, or a "no data" placeholder
		if awk '{ sub(/^"[^"]*"/, ""); if ($0 ~ /[0-9]/) f = 1 } END { exit !f }' "$1"; then
			local c colors=""
			for c in $2; do
				case $c in
				sproxy) colors+=" #9400d3" ;; copy | threads*) colors+=" #4b0082" ;; fast | hooks) colors+=" #e69f00" ;; out) colors+=" #009e73" ;;
				bypass) colors+=" #56b4e9" ;; redsocks) colors+=" #e69f00" ;; proxychains) colors+=" #f0e442" ;;
				*) colors+=" #0072b2" ;;
				esac
			done
			echo "plot for [i=0:$(($3 - 1))] \"$1\" using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) title word(\"$2\", i+1) lc rgb word(\"$colors\", i+1)"
		else
			echo "unset logscale y; set label 9 \"no data\" at graph 0.5, graph 0.5 center; plot [0:1] [0:1] NaN notitle; unset label 9"
		fi
	}
	cat >"$d/plot.gp" <<-GP
		set terminal pngcairo size 1500,1000 font ",10"
		set output "$OUT/bench-latest.png"
		set multiplot layout 2,2 title "sproxy-bpf make bench ($MODE, $DATE, kernel ${PLOT_KERNEL:-$(uname -r)}, ${PLOT_NPROC:-$(nproc)} CPU)"
		set style data histogram
		set style histogram errorbars gap 1 lw 1
		set style fill solid 0.75 border -1
		set datafile missing '?'
		set grid y
		set key top left horizontal
		set yrange [0:*]
		set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5
		set title "Ratio to direct, higher is better (bars: median; whiskers: min-max)"
		$(panel "$d/up.dat" "$cols" $nc)
		set title "Ratio to direct, lower is better"
		$(panel "$d/down.dat" "$cols" $nc)
		unset arrow 1
		set title "Memory per idle proxied connection (KiB, $MEM_N held)"
		$(panel "$d/mem.dat" "$pcols" $np)
		set title "Relay process CPU seconds per GiB (utime+stime; log scale)"
		set logscale y
		set yrange [*:*]
		$(panel "$d/cpu.dat" "$pcols" $np)
		unset multiplot
	GP
	gnuplot "$d/plot.gp" 2>"$d/gnuplot.err" || { log "gnuplot failed: $(tail -3 "$d/gnuplot.err")"; return 1; }
	echo "chart: ${OUT#"$ROOT"/}/bench-latest.png"
}

# --plot JSON: draw the chart of a saved run again, nothing else
if [ -n "$PLOT_JSON" ]; then
	[ -r "$PLOT_JSON" ] || { echo "bench: cannot read $PLOT_JSON" >&2; exit 2; }
	TMP=$(mktemp -d /tmp/sproxy-bench.XXXXXX)
	trap 'rm -rf "$TMP"' EXIT
	jq -r '.summary[] | [.workload, .config, .metric, .n, .median, .min, .max,
		(.ratio // ""), (.ratio_min // ""), (.ratio_max // "")] | @tsv' "$PLOT_JSON" >"$TMP/summary.tsv" || exit 2
	MODE=$(jq -r .mode "$PLOT_JSON") DATE=$(jq -r .date "$PLOT_JSON")
	MEM_N=$(jq -r .idle_connections_held "$PLOT_JSON")
	PLOT_KERNEL=$(jq -r .kernel "$PLOT_JSON") PLOT_NPROC=$(jq -r .nproc "$PLOT_JSON")
	read -r -a CONFIGS <<<"$(jq -r '[.summary[].config] | unique | . as $c |
		["direct", "anchor", "anchor2", "anchor3", "anchor4", "anchor5", "anchor6", "anchor7", "anchor8", "sproxy", "copy", "threads1", "threads2", "threads3", "threads4", "fast", "hooks", "out", "incg", "bypass", "redsocks", "proxychains", "microsocks"] |
		map(select(. as $x | $c | index($x))) | join(" ")' "$PLOT_JSON")"
	[[ " ${CONFIGS[*]} " == *" copy "* ]] && WITH_COPY=1
	for c in "${CONFIGS[@]}"; do [[ $c == threads* ]] && WITH_COPY=1 ALT=$c; done
	chart
	exit $?
fi


[ "$(id -u)" = 0 ] || die "must run as root (namespaces, cgroups, BPF)"
for t in ip nsenter iperf3 wrk dnsperf redsocks proxychains4 microsocks dnsmasq \
	iptables curl dig jq gnuplot gcc ss timeout; do
	command -v $t >/dev/null || die "missing tool: $t (make deps-bench)"
done
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG2" ] && [ -d "$CG2" ] || die "no cgroup2 mount in /proc/mounts"

# --- C helpers, built here (the Makefile's tools/ rule is not ours) -----------
for t in httpd holdconn launch minrelay; do
	if [ ! -x "$BIN/$t" ] || [ "tests/bench/$t.c" -nt "$BIN/$t" ]; then
		gcc -O2 -Wall -Wextra -D_GNU_SOURCE -o "$BIN/$t" "tests/bench/$t.c" -lpthread ||
			die "cannot build tests/bench/$t.c"
	fi
done
# The kernel path's anchor: its BPF object and loader (the hooks column).
HOOKS_NOTE=""
if [ ! -x "$BIN/minhooks" ] || [ tests/bench/minhooks.c -nt "$BIN/minhooks" ] ||
	[ tests/bench/minhooks.bpf.c -nt "$BIN/minhooks.bpf.o" ]; then
	arch=$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
	clang -g -O2 -target bpf -D__TARGET_ARCH_$arch -Wall -Werror -Ivmlinux/$arch \
		-c tests/bench/minhooks.bpf.c -o "$BIN/minhooks.bpf.o" 2>"$BIN/minhooks.err" &&
		gcc -O2 -Wall -Wextra -D_GNU_SOURCE -o "$BIN/minhooks" tests/bench/minhooks.c -lbpf \
			2>>"$BIN/minhooks.err" ||
		HOOKS_NOTE="cannot build tests/bench/minhooks: $(tail -c 200 "$BIN/minhooks.err" | tr '\n' ' ')"
fi

ID=$$
NS_C=sproxy-bench-$ID-c NS_S=sproxy-bench-$ID-s NS_R=sproxy-bench-$ID-r
NSP_C=/run/netns/$NS_C NSP_S=/run/netns/$NS_S NSP_R=/run/netns/$NS_R
CG_SP=$CG2/sproxy-bpf-test-$ID-bench
CG_RS=$CG2/sproxy-bpf-test-$ID-redsocks
TMP=$(mktemp -d /tmp/sproxy-bench.XXXXXX)
SAMPLES=$TMP/samples.tsv FAILS=$TMP/fails.tsv CHECKS=$TMP/checks.tsv
# The daemon is started again for every repetition: measure one snapshot of
# it, even if someone rebuilds ./sproxy-bpf during the run.
SPROXY_SRC=$SPROXY SPROXY_SUM=""
if [ -x "$SPROXY" ] && cp "$SPROXY" "$TMP/sproxy-bpf"; then
	SPROXY=$TMP/sproxy-bpf
	SPROXY_SUM="sha256 $(sha256sum "$SPROXY" | cut -c1-16), built $(date -u -r "$SPROXY_SRC" +%FT%TZ)"
fi
: >"$SAMPLES"; : >"$FAILS"; : >"$CHECKS"
DST=192.0.2.2 DST_BYPASS=198.51.100.2 SOCKS=192.0.2.2:1080 SOCKS_R=203.0.113.2
HTTP_PORT=8080 IPERF_PORT=5201
PIDS=() DAEMON_PIDS=()
DAEMON_PID="" LAUNCH_PID="" REDSOCKS_PID="" MSOCKS_PID="" DNS_FRONT_PID=""

# File descriptors for the held connections (this process tree only). Without
# CAP_SYS_RESOURCE the hard limit cannot be raised: then fewer connections are
# held, the same number for every proxy, and the output says so.
h=$(ulimit -Hn)
[ "$h" != unlimited ] && [ "$h" -lt 65536 ] && ulimit -Hn 65536 2>/dev/null
ulimit -Sn "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -Hn)
[ "$FD_LIMIT" = unlimited ] && FD_LIMIT=1048576
# Each proxy holds as many of the MEM_N idle connections as its fds allow
# (the limit is per process): sproxy-bpf 2 per connection (the app's
# socket and the one to the server), redsocks up to 6 (2 sockets, 2 pipes
# while splicing). wl_mem works the number out from the fds the proxy
# already has; MEM_HELD/MEM_NOTE say what it came to.
declare -A MEM_FDS_PER=([sproxy]=2 [copy]=2 [threads1]=2 [threads2]=2 [threads3]=2 [threads4]=2 [redsocks]=6) MEM_HELD
MEM_NOTE=""
# The mem cells' daemon: a small UDP pool (the workload sends no UDP; the
# pool's sockets would take fds from the connections).
MEM_UDP_FLOWS=16

nsx() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }

# --- cleanup: every exit path ---------------------------------------------------
cleanup() {
	trap - EXIT INT TERM
	local p ns cg i
	[ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for ns in $NS_C $NS_S $NS_R; do
		[ -e /run/netns/$ns ] || continue
		for p in $(ip netns pids $ns 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
	done
	for cg in "$CG_SP" "$CG_RS"; do
		[ -f "$cg/cgroup.procs" ] || continue
		for p in $(cat "$cg/cgroup.procs"); do kill -TERM "$p" 2>/dev/null; done
	done
	for i in $(seq 50); do # up to 5 s for a clean exit
		local left=0
		for p in "${PIDS[@]}" $DAEMON_PID; do kill -0 "$p" 2>/dev/null && left=1; done
		for ns in $NS_C $NS_S $NS_R; do
			[ -e /run/netns/$ns ] && [ -n "$(ip netns pids $ns 2>/dev/null)" ] && left=1
		done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}" $DAEMON_PID; do kill -KILL "$p" 2>/dev/null; done
	for ns in $NS_C $NS_S $NS_R; do
		[ -e /run/netns/$ns ] || continue
		for p in $(ip netns pids $ns 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for cg in "$CG_SP" "$CG_RS"; do
		[ -d "$cg" ] || continue
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		for i in $(seq 20); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
	done
	# A daemon killed hard leaves its own cgroup <cg2>/sproxy-bpf/<pid>: ours, remove.
	for p in "${DAEMON_PIDS[@]}"; do
		[ -d "$CG2/sproxy-bpf/$p" ] && rmdir "$CG2/sproxy-bpf/$p" 2>/dev/null
	done
	for ns in $NS_C $NS_S $NS_R; do ip netns del $ns 2>/dev/null; done
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- results --------------------------------------------------------------------
sample() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$SAMPLES"; } # wl cfg rep metric value
fail() { # wl cfg reason
	local r=${3//[$'\t\n']/ }
	printf '%s\t%s\t%s\n' "$1" "$2" "${r:0:300}" >>"$FAILS"
	log "FAILED $1/$2: ${r:0:300}"
}
check() { printf '%s\t%s\t%s\n' "$1" "$2" "${3//[$'\t\n']/ }" >>"$CHECKS"; } # name ok|failed detail
declare -A BROKEN # cfg -> reason: every cell of that configuration fails with it
declare -A BROKEN_CELL # wl:cfg -> reason

# --- topology ---------------------------------------------------------------------
setup_net() {
	local ns
	for ns in $NS_C $NS_S $NS_R; do
		ip netns add $ns || die "ip netns add $ns"
		ip -n $ns link set lo up
		# many short connections: wide port range, reuse TIME_WAIT (own netns only)
		nsx $ns sysctl -qw net.ipv4.ip_local_port_range="16384 65000" net.ipv4.tcp_tw_reuse=1
	done
	ip -n $NS_C link add c0 type veth peer name s0 netns $NS_S || die "veth C-S"
	ip -n $NS_R link add r0 type veth peer name s1 netns $NS_S || die "veth R-S"
	ip -n $NS_C addr add 192.0.2.1/24 dev c0
	ip -n $NS_S addr add 192.0.2.2/24 dev s0
	ip -n $NS_S addr add 198.51.100.2/24 dev s0
	ip -n $NS_S addr add 203.0.113.2/24 dev s1
	ip -n $NS_R addr add 203.0.113.1/24 dev r0
	ip -n $NS_C link set c0 up
	ip -n $NS_S link set s0 up
	ip -n $NS_S link set s1 up
	ip -n $NS_R link set r0 up
	ip -n $NS_C route add 198.51.100.0/24 via 192.0.2.2
	ip -n $NS_R route add 192.0.2.0/24 via 203.0.113.2
	ip -n $NS_R route add 198.51.100.0/24 via 203.0.113.2
	mkdir "$CG_SP" "$CG_RS" || die "cannot create test cgroups under $CG2"
}

# wait_for TIMEOUT_S CMD...: polls CMD every 0.1 s
wait_for() {
	local lim=$1 i; shift
	for i in $(seq $((lim * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
http_up() { nsx $NS_C curl -sf -m 1 -o /dev/null "http://$DST:$HTTP_PORT/"; }

start_servers() {
	nsenter --net="$NSP_S" "$BIN/httpd" -t 2 -p $HTTP_PORT >"$TMP/httpd.log" 2>&1 &
	PIDS+=($!)
	nsenter --net="$NSP_S" iperf3 -s -p $IPERF_PORT --idle-timeout 20 >"$TMP/iperf3-server.log" 2>&1 &
	PIDS+=($!)
	nsenter --net="$NSP_S" microsocks -i 0.0.0.0 -p 1080 >"$TMP/microsocks.log" 2>&1 &
	MSOCKS_PID=$!
	PIDS+=($!)
	# DNS: an "authoritative" dnsmasq (:5353, 1000 names) behind a caching one (:53)
	local i
	for i in $(seq 0 999); do echo "203.0.113.$((10 + i % 200)) h$i.bench.test"; done >"$TMP/hosts"
	for i in $(seq 0 999); do echo "h$i.bench.test A"; done >"$TMP/queries"
	nsenter --net="$NSP_S" dnsmasq -k -C /dev/null --pid-file= -u root -g root --no-resolv --no-hosts \
		--bind-interfaces --listen-address=192.0.2.2 --port=5353 \
		--addn-hosts="$TMP/hosts" --local-ttl=3600 --log-facility="$TMP/dnsmasq-auth.log" &
	PIDS+=($!)
	nsenter --net="$NSP_S" dnsmasq -k -C /dev/null --pid-file= -u root -g root --no-resolv --no-hosts \
		--bind-interfaces --listen-address=192.0.2.2 --port=53 \
		--server=192.0.2.2#5353 --cache-size=10000 --log-facility="$TMP/dnsmasq.log" &
	DNS_FRONT_PID=$!
	PIDS+=($!)
	wait_for 10 http_up || die "httpd did not come up: $(cat "$TMP/httpd.log")"
	wait_for 10 nsx $NS_C bash -c "exec 3<>/dev/tcp/$DST/$IPERF_PORT" || die "iperf3 -s did not come up"
	wait_for 10 nsx $NS_C bash -c "exec 3<>/dev/tcp/$DST/1080" || die "microsocks did not come up"
	wait_for 10 nsx $NS_C dig +time=1 +tries=1 @$DST h1.bench.test ||
		die "dnsmasq did not come up: $(cat "$TMP"/dnsmasq*.log)"
	# Prime the cache: after this, every benchmark query is a cache hit.
	nsx $NS_C dnsperf -s $DST -d "$TMP/queries" -n 2 >/dev/null 2>&1

	cat >"$TMP/proxychains.conf" <<-EOF
		strict_chain
		quiet_mode
		tcp_read_time_out 15000
		tcp_connect_time_out 8000
		[ProxyList]
		socks5 ${SOCKS%:*} ${SOCKS#*:}
	EOF
	cat >"$TMP/redsocks.conf" <<-EOF
		base {
			log_debug = off;
			log_info = off;
			log = "file:$TMP/redsocks.log";
			daemon = off;
			redirector = iptables;
			rlimit_nofile = $FD_LIMIT;
			redsocks_conn_max = $(( (FD_LIMIT - 100) / 2 ));
		}
		redsocks {
			local_ip = 127.0.0.1;
			local_port = 12345;
			ip = $SOCKS_R;
			port = 1080;
			type = socks5;
			listenq = 4096;
		}
	EOF
	redsocks_start || BROKEN[redsocks]="redsocks did not start: $(tail -3 "$TMP/redsocks.log" 2>/dev/null)"
	# Only the redsocks clients' cgroup is redirected, only in ns R.
	nsx $NS_R iptables -t nat -A OUTPUT -p tcp -d 192.0.2.0/24 \
		-m cgroup --path "${CG_RS#"$CG2"/}" -j REDIRECT --to-ports 12345 ||
		BROKEN[redsocks]="iptables -m cgroup REDIRECT failed"
	nsx $NS_R iptables -t nat -A OUTPUT -p tcp -d 198.51.100.0/24 \
		-m cgroup --path "${CG_RS#"$CG2"/}" -j REDIRECT --to-ports 12345
}

# The anchors: minrelay in ns C on 127.0.0.N, the server's ports, to the server.
declare -A ANCHOR_PID
anchors_start() {
	local i a ip opts
	for i in "${!ANCHORS[@]}"; do
		a=${ANCHORS[$i]}
		[[ " ${CONFIGS[*]} " == *" $a "* ]] || continue
		ip=$(dst_of "$a")
		read -r -a opts <<<"${ANCHOR_OPTS[$i]}"
		nsenter --net="$NSP_C" "$BIN/minrelay" "${opts[@]}" $ip:$IPERF_PORT $DST:$IPERF_PORT \
			$ip:$HTTP_PORT $DST:$HTTP_PORT >"$TMP/$a.log" 2>&1 &
		ANCHOR_PID[$a]=$!
		PIDS+=($!)
		wait_for 5 grep -q '^ready' "$TMP/$a.log" ||
			BROKEN[$a]="minrelay ${ANCHOR_OPTS[$i]} did not start: $(tail -c 300 "$TMP/$a.log")"
		log "$a: minrelay ${ANCHOR_OPTS[$i]}"
	done
}

redsocks_start() {
	nsenter --net="$NSP_R" redsocks -c "$TMP/redsocks.conf" >>"$TMP/redsocks.out" 2>&1 &
	REDSOCKS_PID=$!
	PIDS+=($!)
	wait_for 10 nsx $NS_R bash -c "exec 3<>/dev/tcp/127.0.0.1/12345"
}
redsocks_stop() {
	[ -n "$REDSOCKS_PID" ] || return 0
	kill -TERM "$REDSOCKS_PID" 2>/dev/null
	wait_for 5 bash -c "! kill -0 $REDSOCKS_PID"
	kill -KILL "$REDSOCKS_PID" 2>/dev/null
	wait "$REDSOCKS_PID" 2>/dev/null
	REDSOCKS_PID=""
}

# --- the daemon ---------------------------------------------------------------------
DAEMON_NOTE="" # why the daemon is unusable, if it is
daemon_start() { # extra daemon options...
	DAEMON_PID=""
	if [ ! -x "$SPROXY" ]; then
		DAEMON_NOTE="$SPROXY_SRC not built (make sproxy-bpf failed?)"
		return 1
	fi
	: >"$TMP/launch.out"
	"$BIN/launch" -n "$NSP_C" -t 20 -o "$TMP/daemon.log" -- \
		"$SPROXY" attach "$CG_SP" --bypass 198.51.100.0/24 --resolver 192.0.2.2 --log "$TMP/conn.log" \
		${SPROXY_BPF_OPTS:-} "$@" \
		>"$TMP/launch.out" 2>&1 &
	LAUNCH_PID=$!
	PIDS+=($!)
	local i line=""
	for i in $(seq 250); do
		line=$(grep -m1 -E '^(ready|timeout|exit) ' "$TMP/launch.out")
		[ -n "$line" ] && break
		sleep 0.1
	done
	local extra="$*"
	set -- $line
	if [ "${1:-}" = ready ]; then
		DAEMON_PID=$2
		DAEMON_PIDS+=("$2")
		[ -z "$extra" ] && sample ready sproxy 0 ms "$(awk -v u="$3" 'BEGIN { printf "%.1f", u / 1000 }')"
		return 0
	fi
	DAEMON_NOTE="daemon not ready (${line:-no output from launch}): $(tail -c 400 "$TMP/daemon.log" | tr '\n' ' ')"
	wait_for 10 bash -c "! kill -0 $LAUNCH_PID"
	kill -KILL "$LAUNCH_PID" 2>/dev/null
	wait "$LAUNCH_PID" 2>/dev/null
	return 1
}
daemon_stop() {
	[ -n "$DAEMON_PID" ] || return 0
	local pid=$DAEMON_PID
	kill -TERM "$pid" 2>/dev/null
	if ! wait_for 10 grep -q '^exit ' "$TMP/launch.out"; then
		check daemon-sigterm failed "pid $pid still running 10 s after SIGTERM; killed"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$LAUNCH_PID" 2>/dev/null
	local st
	st=$(awk '$1 == "exit" { print $3 }' "$TMP/launch.out")
	[ "${st:-x}" = 0 ] || check daemon-sigterm failed "pid $pid exited with status ${st:-?} on SIGTERM"
	if [ -d "$CG2/sproxy-bpf/$pid" ]; then
		check daemon-cgroup failed "$CG2/sproxy-bpf/$pid left behind after exit"
		rmdir "$CG2/sproxy-bpf/$pid" 2>/dev/null
	fi
	DAEMON_PID=""
}
# The hooks column: minhooks attached to the bench cgroup (the daemon is
# stopped), ended with SIGTERM; each stop checks that it read reports.
HOOKS_PID=""
hooks_start() {
	[ -z "$HOOKS_NOTE" ] || { BROKEN[hooks]=$HOOKS_NOTE; return 1; }
	: >"$TMP/minhooks.out"
	"$BIN/minhooks" "$CG_SP" "$BIN/minhooks.bpf.o" >"$TMP/minhooks.out" 2>&1 &
	HOOKS_PID=$!
	PIDS+=($!)
	if ! wait_for 10 grep -q '^ready' "$TMP/minhooks.out"; then
		BROKEN[hooks]="minhooks did not start: $(tail -c 300 "$TMP/minhooks.out" | tr '\n' ' ')"
		kill -TERM "$HOOKS_PID" 2>/dev/null
		wait "$HOOKS_PID" 2>/dev/null
		HOOKS_PID=""
		return 1
	fi
}
hooks_stop() {
	[ -n "$HOOKS_PID" ] || return 0
	kill -TERM "$HOOKS_PID" 2>/dev/null
	wait "$HOOKS_PID" 2>/dev/null
	HOOKS_PID=""
	local n
	n=$(awk '$1 == "reports" { print $2 }' "$TMP/minhooks.out")
	if [ "${n:-0}" -gt 0 ]; then
		check hooks-reports ok "minhooks read $n reports"
	else
		check hooks-reports failed "minhooks read no report: $(tail -c 200 "$TMP/minhooks.out" | tr '\n' ' ')"
	fi
}

# The cells of the daemon's configurations fail if it cannot start.
daemon_cfg() { case $1 in sproxy | copy | threads* | fast | out | bypass) return 0 ;; esac; return 1; }

# --- running a client in a configuration -----------------------------------------
# prefix CFG: sets PFX, the command prefix that runs a client as CFG does
prefix() {
	case $1 in
	direct | out | microsocks) PFX=(nsenter --net="$NSP_C") ;;
	sproxy | copy | threads* | fast | bypass | incg | hooks)
		PFX=(bash -c 'echo $$ >"$1/cgroup.procs" && exec nsenter --net="$2" "${@:3}"' _ "$CG_SP" "$NSP_C") ;;
	redsocks)
		PFX=(bash -c 'echo $$ >"$1/cgroup.procs" && exec nsenter --net="$2" "${@:3}"' _ "$CG_RS" "$NSP_R") ;;
	proxychains) PFX=(nsenter --net="$NSP_C" proxychains4 -q -f "$TMP/proxychains.conf") ;;
	anchor*) PFX=(nsenter --net="$NSP_C") ;;
	esac
}
dst_of() {
	case $1 in
	bypass) echo $DST_BYPASS ;;
	anchor) echo 127.0.0.1 ;;
	anchor*) echo "127.0.0.${1#anchor}" ;;
	*) echo $DST ;;
	esac
}
# run_in CFG LIMIT_S CMD...
run_in() {
	local cfg=$1 lim=$2; shift 2
	prefix "$cfg"
	timeout -k 3 "$lim" "${PFX[@]}" "$@"
}

# Which tool can run in which configuration; the reason otherwise.
na_reason() { # wl cfg
	case "$1:$2" in
	iperf*:microsocks) echo "iperf3 has no SOCKS client" ;;
	conn_close:microsocks | keepalive:microsocks) echo "wrk has no SOCKS client" ;;
	dns:redsocks | dns:proxychains | dns:microsocks | dns:anchor*) echo "no DNS relay in this setup" ;;
	mem:anchor*) echo "sproxy-bpf and redsocks only" ;;
	dns:bypass) echo "port 53 is always captured" ;;
	dns:copy | dns:threads* | dns:fast) echo "same FakeIP server as sproxy" ;;
	dns:incg | dns:hooks) echo "no DNS server while the daemon is stopped" ;;
	mem:fast) echo "nothing held: the kernel path keeps no proxy state" ;;
	mem:direct | mem:out | mem:bypass | mem:incg | mem:hooks | mem:proxychains | mem:microsocks) echo "sproxy-bpf and redsocks only" ;;
	ready:*) [ "$2" = sproxy ] || echo "sproxy-bpf only" ;;
	esac
}

# /proc accounting: CPU seconds of PIDS, and busy seconds of the whole machine
cpu_of() { # pid...
	local hz t=0 p
	hz=$(getconf CLK_TCK)
	for p in "$@"; do
		[ -r /proc/$p/stat ] || continue
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$p/stat)))
	done
	awk -v t=$t -v hz=$hz 'BEGIN { printf "%.3f", t / hz }'
}
cpu_sys() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.3f", ($2 + $3 + $4 + $7 + $8) / hz; exit }' /proc/stat; }
nfds() { ls /proc/"$1"/fd 2>/dev/null | wc -l; }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' /proc/"$1"/status 2>/dev/null; }
proxy_pid() { # the relay process of a configuration, for CPU accounting
	case $1 in
	sproxy | copy | threads*) echo "$DAEMON_PID" ;;
	redsocks) echo "$REDSOCKS_PID" ;;
	anchor*) echo "${ANCHOR_PID[$1]}" ;;
	esac
}

# --- workloads: wl_NAME CFG REP, samples on success, non-zero + stderr on failure --
iperf_run() { # wl cfg rep extra-args...
	local wl=$1 cfg=$2 rep=$3 dst; shift 3
	dst=$(dst_of "$cfg")
	local pp c0 s0 m0 c1 s1 m1
	pp=$(proxy_pid "$cfg")
	local t0 t1
	c0=$(cpu_of $pp); m0=$(cpu_of "$MSOCKS_PID"); s0=$(cpu_sys); t0=$(date +%s.%N)
	run_in "$cfg" $((T_IPERF + 30)) iperf3 -c "$dst" -p $IPERF_PORT -t $T_IPERF \
		--connect-timeout 3000 --json "$@" >"$TMP/iperf.json" 2>"$TMP/iperf.err"
	local rc=$?
	c1=$(cpu_of $pp); m1=$(cpu_of "$MSOCKS_PID"); s1=$(cpu_sys); t1=$(date +%s.%N)
	local bps bytes err
	bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$TMP/iperf.json" 2>/dev/null)
	bytes=$(jq -r '.end.sum_received.bytes // empty' "$TMP/iperf.json" 2>/dev/null)
	if [ $rc != 0 ] || [ -z "$bps" ] || [ "${bytes%.*}" = 0 ]; then
		err=$(jq -r '.error // empty' "$TMP/iperf.json" 2>/dev/null)
		echo "iperf3 rc=$rc ${err:-$(tail -c 300 "$TMP/iperf.err")}" >&2
		return 1
	fi
	sample $wl "$cfg" "$rep" bit_s "$bps"
	local gib
	gib=$(awk -v b="$bytes" 'BEGIN { printf "%.6f", b / 1073741824 }')
	sample $wl "$cfg" "$rep" machine_s_per_gib "$(awk -v a=$s0 -v b=$s1 -v g=$gib 'BEGIN { printf "%.4f", (b - a) / g }')"
	if [ -n "$pp" ]; then
		sample $wl "$cfg" "$rep" relay_cpu_pct "$(awk -v a=$c0 -v b=$c1 -v s=$t0 -v e=$t1 'BEGIN { printf "%.1f", (b - a) * 100 / (e - s) }')"
		sample $wl "$cfg" "$rep" relay_s_per_gib "$(awk -v a=$c0 -v b=$c1 -v g=$gib 'BEGIN { printf "%.4f", (b - a) / g }')"
	fi
	case $cfg in redsocks | proxychains)
		sample $wl "$cfg" "$rep" socks_s_per_gib "$(awk -v a=$m0 -v b=$m1 -v g=$gib 'BEGIN { printf "%.4f", (b - a) / g }')" ;;
	esac
}
wl_iperf1_up() { iperf_run iperf1_up "$1" "$2"; }
wl_iperf1_down() { iperf_run iperf1_down "$1" "$2" -R; }
wl_iperf8_up() { iperf_run iperf8_up "$1" "$2" -P 8; }

wl_curl_bulk() {
	local cfg=$1 rep=$2 dst extra=()
	dst=$(dst_of "$cfg")
	[ "$cfg" = microsocks ] && extra=(--socks5 "$SOCKS")
	local out rc
	out=$(run_in "$cfg" $((T_CURL + 20)) curl -s -o /dev/null "${extra[@]}" --max-time $T_CURL \
		-w '%{size_download} %{time_total}\n' "http://$dst:$HTTP_PORT/bytes/1000000000000" 2>&1)
	rc=$?
	set -- $out
	# exit 28: --max-time reached, the normal end of a time-bound download
	if { [ $rc != 0 ] && [ $rc != 28 ]; } || [ "${1:-0}" = 0 ]; then
		echo "curl rc=$rc: $out" >&2
		return 1
	fi
	sample curl_bulk "$cfg" "$rep" bit_s "$(awk -v b=$1 -v t=$2 'BEGIN { printf "%.0f", b * 8 / t }')"
}

# wrk latency "123.45us" / "1.23ms" / "1.01s" -> microseconds
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60e6; else m = 1e6; printf "%.1f", n * m }'; }
wrk_run() { # wl cfg rep extra-args...
	local wl=$1 cfg=$2 rep=$3 dst; shift 3
	dst=$(dst_of "$cfg")
	local pp c0 c1 t0 t1
	pp=$(proxy_pid "$cfg")
	c0=$(cpu_of $pp); t0=$(date +%s.%N)
	run_in "$cfg" $((T_WRK + 30)) wrk -t 2 -c 32 -d ${T_WRK}s --timeout 5s --latency "$@" \
		"http://$dst:$HTTP_PORT/" >"$TMP/wrk.out" 2>&1
	local rc=$? rps p50 p99 errs non2xx
	c1=$(cpu_of $pp); t1=$(date +%s.%N)
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")
	p50=$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.out")
	p99=$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.out")
	errs=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$TMP/wrk.out")
	non2xx=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.out")
	if [ $rc != 0 ] || [ -z "$rps" ] || [ "${rps%.*}" = 0 ]; then
		echo "wrk rc=$rc: $(tr '\n' ' ' <"$TMP/wrk.out" | tail -c 300)" >&2
		return 1
	fi
	sample $wl "$cfg" "$rep" req_s "$rps"
	sample $wl "$cfg" "$rep" p50_us "$(to_us "$p50")"
	sample $wl "$cfg" "$rep" p99_us "$(to_us "$p99")"
	sample $wl "$cfg" "$rep" errors "$((${errs:-0} + ${non2xx:-0}))"
	if [ -n "$pp" ]; then
		sample $wl "$cfg" "$rep" relay_cpu_pct "$(awk -v a=$c0 -v b=$c1 -v s=$t0 -v e=$t1 'BEGIN { printf "%.1f", (b - a) * 100 / (e - s) }')"
	fi
	return 0
}
wl_conn_close() { wrk_run conn_close "$1" "$2" -H 'Connection: close'; }
wl_keepalive() { wrk_run keepalive "$1" "$2"; }

wl_dns() {
	local cfg=$1 rep=$2
	# sproxy: the cgroup's queries to any address:53 go to the FakeIP server;
	# direct/out: the same command reaches dnsmasq (cache hits).
	run_in "$cfg" $((T_DNS + 30)) dnsperf -s $DST -d "$TMP/queries" -l $T_DNS -t 2 >"$TMP/dnsperf.out" 2>&1
	local rc=$? qps lost
	qps=$(awk '/Queries per second:/ { print $4 }' "$TMP/dnsperf.out")
	lost=$(awk '/Queries lost:/ { print $3 }' "$TMP/dnsperf.out")
	if [ $rc != 0 ] || [ -z "$qps" ] || [ "${qps%.*}" = 0 ]; then
		echo "dnsperf rc=$rc: $(tr '\n' ' ' <"$TMP/dnsperf.out" | tail -c 300)" >&2
		return 1
	fi
	sample dns "$cfg" "$rep" qps "$qps"
	sample dns "$cfg" "$rep" lost "${lost:-0}"
}

# RSS growth per idle proxied connection: N connections, one request each, held.
wl_mem() {
	local cfg=$1 rep=$2 pid
	case $cfg in
	sproxy | copy | threads*) pid=$DAEMON_PID ;;
	redsocks) pid=$REDSOCKS_PID ;;
	esac
	[ -n "$pid" ] || { echo "no process to measure" >&2; return 1; }
	# warm up (first allocations of the event loop, log, maps), then baseline
	run_in "$cfg" 30 "$BIN/holdconn" -a $DST -p $HTTP_PORT -n 100 -t 20 -H 0 >/dev/null 2>&1
	sleep 0.5
	local r0 m0 r1 m1 r2 f0 f1 n fit
	r0=$(rss_kib "$pid"); m0=$(rss_kib "$MSOCKS_PID"); f0=$(nfds "$pid")
	# what the proxy's fd limit leaves room for, 32 fds to spare
	fit=$(( (FD_LIMIT - f0 - 32) / ${MEM_FDS_PER[$cfg]:-6} ))
	n=$(( fit < MEM_N ? fit : MEM_N ))
	if [ "$n" -lt "$MEM_N" ] && [ -z "${MEM_HELD[$cfg]:-}" ]; then
		MEM_NOTE+="${MEM_NOTE:+; }$cfg holds $n of $MEM_N (fd hard limit $FD_LIMIT, no CAP_SYS_RESOURCE to raise it; $f0 fds in use, ${MEM_FDS_PER[$cfg]:-6} per connection)"
	fi
	MEM_HELD[$cfg]=$n
	prefix "$cfg"
	timeout -k 3 120 "${PFX[@]}" "$BIN/holdconn" -a $DST -p $HTTP_PORT -n $n -c 256 -t 60 -H 60 \
		>"$TMP/hold.out" 2>"$TMP/hold.err" &
	local hp=$! i
	for i in $(seq 700); do grep -qs '^ready' "$TMP/hold.out" && break; kill -0 $hp 2>/dev/null || break; sleep 0.1; done
	sleep 1
	r1=$(rss_kib "$pid"); m1=$(rss_kib "$MSOCKS_PID"); f1=$(nfds "$pid")
	local ready
	ready=$(grep '^ready' "$TMP/hold.out")
	kill -TERM $hp 2>/dev/null
	wait $hp 2>/dev/null
	sleep 1
	r2=$(rss_kib "$pid")
	set -- $ready
	local ok=${2:-0} bad=${3:-?}
	if [ "$ok" = 0 ] || [ -z "$r0" ] || [ -z "$r1" ]; then
		echo "holdconn: ${ready:-no ready line} $(tail -c 200 "$TMP/hold.err") rss=$r0/$r1" >&2
		return 1
	fi
	sample mem "$cfg" "$rep" kib_per_conn "$(awk -v a=$r0 -v b=$r1 -v n=$ok 'BEGIN { printf "%.3f", (b - a) / n }')"
	sample mem "$cfg" "$rep" rss_before_kib "$r0"
	sample mem "$cfg" "$rep" rss_held_kib "$r1"
	sample mem "$cfg" "$rep" rss_after_close_kib "${r2:-0}"
	sample mem "$cfg" "$rep" conns_ok "$ok"
	sample mem "$cfg" "$rep" fds_per_conn "$(awk -v a=$f0 -v b=$f1 -v n=$ok 'BEGIN { printf "%.2f", (b - a) / n }')"
	sample mem "$cfg" "$rep" conns_failed "$bad"
	[ "$cfg" = redsocks ] &&
		sample mem "$cfg" "$rep" socks_kib_per_conn "$(awk -v a=$m0 -v b=$m1 -v n=$ok 'BEGIN { printf "%.3f", (b - a) / n }')"
	[ "$bad" = 0 ] || echo "warning: $bad of $n connections failed" >&2
	return 0
}

# run_cell WL CFG REP
run_cell() {
	local wl=$1 cfg=$2 rep=$3
	if [ -n "${BROKEN[$cfg]:-}" ]; then
		fail "$wl" "$cfg" "${BROKEN[$cfg]}"
		return
	fi
	if [ -n "${BROKEN_CELL[$wl:$cfg]:-}" ]; then
		fail "$wl" "$cfg" "${BROKEN_CELL[$wl:$cfg]}"
		return
	fi
	if daemon_cfg "$cfg" && [ -z "$DAEMON_PID" ]; then
		fail "$wl" "$cfg" "$DAEMON_NOTE"
		return
	fi
	if ! wl_$wl "$cfg" "$rep" 2>"$TMP/cell.err"; then
		fail "$wl" "$cfg" "$(grep -v '^$' "$TMP/cell.err" | tail -2 | tr '\n' ' ')"
	elif [ -s "$TMP/cell.err" ]; then
		log "$wl/$cfg: $(tail -1 "$TMP/cell.err")"
	fi
	# a daemon that died during the cell
	if daemon_cfg "$cfg" && [ -n "$DAEMON_PID" ] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		DAEMON_NOTE="daemon died during $wl/$cfg: $(tail -c 300 "$TMP/daemon.log" | tr '\n' ' ')"
		fail "$wl" "$cfg" "$DAEMON_NOTE"
		DAEMON_PID=""
	fi
}

CONFIGS=(direct sproxy fast hooks out incg bypass redsocks proxychains microsocks)
PLAIN_CFGS=(direct incg redsocks proxychains microsocks)
DAEMON_CFGS=(sproxy out bypass)
CFG_GROUPS=(plain daemon fast hooks)
if [ $WITH_COPY = 1 ]; then
	CONFIGS=(direct sproxy $ALT fast hooks out incg bypass redsocks proxychains microsocks)
	CFG_GROUPS=(plain daemon alt fast hooks)
fi
ANCHORS=()
for i in "${!ANCHOR_OPTS[@]}"; do ANCHORS+=("anchor$([ "$i" = 0 ] || echo $((i + 1)))"); done
CONFIGS=(direct "${ANCHORS[@]}" "${CONFIGS[@]:1}")
PLAIN_CFGS+=("${ANCHORS[@]}")
if [ -n "$ONLY_CFGS" ]; then # keep direct and the columns named, in their order
	keep() { local c out=(); for c in "$@"; do { [ $c = direct ] || [[ ",$ONLY_CFGS," == *",$c,"* ]]; } && out+=($c); done; echo "${out[*]}"; }
	read -r -a CONFIGS <<<"$(keep "${CONFIGS[@]}")"
	read -r -a PLAIN_CFGS <<<"$(keep "${PLAIN_CFGS[@]}")"
	read -r -a DAEMON_CFGS <<<"$(keep "${DAEMON_CFGS[@]}")"
	g2=(plain)
	[ ${#DAEMON_CFGS[@]} -gt 0 ] && g2+=(daemon)
	[[ " ${CONFIGS[*]} " == *" $ALT "* ]] && g2+=(alt)
	[[ " ${CONFIGS[*]} " == *" fast "* ]] && g2+=(fast)
	[[ " ${CONFIGS[*]} " == *" hooks "* ]] && g2+=(hooks)
	CFG_GROUPS=("${g2[@]}")
fi
ALL_WLS=(iperf1_up iperf1_down iperf8_up curl_bulk conn_close keepalive dns mem ready)
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
for w in ${ONLY//,/ }; do
	[[ " ${ALL_WLS[*]} " == *" $w "* ]] || die "unknown workload '$w' (known: ${ALL_WLS[*]})"
done

# The cells of one workload, REPS times; the groups of configurations (no
# daemon / daemon / copy daemon) and the configurations inside each group
# rotate from one repetition to the next, so that neither drift nor
# position favours one side.
run_workload() {
	local wl=$1 rep cfg gi g cfgs
	want $wl || return 0
	log "workload $wl"
	for rep in $(seq "$REPS"); do
		for gi in $(seq 0 $((${#CFG_GROUPS[@]} - 1))); do
			g=${CFG_GROUPS[$(((rep + gi) % ${#CFG_GROUPS[@]}))]}
			case $g in
			plain) cfgs=("${PLAIN_CFGS[@]}") ;;
			daemon) cfgs=("${DAEMON_CFGS[@]}") ;;
			alt) cfgs=($ALT) ;;
			fast) cfgs=(fast) ;;
			hooks) cfgs=(hooks) ;;
			esac
			# rotate the order inside the group too: no configuration always
			# runs right after the heavy one
			local k=$(((rep - 1) % ${#cfgs[@]}))
			cfgs=("${cfgs[@]:k}" "${cfgs[@]:0:k}")
			local any=0
			for cfg in "${cfgs[@]}"; do [ -z "$(na_reason $wl $cfg)" ] && any=1; done
			[ $any = 1 ] || continue
			case $g in
			daemon) daemon_start ;;
			alt) daemon_start "${ALT_OPTS[@]}" ;;
			fast) daemon_start --tag off ;;
			hooks) hooks_start ;;
			esac
			for cfg in "${cfgs[@]}"; do
				[ -z "$(na_reason $wl $cfg)" ] && run_cell $wl $cfg $rep
			done
			daemon_stop
			hooks_stop
		done
	done
}

# --- checks: each configuration does what it claims ------------------------------
# who CFG: what the server sees, and which process owns the socket to the server
verify_configs() { # configurations...
	local cfg out dst extra
	for cfg in "$@"; do
		[[ " ${CONFIGS[*]} " == *" $cfg "* ]] || continue   # not measured (--configs)
		daemon_cfg $cfg && [ -z "$DAEMON_PID" ] && continue
		dst=$(dst_of $cfg) extra=()
		[ $cfg = microsocks ] && extra=(--socks5 "$SOCKS")
		out=$(run_in $cfg 10 curl -s -m 5 "${extra[@]}" -A bench-check "http://$dst:$HTTP_PORT/whoami" 2>&1)
		local want_peer="192.0.2.1:" tagged=0 ok=1 why=""
		case $cfg in redsocks | proxychains | microsocks) want_peer="192.0.2.2:" ;; esac
		[[ $out == *"peer=$want_peer"* ]] || { ok=0; why="server saw: ${out:-nothing}"; }
		[[ $out == *sproxy-bpf* ]] && tagged=1
		if [ $cfg = sproxy ] || [ $cfg = $ALT ]; then
			# who owns the connection to the server: the daemon, if captured
			prefix $cfg
			timeout -k 2 15 "${PFX[@]}" "$BIN/holdconn" -a $DST -p $HTTP_PORT -n 1 -t 5 -H 10 >"$TMP/hold1.out" 2>&1 &
			local hp=$!
			wait_for 6 grep -q '^ready' "$TMP/hold1.out"
			local owner
			owner=$(nsx $NS_C ss -tnpH state established dst $DST:$HTTP_PORT | grep -o 'pid=[0-9]*' | sort -u | tr '\n' ' ')
			kill -TERM $hp 2>/dev/null; wait $hp 2>/dev/null
			if [[ " $owner " == *" pid=$DAEMON_PID "* ]]; then
				check capture-$cfg ok "connection to the server owned by the daemon ($owner); User-Agent tagged: $tagged"
			else
				ok=0 why="connection to $DST:$HTTP_PORT not owned by the daemon (pid=$DAEMON_PID): ${owner:-none}; $why"
			fi
			[ $tagged = 1 ] || check ua-tag failed "no sproxy-bpf in the User-Agent the server saw: $out"
		elif [ $tagged = 1 ]; then
			ok=0 why="User-Agent tagged although $cfg must not be proxied: $out"
		fi
		if [ $cfg = fast ]; then
			# the kernel path: the client's own socket reaches the server,
			# and the daemon logs it
			if wait_for 3 grep -q "dst=[^ ]*:$HTTP_PORT .*path=kernel" "$TMP/conn.log"; then
				check fastpath ok "the check's connection logged with path=kernel"
			else
				ok=0 why="no path=kernel line in the connection log: $(tail -n 2 "$TMP/conn.log" | tr '\n' ' ')"
			fi
		fi
		if [ $ok = 1 ]; then
			check "config-$cfg" ok "$out"
		else
			check "config-$cfg" failed "$why"
			BROKEN[$cfg]="configuration check failed: $why"
			log "configuration $cfg broken: $why"
		fi
	done
	if [ -n "$DAEMON_PID" ] && [[ " $* " == *" sproxy "* ]]; then
		local a
		a=$(run_in sproxy 10 dig +short +time=2 +tries=1 @$DST h1.bench.test 2>&1 | tail -1)
		if [[ $a =~ ^198\.(18|19)\. ]]; then
			check fakeip ok "h1.bench.test -> $a from the cgroup"
		else
			check fakeip failed "h1.bench.test -> '${a}' from the cgroup, want 198.18.0.0/15"
			BROKEN_CELL[dns:sproxy]="FakeIP check failed: h1.bench.test -> '$a'"
		fi
	fi
}

# --- main ---------------------------------------------------------------------------
# CPU busy (% of all CPUs) over 1 s: other people's work, when none of ours runs
busy_pct() {
	local a b
	a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8; exit }' /proc/stat)
	sleep 1
	b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8; exit }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", (y[2] > x[2]) ? (y[1] - x[1]) * 100 / (y[2] - x[2]) : 0 }'
}
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
BUSY_START=$(busy_pct)
log "mode $MODE, $REPS repetition(s); work dir $TMP; CPUs ${BUSY_START}% busy before start"
setup_net
start_servers
anchors_start

# First start: check every configuration, and the daemon's own contract.
if daemon_start; then
	verify_configs direct "${ANCHORS[@]}" sproxy out bypass redsocks proxychains microsocks
	daemon_stop
	verify_configs incg       # in the cgroup, nothing attached: not proxied
	if [ $WITH_COPY = 1 ] && daemon_start "${ALT_OPTS[@]}"; then
		verify_configs $ALT
		daemon_stop
	fi
	if daemon_start --tag off; then
		verify_configs fast
		daemon_stop
	fi
	if [[ " ${CONFIGS[*]} " == *" hooks "* ]] && hooks_start; then
		verify_configs hooks      # the hooks alone: not proxied, reported
		hooks_stop
	fi
else
	log "sproxy-bpf unavailable: $DAEMON_NOTE"
	check daemon-start failed "$DAEMON_NOTE"
	verify_configs direct "${ANCHORS[@]}" incg redsocks proxychains microsocks
fi

for wl in iperf1_up iperf1_down iperf8_up curl_bulk conn_close keepalive dns; do
	run_workload $wl
done

# dnsmasq's own counters: the dns cells measured cache hits, not forwarding
if want dns && kill -USR1 "$DNS_FRONT_PID" 2>/dev/null; then
	sleep 0.5
	st=$(grep -o 'queries forwarded [0-9]*, queries answered locally [0-9]*' "$TMP/dnsmasq.log" | tail -1)
	fwd=$(awk '{ print $3 + 0 }' <<<"$st")
	if [ -n "$st" ] && [ "${fwd:-0}" -le 2000 ]; then
		check dnsmasq-cache ok "$st (1000 names, cache primed before the runs)"
	else
		check dnsmasq-cache failed "${st:-no statistics in $TMP/dnsmasq.log}"
	fi
fi

if want mem; then
	log "workload mem ($MEM_N idle connections)"
	for rep in $(seq $MEM_REPS); do
		# fresh processes: earlier workloads' freed memory must not hide growth
		if daemon_start --udp-flows $MEM_UDP_FLOWS; then
			run_cell mem sproxy $rep
			daemon_stop
		else
			fail mem sproxy "$DAEMON_NOTE"
		fi
		if [ $WITH_COPY = 1 ]; then
			if daemon_start "${ALT_OPTS[@]}" --udp-flows $MEM_UDP_FLOWS; then
				run_cell mem $ALT $rep
				daemon_stop
			else
				fail mem $ALT "$DAEMON_NOTE"
			fi
		fi
		if [ -z "${BROKEN[redsocks]:-}" ]; then
			redsocks_stop
			redsocks_start || BROKEN[redsocks]="redsocks did not restart"
		fi
		run_cell mem redsocks $rep
	done
fi

if want ready; then
	log "workload ready ($READY_N starts)"
	for rep in $(seq $READY_N); do
		daemon_start || { fail ready sproxy "$DAEMON_NOTE"; break; }
		daemon_stop
	done
fi
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
BUSY_END=$(busy_pct) # our servers are idle now

# --- report -------------------------------------------------------------------------
# summary.tsv: wl cfg metric n median min max ratio ratio_min ratio_max
# (ratio: median over repetitions of CFG/direct in the same repetition)
awk -F'\t' '
function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function median(a, n) { sortn(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{
	k = $1 SUBSEP $2 SUBSEP $4
	if (!(k in n)) order[++nk] = k
	n[k]++; v[k, n[k]] = $5; rep[k, n[k]] = $3
	val[$1, $2, $4, $3] = $5
}
END {
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, f, SUBSEP)
		m = n[k]; delete a; delete r; nr = 0
		for (j = 1; j <= m; j++) {
			a[j] = v[k, j]
			dk = f[1] SUBSEP "direct" SUBSEP f[3] SUBSEP rep[k, j]
			if ((dk in val) && val[dk] + 0 != 0) r[++nr] = v[k, j] / val[dk]
		}
		sortn(a, m); mn = a[1]; mx = a[m]; md = median(a, m)
		if (nr) { md_r = median(r, nr); rl = r[1]; rh = r[nr]
			printf "%s\t%s\t%s\t%d\t%.6g\t%.6g\t%.6g\t%.4f\t%.4f\t%.4f\n", f[1], f[2], f[3], m, md, mn, mx, md_r, rl, rh
		} else
			printf "%s\t%s\t%s\t%d\t%.6g\t%.6g\t%.6g\t\t\t\n", f[1], f[2], f[3], m, md, mn, mx
	}
}' "$SAMPLES" >"$TMP/summary.tsv"

# Table of ratios, absolute medians, and targets (targets.tsv for the JSON).
awk -F'\t' -v cfgs="${CONFIGS[*]}" -v targets="$TMP/targets.tsv" -v fails="$FAILS" '
BEGIN {
	nc = split(cfgs, C, " ")
	while ((getline line < fails) > 0) { split(line, f, "\t"); failed[f[1], f[2]] = f[3] }
	# rows: wl metric label unit scale kind (r: ratio to direct, a: absolute only)
	nr = split("iperf1_up bit_s|iperf3 1 stream up|Gbit/s|1e-9|r;" \
		"iperf1_up relay_s_per_gib|  relay process CPU s/GiB|s/GiB|1|a;" \
		"iperf1_down bit_s|iperf3 1 stream down (-R)|Gbit/s|1e-9|r;" \
		"iperf1_down relay_s_per_gib|  relay process CPU s/GiB|s/GiB|1|a;" \
		"iperf8_up bit_s|iperf3 8 streams (-P 8)|Gbit/s|1e-9|r;" \
		"iperf8_up relay_s_per_gib|  relay process CPU s/GiB|s/GiB|1|a;" \
		"iperf1_up machine_s_per_gib|machine CPU s/GiB, 1 up|s/GiB|1|r;" \
		"curl_bulk bit_s|curl bulk download|Gbit/s|1e-9|r;" \
		"conn_close req_s|new conn/s (close, c=32)|conn/s|1|r;" \
		"conn_close p50_us|  p50 latency (lower=better)|us|1|r;" \
		"conn_close p99_us|  p99 latency (lower=better)|us|1|r;" \
		"conn_close relay_cpu_pct|  relay process CPU|%|1|a;" \
		"keepalive req_s|keep-alive req/s (c=32)|req/s|1|r;" \
		"keepalive p99_us|  p99 latency (lower=better)|us|1|r;" \
		"keepalive relay_cpu_pct|  relay process CPU|%|1|a;" \
		"dns qps|DNS qps (FakeIP vs dnsmasq)|q/s|1|r;" \
		"mem kib_per_conn|RSS KiB per idle conn|KiB|1|a;" \
		"ready ms|exec to ready|ms|1|a", R, ";")
}
{ k = $1 SUBSEP $2 SUBSEP $3; have[k] = 1; nn[k] = $4; med[k] = $5; lo[k] = $6; hi[k] = $7; ratio[k] = $8; rlo[k] = $9; rhi[k] = $10 }
function cell(wl, cfg, metric, kind, scale,   k) {
	k = wl SUBSEP cfg SUBSEP metric
	if (!(k in have)) return ((wl SUBSEP cfg) in failed) ? "FAILED" : "n/a"
	if (kind == "a" || cfg == "direct") return num(med[k] * scale)
	if (ratio[k] == "") return "?"
	return sprintf("%.2f%s", ratio[k], nn[k] > 1 ? sprintf("±%.2f", (rhi[k] - rlo[k]) / 2) : "")
}
function num(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
function R_(wl, cfg, metric) { k = wl SUBSEP cfg SUBSEP metric; return (k in have) && ratio[k] != "" ? ratio[k] : "" }
function M_(wl, cfg, metric) { k = wl SUBSEP cfg SUBSEP metric; return (k in have) ? med[k] : "" }
function target(name, value, shown, limit, ok) {
	st = value == "" ? "NO DATA" : ok ? "met" : "MISSED"
	printf "  %-58s %-18s %-8s %s\n", name, value == "" ? "-" : shown, limit, st
	printf "%s\t%s\t%s\t%s\n", name, value, limit, st > targets
	if (st == "met") met++; else missed++
}
function ge(wl, cfg, metric, lim, name,   r) { r = R_(wl, cfg, metric); target(name, r, r == "" ? "" : sprintf("%.3f", r), ">=" lim, r != "" && r + 0 >= lim) }
END {
	printf "\nRatios to direct (median of per-repetition ratios ± half range; direct column: absolute median)\n"
	printf "%-30s %-7s", "workload", "unit"
	for (c = 1; c <= nc; c++) printf " %12s", C[c]
	printf "\n"
	for (i = 1; i <= nr; i++) {
		split(R[i], p, "|"); split(p[1], wm, " ")
		printf "%-30s %-7s", p[2], p[3]
		for (c = 1; c <= nc; c++) printf " %12s", cell(wm[1], C[c], wm[2], p[5], p[4])
		printf "\n"
	}
	printf "\nTargets (sproxy-bpf)                                         %-18s %-8s %s\n", "value", "target", "result"
	ge("iperf1_up", "sproxy", "bit_s", 0.90, "1-stream up, ratio to direct")
	ge("iperf1_down", "sproxy", "bit_s", 0.90, "1-stream down, ratio to direct")
	ge("iperf8_up", "sproxy", "bit_s", 0.85, "8 streams, ratio to direct")
	ge("conn_close", "sproxy", "req_s", 0.60, "new conn/s, ratio to direct")
	a = M_("conn_close", "sproxy", "req_s"); b = M_("conn_close", "redsocks", "req_s")
	target("new conn/s above redsocks (conn/s vs redsocks)", a != "" && b != "" ? a : "", sprintf("%.0f vs %.0f", a, b), ">redsocks", a + 0 > b + 0)
	r = R_("conn_close", "sproxy", "p99_us")
	target("p99 new-conn latency, ratio to direct", r, sprintf("%.3f", r), "<=1.5", r != "" && r + 0 <= 1.5)
	ge("keepalive", "sproxy", "req_s", 0.80, "keep-alive req/s, ratio to direct")
	ge("iperf1_up", "fast", "bit_s", 0.97, "fast path: 1-stream up, ratio to direct")
	ge("iperf1_down", "fast", "bit_s", 0.97, "fast path: 1-stream down, ratio to direct")
	ge("iperf8_up", "fast", "bit_s", 0.97, "fast path: 8 streams, ratio to direct")
	ge("conn_close", "fast", "req_s", 0.95, "fast path: new conn/s, ratio to direct")
	r = R_("conn_close", "fast", "p99_us")
	target("fast path: p99 new-conn latency, ratio to direct", r, sprintf("%.3f", r), "<=1.1", r != "" && r + 0 <= 1.1)
	split("iperf1_up iperf1_down iperf8_up curl_bulk conn_close keepalive dns", U, " ")
	for (c = 1; c <= 2; c++) {
		cfg = c == 1 ? "out" : "bypass"
		for (u = 1; u <= 7; u++) {
			metric = U[u] ~ /conn_close|keepalive/ ? "req_s" : U[u] == "dns" ? "qps" : "bit_s"
			if (R_(U[u], cfg, metric) == "") continue
			ge(U[u], cfg, metric, 0.97, sprintf("untouched (%s) %s vs no programs", cfg == "out" ? "outside cgroup" : "bypass CIDR", U[u]))
		}
	}
	ge("dns", "sproxy", "qps", 1.0, "FakeIP qps, ratio to dnsmasq cache hits")
	a = M_("mem", "sproxy", "kib_per_conn"); b = M_("mem", "redsocks", "kib_per_conn")
	target("RSS per idle conn (KiB)", a, sprintf("%.2f", a), "<=4", a != "" && a + 0 <= 4)
	target("RSS per idle conn below redsocks (KiB vs redsocks)", a != "" && b != "" ? a : "", sprintf("%.2f vs %.2f", a, b), "<redsocks", a + 0 < b + 0)
	split("iperf1_up iperf1_down iperf8_up", W, " ")
	for (w = 1; w <= 3; w++) {
		a = M_(W[w], "sproxy", "relay_s_per_gib"); b = M_(W[w], "redsocks", "relay_s_per_gib")
		target("CPU s/GiB below redsocks, " W[w] " (vs redsocks)", a != "" && b != "" ? a : "", sprintf("%.3f vs %.3f", a, b), "<redsocks", a + 0 < b + 0)
	}
	printf "  %d met, %d missed or without data\n", met, missed
	# Not targets: where the kernel path stands against what the hooks
	# alone cost (minhooks), the limit any per-connection report has here.
	a = R_("conn_close", "hooks", "req_s"); b = R_("conn_close", "fast", "req_s")
	if (a != "" && b != "") {
		printf "\nKernel path against its anchor (hooks: a connect hook and one report per connection, nothing else)\n"
		printf "  new conn/s: hooks %.3f of direct, fast path %.3f (%.3f of the anchor)\n", a, b, b / a
		a = R_("conn_close", "hooks", "p99_us"); b = R_("conn_close", "fast", "p99_us")
		if (a != "" && b != "")
			printf "  p99 new-conn latency: hooks %.3fx direct, fast path %.3fx\n", a, b
	}
}' "$TMP/summary.tsv" | tee "$TMP/table.txt"

echo
held=""
for c in "${!MEM_HELD[@]}"; do held+="${held:+, }$c ${MEM_HELD[$c]}"; done
[ -n "$held" ] && echo "Memory: idle connections held (of $MEM_N): $held.${MEM_NOTE:+ Note: $MEM_NOTE.}"
if [ "$BUSY_START" -gt 15 ] || [ "$BUSY_END" -gt 15 ]; then
	echo "Warning: other processes kept the CPUs ${BUSY_START}% busy before the run and ${BUSY_END}% after it (of $(nproc) CPUs): figures are noisy."
fi
if [ -s "$FAILS" ]; then
	echo
	echo "Cells that could not run:"
	awk -F'\t' '{ k = $1 "/" $2; if (!(k in seen)) { seen[k] = 1; n++ } c[k]++; r[k] = $3; o[n] = k }
		END { for (i = 1; i <= n; i++) printf "  %-24s x%d  %s\n", o[i], c[o[i]], r[o[i]] }' "$FAILS"
fi
if grep -q $'\tfailed\t' "$CHECKS"; then
	echo
	echo "Checks that failed:"
	awk -F'\t' '$2 == "failed" { printf "  %-18s %s\n", $1, $3 }' "$CHECKS" | sort | uniq -c | sed 's/^ *\([0-9]*\) /  x\1/'
fi

# The figure the chart and the JSON name: what sproxy-bpf held.
MEM_N=${MEM_HELD[sproxy]:-$MEM_N}

# JSON
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSON=$OUT/bench-$STAMP.json
DVER=$([ -x "$SPROXY" ] && timeout 5 "$SPROXY" --version 2>&1 | head -1)
GITREV=$(git rev-parse --short HEAD 2>/dev/null || echo none)
jq -n \
	--arg date "$DATE" --arg mode "$MODE" --arg kernel "$(uname -r)" \
	--arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
	--arg nproc "$(nproc)" --arg reps "$REPS" --arg git "$GITREV" \
	--arg anchor "${ANCHOR_OPTS[*]}" --arg daemon "$SPROXY_SRC" --arg dver "$DVER" --arg dsum "$SPROXY_SUM" --arg dnote "$DAEMON_NOTE" \
	--arg secs "$((T_END - T_START))" --arg memn "$MEM_N" --arg memnote "$MEM_NOTE" \
	--arg load "$LOAD_START $LOAD_END" --arg busy "$BUSY_START $BUSY_END" --arg fdlimit "$FD_LIMIT" \
	--arg tools "iperf3 $(iperf3 --version | awk 'NR == 1 { print $2 }'); $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'); dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }'); $(dpkg-query -W -f='${Package} ${Version}; ' redsocks proxychains4 microsocks dnsmasq-base curl 2>/dev/null)" \
	--arg durations "iperf3 ${T_IPERF}s, wrk ${T_WRK}s, curl ${T_CURL}s, dnsperf ${T_DNS}s, mem ${MEM_N} conns x${MEM_REPS}, ready x${READY_N}" \
	--rawfile samples "$SAMPLES" --rawfile summary "$TMP/summary.tsv" \
	--rawfile fails "$FAILS" --rawfile checks "$CHECKS" --rawfile targets "$TMP/targets.tsv" '
	def rows($s): $s | split("\n") | map(select(length > 0) | split("\t"));
	def num: if . == "" or . == null then null else tonumber end;
	{
	  date: $date, mode: $mode, kernel: $kernel, cpu: $cpu, nproc: ($nproc | tonumber),
	  repetitions: ($reps | tonumber), durations: $durations, seconds: ($secs | tonumber),
	  git: $git, tools: $tools, load_average_start_end: $load, other_cpu_busy_pct_start_end: $busy, fd_hard_limit: ($fdlimit | tonumber),
	  idle_connections_held: ($memn | tonumber), idle_connections_note: (if $memnote == "" then null else $memnote end),
	  daemon: { binary: $daemon, version: $dver, snapshot: $dsum, problem: (if $dnote == "" then null else $dnote end) },
	  configs: {
	    direct: "client in the client netns, no BPF programs attached",
	    anchor: ("tests/bench/minrelay " + $anchor + " in the client netns: the same two TCP legs as the daemon, no BPF"),
	    sproxy: "client in the captured cgroup, sproxy-bpf attach (direct relay)",
	    fast: "the same with --tag off: every connection on the kernel fast path",
	    hooks: "client in the captured cgroup, the daemon stopped, tests/bench/minhooks attached: a connect hook and one ring-buffer report per connection, nothing else (the anchor of the kernel path)",
	    out: "sproxy-bpf attached, client outside the captured cgroup",
	    bypass: "client in the captured cgroup, destination in --bypass 198.51.100.0/24",
	    redsocks: "iptables REDIRECT (-m cgroup --path) to redsocks, chained to microsocks",
	    proxychains: "proxychains4 strict_chain to microsocks",
	    microsocks: "client speaks SOCKS5 to microsocks itself (curl --socks5)"
	  },
	  summary: rows($summary) | map({workload: .[0], config: .[1], metric: .[2], n: (.[3] | num),
	    median: (.[4] | num), min: (.[5] | num), max: (.[6] | num),
	    ratio: (.[7] | num), ratio_min: (.[8] | num), ratio_max: (.[9] | num)}),
	  targets: rows($targets) | map({target: .[0], value: (.[1] | num), limit: .[2], result: .[3]}),
	  failures: rows($fails) | map({workload: .[0], config: .[1], reason: .[2]}),
	  checks: rows($checks) | map({check: .[0], status: .[1], detail: .[2]}),
	  samples: rows($samples) | map({workload: .[0], config: .[1], rep: .[2], metric: .[3], value: (.[4] | num)})
	}' >"$JSON" && echo && echo "raw figures: ${JSON#"$ROOT"/}"

chart

# Exit status: non-zero when a workload could not run at all somewhere.
if [ -s "$FAILS" ]; then
	echo "bench: $(cut -f1,2 "$FAILS" | sort -u | wc -l) cell(s) could not run (see above)" >&2
	exit 1
fi
exit 0
