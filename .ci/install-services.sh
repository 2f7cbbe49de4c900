#!/usr/bin/env bash
# Install Debian's nats-server and redis-server for the service tests (tests/test_serve_*.py,
# docs/service.md). Called by .ci/run before `make test`; developers run it once by hand.
#
# Idempotent and fast when both are present: apt is only touched when a binary is missing. It
# starts no daemon: the test fixtures start private servers on free loopback ports.
set -euo pipefail

log() { printf 'install-services: %s\n' "$*"; }

missing=()
for bin in nats-server redis-server; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if [ "${#missing[@]}" -eq 0 ]; then
    log "nats-server and redis-server already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get install); skipping, the service tests will be skipped"
    exit 0
fi
log "missing: ${missing[*]}; installing nats-server and redis-server with apt-get"
export DEBIAN_FRONTEND=noninteractive
# No systemd here: keep the maintainer scripts from starting the packaged services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt_install() {
    timeout 900 apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        nats-server redis-server
}
if ! apt_install; then
    log "apt-get install failed; running apt-get update and retrying"
    timeout 300 apt-get update -q
    apt_install
fi
log "installed $(nats-server --version) and $(redis-server --version | cut -d' ' -f1-3)"
