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
"""Sparse files backing the simulated volumes.

Every volume is a sparse file of exactly its ``sizeInKb``: creating one
costs no disk space, a snapshot or clone copies only the data its source
holds (``SEEK_DATA``/``SEEK_HOLE``, with a zero-block scan as fallback),
extending truncates up and removing deletes the file. Data written into a
backing file (directly, or through the ``/dev/disk/by-id`` style link the
simulator publishes while the volume is mapped) is therefore real data that
snapshots, clones and reverts carry along.

A volume of a storage pool without zero padding does not read zeros from
blocks never written: it reads whatever the devices held before, which is
why Cinder refuses such pools unless ``powerflex_allow_non_padded_volumes``
(Cinder's ``is_volume_creation_safe``; OSSN-0086). :func:`stale_pattern`
plays that old data: with ``stale=True`` a new file (or the new tail of an
extended one) gets one :data:`STALE_BLOCK` of a deterministic pattern every
:data:`STALE_STRIDE` bytes, so a copy into it that skips zero blocks leaves
non-zero bytes where the source had zeros, while the file stays sparse.
"""

import errno
import os
from typing import Iterator

KIB = 1024
CHUNK = 1024 * KIB
BLOCK = 64 * KIB
STALE_STRIDE = 1024 * KIB
"""Distance between two blocks of old data in a non-zero-padded volume."""
STALE_BLOCK = 4 * KIB
"""Size of each block of old data (one page: little disk per GiB)."""


def stale_pattern(offset: int) -> bytes:
    """The "old data" a non-zero-padded volume reads at ``offset``.

    Deterministic (a function of the offset only) and never zero.
    """
    word = b"OLD-DATA%016x" % offset
    return (word * (STALE_BLOCK // len(word) + 1))[:STALE_BLOCK]


def write_stale(path: str, start: int, end: int) -> None:
    """Write the old-data blocks between ``start`` and ``end`` of ``path``."""
    first = -(-start // STALE_STRIDE) * STALE_STRIDE
    with open(path, "r+b") as handle:
        for offset in range(first, end, STALE_STRIDE):
            block = stale_pattern(offset)[:end - offset]
            os.pwrite(handle.fileno(), block, offset)


class SparseStore:
    """A directory of sparse backing files named after volume ids."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def path_for(self, volume_id: str) -> str:
        """Return the backing file path of ``volume_id``."""
        return os.path.join(self.directory, "vol-%s.img" % volume_id)

    def create(self, volume_id: str, size_bytes: int,
               stale: bool = False) -> str:
        """Create a sparse file of ``size_bytes``; return its path.

        :param stale: the pool does not pad with zeros: the file reads old
            data (:func:`write_stale`) instead of zeros.
        """
        path = self.path_for(volume_id)
        with open(path, "wb") as handle:
            handle.truncate(size_bytes)
        if stale:
            write_stale(path, 0, size_bytes)
        return path

    def clone(self, source_path: str, volume_id: str) -> str:
        """Create a point-in-time sparse copy of ``source_path``."""
        path = self.path_for(volume_id)
        size = os.path.getsize(source_path)
        with open(source_path, "rb") as src, open(path, "wb") as dst:
            dst.truncate(size)
            copy_sparse(src.fileno(), dst.fileno(), size)
        return path

    @staticmethod
    def resize(path: str, size_bytes: int, stale: bool = False) -> None:
        """Grow (never shrink) ``path`` to ``size_bytes``.

        :param stale: the new tail reads old data, not zeros.
        """
        old = os.path.getsize(path)
        if old < size_bytes:
            os.truncate(path, size_bytes)
            if stale:
                write_stale(path, old, size_bytes)

    @staticmethod
    def overwrite(source_path: str, path: str) -> None:
        """Replace the content of ``path`` with that of ``source_path``.

        The destination keeps its size (the source is never larger) and its
        inode, so an open mapping of the destination sees the new content.
        """
        size = os.path.getsize(path)
        src_size = os.path.getsize(source_path)
        with open(source_path, "rb") as src, open(path, "r+b") as dst:
            dst.truncate(0)
            dst.truncate(size)
            copy_sparse(src.fileno(), dst.fileno(), min(size, src_size))

    @staticmethod
    def remove(path: str) -> None:
        """Delete ``path``; a missing file is not an error."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    @staticmethod
    def allocated_bytes(path: str) -> int:
        """Return the bytes really allocated on disk for ``path``."""
        try:
            return os.stat(path).st_blocks * 512
        except FileNotFoundError:
            return 0


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """Yield ``(offset, length)`` of the data regions of ``fd``.

    Uses ``SEEK_DATA``/``SEEK_HOLE``; when the file system does not support
    them the whole file is one extent and the caller's zero-block scan does
    the work.
    """
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        yield 0, size
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield offset, size - offset
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, seek_hole), size)
        yield start, end - start
        offset = end


def copy_sparse(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy the first ``size`` bytes of ``src_fd`` onto ``dst_fd`` sparsely.

    Only data extents are read, and blocks that are all zeros are not
    written, so holes stay holes. The destination must already be zero
    (freshly truncated) over the copied range.

    :returns: the number of bytes written.
    """
    written = 0
    zero = bytes(BLOCK)
    for start, length in data_extents(src_fd, size):
        offset, end = start, start + length
        while offset < end:
            chunk = os.pread(src_fd, min(CHUNK, end - offset), offset)
            if not chunk:
                break
            for pos in range(0, len(chunk), BLOCK):
                block = chunk[pos:pos + BLOCK]
                if block != zero[:len(block)]:
                    os.pwrite(dst_fd, block, offset + pos)
                    written += len(block)
            offset += len(chunk)
    return written
