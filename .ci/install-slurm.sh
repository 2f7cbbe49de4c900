#!/usr/bin/env bash
# Install Debian's Slurm (slurm-wlm) and munge so that tests/slurm_cluster.py can run a real
# single-node cluster. Called by .ci/run before `make test`; developers run it once by hand.
#
# Idempotent and fast when everything is present: apt is only touched when a binary is missing.
# It installs and prepares only; it starts no daemon (the pytest fixture starts munged, slurmctld
# and slurmd itself, without systemd, in a private directory).
set -euo pipefail

log() { printf 'install-slurm: %s\n' "$*"; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (apt-get install); skipping, Slurm tests will be skipped"
        exit 0
    fi
}

missing=()
for bin in slurmctld slurmd sbatch srun munged mungekey; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "slurm-wlm and munge already installed ($(slurmctld -V 2>/dev/null || echo '?'))"
else
    need_root
    log "missing: ${missing[*]}; installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # No systemd here: stop the maintainer scripts from trying to start munge/slurm services
    # (invoke-rc.d honours policy-rc.d; exit 101 means "action forbidden"). Restored afterwards.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
    # The package lists may be absent or stale on a fresh machine; update only if the install
    # cannot find the packages, so that a warm machine never waits on apt-get update.
    apt_install() {
        timeout 900 apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            slurm-wlm munge
    }
    if ! apt_install; then
        log "apt-get install failed; running apt-get update and retrying"
        timeout 300 apt-get update -q
        apt_install
    fi
    log "installed $(slurmctld -V)"
fi

# munge refuses to start without a key owned by its user with mode 0400. The Debian postinst
# normally creates one; make sure of it, since a half-configured install would not.
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then
    need_root
    log "creating munge key $key"
    install -d -m 0700 -o munge -g munge /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$key" --force
    else
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
fi
if [ "$(id -u)" -eq 0 ]; then
    chown munge:munge "$key"
    chmod 0400 "$key"
fi
log "munge key ok ($key)"
