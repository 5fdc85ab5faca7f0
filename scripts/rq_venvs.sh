#!/usr/bin/env bash
# scripts/rq_venvs.sh [--list]: one small virtual environment per supported RQ version, under
# .venv-rq/<name>/, for tests/test_rq_versions.py (real workers of each version). Only RQ and what
# it needs: the exporter is not installed there (it runs from .venv and never imports RQ).
#
#   name    Python  pip arguments
#   0.13.0  3.9     rq==0.13.0 redis>=3,<4 click<8   (0.13 imports only on Python <= 3.9)
#   1.7.0   3.11    rq==1.7.0 click<8                (its `rq worker` needs click < 8)
#   1.10.1  3.11    rq==1.10.1
#   1.16.2  3.11    rq==1.16.2
#   2.x     3.11    rq>=2,<3                         (the newest 2.x)
#   3.x     3.11    rq>=3,<4                         (the newest 3.x)
#
# --list prints the names, one a line (the test takes its list of versions from here).
# Interpreters: $PYTHON39 / $PYTHON311 when set, else the newest 3.9.* / 3.11.* under
# `pyenv root` (or ~/.pyenv), else python3.9 / python3.11 on PATH (python3 for 3.11). With
# CI=true a missing interpreter or a failed install exits non-zero with one line saying what is
# missing; otherwise that version is skipped with a warning (and its directory removed).
# An environment is reused while its marker (.venv-rq/<name>/.rq-venv-key: a hash of the
# interpreter's version and the pip arguments) matches. Delete .venv-rq to get the newest 2.x/3.x.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=(
    "0.13.0|3.9|rq==0.13.0 redis>=3,<4 click<8"
    "1.7.0|3.11|rq==1.7.0 click<8"
    "1.10.1|3.11|rq==1.10.1"
    "1.16.2|3.11|rq==1.16.2"
    "2.x|3.11|rq>=2,<3"
    "3.x|3.11|rq>=3,<4"
)

if [ "${1:-}" = --list ]; then
    for entry in "${VERSIONS[@]}"; do echo "${entry%%|*}"; done
    exit 0
fi

IN_CI=false
case "${CI:-}" in 1 | true | yes) IN_CI=true ;; esac
started=$SECONDS

pyenv_root() {
    if command -v pyenv >/dev/null; then pyenv root; else echo "${PYENV_ROOT:-$HOME/.pyenv}"; fi
}

find_python() {  # find_python 3.9: the interpreter's path, or nothing
    local minor=$1 override found
    override=$(printenv "PYTHON${minor/./}" || true)
    if [ -n "$override" ]; then
        if [ -x "$override" ]; then echo "$override"; fi
        return 0
    fi
    found=$(ls -d "$(pyenv_root)/versions/$minor".*/bin/python3 2>/dev/null | sort -V | tail -n 1 || true)
    [ -z "$found" ] && found=$(command -v "python$minor" || true)
    if [ -z "$found" ] && command -v python3 >/dev/null \
        && [ "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$minor" ]; then
        found=$(command -v python3)
    fi
    if [ -n "$found" ] && [ -x "$found" ]; then echo "$found"; fi
    return 0
}

problem() {  # problem MESSAGE: fails the run in CI, a warning elsewhere
    if [ "$IN_CI" = true ]; then
        echo "scripts/rq_venvs.sh: $1" >&2
        exit 1
    fi
    echo "scripts/rq_venvs.sh: WARNING: $1 (skipped; with CI=true this fails)" >&2
}

made=()
for entry in "${VERSIONS[@]}"; do
    IFS='|' read -r name minor spec <<<"$entry"
    dir=.venv-rq/$name
    read -r -a pip_args <<<"$spec"
    python=$(find_python "$minor")
    if [ -z "$python" ]; then
        rm -rf "$dir"
        problem "Python $minor is missing (for RQ $name): install it with pyenv ($(pyenv_root)/versions/$minor.*) or set PYTHON${minor/./}"
        continue
    fi
    key=$(cat <("$python" -VV) <(echo "$spec") | sha256sum | cut -c1-16)
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.rq-venv-key" 2>/dev/null)" = "$key" ]; then
        made+=("$name")
        continue
    fi
    rm -rf "$dir"
    mkdir -p .venv-rq
    t0=$SECONDS
    # pip's output only when it fails (it is noisy about this machine's extra indexes)
    if ! { "$python" -m venv "$dir" && "$dir/bin/pip" install -q "${pip_args[@]}"; } >"$dir.log" 2>&1; then
        grep -v -e '^WARNING: Location' "$dir.log" | tail -n 20 >&2 || true
        rm -rf "$dir"
        problem "installing ${pip_args[*]} with $python into $dir failed (log: $dir.log)"
        continue
    fi
    # It imports, and its worker command line starts (RQ 0.13 has no `python -m rq.cli`: bin/rq).
    if ! version=$("$dir/bin/python" -c 'import rq; print(rq.__version__)' 2>>"$dir.log") \
        || ! "$dir/bin/rq" worker --help >>"$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        rm -rf "$dir"
        problem "RQ $name in $dir does not import or its 'rq worker --help' fails (log: $dir.log)"
        continue
    fi
    rm -f "$dir.log"
    echo "$key" >"$dir/.rq-venv-key"
    echo "scripts/rq_venvs.sh: $dir: RQ $version on $("$python" -V 2>&1) ($((SECONDS - t0)) s)" >&2
    made+=("$name")
done
echo "scripts/rq_venvs.sh: ${made[*]:-none} ready in .venv-rq/ ($((SECONDS - started)) s)" >&2
