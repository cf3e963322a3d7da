#!/usr/bin/env bash
# Debian services some tests run for real (called by `make test`):
#   redis-server: the Redis form of the quota counters (router.auth.store.kind: redis),
#   tests/integration/test_quota_store.py.
# Installs what is missing with apt-get (as root, or through sudo); without
# either it says so, and the tests that need a service fail with how to get it.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
elif command -v sudo >/dev/null 2>&1; then
    apt=(sudo apt-get)
else
    echo "tests/services/install.sh: cannot install ${packages[*]} (not root, no sudo)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing on a fresh machine: update once, then retry.
"${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
    || { "${apt[@]}" update -qq >/dev/null && \
         "${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; }
# Debian's package starts its own server on 6379; the tests start theirs on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
fi
