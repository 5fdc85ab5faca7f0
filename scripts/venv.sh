#!/usr/bin/env bash
# scripts/venv.sh DIR RQ_SPEC: a virtual environment at DIR with the exporter (editable),
# its test dependencies and RQ pinned by RQ_SPEC (for the real workers of the tests).
set -euo pipefail
dir=$1
rq_spec=${2:-rq}
python=${PYTHON:-python3}
cd "$(dirname "$0")/.."
if [ ! -x "$dir/bin/python" ]; then
    "$python" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
fi
"$dir/bin/pip" install -q -e ".[test]" "$rq_spec" 2>&1 | grep -v -e '^WARNING: Location' >&2 || true
"$dir/bin/python" -c "import rq_exporter, rq, redis, prometheus_client" \
    || { echo "scripts/venv.sh: install into $dir failed" >&2; exit 1; }
