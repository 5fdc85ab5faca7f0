#!/usr/bin/env bash
# scripts/compat.sh [PYTEST ARGS]: the supported range at both ends, in three environments of
# scripts/envs.sh, each built from its lock by scripts/venv.sh:
#   min    .venv-min    Python 3.10, every runtime dependency at exactly its declared minimum
#                       (constraints/minimums.txt), each installed from a wheel
#   py310  .venv-py310  Python 3.10 (the oldest supported)
#   py313  .venv-py313  Python 3.13 (the newest supported)
# In each: the unit tests that need no Redis, then scripts/smoke_scrape.py (redis-server, the
# exporter, one real scrape as text and as OpenMetrics); in py313 also tests/test_redis_tls_strict.py
# (Python 3.13's strict X.509 checks against a TLS redis-server). PYTEST ARGS replace the default test
# selection. Every environment runs even when one fails; the exit code says whether all passed.
# A missing interpreter fails the run when CI=true; elsewhere it is skipped with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/envs.sh

# The unit tests: no redis-server, RQ workers or promtool, nothing slow (markers: tests/markers.py).
MARKERS='not redis and not workers and not promtool and not slow'
started=$SECONDS
command -v redis-server >/dev/null || { echo "scripts/compat.sh: redis-server is not installed (scripts/system-deps.sh installs it)" >&2; exit 1; }

# The pins must be the floors pyproject.toml declares: a pin above its floor would leave the floor
# untested, one below it makes the install impossible (and pip -q would not say why).
floors_match() {  # floors_match PYTHON: quiet when they match; else one line per mismatch, and false
    "$1" - "$FLOORS" <<'PY'
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
# check NAME [PYTEST-ARGS...]
check() {
    local name=$1
    shift
    env_entry "$name"
    local t0=$SECONDS python
    python=$(find_python "$env_python")
    if [ -z "$python" ]; then
        bash scripts/venv.sh "$name" || failed+=("$name (no Python $env_python)")
        return 0
    fi
    echo "== $name: $("$python" -V 2>&1) in $env_dir" >&2
    if [ "$env_kind" = floors ] && ! floors_match "$python"; then
        failed+=("$name (constraints vs pyproject.toml)")
        return 0
    fi
    bash scripts/venv.sh "$name" || { failed+=("$name (install)"); return 0; }
    local selection=("$@")
    [ "$#" -gt 0 ] || selection=(-m "$MARKERS" -n 2)
    local ok=1
    "$env_dir/bin/python" -m pytest -q -p no:cacheprovider "${selection[@]}" || ok=0
    # What only the newest Python shows: its strict X.509 checks, against a TLS redis-server.
    if [ "$name" = py313 ] && [ "$#" -eq 0 ]; then
        "$env_dir/bin/python" -m pytest -q -p no:cacheprovider tests/test_redis_tls_strict.py || ok=0
    fi
    "$env_dir/bin/python" scripts/smoke_scrape.py || ok=0
    if [ "$ok" = 1 ]; then
        passed+=("$name ($((SECONDS - t0)) s)")
    else
        failed+=("$name")
    fi
}

check min "$@"
check py310 "$@"
check py313 "$@"

echo "== scripts/compat.sh: $((SECONDS - started)) s; passed: ${passed[*]:-none}; failed: ${failed[*]:-none}" >&2
[ ${#failed[@]} -eq 0 ]
