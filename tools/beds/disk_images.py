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
"""Real disk images made with ``qemu-img``, and sparse file comparison.

An image is a sparse raw file of its virtual size made by
``qemu-img create``, with a few pieces of deterministic pseudo-random data
written at chosen offsets; its qcow2 twin is ``qemu-img convert`` of it. The
raw file is the reference: a volume made from either image must hold the
raw file's bytes over the virtual size, and zeros after it.
"""

import dataclasses
import errno
import hashlib
import os
import subprocess
from typing import Iterator, Sequence

from oslo_utils import units

READ_CHUNK = 4 * units.Mi


@dataclasses.dataclass(frozen=True)
class DiskImage:
    """One image file and the raw reference of its virtual disk."""

    path: str
    disk_format: str
    virtual_size: int
    raw_reference: str

    @property
    def file_size(self) -> int:
        """Bytes of the image file, what Glance reports as ``size``."""
        return os.path.getsize(self.path)


def pattern(seed: str, length: int) -> bytes:
    """Return ``length`` deterministic pseudo-random bytes for ``seed``."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        block = hashlib.sha256(("%s/%d" % (seed, counter)).encode()).digest()
        out.extend(block * 32)
        counter += 1
    return bytes(out[:length])


def qemu_img(*args: str) -> str:
    """Run ``qemu-img`` and return its standard output."""
    result = subprocess.run(("qemu-img",) + args, check=True,
                            capture_output=True, text=True)
    return result.stdout


def make_raw(path: str, virtual_size: int,
             pieces: Sequence[tuple[int, int]], seed: str) -> DiskImage:
    """Create a sparse raw image holding data at ``pieces``.

    :param path: the file to create.
    :param virtual_size: the disk size in bytes.
    :param pieces: ``(offset, length)`` of the data to write.
    :param seed: makes the data of two images differ.
    """
    qemu_img("create", "-q", "-f", "raw", path, str(virtual_size))
    with open(path, "r+b") as handle:
        for index, (offset, length) in enumerate(pieces):
            if offset < 0 or offset + length > virtual_size:
                raise ValueError("piece %r outside the disk" %
                                 ((offset, length),))
            handle.seek(offset)
            handle.write(pattern("%s/%d" % (seed, index), length))
    return DiskImage(path=path, disk_format="raw",
                     virtual_size=virtual_size, raw_reference=path)


def make_qcow2(raw: DiskImage, path: str) -> DiskImage:
    """Convert ``raw`` to a qcow2 image at ``path``."""
    qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", raw.path, path)
    return DiskImage(path=path, disk_format="qcow2",
                     virtual_size=raw.virtual_size,
                     raw_reference=raw.raw_reference)


def make_gzip(image: DiskImage, path: str) -> DiskImage:
    """Compress ``image`` with gzip at ``path``: a ``compressed`` image.

    Its disk is ``image``'s; the file is what Glance serves for an image
    uploaded with ``container_format = compressed``.
    """
    with open(image.path, "rb") as source, open(path, "wb") as target:
        subprocess.run(("gzip", "-c", "-1"), stdin=source, stdout=target,
                       check=True)
    return dataclasses.replace(image, path=path)


LUKS_ATTEMPTS = 5
"""``qemu-img create -f luks`` times its key derivation on the CPU first
and, on a busy machine, sometimes stops with "Unable to get accurate CPU
usage" (2 runs in 20 here); the next run succeeds."""


def make_luks(path: str, size: str) -> None:
    """Create a LUKS container of ``size`` (``qemu-img`` units) at ``path``.

    :raises subprocess.CalledProcessError: every attempt failed.
    """
    argv = ("qemu-img", "create", "-q", "--object",
            "secret,id=s0,data=secret", "-f", "luks", "-o", "key-secret=s0",
            path, size)
    for attempt in range(1, LUKS_ATTEMPTS + 1):
        done = subprocess.run(argv, capture_output=True, text=True,
                              check=False)
        if done.returncode == 0:
            return
        if ("Unable to get accurate CPU usage" not in done.stderr or
                attempt == LUKS_ATTEMPTS):
            raise subprocess.CalledProcessError(
                done.returncode, argv, done.stdout, done.stderr)


def data_extents(path: str) -> list[tuple[int, int]]:
    """Return the ``(offset, length)`` data regions of a sparse file."""
    size = os.path.getsize(path)
    extents = []
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                    extents.append((offset, size - offset))
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end - start))
            offset = end
    finally:
        os.close(fd)
    return extents


def _clip(extents: list[tuple[int, int]], start: int,
          end: int) -> Iterator[tuple[int, int]]:
    for offset, length in extents:
        lo, hi = max(offset, start), min(offset + length, end)
        if lo < hi:
            yield lo, hi


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _read(fd: int, offset: int, length: int) -> bytes:
    """Read ``length`` bytes; past the end of the file reads zeros."""
    data = os.pread(fd, length, offset)
    return data + bytes(length - len(data))


def first_difference(expected_path: str, actual_path: str,
                     length: int) -> int:
    """Compare two sparse files over ``[0, length)``.

    Only the regions where either file holds data are read; holes read as
    zeros, so the comparison is byte for byte at the cost of the data.

    :returns: the offset of the first differing byte, or -1.
    """
    ranges = list(_clip(data_extents(expected_path), 0, length))
    ranges += _clip(data_extents(actual_path), 0, length)
    with open(expected_path, "rb") as exp, open(actual_path, "rb") as act:
        for lo, hi in _merge(ranges):
            offset = lo
            while offset < hi:
                size = min(READ_CHUNK, hi - offset)
                want = _read(exp.fileno(), offset, size)
                got = _read(act.fileno(), offset, size)
                if want != got:
                    for index, (a, b) in enumerate(zip(want, got)):
                        if a != b:
                            return offset + index
                offset += size
    return -1


def first_nonzero(path: str, start: int) -> int:
    """Return the offset of the first non-zero byte at or after ``start``.

    :returns: the offset, or -1 when the rest of the file is zeros.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        for lo, hi in _clip(data_extents(path), start, size):
            offset = lo
            while offset < hi:
                chunk = _read(handle.fileno(), offset,
                              min(READ_CHUNK, hi - offset))
                stripped = chunk.lstrip(b"\0")
                if stripped:
                    return offset + len(chunk) - len(stripped)
                offset += len(chunk)
    return -1
