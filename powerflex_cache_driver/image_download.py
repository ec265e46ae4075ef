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
"""One download of an image per create, with Cinder's checks.

Every image this driver copies into a volume (a new image-volume cache
entry, or the volume itself when no entry can serve it) is downloaded here,
once per create, and goes through the checks of Cinder's own download
path, in its order:

1. room in ``image_conversion_dir`` for the download;
2. the download (Cinder's ``TemporaryImages``, so that Cinder's copy into
   the volume reads this file and does not download again);
3. the signature, on the bytes Glance served, recorded on the volume as
   ``signature_verified`` (``verify_glance_signatures``);
4. the container unpacked as Cinder unpacks it before converting: a
   ``compressed`` container (gzip) decompressed, a XenServer ``ovf``
   tarball coalesced into one VHD;
5. the size of what is then written into a volume, measured on the
   unpacked image (its virtual size; for a raw image at least the whole
   file), against the size the user asked for.

Cinder's copy (``fetch_to_raw``) unpacks the container itself, in place,
on the file it finds registered; here it is handed an image service that
describes the image as already unpacked, so the file is unpacked once and
the size measured is the size written. Measured before unpacking, a gzip
file's "virtual size" is its compressed size: a cache entry recorded with
it was copied only that far when its vtree filled.
"""

import contextlib
import dataclasses
import os
from typing import Any, Iterator

from cinder import exception
from cinder.i18n import _
from cinder.image import accelerator
from cinder.image import image_utils
from cinder.message import message_field
from cinder.volume import volume_utils
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

COMPRESSED = "compressed"
"""Glance's ``container_format`` of a gzip-compressed image."""


@dataclasses.dataclass(frozen=True)
class DownloadedImage:
    """An image downloaded, checked and unpacked for one create."""

    virtual_bytes: int
    """Bytes written into a volume (:func:`_written_bytes`)."""
    virtual_gib: int
    """``virtual_bytes`` in GiB, rounded up."""
    image_service: Any
    """The image service to hand Cinder's copy into a volume."""


class UnpackedImageService:
    """An image service describing an unpacked image as ``bare``.

    Everything else is the wrapped service's, its ``TemporaryImages``
    registry included, so Cinder's copy reads the unpacked file.
    """

    def __init__(self, image_service: Any) -> None:
        self._image_service = image_service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._image_service, name)

    def show(self, context: Any, image_id: str) -> dict:
        """The image's metadata, its container unpacked."""
        meta = dict(self._image_service.show(context, image_id))
        meta["container_format"] = "bare"
        return meta


def _unpack(path: str, image_meta: dict) -> bool:
    """Unpack a downloaded image in place as Cinder does; tell if it did.

    :raises ImageUnacceptable: compressed images are not allowed
        (``allow_compression_on_image_upload``), or the file is not gzip.
    """
    image_id = image_meta["id"]
    if image_meta.get("container_format") == COMPRESSED:
        if not CONF.allow_compression_on_image_upload:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=_("Image compression disallowed, but "
                         "container_format is compressed."))
        if not accelerator.is_gzip_compressed(path):
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=_("Unsupported compressed image format found. Only "
                         "gzip is supported currently"))
        accelerator.ImageAccel(path, path).decompress_img(run_as_root=True)
        return True
    if image_utils.is_xenserver_format(image_meta):
        image_utils.replace_xenserver_image_with_coalesced_vhd(path)
        return True
    return False


def _written_bytes(path: str, image_meta: dict) -> int:
    """Bytes Cinder's copy writes into a volume from the unpacked image.

    Its virtual size; for a raw image at least the whole file, which
    ``qemu-img convert -f raw`` copies as it is even where ``qemu-img
    info`` reports less (Cinder 29 probes a raw file holding a LUKS
    container and reports the container's payload, the file less its
    header).
    """
    virtual_bytes = image_utils.qemu_img_info(path).virtual_size
    if image_meta.get("disk_format") == "raw":
        virtual_bytes = max(virtual_bytes, os.path.getsize(path))
    return virtual_bytes


def _unpack_and_measure(path: str, image_meta: dict) -> tuple[bool, int]:
    """Unpack the download (:func:`_unpack`) and measure what is written.

    :raises ImageCopyFailure: the container or image could not be read
        (a corrupt gzip file, an image ``qemu-img`` refuses), as Cinder's
        copy fails it, so that the create is not rescheduled.
    """
    try:
        unpacked = _unpack(path, image_meta)
        return unpacked, _written_bytes(path, image_meta)
    except exception.ImageUnacceptable:
        raise
    except (exception.CinderAcceleratorError, exception.Invalid,
            processutils.ProcessExecutionError) as error:
        raise exception.ImageCopyFailure(reason=error) from error


def check_fits(virtual_bytes: int, volume_gib: int, image_id: str) -> int:
    """Cinder's check that an image fits the size asked for.

    A refusal carries the detail of the user message to record
    (``user_message_detail``): the image is larger than the volume.

    :returns: the image's virtual size in GiB.
    :raises ImageUnacceptable: it does not fit.
    """
    try:
        return image_utils.check_virtual_size(virtual_bytes, volume_gib,
                                              image_id)
    except exception.ImageUnacceptable as error:
        error.user_message_detail = (
            message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE)
        raise


@contextlib.contextmanager
def download(context: Any, volume: Any, image_meta: dict,
             image_service: Any, db: Any) -> Iterator[DownloadedImage]:
    """Download an image for ``volume`` with Cinder's checks.

    The file is removed when the block ends.

    :param volume: the user's volume: its ``size`` is the size asked for,
        and it gets the ``signature_verified`` image metadata.
    :raises ImageTooBig: no room in ``image_conversion_dir``.
    :raises ImageSignatureVerificationException: a bad signature.
    :raises ImageUnacceptable: the container is refused, or the image
        does not fit the size asked for.
    :raises ImageCopyFailure: the container or image cannot be read.
    """
    image_id = image_meta["id"]
    if CONF.image_conversion_dir:
        fileutils.ensure_tree(CONF.image_conversion_dir)
    image_utils.check_available_space(CONF.image_conversion_dir,
                                      image_meta["size"], image_id)
    backend_name = volume_utils.extract_host(volume.service_topic_queue)
    with image_utils.TemporaryImages.fetch(
            image_service, context, image_id, backend_name) as path:
        if CONF.verify_glance_signatures != "disabled":
            verified = image_utils.verify_glance_image_signature(
                context, image_service, image_id, path)
            db.volume_glance_metadata_bulk_create(
                context, volume.id, {"signature_verified": verified})
        unpacked, virtual_bytes = _unpack_and_measure(path, image_meta)
        service = (UnpackedImageService(image_service) if unpacked
                   else image_service)
        virtual_gib = check_fits(virtual_bytes, volume.size, image_id)
        LOG.info("Volume %(vol)s: image %(img)s downloaded (%(container)s "
                 "container), virtual size %(bytes)d bytes.",
                 {"vol": volume.id, "img": image_id,
                  "container": image_meta.get("container_format"),
                  "bytes": virtual_bytes})
        yield DownloadedImage(virtual_bytes, virtual_gib, service)
