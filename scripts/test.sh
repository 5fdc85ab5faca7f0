#!/usr/bin/env bash
# `make test`: set-up, the linters, then the whole suite in four parts that run at once:
#   rq2       everything with RQ 2.x (.venv), spread over pytest-xdist workers
#   rq3       the tests with real RQ workers (marker `workers`) again with RQ 3.x, whose key layout differs
#   versions  the real workers of every supported RQ version (tests/test_rq_versions.py)
#   compat    the dependency floors and Python 3.10 / 3.13 (scripts/compat.sh)
# Most of the suite waits on real processes (workers, Prometheus' rule evaluation, RQ's TTLs), so
# the parts overlap well on two cores; every wait is bounded by progress or scaled by the load
# (devkit.patience), so a busy machine makes the run slower, not red. Each part's output is
# printed when it ends; the last line sums every pytest run.
# Markers (pyproject.toml; checked by tests/conftest.py): redis, workers, promtool, slow; e.g.
# `bash scripts/test.sh -m "not slow"`. Extra arguments go to every pytest run. TEST_JOBS sets the
# xdist workers of the rq2 part (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/envs.sh
started=$SECONDS
bash scripts/system-deps.sh test
every_env=()
for entry in "${ENVS[@]}"; do
    IFS='|' read -r name _ dir _ <<<"$entry"
    [ -n "$dir" ] && every_env+=("$name")  # peer is a lock only: tests/test_coexistence.py installs it
done
bash scripts/venv.sh "${every_env[@]}"
echo "== lint: ruff, mypy ($(($SECONDS - started)) s in)" >&2
.venv/bin/ruff check .
.venv/bin/mypy

logs=.tmp/test-logs
rm -rf "$logs"
mkdir -p "$logs"
versions_test=tests/test_rq_versions.py
pytest_args=(-q -p no:cacheprovider --durations=10)
# Each part runs in the background with its output in $logs/<part>.log.
declare -A pids
part() {  # part NAME COMMAND...
    local name=$1
    shift
    ( rc=0; "$@" >"$logs/$name.log" 2>&1 || rc=$?; echo "$rc" >"$logs/$name.rc" ) &
    pids[$name]=$!
}
rq_version() { "$1/bin/python" -c 'import rq; print(rq.__version__)'; }

part rq2 env PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --ignore=$versions_test" \
    .venv/bin/python -m pytest "${pytest_args[@]}" -n "${TEST_JOBS:-3}" --dist loadfile "$@"
part rq3 env PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --ignore=$versions_test" \
    .venv-rq3/bin/python -m pytest "${pytest_args[@]}" -n 2 --dist loadfile -m workers "$@"
part versions .venv/bin/python -m pytest "${pytest_args[@]}" "$versions_test" "$@"
part compat bash scripts/compat.sh
titles=(
    "rq2|RQ $(rq_version .venv): full suite"
    "rq3|RQ $(rq_version .venv-rq3): tests with real RQ workers"
    "versions|RQ $(bash scripts/rq_venvs.sh --list | paste -sd ' '): real workers of each version"
    "compat|dependency floors, Python 3.10 and 3.13"
)

failed=()
passed_tests=0
failed_tests=0
remaining=(rq2 rq3 versions compat)
# Print each part as it ends, in the order they end.
while [ ${#remaining[@]} -gt 0 ]; do
    # until one of the parts still running ends
    running=()
    for name in "${remaining[@]}"; do running+=("${pids[$name]}"); done
    wait -n "${running[@]}" 2>/dev/null || sleep 1
    left=()
    for name in "${remaining[@]}"; do
        if [ ! -f "$logs/$name.rc" ]; then
            # still running; or gone without its exit code (killed): then it failed
            if kill -0 "${pids[$name]}" 2>/dev/null; then left+=("$name"); continue; fi
            [ -f "$logs/$name.rc" ] || echo 255 >"$logs/$name.rc"
        fi
        for title in "${titles[@]}"; do [ "${title%%|*}" = "$name" ] && echo "== ${title#*|}" >&2; done
        cat "$logs/$name.log"
        rc=$(cat "$logs/$name.rc")
        # 5: pytest selected nothing (the arguments left a part empty)
        if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then failed+=("$name"); fi
        # the counts of each pytest summary line in the part's output
        while read -r count word; do
            case "$word" in
                passed) passed_tests=$((passed_tests + count)) ;;
                failed|error|errors) failed_tests=$((failed_tests + count)) ;;
            esac
        done < <(grep -E '^=* ?[0-9]+ (passed|failed)' "$logs/$name.log" | grep -oE '[0-9]+ (passed|failed|errors?)\b' || true)
    done
    remaining=("${left[@]}")
done
echo "== make test: $((SECONDS - started)) s; failed parts: ${failed[*]:-none}" >&2
echo "test: $passed_tests passed, $failed_tests failed"
[ ${#failed[@]} -eq 0 ]
