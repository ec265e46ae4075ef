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
"""Create volumes from images on the array: ``clone_image``.

The order, first match wins:

1. an encrypted volume is not cloned (the image data is not encrypted);
2. a raw/bare image with a ``cinder://`` location naming a volume on this
   backend, which the requesting project may use: one array snapshot (or a
   host-assisted copy when the volume sits in another storage pool);
3. a fresh image-volume cache entry for this host or cluster, whatever the
   image's disk format, since the entry holds converted raw data: one array
   snapshot. When the entry's vtree is full, the entry is copied into a
   fresh volume (a new vtree) that replaces it, and the clone comes from
   that; the image is not downloaded again;
4. no usable entry (none yet, stale, or its vtree full and not copied): the
   image is downloaded once into a new cache entry made at the image's
   size, with Cinder's checks (free space for the download, signature,
   virtual size, conversion rules), and the volume is cloned from it. When
   the cache has no room for an entry, the image is downloaded straight
   into the volume;
5. with the cache off or no internal tenant, Cinder goes on with its own
   download path.

Cinder's own cache-miss path creates the volume at the image's size, clones
it into the cache and extends it afterwards, so the size it records never
covers the array; step 4 avoids that. Sizes follow the driver's size policy
because every clone goes through the driver's ``create_cloned_volume`` and
every new volume through its ``create_volume``.

:class:`ImageCloner` follows that order and copies images into volumes;
the other jobs are in :mod:`.cinder_locations` (step 2),
:mod:`.cache_entries` (looking entries up, their freshness, removal),
:mod:`.cache_volumes` (the cache volumes made here) and
:mod:`.vtree_rotation` (entries whose vtree is full).
"""

from typing import Any, Optional

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder.message import api as message_api
from cinder.message import message_field
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import excutils

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver import cache_volumes
from powerflex_cache_driver import cinder_locations
from powerflex_cache_driver import image_download
from powerflex_cache_driver import lost_answer
from powerflex_cache_driver import sizing
from powerflex_cache_driver import vtree_rotation

LOG = logging.getLogger(__name__)

NOT_CLONED: tuple[None, bool] = (None, False)

DOWNLOAD = object()
"""What :meth:`ImageCloner._clone_entry` returns when an entry cannot be
cloned and the image is to be copied into the volume instead. The copy is
made here, not left to Cinder: Cinder's path would create the volume
through the driver, then set its size back to the requested one, below
what the array holds."""

IMAGE_CHECK_ERRORS = (
    exception.ImageTooBig,
    exception.ImageUnacceptable,
    exception.ImageSignatureVerificationException,
    exception.ImageConversionNotAllowed,
)
"""Refusals of Cinder's image checks: the create fails, as in Cinder."""

USER_MESSAGE_DETAILS = {
    exception.ImageTooBig: message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE,
    exception.ImageSignatureVerificationException:
        message_field.Detail.SIGNATURE_VERIFICATION_FAILED,
    exception.ImageConversionNotAllowed:
        message_field.Detail.IMAGE_FORMAT_UNACCEPTABLE,
}
"""The user message Cinder's download path records for each refusal."""


def tell_user(context: Any, volume: Any, error: Exception) -> None:
    """Record the user message of an image check's refusal.

    The one Cinder's own download path records for it, and for an image
    larger than the volume (which Cinder leaves unexplained) "Image used
    for creating volume exceeds available space".
    """
    detail = (getattr(error, "user_message_detail", None) or
              USER_MESSAGE_DETAILS.get(type(error)))
    if detail is None:
        return
    try:
        message_api.API().create(
            context, message_field.Action.COPY_IMAGE_TO_VOLUME,
            resource_uuid=volume.id, detail=detail, exception=error)
    except Exception:
        LOG.exception("Volume %s: could not record the user message of "
                      "the image's refusal.", volume.id)


MAX_ENTRY_LOOKUPS = 3
"""How many times one create looks for an entry to clone before it makes
one itself: an entry found can be removed before it is cloned (its array
volume gone)."""

MAX_ROTATIONS_PER_CREATE = 3
"""How many full entries one create copies into a new entry itself before
it copies the image into the volume instead."""

MAX_FULL_ENTRIES_PER_CREATE = 32
"""How many full entries one create meets before it copies the image into
the volume instead. In a boot storm a new entry's vtree fills before most
of the creates that waited for it clone it: each full entry a create meets
was filled by others, each round lets a vtree's worth of creates through,
and the creates left follow the entry another create put in its place,
which costs them no copy."""


class ImageCloner:
    """``clone_image`` for the PowerFlex cache drivers."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        #: The image-volume cache entries: look-up, freshness, removal.
        self.entries = cache_entries.CacheEntries(driver)
        #: The internal tenant's cache volumes this driver makes.
        self.volumes = cache_volumes.CacheVolumes(driver)
        #: The replacement of entries whose vtree is full.
        self.rotator = vtree_rotation.Rotator(driver, self.entries,
                                              self.volumes)

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
        """Clone an image into ``volume`` on the array if possible."""
        image_id = image_meta.get("id")
        if volume.encryption_key_id:
            LOG.info("Volume %(vol)s: encrypted, image %(img)s not cloned.",
                     {"vol": volume.id, "img": image_id})
            return NOT_CLONED
        source = cinder_locations.image_volume(context, volume,
                                               image_location, image_meta)
        if source is not None:
            LOG.info("Volume %(vol)s: cloning image %(img)s from its "
                     "volume %(src)s (cinder:// location).",
                     {"vol": volume.id, "img": image_id, "src": source.id})
            try:
                return self.driver.create_cloned_volume(volume, source), True
            except exception.QuotaError:
                # No other path has room for the volume either.
                raise
            except Exception:
                # As Cinder's own cinder:// clone does, fall back, whatever
                # failed (an array error, or the device during a copy
                # across pools).
                LOG.warning("Volume %(vol)s: could not clone image volume "
                            "%(src)s; trying the image-volume cache.",
                            {"vol": volume.id, "src": source.id},
                            exc_info=True)
        return self._from_cache(context, volume, image_location, image_meta,
                                image_service)

    def _from_cache(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
        if not self.driver.configuration.safe_get(
                "image_volume_cache_enabled"):
            return NOT_CLONED
        internal = cinder_context.get_internal_tenant_context()
        if internal is None:
            LOG.info("Volume %s: no Cinder internal tenant configured, the "
                     "image-volume cache is not used.", volume.id)
            return NOT_CLONED
        for _attempt in range(MAX_ENTRY_LOOKUPS):
            found = self.entries.fresh_entry(internal, volume, image_meta)
            if found is None:
                # The lock Cinder's own cache-miss path takes: one entry
                # per image. Held to look again and, on a miss, to make
                # the entry; an entry another create made meanwhile is
                # cloned outside it, as Cinder's own path does, so that
                # the creates that waited for it clone side by side.
                with coordination.COORDINATOR.get_lock(image_meta["id"]):
                    found = self.entries.fresh_entry(internal, volume,
                                                     image_meta)
                    if found is None:
                        return self._download_and_clone(
                            context, internal, volume, image_location,
                            image_meta, image_service)
            result = self._clone_entry(internal, volume, found, image_meta)
            if result is not None:
                break
        else:
            # Each entry found was removed before this create could clone
            # it: other creates are replacing them; copy the image.
            LOG.warning("Volume %(vol)s: %(n)d cache entries of image "
                        "%(img)s were removed before they could be cloned; "
                        "copying the image into the volume.",
                        {"vol": volume.id, "n": MAX_ENTRY_LOOKUPS,
                         "img": image_meta["id"]})
            result = DOWNLOAD
        if result is DOWNLOAD:
            with image_download.download(context, volume, image_meta,
                                         image_service,
                                         self.driver.db) as image:
                return self._copy_into(context, volume, image_location,
                                       image_meta, image), True
        return result

    def _clone_entry(self, internal: Any, volume: Any,
                     found: tuple[Any, Any], image_meta: dict,
                     rotations_left: Optional[int] = None,
                     full_left: Optional[int] = None) -> Any:
        """Clone a cache entry; None if the entry had to be removed.

        Returns the ``clone_image`` result, None, or :data:`DOWNLOAD` when
        the entry cannot be cloned and the image is to be copied instead.

        An entry whose vtree is full is replaced and the replacement
        cloned; under many concurrent creates the replacement's vtree may
        fill before this create reaches it, and it is replaced in turn.
        This create copies at most ``rotations_left`` entries itself and
        meets at most ``full_left`` full entries in all (by default
        :data:`MAX_ROTATIONS_PER_CREATE` and
        :data:`MAX_FULL_ENTRIES_PER_CREATE`).
        """
        if rotations_left is None:
            rotations_left = MAX_ROTATIONS_PER_CREATE
        if full_left is None:
            full_left = MAX_FULL_ENTRIES_PER_CREATE
        entry, source = found
        LOG.info("Volume %(vol)s: cloning image %(img)s "
                 "(%(fmt)s) from image-volume cache entry %(src)s.",
                 {"vol": volume.id, "img": image_meta.get("id"),
                  "fmt": image_meta.get("disk_format"), "src": source.id})
        for attempt in (1, 2):
            try:
                return self.driver.create_cloned_volume(volume, source), True
            except exception.SnapshotLimitReached:
                LOG.info("Volume %(vol)s: vtree of cache entry %(src)s is "
                         "full.", {"vol": volume.id, "src": source.id})
                break
            except exception.QuotaError:
                # Cinder's own path would clone again, then download the
                # image only to be refused the same quota.
                raise
            except exception.CinderException:
                if lost_answer.is_gone(self.driver._get_client(),
                                       source.provider_id):
                    LOG.warning("Volume %(vol)s: the array volume %(pid)s "
                                "of cache entry %(src)s is gone (removed "
                                "outside Cinder); removing the entry, the "
                                "image is downloaded again.",
                                {"vol": volume.id, "src": source.id,
                                 "pid": source.provider_id})
                    self.entries.remove(internal, entry, "Removing "
                                        "image-volume cache entry whose "
                                        "array volume is gone")
                    return None
                if attempt == 1:
                    # Cinder's own path would try again too; here a full
                    # vtree met then is replaced, where Cinder's path
                    # fails the create.
                    LOG.warning("Volume %(vol)s: could not clone cache "
                                "entry %(src)s; trying once more.",
                                {"vol": volume.id, "src": source.id},
                                exc_info=True)
                    continue
                # As Cinder's own cache path does in the end: the image
                # is copied into the volume; the entry stays.
                LOG.warning("Volume %(vol)s: could not clone cache entry "
                            "%(src)s again; copying the image into the "
                            "volume.", {"vol": volume.id, "src": source.id},
                            exc_info=True)
                return DOWNLOAD
        full_left -= 1
        if not full_left:
            # Other creates filled every new entry before this one could
            # clone it; rather than rotate on, copy the image.
            LOG.warning("Volume %(vol)s: the vtree of cache entry %(src)s "
                        "is full again and this create has met %(max)d full "
                        "entries; copying the image into the volume.",
                        {"vol": volume.id, "src": source.id,
                         "max": MAX_FULL_ENTRIES_PER_CREATE})
            return DOWNLOAD
        rotation = self.rotator.replace_full_entry(
            internal, volume, entry, image_meta, rotations_left > 0)
        if rotation is vtree_rotation.Rotation.GONE:
            return None
        if rotation is vtree_rotation.Rotation.NOT_COPIED:
            LOG.warning("Volume %(vol)s: the vtree of cache entry %(src)s "
                        "is full and this create has replaced %(max)d "
                        "entries already; copying the image into the "
                        "volume.", {"vol": volume.id, "src": source.id,
                                    "max": MAX_ROTATIONS_PER_CREATE})
            return DOWNLOAD
        if rotation is vtree_rotation.Rotation.COPIED:
            rotations_left -= 1
        # The replacement, or a newer entry if other creates filled the
        # replacement's vtree meanwhile and replaced it in turn.
        found = self.entries.fresh_entry(internal, volume, image_meta)
        if found is None:
            return None
        return self._clone_entry(internal, volume, found, image_meta,
                                 rotations_left, full_left)

    # -- a cache miss ---------------------------------------------------------

    def _download_and_clone(self, context: Any, internal: Any, volume: Any,
                            image_location: Any, image_meta: dict,
                            image_service: Any
                            ) -> tuple[Optional[dict], bool]:
        """Download an image into a new cache entry and clone it.

        The image is downloaded once, with Cinder's checks
        (:mod:`.image_download`). The entry is made at the virtual size of
        what is written (rounded up to the array granularity), so it and
        every clone record what the array holds. When the cache has no
        room, the entry cannot be made or cloned, the image goes straight
        into the volume, from the same download.
        """
        image_id = image_meta["id"]
        with image_download.download(context, volume, image_meta,
                                     image_service,
                                     self.driver.db) as image:
            entry_gib = sizing.round_up(max(image.virtual_gib, 1),
                                        self.driver._granularity())
            entry_volume = self.volumes.new(internal, volume, entry_gib,
                                            image_id)
            cache = self.entries.cache()
            if not cache.ensure_space(internal, entry_volume):
                LOG.warning("Volume %(vol)s: the image-volume cache has no "
                            "room for a %(size)s GiB entry of image "
                            "%(img)s; copying the image into the volume.",
                            {"vol": volume.id, "size": entry_gib,
                             "img": image_id})
                return self._copy_into(context, volume, image_location,
                                       image_meta, image), True
            try:
                self.volumes.create(internal, entry_volume, image_id)
                self._copy_into(context, entry_volume, image_location,
                                image_meta, image)
                self.volumes.make_available(internal, entry_volume,
                                            image.virtual_bytes)
                entry = cache.create_cache_entry(internal, entry_volume,
                                                 image_id, image_meta)
            except IMAGE_CHECK_ERRORS:
                with excutils.save_and_reraise_exception():
                    self.volumes.discard_if_created(internal, entry_volume)
            except Exception:
                LOG.exception("Volume %(vol)s: could not make an "
                              "image-volume cache entry for image %(img)s; "
                              "copying the image into the volume.",
                              {"vol": volume.id, "img": image_id})
                self.volumes.discard_if_created(internal, entry_volume)
                return self._copy_into(context, volume, image_location,
                                       image_meta, image), True
            LOG.info("Image %(img)s: new image-volume cache entry %(entry)s "
                     "of %(size)s GiB (virtual size %(virt)s GiB).",
                     {"img": image_id, "entry": entry_volume.id,
                      "size": entry_gib, "virt": image.virtual_gib})
            result = self._clone_entry(internal, volume,
                                       (entry, entry_volume), image_meta)
            if result is None or result is DOWNLOAD:
                return self._copy_into(context, volume, image_location,
                                       image_meta, image), True
            return result

    def _copy_into(self, context: Any, volume: Any, image_location: Any,
                   image_meta: dict,
                   image: image_download.DownloadedImage) -> dict:
        """Create ``volume`` on the array and copy a downloaded image in.

        A new cache entry's volume, or the user's volume itself: as
        Cinder's download path does, but the size recorded is the array's
        (the driver's ``create_volume``).
        """
        model_update = self.driver.create_volume(volume)
        volume.update(model_update)
        volume.save()
        volume_utils.copy_image_to_volume(self.driver, context, volume,
                                          image_meta, image_location,
                                          image.image_service)
        return model_update
