#!/usr/bin/env bash
# scripts/lock.sh [DIR] (`make lock`): resolves every test environment of scripts/envs.sh anew,
# with today's newest releases within pyproject.toml's ranges, into DIR/<name>.txt (default
# locks/), each pin with its hashes. `make test` installs exactly these; `make test-newest`
# writes them to a scratch directory and runs the suite with them, so upstream drift is found on
# purpose. The runtime ranges in pyproject.toml stay ranges: users install with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/envs.sh
out=${1:-locks}
mkdir -p "$out"
ensure_uv
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for entry in "${ENVS[@]}"; do
    IFS='|' read -r name minor _dir kind spec <<<"$entry"
    sources=()
    options=()
    case "$kind" in
        project) sources=(pyproject.toml --extra test) ;;
        # the floors, from wheels only: a floor must not need a compiler on any supported Python
        floors) sources=(pyproject.toml --extra test)
                options=(-c "$FLOORS" --only-binary "$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' "$FLOORS" | paste -sd, -)") ;;
        runtime) sources=(pyproject.toml) ;;
        rq) ;;
    esac
    if [ -n "$spec" ]; then
        tr ' ' '\n' <<<"$spec" >"$scratch/$name.in"
        sources+=("$scratch/$name.in")
    fi
    # --no-header: the file says what made it in its first lines instead, without a scratch path.
    {
        echo "# scripts/lock.sh: environment $name, Python $minor. Do not edit: run make lock."
        "$UV" pip compile -q --no-header --generate-hashes --python-version "$minor" \
            "${options[@]}" "${sources[@]}" | sed "s|$scratch/$name.in|$name|"
    } >"$out/$name.txt.tmp"
    mv "$out/$name.txt.tmp" "$out/$name.txt"
    echo "scripts/lock.sh: $out/$name.txt ($(grep -c '==' "$out/$name.txt") pins)" >&2
done
echo uv >"$scratch/tools.in"
{
    echo "# scripts/lock.sh: uv, which builds every other environment. Do not edit: run make lock."
    "$UV" pip compile -q --no-header --generate-hashes "$scratch/tools.in"
} | sed "s|$scratch/tools.in|tools|" >"$out/tools.txt"
