#!/usr/bin/env bash
# scripts/compat.sh [PYTEST ARGS]: the supported range at both ends, in three environments:
#   .venv-min    Python 3.10, every runtime dependency at exactly its declared minimum
#                (constraints/minimums.txt), each installed from a wheel
#   .venv-py310  Python 3.10 (the oldest supported), newest dependencies
#   .venv-py313  Python 3.13 (the newest supported), newest dependencies
# In each: the unit tests that need no Redis, then scripts/smoke_scrape.py (redis-server, the
# exporter, one real scrape as text and as OpenMetrics). PYTEST ARGS replace the default test
# selection. Every environment runs even when one fails; the exit code says whether all passed.
#
# Interpreters: $PYTHON310 / $PYTHON313 when set, else the newest 3.10.* / 3.13.* under
# `pyenv root` (or ~/.pyenv), else python3.10 / python3.13 on PATH. A missing one fails the run
# when CI=true; elsewhere it is skipped with a warning.
# An environment is reused while its marker (a hash of pyproject.toml, the constraints and the
# interpreter's version) matches; otherwise it is made anew, so .venv-min never keeps a newer
# version from before. Delete .venv-min/.venv-py310/.venv-py313 to get today's newest releases.
set -euo pipefail
cd "$(dirname "$0")/.."

CONSTRAINTS=constraints/minimums.txt
# The unit tests: no redis-server, RQ workers or promtool, nothing slow (markers: tests/markers.py).
MARKERS='not redis and not workers and not promtool and not slow'
started=$SECONDS

# --- Interpreters ---------------------------------------------------------------------------
pyenv_root() {
    if command -v pyenv >/dev/null; then pyenv root; else echo "${PYENV_ROOT:-$HOME/.pyenv}"; fi
}

find_python() {  # find_python 3.10: the path of a working interpreter of that version, or nothing
    local minor=$1 candidate
    for candidate in "$(printenv "PYTHON${minor/./}" || true)" \
                     "$(ls -d "$(pyenv_root)/versions/$minor".*/bin/python3 2>/dev/null | sort -V | tail -n 1 || true)" \
                     "$(command -v "python$minor" || true)"; do
        # (a pyenv shim exists even when that version is not installed: it must run and be $minor)
        if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (${minor/./, }))" 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
}

PY310=$(find_python 3.10)
PY313=$(find_python 3.13)
for need in "3.10:$PY310:.venv-min and .venv-py310" "3.13:$PY313:.venv-py313"; do
    IFS=: read -r minor path uses <<<"$need"
    [ -n "$path" ] && continue
    if [ "${CI:-}" = true ]; then
        echo "scripts/compat.sh: Python $minor is missing (for $uses): install it with pyenv" \
             "($(pyenv_root)/versions/$minor.*) or set PYTHON${minor/./}" >&2
        exit 1
    fi
    echo "scripts/compat.sh: WARNING: Python $minor is missing: skipping $uses (with CI=true this fails)" >&2
done
command -v redis-server >/dev/null || { echo "scripts/compat.sh: redis-server is not installed (scripts/system-deps.sh installs it)" >&2; exit 1; }

# --- Environments ---------------------------------------------------------------------------
# make_venv DIR PYTHON PIP-ARGS...: DIR with the exporter (editable) and PIP-ARGS, or reused.
make_venv() {
    local dir=$1 python=$2
    shift 2
    local key
    key=$(cat pyproject.toml "$CONSTRAINTS" <("$python" -VV) <(echo "$*") | sha256sum | cut -c1-16)
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.compat-key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    rm -rf "$dir"
    "$python" -m venv "$dir"
    # Output only when it fails (pip is noisy about this machine's extra indexes and setuptools).
    if ! "$dir/bin/pip" install -q "$@" >"$dir/.compat-install.log" 2>&1; then
        grep -v -e '^WARNING: Location' "$dir/.compat-install.log" | tail -n 20 >&2
        echo "scripts/compat.sh: installing into $dir failed (log: $dir/.compat-install.log)" >&2
        return 1
    fi
    echo "$key" >"$dir/.compat-key"
}

# The pinned packages, from the constraints file: with --only-binary they must come as wheels,
# so a floor is never one that needs a compiler on some supported Python.
pinned=$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' "$CONSTRAINTS" | paste -sd, -)

pytest_args() {  # pytest_args VENV [ARGS...]: the selection (ARGS, else the unit tests), into `selection`
    if [ "$#" -gt 1 ]; then
        selection=("${@:2}")
    else
        selection=(-m "$MARKERS")
    fi
}

# The pins must be the floors pyproject.toml declares: a pin above its floor would leave the floor
# untested, one below it makes the install impossible (and pip -q would not say why).
floors_match() {  # floors_match PYTHON: quiet when they match; else one line per mismatch, and false
    "$1" - "$CONSTRAINTS" <<'PY'
import re
import sys

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def release(version):  # "5.0" -> (5,): comparable, and 5.0 == 5.0.0
    parts = [int(p) for p in re.match(r"[0-9]+(?:\.[0-9]+)*", version)[0].split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)

def same(pin, floor):
    return pin is not None and release(pin) == release(floor)

pins = {norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open(sys.argv[1]).read(), re.M)}
block = re.search(r"^dependencies = \[(.*?)^\]", open("pyproject.toml").read(), re.S | re.M).group(1)
block = re.sub(r"#.*", "", block)
bad = []
for requirement in re.findall(r'"([^"]+)"', block):
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([^,;\s]+)\s*(?:,.*)?", requirement)
    if not match:
        bad.append(f"pyproject.toml: {requirement!r} has no >= floor")
    elif not same(pins.get(norm(match[1])), match[2]):
        pin = pins.get(norm(match[1]))
        bad.append(f"pyproject.toml declares {requirement}, {sys.argv[1]} pins " + (f"=={pin}" if pin else "nothing"))
# An extra asking for more than a pin (the test extra's bcrypt>=4, say) makes the install
# impossible as well.
extras = re.search(r"^\[project\.optional-dependencies\]$(.*?)(?=^\[)", open("pyproject.toml").read() + "\n[", re.S | re.M)
for requirement in re.findall(r'"([^"]+)"', re.sub(r"#.*", "", extras.group(1) if extras else "")):
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([^,;\s]+).*", requirement)
    if match and norm(match[1]) in pins and release(match[2]) > release(pins[norm(match[1])]):
        bad.append(f"pyproject.toml: an extra requires {requirement}, {sys.argv[1]} pins =={pins[norm(match[1])]}")
for line in bad:
    print(f"scripts/compat.sh: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

failed=()
passed=()
# check NAME DIR PYTHON PIP-ARGS... -- PYTEST-ARGS...
check() {
    local name=$1 dir=$2 python=$3
    shift 3
    local pip_args=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do pip_args+=("$1"); shift; done
    [ "$#" -gt 0 ] && shift
    if [ -z "$python" ]; then
        echo "== $name: skipped (no interpreter)" >&2
        return 0
    fi
    local t0=$SECONDS
    echo "== $name: $("$python" -V 2>&1) in $dir" >&2
    if [ "$name" = min ] && ! floors_match "$python"; then
        failed+=("$name (constraints vs pyproject.toml)")
        return 0
    fi
    if ! make_venv "$dir" "$python" "${pip_args[@]}"; then
        failed+=("$name (install)")
        return 0
    fi
    "$dir/bin/python" -c 'import rq_exporter, redis, prometheus_client, pydantic_settings, hiredis' \
        || { failed+=("$name (import)"); return 0; }
    local selection=()
    pytest_args "$dir" "$@"
    local ok=1
    "$dir/bin/python" -m pytest -q -p no:cacheprovider "${selection[@]}" || ok=0
    "$dir/bin/python" scripts/smoke_scrape.py || ok=0
    if [ "$ok" = 1 ]; then
        passed+=("$name ($((SECONDS - t0)) s)")
    else
        failed+=("$name")
    fi
}

check min .venv-min "$PY310" -c "$CONSTRAINTS" --only-binary "$pinned" -e '.[test]' -- "$@"
check py310 .venv-py310 "$PY310" -e '.[test]' -- "$@"
check py313 .venv-py313 "$PY313" -e '.[test]' -- "$@"

echo "== scripts/compat.sh: $((SECONDS - started)) s; passed: ${passed[*]:-none}; failed: ${failed[*]:-none}" >&2
[ ${#failed[@]} -eq 0 ]
