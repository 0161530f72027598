#!/usr/bin/env bash
# The libFuzzer targets of docs/RELIABILITY.md R1 (consumer), R3 (producer),
# the handshake decoder and the tensor frame decoder. Needs clang with libFuzzer (see csrc/fuzz/README.md).
#
#   run.sh replay        run every committed seed once (seconds)
#   run.sh short [SECS]  fuzz each target SECS seconds (default 30; CI)
#   run.sh long  [RUNS]  fuzz each target RUNS executions (default 10 million;
#                        before a release)
#   run.sh ... TARGET..  only those targets (consumer producer handshake frame)
#
# Fuzzing works on a scratch copy of the corpus under build/, so the
# committed seeds change only by hand (make_corpus.py). A crash leaves its
# input in build/csrc/fuzz/artifacts/ and fails the run; replay it with
#   FUZZ_TRACE=1 build/csrc/fuzz/fuzz_<target> <file>
# Prints the executions and the time of every target.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
csrc=$(dirname "$here")
out=$csrc/../build/csrc/fuzz
mode=${1:-replay}; shift || true
arg=
if [[ ${1:-} =~ ^[0-9]+$ ]]; then arg=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(consumer producer handshake frame)

# the targets are named here too, so a run builds exactly what it runs
make -s -C "$csrc" fuzz FUZZ_TARGETS="${targets[*]}" >&2
out=$(cd "$out" && pwd)

# A ring input holds a header, up to 8192 ring bytes and a program; a frame
# input is one payload (header, then data).
max_len() { case $1 in handshake) echo 64 ;; frame) echo 4096 ;; *) echo 16384 ;; esac; }

status=0
for t in "${targets[@]}"; do
	bin=$out/fuzz_$t
	seeds=$here/corpus/$t
	work=$out/work/$t
	mkdir -p "$work" "$out/artifacts"
	common=(-max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048
	        -artifact_prefix="$out/artifacts/$t-" -print_final_stats=1)
	start=$EPOCHREALTIME
	case $mode in
	replay) opts=(-runs=0) ; dirs=("$seeds") ;;
	short)  opts=(-max_total_time="${arg:-30}") ; dirs=("$work" "$seeds") ;;
	long)   opts=(-runs="${arg:-10000000}") ; dirs=("$work" "$seeds") ;;
	*) echo "usage: $0 replay|short [SECS]|long [RUNS] [TARGET...]" >&2; exit 2 ;;
	esac
	log=$out/$t.$mode.log
	if "$bin" "${common[@]}" "${opts[@]}" "${dirs[@]}" >"$log" 2>&1; then
		result=ok
	else
		result=FAILED; status=1
		grep -E "ERROR|oracle failed|SUMMARY|Test unit written" "$log" >&2 || tail -20 "$log" >&2
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "fuzz $mode $t: $result, ${execs:-?} executions in ${secs}s (log: $log)"
done
exit $status
