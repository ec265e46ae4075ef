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
"""The internal tenant's cache volumes the driver makes, from row to ready.

A new cache entry on a miss and the copy of a full entry in a rotation
are both made here: the row, charged to the internal tenant's quota as
Cinder charges the entries it makes, marked as made here
(:mod:`.half_made`) with a ``workers`` row while it is ``creating``; then,
filled, ``available`` and read-only. One that cannot be finished is
discarded: array volume, quota and row.
"""

from typing import Any, Optional

from cinder import objects
from cinder.objects import fields
from cinder import quota
from oslo_log import log as logging
from oslo_utils import excutils

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver import cinder_locations
from powerflex_cache_driver import half_made

LOG = logging.getLogger(__name__)
QUOTAS = quota.QUOTAS


class CacheVolumes:
    """Makes, finishes and discards the internal tenant's cache volumes.

    :param driver: the PowerFlex cache driver (its database, and the array
        volume of a volume discarded).
    """

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def new(self, internal: Any, like: Any, size_gib: int,
            image_id: str) -> Any:
        """A new cache volume for ``image_id`` beside ``like``, not saved."""
        return objects.Volume(
            context=internal, size=size_gib, host=like.host,
            cluster_name=like.cluster_name,
            availability_zone=like.availability_zone,
            volume_type_id=like.volume_type_id,
            user_id=internal.user_id, project_id=internal.project_id,
            display_name=half_made.display_name(image_id),
            status="creating",
            attach_status=fields.VolumeAttachStatus.DETACHED)

    def create(self, internal: Any, new: Any, image_id: str) -> None:
        """Charge the internal tenant for ``new`` and save its row.

        The quota reservation Cinder's ``_clone_image_volume`` makes for
        the cache entries it creates. Cache volumes of the image that an
        interrupted create or rotation left behind are deleted first
        (:mod:`.half_made`).
        """
        half_made.purge(internal, image_id, new,
                        cinder_locations.same_backend)
        reserve_opts = {"volumes": 1, "gigabytes": new.size}
        QUOTAS.add_volume_type_opts(internal, reserve_opts,
                                    new.volume_type_id)
        reservations = QUOTAS.reserve(internal, **reserve_opts)
        try:
            new.create()
        except Exception:
            with excutils.save_and_reraise_exception():
                QUOTAS.rollback(internal, reservations)
        QUOTAS.commit(internal, reservations, project_id=internal.project_id)
        half_made.mark(self.driver.db, internal, new, image_id)
        # The workers row the manager adds to volumes it creates: if this
        # service stops before the volume is made, its start-up clean-up
        # moves the volume from creating to error instead of leaving it.
        new.set_worker()

    def make_available(self, internal: Any, new: Any,
                       image_bytes: Optional[int]) -> None:
        """Mark a filled cache volume available and read-only.

        :param image_bytes: the image's virtual size, when the volume holds
            nothing but zeros past it.
        """
        new.status = "available"
        new.save()
        new.unset_worker()
        metadata = {"readonly": "True"}
        if image_bytes is not None:
            metadata[cache_entries.IMAGE_BYTES_KEY] = str(image_bytes)
        self.driver.db.volume_admin_metadata_update(
            internal.elevated(), new.id, metadata, False)

    def discard_if_created(self, internal: Any, volume: Any) -> None:
        """Remove a half-made internal volume, if its row was saved."""
        if volume.obj_attr_is_set("id"):
            self.discard(internal, volume)

    def discard(self, internal: Any, volume: Any) -> None:
        """Remove a half-made internal volume: array, quota and DB row.

        When the array volume cannot be removed the row is kept in
        ``error_deleting`` with its quota, as Cinder's own delete leaves a
        volume it could not delete, so the array volume is not forgotten.
        """
        if volume.provider_id:
            try:
                self.driver.delete_volume(volume)
            except Exception:
                LOG.exception("Could not remove array volume %(pid)s of "
                              "half-made cache volume %(vol)s; the volume "
                              "stays in error_deleting until the next cache "
                              "volume of its image is made, which deletes "
                              "it (or an admin force-deletes it).",
                              {"pid": volume.provider_id, "vol": volume.id})
                volume.status = "error_deleting"
                volume.save()
                volume.unset_worker()
                return
        reserve_opts = {"volumes": -1, "gigabytes": -volume.size}
        QUOTAS.add_volume_type_opts(internal, reserve_opts,
                                    volume.volume_type_id)
        reservations = QUOTAS.reserve(
            internal, project_id=internal.project_id, **reserve_opts)
        QUOTAS.commit(internal, reservations,
                      project_id=internal.project_id)
        volume.unset_worker()
        volume.destroy()
