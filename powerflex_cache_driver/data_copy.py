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
whose vtree is full. Both volumes are attached through the driver's own
``_attach_volume``/``_detach_volume`` (os-brick connectors, so SDC and
NVMe-TCP both work), and the copy skips zero blocks when the destination is
known to read back zeros.
"""

import dataclasses
import errno
import io
import os
import time
from typing import Any, BinaryIO

from cinder import exception
from cinder.i18n import _
from cinder import utils
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import strutils
from oslo_utils import units

LOG = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = units.Mi


@dataclasses.dataclass
class CopyStats:
    """What a copy covered, read and wrote."""

    bytes_total: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def bytes_skipped(self) -> int:
        """Bytes not written: holes not read and zero chunks read."""
        return self.bytes_total - self.bytes_written

    @property
    def mib_per_second(self) -> float:
        """Throughput over the whole length copied."""
        return self.bytes_total / units.Mi / max(self.seconds, 1e-6)


def _next_data(src: BinaryIO, offset: int, end: int) -> int:
    """Offset of the next data at or after ``offset`` (``end`` if none).

    Uses ``SEEK_DATA``, so holes of a sparse source are not even read. Where
    the source cannot tell (a block device reports everything as data, some
    file systems refuse), the answer is ``offset`` and the copy reads on.
    """
    try:
        return min(os.lseek(src.fileno(), offset, os.SEEK_DATA), end)
    except OSError as error:
        return end if error.errno == errno.ENXIO else offset
    except (AttributeError, io.UnsupportedOperation):
        return offset


def copy_stream(src: BinaryIO, dst: BinaryIO, length: int,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                skip_zeros: bool = True) -> CopyStats:
    """Copy ``length`` bytes from ``src`` to ``dst``.

    With ``skip_zeros``, holes of the source are jumped over and chunks that
    are all zero are not written: the destination must already read back
    zeros there, as a new volume in a zero-padded PowerFlex pool does.
    """
    stats = CopyStats()
    zeros = bytes(chunk_bytes)
    started = time.monotonic()
    offset = 0
    while offset < length:
        if skip_zeros:
            data_at = _next_data(src, offset, length)
            if data_at != offset:
                offset = data_at
                src.seek(offset)
                continue
        size = min(chunk_bytes, length - offset)
        data = src.read(size)
        if not data:
            break
        stats.bytes_read += len(data)
        dst.seek(offset)
        if not (skip_zeros and data == zeros[:len(data)]):
            dst.write(data)
            stats.bytes_written += len(data)
        offset += len(data)
    dst.flush()
    stats.bytes_total = offset
    stats.seconds = time.monotonic() - started
    return stats


def device_size(path: str) -> int:
    """Size in bytes of a block device (or of the file standing for one)."""
    with utils.temporary_chown(path), open(path, "rb") as device:
        return device.seek(0, os.SEEK_END)


class HostAssistedCopy:
    """Copy a volume's data through the host running cinder-volume."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def _connector_properties(self) -> dict:
        config = self.driver.configuration
        return volume_utils.brick_get_connector_properties(
            config.safe_get("use_multipath_for_image_xfer") or False,
            config.safe_get("enforce_multipath_for_image_xfer") or False)

    def copy(self, context: Any, src_volume: Any, dst_volume: Any,
             skip_zeros: bool) -> CopyStats:
        """Copy all of ``src_volume`` into ``dst_volume``.

        All of it is what the array holds (the size of the attached
        device), not the size Cinder records: a guest writes up to the end
        of its disk. Both are attached for the copy and detached afterwards,
        whatever happens; errors propagate after the detach.

        :raises VolumeBackendAPIException: the destination is smaller than
            the source.
        """
        properties = self._connector_properties()
        src_attach = self.driver._attach_volume(context, src_volume,
                                                properties)[0]
        try:
            dst_attach = self.driver._attach_volume(context, dst_volume,
                                                    properties)[0]
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
                stats = self._copy_devices(src_path, dst_path, length,
                                           skip_zeros)
            finally:
                self._detach(context, dst_attach, dst_volume, properties)
        finally:
            self._detach(context, src_attach, src_volume, properties)
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
        chunk = self._chunk_bytes()
        with utils.temporary_chown(src_path), \
                utils.temporary_chown(dst_path), \
                open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
            return copy_stream(src, dst, length, chunk, skip_zeros)

    def _chunk_bytes(self) -> int:
        """Chunk size from Cinder's ``volume_dd_blocksize`` (e.g. 1M)."""
        blocksize = str(self.driver.configuration.safe_get(
            "volume_dd_blocksize") or "1M").upper()
        unit = "iB" if blocksize[-1] in "KMG" else "B"
        try:
            return strutils.string_to_bytes(blocksize + unit,
                                            unit_system="IEC",
                                            return_int=True)
        except ValueError:
            LOG.warning("Ignoring volume_dd_blocksize %s; copying in 1 MiB "
                        "chunks.", blocksize)
            return DEFAULT_CHUNK_BYTES

    def _detach(self, context: Any, attach_info: Any, volume: Any,
                properties: dict) -> None:
        try:
            self.driver._detach_volume(context, attach_info, volume,
                                       properties, force=True)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error("Could not detach volume %s after a copy.",
                          volume.id)
