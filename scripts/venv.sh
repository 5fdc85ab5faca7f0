#!/usr/bin/env bash
# scripts/venv.sh NAME...: builds each named environment of scripts/envs.sh (test-rq2 -> .venv, ...)
# from its lock, $LOCKS/<name>.txt (default locks/): exactly the pinned versions, every download
# checked against its hash, and the exporter itself installed editable where the environment holds
# it. An environment is kept while its marker (a hash of the lock, the interpreter's version and,
# for the exporter's environments, pyproject.toml) matches, and made anew otherwise.
# A missing interpreter fails with one line saying what to install when CI=true, and skips that
# environment with a warning elsewhere (exit 0; tests that need it skip and say so).
# Each environment's .pyc files are written (its packages' and, for the exporter's, this checkout's
# sources'), as pip does when it installs: under PYTHONDONTWRITEBYTECODE (CI's environment) there
# would be none, and every process the tests start (hundreds of exporters and RQ workers) would
# compile its imports anew, ~0.4 s of CPU an exporter start here (a third of the CPU of
# tests/test_settings_*.py, test_healthcheck.py and test_outage.py on the oldest dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/envs.sh
ensure_uv
export UV_NO_PROGRESS=1

compile_pyc() {  # compile_pyc ENV_DIR KIND [packages]: this checkout's sources, and the packages too if asked
    local python=$1/bin/python places=()
    [ "${3:-}" != packages ] || mapfile -t places < <("$python" -c \
        'import sysconfig; print(*sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")}), sep="\n")')
    [ "$2" = rq ] || places+=(rq_exporter_ng devkit tests bench)
    [ ${#places[@]} -eq 0 ] && return 0
    # A failure only costs speed.
    env -u PYTHONDONTWRITEBYTECODE "$python" -m compileall -q -j 0 "${places[@]}" >/dev/null 2>&1 || true
}
for name in "$@"; do
    env_entry "$name"
    lock=$LOCKS/$name.txt
    [ -f "$lock" ] || { echo "scripts/venv.sh: $lock is missing: run make lock" >&2; exit 1; }
    python=$(find_python "$env_python")
    if [ -z "$python" ]; then
        rm -rf "$env_dir"
        message="Python $env_python is missing (for $env_dir): install it with pyenv ($(pyenv_root)/versions/$env_python.*) or set PYTHON${env_python/./}"
        if [ "$IN_CI" = true ]; then echo "scripts/venv.sh: $message" >&2; exit 1; fi
        echo "scripts/venv.sh: WARNING: $message (skipped; with CI=true this fails)" >&2
        continue
    fi
    inputs=("$lock")
    [ "$env_kind" = rq ] || inputs+=(pyproject.toml)
    key=$(cat "${inputs[@]}" <("$python" -VV) | sha256sum | cut -c1-16)
    marker=$env_dir/.rq-venv-key
    if [ -x "$env_dir/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "$key" ]; then
        compile_pyc "$env_dir" "$env_kind"  # this checkout's sources may have changed
        continue
    fi
    t0=$SECONDS
    rm -rf "$env_dir"
    mkdir -p "$(dirname "$env_dir")"
    log=$(mktemp)
    # uv's output only when it fails
    if ! { "$UV" venv -q --python "$python" "$env_dir" \
           && "$UV" pip sync -q --python "$env_dir/bin/python" --require-hashes "$lock" \
           && { [ "$env_kind" = rq ] || "$UV" pip install -q --python "$env_dir/bin/python" --no-deps -e .; }
         } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -rf "$env_dir" "$log"
        echo "scripts/venv.sh: building $env_dir from $lock with $python failed" >&2
        exit 1
    fi
    rm -f "$log"
    if [ "$env_kind" = rq ]; then
        # RQ 0.13 has no `python -m rq.cli`: the tests run bin/rq, which must start
        "$env_dir/bin/rq" worker --help >/dev/null 2>&1 || { echo "scripts/venv.sh: $env_dir/bin/rq worker --help fails" >&2; exit 1; }
        check='import rq'
    else
        check='import rq_exporter_ng, redis, prometheus_client, pydantic_settings, hiredis'
    fi
    "$env_dir/bin/python" -c "$check" || { echo "scripts/venv.sh: $env_dir does not import" >&2; exit 1; }
    compile_pyc "$env_dir" "$env_kind" packages
    echo "$key" >"$marker"
    echo "scripts/venv.sh: $env_dir from $lock on $("$python" -V 2>&1) ($((SECONDS - t0)) s)" >&2
done
