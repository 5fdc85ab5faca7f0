#!/usr/bin/env bash
# scripts/system-deps.sh [test|demo]: installs the real servers with apt-get when they are missing
# and this runs as root.
#   test (make test): redis-server, redis-sentinel, prometheus + promtool, prometheus-alertmanager
#        + amtool, openssl, valgrind (bench/instructions.py's smoke test); all of them are needed.
#   demo (make demo): redis-server is needed; prometheus and prometheus-alertmanager are wanted
#        (without them the demo runs the exporter part and says what it left out).
# Not root, or no apt-get: prints the one command that installs what is missing and exits 2 when
# something needed is missing (0 when only wanted ones are, after saying so).
set -euo pipefail
profile=${1:-test}
needed=()
wanted=()
need() {  # need COMMAND PACKAGE
    command -v "$1" >/dev/null && return 0
    case " ${needed[*]} ${wanted[*]} " in *" $2 "*) return 0 ;; esac
    if [ "$mode" = needed ]; then needed+=("$2"); else wanted+=("$2"); fi
}
case "$profile" in
    test)
        mode=needed
        need redis-server redis-server
        need redis-sentinel redis-sentinel
        need promtool prometheus
        need prometheus prometheus
        need openssl openssl
        need amtool prometheus-alertmanager
        need prometheus-alertmanager prometheus-alertmanager
        need valgrind valgrind ;;
    demo)
        mode=needed
        need redis-server redis-server
        mode=wanted
        need prometheus prometheus
        need prometheus-alertmanager prometheus-alertmanager ;;
    *) echo "scripts/system-deps.sh: unknown profile $profile (test or demo)" >&2; exit 2 ;;
esac
missing=("${needed[@]}" "${wanted[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "scripts/system-deps.sh: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    [ ${#needed[@]} -eq 0 ] && exit 0
    exit 2
fi
echo "installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their services; the tests and the demo start their own.
for service in redis-server prometheus prometheus-node-exporter prometheus-alertmanager; do
    (command -v systemctl >/dev/null && systemctl stop "$service") >/dev/null 2>&1 || true
    pkill -x "$service" >/dev/null 2>&1 || true
done
