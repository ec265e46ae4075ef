#!/usr/bin/env bash
# Install what the test suite needs on a Debian/Ubuntu machine:
# qemu-img (Debian package qemu-utils) for the image conversions Cinder runs,
# and tox, which builds one virtualenv per supported Cinder release.
#
# `tools/cloud` (a one-machine OpenStack on loopback) also needs MariaDB,
# RabbitMQ and Redis. Their Debian packages are installed without starting
# the system-wide services: tools/cloud runs its own instances, with their
# own data directories and ports, under .cloud/.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
}

if ! command -v qemu-img >/dev/null 2>&1; then
    apt_update_once
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-utils
fi

# Debian package -> a command it brings, checked to skip the install.
CLOUD_PACKAGES="mariadb-server:mariadbd mariadb-client:mariadb
rabbitmq-server:rabbitmq-server redis-server:redis-server
redis-tools:redis-cli gcc:gcc"
missing=""
while read -r pair; do
    for entry in $pair; do
        package=${entry%%:*}
        command=${entry#*:}
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$command" \
                >/dev/null 2>&1; then
            missing="$missing $package"
        fi
    done
done <<< "$CLOUD_PACKAGES"

# A system-wide instance is one run by the package's own user; tools/cloud
# runs its own as the invoking user.
stop_system_instance() {  # user process init-script
    if command -v pgrep >/dev/null 2>&1 \
            && pgrep -u "$1" -x "$2" >/dev/null 2>&1; then
        echo "stopping the system-wide $2 that the install started"
        as_root "/etc/init.d/$3" stop >/dev/null 2>&1 || true
    fi
}

POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
remove_policy() {
    if [ "$CREATED_POLICY" -eq 1 ]; then
        as_root rm -f "$POLICY"
        CREATED_POLICY=0
    fi
}

if [ -n "$missing" ]; then
    apt_update_once
    # A policy-rc.d that exits 101 tells invoke-rc.d not to start the
    # services the packages install. One already there is left alone.
    if [ ! -e "$POLICY" ]; then
        trap remove_policy EXIT
        CREATED_POLICY=1
        printf '#!/bin/sh\n# tools/setup-dev.sh: start no service\nexit 101\n' \
            | as_root tee "$POLICY" >/dev/null
        as_root chmod 755 "$POLICY"
    fi
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends $missing
    remove_policy
    stop_system_instance mysql mariadbd mariadb
    stop_system_instance rabbitmq beam.smp rabbitmq-server
    stop_system_instance redis redis-server redis-server
    if command -v pgrep >/dev/null 2>&1 \
            && pgrep -u rabbitmq -x epmd >/dev/null 2>&1; then
        as_root epmd -kill >/dev/null 2>&1 || true
    fi
fi

python3 -m pip install -q 'tox>=4.0'
qemu-img --version | head -n 1
python3 -m tox --version
