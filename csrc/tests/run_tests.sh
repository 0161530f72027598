#!/usr/bin/env bash
# Runs C test programs from one folder: exit 0 pass, 77 skip, anything else
# fails. Prints each result, then "N passed, N failed, N skipped".
set -u
dir=$1; shift
passed=0; failed=0; skipped=0; failures=()
for name in "$@"; do
	start=$EPOCHREALTIME
	"$dir/$name"; rc=$?
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	case $rc in
	0)  passed=$((passed + 1)); echo "PASS $name (${secs}s)" ;;
	77) skipped=$((skipped + 1)); echo "SKIP $name (${secs}s)" ;;
	*)  failed=$((failed + 1)); failures+=("$name"); echo "FAIL $name: exit $rc (${secs}s)" ;;
	esac
done
echo "C tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
