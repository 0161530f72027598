#!/usr/bin/env bash
# R14 soak (csrc/soak/soak.c): builds the optimised soak program and runs it.
#
#   run.sh [SECONDS] [extra soak options]     default 60 (what CI runs)
#   run.sh 14400 --seed 42                    four hours, a fixed seed
#
# Exits nonzero on any lost, duplicated, reordered or corrupt message, a
# hang, a peer error, or growth of the parent's fds, mappings or resident
# set. Needs >= 26 s for the flatness checks to run (13 sessions of 2 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}; shift || true
make -s -C "$here/.." soak
exec "$here/../../build/csrc/release/soak/soak" --seconds "$secs" "$@"
