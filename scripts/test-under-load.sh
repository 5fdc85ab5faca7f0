#!/usr/bin/env bash
# scripts/test-under-load.sh [ARGS]: `make test` (scripts/test.sh ARGS) while a CPU hog spins on
# every core, to show that the suite's waits hold on a busy machine: each is bounded by the
# progress of what it waits for or scaled by the load (devkit.patience), never a fixed wall clock.
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=()
stop_hogs() { [ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for _ in $(seq "$(nproc)"); do
    # nice 0, like the suite: a hog that yields would prove nothing
    ( while :; do :; done ) &
    hogs+=($!)
done
echo "scripts/test-under-load.sh: $(nproc) CPU hogs running (pids ${hogs[*]})" >&2
bash scripts/test.sh "$@"
