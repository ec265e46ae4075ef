#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""Linux loop devices over the simulator's sparse backing files.

A mapped volume backed by a loop device is a real block device, as an SDC
or NVMe volume is: it reports no holes (``SEEK_DATA`` sees only data),
``stat`` gives it no size, and writes go through the block layer and its
page cache. Attaching needs root and ``/dev/loop-control``, which
containers often refuse; :func:`attach` then raises :class:`Unavailable`
with the reason and the caller falls back to the file.

Used by the simulator (``loop_devices=True``) and by the tests and the
benchmark of the host-assisted copy, which need block devices too.
"""

import errno
import fcntl
import os
import subprocess
import time
from typing import Sequence

LOSETUP = "losetup"
TIMEOUT_S = 60
BLKFLSBUF = 0x1261
"""``ioctl`` dropping a block device's buffer cache (``blockdev
--flushbufs``)."""
DETACH_WAIT_S = 5.0
"""How long :func:`detach` waits for a device another process holds open
(``losetup`` listing devices elsewhere, say) to be let go."""


class Unavailable(RuntimeError):
    """This machine refuses loop devices; the message says why."""


def _losetup(args: Sequence[str]) -> str:
    command = [LOSETUP] + list(args)
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable("%s: %s" % (" ".join(command), exc)) from None
    if done.returncode:
        raise Unavailable("%s: exit %d: %s" % (
            " ".join(command), done.returncode,
            done.stderr.strip() or done.stdout.strip()))
    return done.stdout.strip()


def attach(path: str, direct_io: bool = False) -> str:
    """Attach ``path`` to a free loop device; return the device path.

    :param direct_io: the loop driver reads and writes the file with
        ``O_DIRECT`` (no page cache of the file between the device and the
        disk, as with a real array); needs a file system that supports it.
    :raises Unavailable: not root, no loop support, no free device...
    """
    if os.geteuid() != 0:
        raise Unavailable("loop devices need root (euid %d)" % os.geteuid())
    args = ["--find", "--show"]
    if direct_io:
        args.append("--direct-io=on")
    device = _losetup(args + [path])
    if not device.startswith("/dev/"):
        raise Unavailable("losetup printed no device: %r" % device)
    return device


def refresh(device: str) -> None:
    """Make ``device`` see the new size of its backing file (``-c``)."""
    _losetup(["--set-capacity", device])


def detach(device: str) -> None:
    """Detach ``device``; a device already gone is not an error.

    A device still open somewhere is detached by the kernel on its last
    close (autoclear); this waits up to :data:`DETACH_WAIT_S` for that, so
    that a volume is detached when its unmap returns.
    """
    try:
        _losetup(["--detach", device])
    except Unavailable:
        if os.path.exists("/sys/block/%s/loop" % os.path.basename(device)):
            raise
    deadline = time.monotonic() + DETACH_WAIT_S
    while backing_file(device) and time.monotonic() < deadline:
        time.sleep(0.02)


def backing_file(device: str) -> str:
    """Return the file behind ``device`` ('' when detached)."""
    path = "/sys/block/%s/loop/backing_file" % os.path.basename(device)
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def devices_of(path: str) -> list[str]:
    """Return the loop devices attached to ``path`` (``losetup -j``)."""
    try:
        out = _losetup(["--associated", path])
    except Unavailable:
        return []
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


def flush_buffers(device: str) -> None:
    """Drop ``device``'s buffer cache after its backing file changed."""
    fd = os.open(device, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, BLKFLSBUF, 0)
    except OSError as exc:
        if exc.errno not in (errno.ENOTTY, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def device_size(path: str) -> int:
    """Return the size in bytes of a file or a block device.

    ``os.path.getsize`` gives 0 for a block device; seeking to its end
    gives its size.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
