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
"""The rotation of a cache entry whose vtree is full.

A vtree holds a limited number of snapshots; once an entry's is full, no
volume can be cloned from it. The entry is then copied into a new cache
volume (a new vtree), which replaces it, so that creates go on cloning
without downloading the image again; with
``powerflex_cache_rotate_full_vtree`` off the full entry is removed
instead, and the image is downloaded into a new one.
"""

import enum
from typing import Any

from cinder import coordination
from cinder import objects
from oslo_log import log as logging
from oslo_utils import excutils

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver import cache_volumes
from powerflex_cache_driver import options
from powerflex_cache_driver import sizing

LOG = logging.getLogger(__name__)


class Rotation(enum.Enum):
    """What became of a full cache entry a create met."""

    COPIED = "copied"
    """This create copied it into a new entry, which replaced it."""
    FOLLOWED = "followed"
    """Another create had replaced it already."""
    NOT_COPIED = "not copied"
    """Nobody replaced it, and this create may copy no more entries."""
    GONE = "gone"
    """It was removed, or could not be replaced: look the entry up again."""


class Rotator:
    """Replaces the full cache entries of one driver.

    :param driver: the PowerFlex cache driver.
    :param entries: the driver's cache entries.
    :param volumes: makes the new cache volumes.
    """

    def __init__(self, driver: Any, entries: cache_entries.CacheEntries,
                 volumes: cache_volumes.CacheVolumes) -> None:
        self.driver = driver
        self.entries = entries
        self.volumes = volumes

    def replace_full_entry(self, internal: Any, volume: Any, entry: Any,
                           image_meta: dict, may_copy: bool) -> Rotation:
        """Replace an entry whose vtree is full, or find it replaced.

        :param may_copy: this create may copy the entry itself.
        """
        if not self.driver.configuration.safe_get(
                options.ROTATE_FULL_VTREE):
            LOG.info("Volume %(vol)s: powerflex_cache_rotate_full_vtree is "
                     "False; removing cache entry %(src)s, the image is "
                     "downloaded again.",
                     {"vol": volume.id, "src": entry["volume_id"]})
            self.entries.remove(internal, entry, "Removing image-volume "
                                "cache entry whose vtree is full")
            return Rotation.GONE
        try:
            return self.rotate(internal, volume, entry, image_meta, may_copy)
        except Exception:
            LOG.exception("Volume %(vol)s: could not replace cache entry "
                          "%(src)s whose vtree is full; the image is "
                          "downloaded again.",
                          {"vol": volume.id, "src": entry["volume_id"]})
            return Rotation.GONE

    def rotate(self, internal: Any, volume: Any, entry: Any,
               image_meta: dict, may_copy: bool = True) -> Rotation:
        """Replace a cache entry whose vtree is full.

        Runs under Cinder's coordination lock for the entry, so that two
        services of one cluster never rotate the same entry twice: the second
        finds the entry already replaced and uses the new one. When the
        copy fails the full entry is removed, so that a fresh one is made
        instead of failing on the full vtree.

        :param may_copy: this create may copy the entry itself; when not,
            an entry nobody replaced yet is left as it is.
        """
        image_id = image_meta["id"]
        lock_name = "powerflex-cache-rotate-%s" % entry["volume_id"]
        with coordination.COORDINATOR.get_lock(lock_name):
            current = self.entries.entry(internal, image_id, volume)
            if current is None:
                LOG.info("Volume %(vol)s: cache entry %(old)s was removed "
                         "meanwhile.",
                         {"vol": volume.id, "old": entry["volume_id"]})
                return Rotation.GONE
            if current["volume_id"] != entry["volume_id"]:
                LOG.info("Volume %(vol)s: cache entry %(old)s was already "
                         "replaced by %(new)s.",
                         {"vol": volume.id, "old": entry["volume_id"],
                          "new": current["volume_id"]})
                return Rotation.FOLLOWED
            if not may_copy:
                return Rotation.NOT_COPIED
            old = objects.Volume.get_by_id(internal, entry["volume_id"])
            LOG.info("Volume %(vol)s: vtree of image-volume cache entry "
                     "%(old)s is full; copying it into a new cache volume.",
                     {"vol": volume.id, "old": old.id})
            try:
                new = self.copy_to_new_cache_volume(internal, old,
                                                    image_meta)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self.entries.remove(
                        internal, entry, "Removing image-volume cache entry "
                        "whose vtree is full and could not be copied")
            try:
                self.entries.cache().create_cache_entry(
                    internal, new, image_id, image_meta)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self.volumes.discard(internal, new)
                    self.entries.remove(
                        internal, entry, "Removing image-volume cache entry "
                        "whose vtree is full and could not be replaced")
            self.entries.remove(internal, entry, "Replacing image-volume "
                                "cache entry whose vtree is full")
            LOG.info("Image %(img)s: cache entry %(old)s replaced by "
                     "%(new)s.", {"img": image_id, "old": old.id,
                                  "new": new.id})
            return Rotation.COPIED

    def copy_to_new_cache_volume(self, internal: Any, old: Any,
                                 image_meta: dict) -> Any:
        """Make a new internal-tenant volume holding ``old``'s data.

        It is made at ``old``'s array size, so it holds all of it.
        """
        size = sizing.round_up(old.size, self.driver._granularity())
        image_bytes = self.entries.image_bytes(internal, old)
        new = self.volumes.new(internal, old, size, image_meta["id"])
        self.volumes.create(internal, new, image_meta["id"])
        try:
            new.update(self.driver.create_volume(new) or {})
            new.save()
            self.driver.copy_volume_data_sparse(internal, old, new,
                                                image_bytes)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error("Could not copy cache volume %(old)s; removing "
                          "%(new)s.", {"old": old.id, "new": new.id})
                self.volumes.discard(internal, new)
        self.volumes.make_available(internal, new, image_bytes)
        return new
