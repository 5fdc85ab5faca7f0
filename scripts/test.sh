#!/usr/bin/env bash
# `make test`: set-up, then the whole suite: everything with RQ 2.x (latest), and the
# real-worker tests again with RQ 3.0, whose key layout differs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh .venv 'rq>=2,<3'
bash scripts/venv.sh .venv-rq3 'rq>=3.0,<4'
# tests/test_rq_versions.py runs once, last (below): it runs the real workers of every supported RQ
# version itself, from the environments scripts/rq_venvs.sh makes. The runs before it leave it out.
versions_test=tests/test_rq_versions.py
user_addopts=${PYTEST_ADDOPTS:-}
export PYTEST_ADDOPTS="$user_addopts --ignore=$versions_test"
echo "== RQ $(.venv/bin/python -c 'import rq; print(rq.__version__)'): full suite" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== RQ $(.venv-rq3/bin/python -c 'import rq; print(rq.__version__)'): tests with real RQ workers" >&2
.venv-rq3/bin/python -m pytest -q -p no:cacheprovider -m integration "$@"
export PYTEST_ADDOPTS=$user_addopts
bash scripts/rq_venvs.sh
echo "== RQ $(bash scripts/rq_venvs.sh --list | paste -sd ' '): real workers of each version" >&2
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$versions_test" "$@" || status=$?
[ "$status" = 0 ] || [ "$status" = 5 ] || exit "$status"  # 5: the arguments selected none of it
