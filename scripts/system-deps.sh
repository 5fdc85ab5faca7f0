#!/usr/bin/env bash
# Installs the real servers the tests run (redis-server, prometheus + promtool,
# alertmanager and amtool) with apt-get when missing and running as root.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "scripts/system-deps.sh: please install: ${missing[*]} (need root + apt-get to do it here)" >&2
    exit 1
fi
echo "installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their services; the tests start their own on free ports.
for service in redis-server prometheus prometheus-node-exporter prometheus-alertmanager; do
    (command -v systemctl >/dev/null && systemctl stop "$service") >/dev/null 2>&1 || true
    pkill -x "$service" >/dev/null 2>&1 || true
done
