# Sourced by the scripts that build or lock the test environments: the list of environments, where
# each one's interpreter comes from, and `uv` itself. Every environment installs exactly what its
# lock (locks/<name>.txt, with hashes) says; scripts/lock.sh writes the locks, scripts/venv.sh builds
# one environment from its lock.
#
#   name       Python  directory          what it holds
#   test-rq2   3.11    .venv              the exporter (editable) + its test extra + RQ 2.x: make run,
#                                         make demo and the whole suite
#   test-rq3   3.11    .venv-rq3          the same with RQ 3.x: the tests with real workers
#   min        3.10    .venv-min          every runtime dependency at its declared floor
#                                         (constraints/minimums.txt), each from a wheel
#   py310      3.10    .venv-py310        the oldest supported Python
#   py313      3.13    .venv-py313        the newest supported Python
#   rq-<ver>   varies  .venv-rq/<ver>     RQ alone, for the real workers of each supported version
#                                         (tests/test_rq_versions.py); not the exporter, which never
#                                         imports RQ
#   peer       3.11    (none)             rq-exporter 3.1.0 with the exporter's runtime dependencies:
#                                         tests/test_coexistence.py installs it into throwaway
#                                         environments, then ours over it, and uninstalls it
#
# The RQ versions (scripts/rq_venvs.sh builds them; tests/test_rq_versions.py lists them with
# `scripts/rq_venvs.sh --list`):
#   0.13.0 on 3.9: rq==0.13.0 redis>=3,<4 click<8   (0.13 imports only on Python <= 3.9)
#   1.7.0:  rq==1.7.0 click<8                       (its `rq worker` needs click < 8)
#   1.10.1, 1.16.2, the newest 2.x and 3.x
#
# redis<8.2 where RQ workers run: redis-py 8.2's PubSubWorkerThread.stop() waits for the thread,
# which sits in a get_message(timeout=60) that RQ's unsubscribe does not always wake, so every RQ
# version's worker (up to 3.0.0) then takes up to 60 s to exit. The exporter itself is tested with
# the newest redis-py in py313 (and with whatever make test-newest finds).
ENVS=(
    "test-rq2|3.11|.venv|project|rq>=2,<3 redis<8.2"
    "test-rq3|3.11|.venv-rq3|project|rq>=3.0,<4 redis<8.2"
    "min|3.10|.venv-min|floors|"
    "py310|3.10|.venv-py310|project|"
    "py313|3.13|.venv-py313|project|"
    "rq-0.13.0|3.9|.venv-rq/0.13.0|rq|rq==0.13.0 redis>=3,<4 click<8"
    "rq-1.7.0|3.11|.venv-rq/1.7.0|rq|rq==1.7.0 click<8 redis<8.2"
    "rq-1.10.1|3.11|.venv-rq/1.10.1|rq|rq==1.10.1 redis<8.2"
    "rq-1.16.2|3.11|.venv-rq/1.16.2|rq|rq==1.16.2 redis<8.2"
    "rq-2.x|3.11|.venv-rq/2.x|rq|rq>=2,<3 redis<8.2"
    "rq-3.x|3.11|.venv-rq/3.x|rq|rq>=3,<4 redis<8.2"
    "peer|3.11||runtime|rq-exporter==3.1.0"
)
FLOORS=constraints/minimums.txt
# Where the locks are read from: make test-newest points this at freshly resolved ones.
LOCKS=${LOCKS:-locks}

IN_CI=false
case "${CI:-}" in 1 | true | yes) IN_CI=true ;; esac

env_entry() {  # env_entry NAME: sets env_name env_python env_dir env_kind env_spec, or fails
    local entry
    for entry in "${ENVS[@]}"; do
        if [ "${entry%%|*}" = "$1" ]; then
            IFS='|' read -r env_name env_python env_dir env_kind env_spec <<<"$entry"
            return 0
        fi
    done
    echo "scripts/envs.sh: no environment named $1" >&2
    return 1
}

pyenv_root() {
    if command -v pyenv >/dev/null; then pyenv root; else echo "${PYENV_ROOT:-$HOME/.pyenv}"; fi
}

find_python() {  # find_python 3.10: the path of a working interpreter of that version, or nothing
    local minor=$1 candidate
    for candidate in "$(printenv "PYTHON${minor/./}" || true)" \
                     "$(ls -d "$(pyenv_root)/versions/$minor".*/bin/python3 2>/dev/null | sort -V | tail -n 1 || true)" \
                     "$(command -v "python$minor" || true)" "$(command -v python3 || true)"; do
        # (a pyenv shim exists even when that version is not installed: it must run and be $minor)
        if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (${minor/./, }))" 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
}

# uv, pinned with its hashes in $LOCKS/tools.txt, in .venv-tools (bootstrapped with the machine's pip).
UV=.venv-tools/bin/uv
ensure_uv() {
    local key
    key=$(sha256sum <"$LOCKS/tools.txt" | cut -c1-16)
    if [ -x "$UV" ] && [ "$(cat .venv-tools/.key 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    rm -rf .venv-tools
    local python
    python=$(command -v python3)
    "$python" -m venv .venv-tools
    if ! .venv-tools/bin/pip install -q --require-hashes -r "$LOCKS/tools.txt" >.venv-tools/install.log 2>&1; then
        grep -v -e '^WARNING: Location' .venv-tools/install.log | tail -n 20 >&2
        echo "scripts/envs.sh: installing uv from $LOCKS/tools.txt failed (log: .venv-tools/install.log)" >&2
        return 1
    fi
    echo "$key" >.venv-tools/.key
}
