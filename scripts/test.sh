#!/usr/bin/env bash
# `make test`: set-up, the linters, then the whole suite: everything with RQ 2.x (latest), the
# tests with real RQ workers (marker `workers`) again with RQ 3.0, whose key layout differs, the
# real workers of every supported RQ version (tests/test_rq_versions.py), and the dependency
# floors and Python 3.10 / 3.13 (scripts/compat.sh).
# Markers (pyproject.toml; checked by tests/conftest.py): redis, workers, promtool, slow; e.g.
# `bash scripts/test.sh -m "not slow"`. Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh .venv 'rq>=2,<3'
echo "== lint: ruff, mypy" >&2
.venv/bin/ruff check .
.venv/bin/mypy
bash scripts/venv.sh .venv-rq3 'rq>=3.0,<4'
# Every supported RQ version's environment, before any run: tests/test_rq_versions.py needs them
# all, and tests/test_exceptions_rq_workers.py runs RQ 1.10's own worker from one.
bash scripts/rq_venvs.sh
# tests/test_rq_versions.py runs once, last (below): it runs the real workers of every supported RQ
# version itself, from the environments scripts/rq_venvs.sh makes. The runs before it leave it out.
versions_test=tests/test_rq_versions.py
user_addopts=${PYTEST_ADDOPTS:-}
export PYTEST_ADDOPTS="$user_addopts --ignore=$versions_test"
pytest_args=(-q -p no:cacheprovider --durations=15)
echo "== RQ $(.venv/bin/python -c 'import rq; print(rq.__version__)'): full suite" >&2
.venv/bin/python -m pytest "${pytest_args[@]}" "$@"
echo "== RQ $(.venv-rq3/bin/python -c 'import rq; print(rq.__version__)'): tests with real RQ workers" >&2
.venv-rq3/bin/python -m pytest "${pytest_args[@]}" -m workers "$@"
export PYTEST_ADDOPTS=$user_addopts
echo "== RQ $(bash scripts/rq_venvs.sh --list | paste -sd ' '): real workers of each version" >&2
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$versions_test" "$@" || status=$?
[ "$status" = 0 ] || [ "$status" = 5 ] || exit "$status"  # 5: the arguments selected none of it
# The dependency floors (constraints/minimums.txt, on Python 3.10) and the oldest and newest
# supported Python with the newest dependencies: the unit tests and a real scrape in each.
echo "== dependency floors, Python 3.10 and 3.13" >&2
bash scripts/compat.sh
