#!/usr/bin/env bash
# Model-check the ring protocol with position stamps (stamps.pml) with spin:
# the model must hold in every interleaving, and each mutant must fail.
# Needs spin and a C compiler (Debian: apt-get install spin). Prints the
# states explored and the time of each run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$here/../../build/csrc/model
mkdir -p "$work"
cd "$work"

# One verification: 0 when spin found no error. -DCOLLAPSE halves the
# memory of the full run (about 2.6 GB for 51 million states).
check() {
	local name=$1; shift
	rm -rf "$name" && mkdir "$name" && cd "$name"
	spin -a "$@" "$here/stamps.pml" >/dev/null
	cc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c
	local t0=$SECONDS
	./pan -m300000 >pan.out 2>&1 || true
	local errors
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
	local states
	states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' pan.out)
	if grep -q "Search not completed\|max search depth too small" pan.out && [ "$errors" = 0 ]; then
		echo "model $name: the search did not complete" >&2
		cat pan.out >&2
		cd ..
		return 2
	fi
	echo "model $name: $errors error(s), $states states, $((SECONDS - t0)) s"
	cd ..
	[ "$errors" = 0 ]
}

status=0
check stamps || status=1
for m in NO_CLEAR STAMP_AT_RESERVE PUBLISHED_TAIL NO_WAKE; do
	if check "mutant_$m" "-DMUTANT_$m"; then
		echo "model mutant_$m: no error found, but this mutant must fail" >&2
		status=1
	fi
done
exit $status
