#!/usr/bin/env bash
# scripts/rq_venvs.sh [--list]: one small environment per supported RQ version, under
# .venv-rq/<version>/, for tests/test_rq_versions.py (real workers of each version), from the locks
# locks/rq-<version>.txt (the versions and their pins: scripts/envs.sh). Only RQ and what it needs:
# the exporter is not installed there (it runs from .venv and never imports RQ).
# --list prints the versions, one a line (the test takes its list from here).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/envs.sh
names=()
for entry in "${ENVS[@]}"; do
    name=${entry%%|*}
    [ "${name#rq-}" != "$name" ] && names+=("$name")
done
if [ "${1:-}" = --list ]; then
    for name in "${names[@]}"; do echo "${name#rq-}"; done
    exit 0
fi
bash scripts/venv.sh "${names[@]}"
