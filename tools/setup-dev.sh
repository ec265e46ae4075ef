#!/usr/bin/env bash
# Install what the test suite needs on a Debian/Ubuntu machine:
# qemu-img (Debian package qemu-utils) for the image conversions Cinder runs,
# and tox, which builds one virtualenv per supported Cinder release.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v qemu-img >/dev/null 2>&1; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-utils
fi
python3 -m pip install -q 'tox>=4.0'
qemu-img --version | head -n 1
python3 -m tox --version
