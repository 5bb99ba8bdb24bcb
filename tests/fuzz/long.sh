#!/bin/bash
# make fuzz-long: every harness for FUZZ_RUNS executions (10 million by
# default), one after another, then a table of what each did.  New inputs
# go to build/fuzz/long-NAME (kept, so the next run starts from there);
# the seeds in tests/fuzz/corpus/NAME are only read.  A crash or a
# sanitizer report stops the run; the input is saved as build/fuzz/NAME-*.
#   FUZZ_RUNS=N       executions per harness
#   FUZZ_TIMEOUT=S    give up on a harness after S seconds (default 4 h)
set -u
cd "$(dirname "$0")/../.."
OUT=build
RUNS=${FUZZ_RUNS:-10000000}
LIMIT=${FUZZ_TIMEOUT:-14400}
summary=$OUT/fuzz/long-summary.txt
rows=()
status=0

[ $# -gt 0 ] || set -- "$OUT"/fuzz/fuzz_*
for f in "$@"; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	work=$OUT/fuzz/long-$n
	log=$OUT/fuzz/long-$n.log
	mkdir -p "$work"
	# The rules and HTTP harnesses cost in proportion to their input, and
	# past a few hundred bytes an input only repeats what a shorter one
	# has: config lines are parsed one by one (512 bytes hold several of
	# the longest), and the HTTP recipes (first byte 0xc0 or more) build
	# long keep-alive streams from a short input.
	case $n in
	fuzz_http) maxlen=(-max_len=1024) ;;
	fuzz_rules) maxlen=(-max_len=512) ;;
	*) maxlen=() ;;
	esac
	echo "fuzz-long: $n, $RUNS runs (log: $log)"
	t0=$(date +%s.%N)
	timeout "$LIMIT" "$f" -runs="$RUNS" -timeout=30 -print_final_stats=1 ${maxlen[@]+"${maxlen[@]}"} \
		-artifact_prefix="$OUT/fuzz/$n-" "$work" "tests/fuzz/corpus/$n" \
		>"$log" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
	execs=${execs:-0}
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
	# Only a clean exit after all the runs is a pass: a report from a
	# sanitizer, a crash, a leak or the time limit is not.
	if [ $rc -eq 0 ] && [ "$execs" -ge "$RUNS" ] &&
	   ! grep -qE '^(==[0-9]+==ERROR|SUMMARY: )' "$log"; then
		result=ok
	else
		result="FAIL (exit $rc)"
		status=1
		tail -40 "$log"
	fi
	rows+=("$(printf '%-20s %12s %8s %8s  %s' "$n" "$execs" "$secs" "$rate" "$result")")
	[ $status -eq 0 ] || break
done

{
	printf '%-20s %12s %8s %8s  %s\n' harness executions seconds exec/s result
	printf '%s\n' "${rows[@]}"
} | tee "$summary"
exit $status
