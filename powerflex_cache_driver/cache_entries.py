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
"""The image-volume cache entries a create looks up, and their freshness.

An entry serves this host (or cluster) while it was made from the image as
it is now (:func:`entry_is_fresh`); a stale one is removed, as Cinder's
cache removes it. A cache volume made here records the bytes written into
it (:data:`IMAGE_BYTES_KEY`), which is what a request's size is checked
against.
"""

import datetime
from typing import Any, Optional

from cinder import exception
from cinder.image import cache as image_cache
from cinder.image import image_utils
from cinder.message import message_field
from cinder import objects
from cinder.volume import api as volume_api
from oslo_log import log as logging
from oslo_utils import timeutils

from powerflex_cache_driver import compat

LOG = logging.getLogger(__name__)

IMAGE_BYTES_KEY = "powerflex_cache_written_bytes"
"""Admin metadata of a cache volume made here: the bytes written into it,
the virtual size of the image once unpacked (:mod:`.image_download`). Past
it the volume holds only zeros, so a rotation copies no more, and no
request smaller than it is served from the entry. (Earlier releases
recorded ``powerflex_cache_image_bytes``, measured before a compressed
image was unpacked: it is not read, and such an entry is copied whole.)"""


def entry_is_fresh(entry: Any, image_meta: dict) -> bool:
    """Whether a cache entry was made from the image as it is now.

    The comparison Cinder's image-volume cache makes: the image's
    ``updated_at`` (in UTC) equals the one recorded in the entry.
    """
    updated_at = image_meta.get("updated_at")
    if updated_at is None:
        return False
    if isinstance(updated_at, str):
        updated_at = timeutils.parse_isotime(updated_at)
    image_utc = updated_at.astimezone(datetime.timezone.utc)
    cached_utc = entry["image_updated_at"].replace(
        tzinfo=datetime.timezone.utc)
    return image_utc == cached_utc


class CacheEntries:
    """The image-volume cache of one driver: look up, check, remove.

    :param driver: the PowerFlex cache driver (its database and
        configuration).
    """

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def cache(self) -> image_cache.ImageVolumeCache:
        """Cinder's image-volume cache with the backend's limits."""
        config = self.driver.configuration
        return image_cache.ImageVolumeCache(
            self.driver.db, volume_api.API(),
            config.safe_get("image_volume_cache_max_size_gb") or 0,
            config.safe_get("image_volume_cache_max_count") or 0)

    def entry(self, internal: Any, image_id: str,
              volume: Any) -> Optional[Any]:
        """The cache entry of an image for this host (or cluster)."""
        if volume.is_clustered:
            filters = {"cluster_name": volume.cluster_name}
        else:
            filters = {"host": volume.host}
        return self.driver.db.image_volume_cache_get_and_update_last_used(
            internal, image_id, **filters)

    def fresh_entry(self, internal: Any, volume: Any, image_meta: dict
                    ) -> Optional[tuple[Any, Any]]:
        """The fresh cache entry of an image and its volume, if any.

        A stale entry (the image changed since) is removed, as Cinder's
        cache removes it.

        :raises ImageUnacceptable: the image the entry holds does not fit
            the size asked for, as Cinder's download path refuses it.
        """
        image_id = image_meta.get("id")
        entry = self.entry(internal, image_id, volume)
        if entry is None:
            LOG.info("Volume %(vol)s: no image-volume cache entry for image "
                     "%(img)s yet.", {"vol": volume.id, "img": image_id})
            return None
        if not entry_is_fresh(entry, image_meta):
            LOG.info("Volume %(vol)s: image-volume cache entry %(src)s is "
                     "older than image %(img)s; removing it.",
                     {"vol": volume.id, "src": entry["volume_id"],
                      "img": image_id})
            self.remove(internal, entry, "Deleting image-volume cache entry "
                        "that is out-dated")
            return None
        try:
            source = objects.Volume.get_by_id(internal, entry["volume_id"])
        except exception.VolumeNotFound:
            LOG.info("Volume %(vol)s: the volume of image-volume cache entry "
                     "%(src)s was deleted meanwhile.",
                     {"vol": volume.id, "src": entry["volume_id"]})
            return None
        written = self.image_bytes(internal, source)
        if written is not None:
            # The check of Cinder's download path, on what the entry holds.
            try:
                image_utils.check_virtual_size(written, volume.size,
                                               image_id)
            except exception.ImageUnacceptable as error:
                error.user_message_detail = (
                    message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE)
                raise
        return entry, source

    def remove(self, internal: Any, entry: Any, reason: str) -> None:
        """Evict a cache entry at once and delete its volume.

        Evicted first so that nobody clones it any more (Cinder's own cache
        path included); the volume is deleted the way Cinder deletes cache
        entries. A failed delete is logged: the entry is gone either way.
        """
        cache = self.cache()
        cache.evict(internal, entry)
        try:
            compat.delete_cached_volume(cache, internal, entry, reason)
        except Exception:
            LOG.exception("Could not delete volume %s of an evicted "
                          "image-volume cache entry.", entry["volume_id"])

    def image_bytes(self, internal: Any, volume: Any) -> Optional[int]:
        """The image size recorded with a cache volume made here, if any.

        Read from the volume's admin metadata when it came with the volume
        (a volume loaded with an admin context, as the internal tenant's
        is), from the database otherwise.
        """
        if volume.obj_attr_is_set("admin_metadata"):
            metadata = volume.admin_metadata
        else:
            metadata = self.driver.db.volume_admin_metadata_get(
                internal.elevated(), volume.id)
        try:
            return int(metadata[IMAGE_BYTES_KEY])
        except (KeyError, ValueError):
            return None
