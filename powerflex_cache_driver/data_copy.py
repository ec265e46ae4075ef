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
"""Host-assisted copy of one PowerFlex volume into another.

Used where the array cannot make the copy itself: a clone across storage
pools or protection domains, and a fresh copy of an image-volume cache entry
whose vtree is full. Both volumes are attached to this host by
:mod:`powerflex_cache_driver.host_attach` (os-brick connectors, so SDC and
NVMe-TCP both work), and the copy skips zero blocks when the destination is
known to read back zeros.

The devices are read and written in large page-aligned chunks with
``O_DIRECT`` where they accept it, as ``dd bs=4M iflag=direct
oflag=direct`` would: no page cache on either side, the destination
written in order and flushed before the copy returns. The buffers sit on
transparent huge pages where the kernel has them, so that a request is as
large as the device takes (see :func:`_allocate`), and a thread reads the
next chunks while the current one is written.
"""

import ctypes
import dataclasses
import errno
import fcntl
import io
import mmap
import os
import time
from typing import Any, BinaryIO, Callable, Optional

from cinder import exception
from cinder.i18n import _
from cinder import utils
from cinder.volume import volume_utils
from eventlet import patcher
from eventlet import tpool
from oslo_log import log as logging
from oslo_utils import strutils
from oslo_utils import units

from powerflex_cache_driver import host_attach

LOG = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 4 * units.Mi
"""Chunk of a copy when ``volume_dd_blocksize`` is smaller."""
MAX_CHUNK_BYTES = 64 * units.Mi
"""Largest chunk, whatever ``volume_dd_blocksize`` says (one buffer)."""
ALIGNMENT = mmap.PAGESIZE
"""Offsets, lengths and buffers of ``O_DIRECT`` I/O: a page, a multiple
of any logical block size (512 or 4096)."""
ZERO_BLOCK_BYTES = units.Mi
"""Granularity of ``skip_zeros`` inside a chunk: zero MiBs of a chunk are
not written even when the rest of it is."""
READ_AHEAD_CHUNKS = 3
"""Buffers of a copy: one being written, the others being read ahead."""
HUGE_PAGE_BYTES = 2 * units.Mi
"""Boundary the buffers start on, asking for transparent huge pages (see
:func:`_allocate`)."""

# Real threads even in an eventlet-patched cinder-volume: the read-ahead
# thread blocks in preadv while this one blocks in pwrite.
_threading = patcher.original("threading")
_queue = patcher.original("queue")


@dataclasses.dataclass
class CopyStats:
    """What a copy covered, read and wrote."""

    bytes_total: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    direct_read: bool = False
    """The source was read with ``O_DIRECT``."""
    direct_write: bool = False
    """The destination was written with ``O_DIRECT`` (an unaligned tail
    excepted)."""
    read_seconds: float = 0.0
    """Time the read-ahead thread spent in reads of the source."""
    write_seconds: float = 0.0
    """Time spent in writes to the destination (the final ``fsync``
    excepted). Reads and writes overlap: both near ``seconds`` means the
    two devices (or what they share) set the pace, not the loop."""
    fsync_seconds: float = 0.0
    """Time of the final flush of the destination, within ``seconds``."""

    @property
    def bytes_skipped(self) -> int:
        """Bytes not written: holes not read and zero chunks read."""
        return self.bytes_total - self.bytes_written

    @property
    def mib_per_second(self) -> float:
        """Throughput over the whole length copied."""
        return self.bytes_total / units.Mi / max(self.seconds, 1e-6)


class SourceEndedEarly(OSError):
    """The source ended before the length measured for the copy.

    A device that went away or shrank during the copy (an SDC or NVMe
    volume unmapped, a loop device resized): what was not read would be
    left unwritten in the destination.
    """

    def __init__(self, reached: int, length: int) -> None:
        super().__init__(errno.EIO, "source ended at byte %d of %d" %
                         (reached, length))
        self.reached = reached
        self.length = length


def _next_data(src: BinaryIO, offset: int, end: int) -> int:
    """Offset of the next data at or after ``offset`` (``end`` if none).

    Uses ``SEEK_DATA``, so holes of a sparse source are not even read. Where
    the source cannot tell (a block device reports everything as data, some
    file systems refuse), the answer is ``offset`` and the copy reads on.
    ``ENXIO`` means no data up to the source's end; a source whose end is
    now below ``end`` has shrunk, and the answer is that end (not below
    ``offset``), where the next read finds nothing and fails the copy.
    """
    try:
        return min(os.lseek(src.fileno(), offset, os.SEEK_DATA), end)
    except OSError as error:
        if error.errno != errno.ENXIO:
            return offset
        source_end = os.lseek(src.fileno(), 0, os.SEEK_END)
        return max(offset, min(source_end, end))
    except (AttributeError, io.UnsupportedOperation):
        return offset


def _fileno(stream: Any) -> Optional[int]:
    """The descriptor of ``stream``, or None (e.g. ``io.BytesIO``)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def is_direct(fd: int) -> bool:
    """True when ``fd`` was opened (or set) with ``O_DIRECT``."""
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _set_direct(fd: int, direct: bool) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    flags = flags | os.O_DIRECT if direct else flags & ~os.O_DIRECT
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def open_direct(path: str, flags: int) -> int:
    """``os.open`` with ``O_DIRECT``, or without where refused.

    File systems without direct I/O (tmpfs...) refuse the flag with
    ``EINVAL``; the file is then opened for buffered I/O.
    """
    try:
        return os.open(path, flags | os.O_DIRECT)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
    # No log here: this runs in a native thread (see _copy_paths); the
    # copy's debug line says whether O_DIRECT was used.
    return os.open(path, flags)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _fd_reader(fd: int) -> Callable[[memoryview, int], int]:
    def read(buf: memoryview, offset: int) -> int:
        done = 0
        while done < len(buf):
            count = os.preadv(fd, [buf[done:]], offset + done)
            if not count:
                break
            done += count
        return done
    return read


def _stream_reader(stream: Any) -> Callable[[memoryview, int], int]:
    def read(buf: memoryview, offset: int) -> int:
        stream.seek(offset)
        done = 0
        while done < len(buf):
            count = stream.readinto(buf[done:])
            if not count:
                break
            done += count
        return done
    return read


def _fd_writer(fd: int, direct: bool) -> Callable[[memoryview, int], None]:
    state = {"direct": direct}

    def write(data: memoryview, offset: int) -> None:
        if state["direct"] and len(data) % ALIGNMENT:
            # Only the last chunk can be unaligned: finish buffered, the
            # final fsync writes it out.
            _set_direct(fd, False)
            state["direct"] = False
        done = 0
        while done < len(data):
            count = os.pwrite(fd, data[done:], offset + done)
            if not count:
                # A device that takes nothing would loop here for ever.
                raise OSError(errno.EIO, "short write at byte %d of %d "
                              "bytes at offset %d" % (done, len(data),
                                                      offset))
            done += count
    return write


def _stream_writer(stream: Any) -> Callable[[memoryview, int], None]:
    def write(data: memoryview, offset: int) -> None:
        stream.seek(offset)
        stream.write(data)
    return write


def _all_zero(data: memoryview, zeros: bytes) -> bool:
    """True when ``data`` holds only zeros (memcmp speed, not per byte).

    ``bytes.startswith`` compares with the buffer in place: no copy of
    ``data`` (``tobytes`` allocated and copied each block, twice the time
    of the comparison). ``data`` longer than ``zeros`` counts as data.
    """
    if not data:
        return True
    if data[0] or data[-1]:
        return False
    return zeros.startswith(data)


def _data_runs(data: memoryview, zeros: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of the runs of blocks of ``data`` not all zero.

    Blocks are ``len(zeros)`` bytes; adjacent data blocks make one run, so
    a chunk without zero blocks is written in one request.
    """
    runs: list[tuple[int, int]] = []
    block = len(zeros)
    for start in range(0, len(data), block):
        end = min(start + block, len(data))
        if _all_zero(data[start:end], zeros):
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def _read_ahead(src: BinaryIO, read: Callable[[memoryview, int], int],
                views: list[memoryview], free: Any, filled: Any,
                length: int, skip_zeros: bool, stats: CopyStats) -> None:
    """Reader thread: fill the free buffers with the next chunks, in order.

    Puts ``(offset, count, index)`` on ``filled`` per chunk, the exception
    if one stops it (:class:`SourceEndedEarly` when a read finds nothing
    before ``length``), and at the end the offset reached (an ``int``:
    holes skipped at the end of the source count as copied). A None from
    ``free`` cancels. A buffer is only taken from ``free``, where the
    writer puts it back once its chunk is written: never refilled before.
    Adds its time in reads to ``stats.read_seconds`` (read by the caller
    after the join).
    """
    direct = stats.direct_read
    chunk = len(views[0])
    offset = 0
    try:
        while offset < length:
            if skip_zeros:
                data_at = _next_data(src, offset, length)
                if direct and data_at < length:
                    data_at -= data_at % ALIGNMENT
                if data_at > offset:
                    offset = data_at
                    continue
            size = min(chunk, length - offset)
            # O_DIRECT reads whole blocks; a short tail reads up to one.
            want = _round_up(size, ALIGNMENT) if direct else size
            index = free.get()
            if index is None:
                return
            started = time.monotonic()
            count = min(read(views[index][:want], offset), size)
            stats.read_seconds += time.monotonic() - started
            if not count:
                raise SourceEndedEarly(offset, length)
            filled.put((offset, count, index))
            offset += count
    except BaseException as error:
        filled.put(error)
    finally:
        filled.put(offset)


def _allocate(size: int) -> tuple[mmap.mmap, int]:
    """Memory for the buffers of a copy: a mapping and where they start.

    Anonymous private memory, page aligned as ``O_DIRECT`` wants, with
    ``size`` bytes from a :data:`HUGE_PAGE_BYTES` boundary (the mapping
    is that much larger) advised ``MADV_HUGEPAGE``. The kernel builds an
    ``O_DIRECT`` request from the buffer's physical pages, one segment per
    contiguous run: scattered 4 KiB pages cap a request at the device's
    ``max_segments`` pages (128 on a loop device: 512 KiB where it takes
    1280 KiB), so a 4 MiB chunk went out as 8 requests instead of 4
    (``dd``'s reads, through the page cache's large folios, were not
    capped). Huge pages are contiguous over 2 MiB. Where the kernel has
    no transparent huge pages, or refuses, the pages are small: slower
    requests, the same bytes.
    """
    buffer = mmap.mmap(-1, size + HUGE_PAGE_BYTES,
                       flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        # The temporary ctypes view is released at once (no export left).
        address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    except (TypeError, ValueError):
        return buffer, 0
    start = -address % HUGE_PAGE_BYTES
    try:
        buffer.madvise(mmap.MADV_HUGEPAGE, start, size)
    except (AttributeError, OSError, ValueError):
        pass  # no THP here (or not this platform): small pages
    return buffer, start


def _copy_chunks(src: BinaryIO, read: Callable[[memoryview, int], int],
                 write: Callable[[memoryview, int], None],
                 views: list[memoryview], length: int, skip_zeros: bool,
                 stats: CopyStats) -> int:
    """The loop of :func:`copy_stream`; return the offset reached.

    A native thread (even under eventlet) reads into the free ones of the
    :data:`READ_AHEAD_CHUNKS` buffers ``views`` (allocated once per copy)
    while this one writes the filled ones, in order: up to
    ``READ_AHEAD_CHUNKS - 1`` chunks ahead of the one being written, as
    the kernel's read-ahead does for ``dd``. A buffer goes back to the
    reader only once its chunk is written.
    """
    zeros = bytes(min(ZERO_BLOCK_BYTES, len(views[0]))) if skip_zeros else b""
    free, filled = _queue.Queue(), _queue.Queue()
    for index in range(len(views)):
        free.put(index)
    reader = _threading.Thread(
        target=_read_ahead, name="copy-read-ahead", daemon=True,
        args=(src, read, views, free, filled, length, skip_zeros, stats))
    reader.start()
    offset = 0
    try:
        while True:
            item = filled.get()
            if isinstance(item, int):
                offset = item
                break
            if isinstance(item, BaseException):
                raise item
            at, count, index = item
            stats.bytes_read += count
            data = views[index][:count]
            runs = _data_runs(data, zeros) if skip_zeros else [(0, count)]
            started = time.monotonic()
            for start, end in runs:
                write(data[start:end], at + start)
                stats.bytes_written += end - start
            stats.write_seconds += time.monotonic() - started
            # Only now may the reader refill this buffer.
            free.put(index)
    finally:
        free.put(None)
        reader.join()
    return offset


def copy_stream(src: BinaryIO, dst: BinaryIO, length: int,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                skip_zeros: bool = True) -> CopyStats:
    """Copy ``length`` bytes from ``src`` to ``dst``, then flush ``dst``.

    Chunks of ``chunk_bytes`` (rounded up to a page) go through
    page-aligned buffers, so descriptors opened with ``O_DIRECT`` (see
    :func:`open_direct`) are read and written without the page cache; a
    thread reads ahead while the destination is written in increasing
    offsets, and ``fsync``-ed before returning. Streams without a
    descriptor (``io.BytesIO``) are read and written through their
    methods.

    With ``skip_zeros``, holes of the source are jumped over (where it
    reports them: ``SEEK_DATA``) and blocks of :data:`ZERO_BLOCK_BYTES`
    (or the chunk, if smaller) that are all zero are not written: the
    destination must already read back zeros there, as a new volume in a
    zero-padded PowerFlex pool does.

    :raises SourceEndedEarly: ``src`` ended before ``length`` bytes.
    """
    stats = CopyStats()
    src_fd, dst_fd = _fileno(src), _fileno(dst)
    stats.direct_read = src_fd is not None and is_direct(src_fd)
    stats.direct_write = dst_fd is not None and is_direct(dst_fd)
    chunk = _round_up(max(chunk_bytes, 1), ALIGNMENT)
    read = _fd_reader(src_fd) if src_fd is not None else _stream_reader(src)
    write = (_fd_writer(dst_fd, stats.direct_write) if dst_fd is not None
             else _stream_writer(dst))
    started = time.monotonic()
    buffer, start = _allocate(chunk * READ_AHEAD_CHUNKS)
    views = [memoryview(buffer)[at:at + chunk]
             for at in range(start, start + chunk * READ_AHEAD_CHUNKS, chunk)]
    try:
        offset = _copy_chunks(src, read, write, views, length, skip_zeros,
                              stats)
        flushing = time.monotonic()
        dst.flush()
        if dst_fd is not None:
            os.fsync(dst_fd)
        stats.fsync_seconds = time.monotonic() - flushing
    finally:
        for view in views:
            view.release()
        try:
            buffer.close()
        except BufferError:
            pass  # still viewed by an exception's frames; freed with them
    if offset < length:
        raise SourceEndedEarly(offset, length)
    stats.bytes_total = offset
    stats.seconds = time.monotonic() - started
    return stats


def device_size(path: str) -> int:
    """Size in bytes of a block device (or of the file standing for one)."""
    with utils.temporary_chown(path), open(path, "rb") as device:
        return device.seek(0, os.SEEK_END)


def _copy_paths(src_path: str, dst_path: str, length: int,
                chunk_bytes: int, skip_zeros: bool) -> CopyStats:
    """Open two devices (``O_DIRECT`` where accepted) and copy."""
    with open(open_direct(src_path, os.O_RDONLY), "rb",
              buffering=0) as src, \
            open(open_direct(dst_path, os.O_RDWR), "r+b",
                 buffering=0) as dst:
        return copy_stream(src, dst, length, chunk_bytes, skip_zeros)


class HostAssistedCopy:
    """Copy a volume's data through the host running cinder-volume."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def connector_properties(self) -> dict:
        """This host's os-brick connector properties, for a copy."""
        config = self.driver.configuration
        return volume_utils.brick_get_connector_properties(
            config.safe_get("use_multipath_for_image_xfer") or False,
            config.safe_get("enforce_multipath_for_image_xfer") or False)

    def sweep_left_mappings(self, volume_id: str) -> None:
        """Unmap what copies ended with their process left of a volume here.

        Every time, not once per process as the first copy does
        (:meth:`~powerflex_cache_driver.host_attach.HostAttacher.sweep`):
        the copy may have been another service's on this host, killed
        after this process swept. A failure is logged, not raised: what
        stays mapped is found by the caller.
        """
        try:
            host_attach.HostAttacher(
                self.driver, self.connector_properties()).sweep(volume_id)
        except Exception:
            LOG.warning("Volume %s: could not look for mappings that copies "
                        "left to this host when their process ended.",
                        volume_id, exc_info=True)

    def copy(self, context: Any, src_volume: Any, dst_volume: Any,
             skip_zeros: bool, data_bytes: Optional[int] = None
             ) -> CopyStats:
        """Copy all of ``src_volume`` into ``dst_volume``.

        All of it is what the array holds (the size of the attached
        device), not the size Cinder records: a guest writes up to the end
        of its disk. Both are attached for the copy and detached afterwards,
        whatever happens; errors propagate after the detach.

        :param data_bytes: where the source is known to hold nothing but
            zeros past this many bytes (a cache entry past its image), and
            the destination reads back zeros (``skip_zeros``), only that
            much is copied.
        :raises VolumeBackendAPIException: the destination is smaller than
            the source, or the source ended before the size measured at the
            start of the copy.
        """
        attacher = host_attach.HostAttacher(self.driver,
                                            self.connector_properties())
        attacher.sweep_once()
        src_attach = attacher.attach(context, src_volume)
        try:
            dst_attach = attacher.attach(context, dst_volume, new=True)
            try:
                src_path = src_attach["device"]["path"]
                dst_path = dst_attach["device"]["path"]
                length = device_size(src_path)
                dst_length = device_size(dst_path)
                if dst_length < length:
                    raise exception.VolumeBackendAPIException(data=_(
                        "Cannot copy volume %(src)s into volume %(dst)s: "
                        "the source holds %(src_size)d bytes on the array, "
                        "the destination only %(dst_size)d.") % {
                            "src": src_volume.id, "dst": dst_volume.id,
                            "src_size": length, "dst_size": dst_length})
                if skip_zeros and data_bytes is not None:
                    length = min(length, data_bytes)
                try:
                    stats = self._copy_devices(src_path, dst_path, length,
                                               skip_zeros)
                except SourceEndedEarly as error:
                    raise exception.VolumeBackendAPIException(data=_(
                        "Copy of volume %(src)s into volume %(dst)s failed: "
                        "the source ended at byte %(reached)d of the "
                        "%(length)d measured when the copy started (its "
                        "device went away or shrank); the destination "
                        "is incomplete.") % {
                            "src": src_volume.id, "dst": dst_volume.id,
                            "reached": error.reached,
                            "length": error.length}) from error
            finally:
                attacher.detach(context, dst_attach, dst_volume)
        finally:
            attacher.detach(context, src_attach, src_volume)
        LOG.info("Copied volume %(src)s into volume %(dst)s: %(total)d "
                 "bytes, %(read)d read, %(written)d written, %(skipped)d "
                 "zero bytes skipped, %(secs).2f s, %(rate).1f MiB/s.",
                 {"src": src_volume.id, "dst": dst_volume.id,
                  "total": stats.bytes_total, "read": stats.bytes_read,
                  "written": stats.bytes_written,
                  "skipped": stats.bytes_skipped, "secs": stats.seconds,
                  "rate": stats.mib_per_second})
        return stats

    def _copy_devices(self, src_path: str, dst_path: str, length: int,
                      skip_zeros: bool) -> CopyStats:
        """Copy between two attached devices, with O_DIRECT where accepted.

        The destination is opened without ``O_CREAT``/``O_TRUNC``: it is a
        device (or, in tests, a file of the right size).
        """
        chunk = self._chunk_bytes()
        with utils.temporary_chown(src_path), \
                utils.temporary_chown(dst_path):
            # In a native thread: a copy of minutes must not stop
            # cinder-volume's green threads (RPC, heartbeats) meanwhile.
            stats = tpool.execute(_copy_paths, src_path, dst_path, length,
                                  chunk, skip_zeros)
        LOG.debug("Copy of %(src)s into %(dst)s: %(chunk)d-byte chunks, "
                  "O_DIRECT read %(dr)s, write %(dw)s; %(secs).2f s, of "
                  "which reading %(rs).2f s, writing %(ws).2f s "
                  "(overlapped), fsync %(fs).2f s.",
                  {"src": src_path, "dst": dst_path, "chunk": chunk,
                   "dr": stats.direct_read, "dw": stats.direct_write,
                   "secs": stats.seconds, "rs": stats.read_seconds,
                   "ws": stats.write_seconds, "fs": stats.fsync_seconds})
        return stats

    def _chunk_bytes(self) -> int:
        """Chunk size: Cinder's ``volume_dd_blocksize`` (e.g. 1M) if larger.

        At least :data:`DEFAULT_CHUNK_BYTES` (small requests cost more
        than they save on SDC and NVMe devices), at most
        :data:`MAX_CHUNK_BYTES`, in whole MiB.
        """
        blocksize = str(self.driver.configuration.safe_get(
            "volume_dd_blocksize") or "1M").upper()
        unit = "iB" if blocksize[-1] in "KMG" else "B"
        try:
            configured = strutils.string_to_bytes(blocksize + unit,
                                                  unit_system="IEC",
                                                  return_int=True)
        except ValueError:
            LOG.warning("Ignoring volume_dd_blocksize %s; copying in %d MiB "
                        "chunks.", blocksize, DEFAULT_CHUNK_BYTES // units.Mi)
            return DEFAULT_CHUNK_BYTES
        chunk = _round_up(max(configured, DEFAULT_CHUNK_BYTES), units.Mi)
        return min(chunk, MAX_CHUNK_BYTES)
