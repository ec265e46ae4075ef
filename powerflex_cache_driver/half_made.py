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
"""Cache volumes a stopped cinder-volume service left half-made.

The driver makes a cache volume (a new entry on a cache miss, the copy of
a full entry in a rotation) in steps the service must live through: the
row, the array volume, the data. A service killed in between leaves the
row in ``creating``; Cinder's start-up clean-up moves it to ``error``
(the row carries a ``workers`` entry). Such a volume belongs to nobody:
it holds the internal tenant's quota, an array volume and perhaps a
mapping to the host, and no cache entry names it, so the cache limits
never evict it.

Each cache volume the driver makes is marked (:func:`mark`). Before the
driver makes another for the same image and backend, :func:`purge`
deletes the marked ones in ``error`` or ``error_deleting`` through the
volume API, as Cinder deletes image-volume cache entries: the array
volume is unmapped and removed, the quota released, the row deleted.
"""

from typing import Any, Callable

from cinder import objects
from cinder.volume import api as volume_api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

MADE_FOR_KEY = "powerflex_cache_made_for_image"
"""Admin metadata of every cache volume this driver makes: the image."""

LEFT_STATUSES = ("error", "error_deleting")
"""Statuses a half-made cache volume is left in: by Cinder's start-up
clean-up, or by the driver when its array volume could not be removed."""


def display_name(image_id: str) -> str:
    """The name of a cache volume of the image (Cinder's own naming)."""
    return "image-%s" % image_id


def mark(db: Any, internal: Any, volume: Any, image_id: str) -> None:
    """Mark ``volume`` (saved, not yet on the array) as made for the image.

    :param internal: the internal tenant's context.
    """
    db.volume_admin_metadata_update(internal.elevated(), volume.id,
                                    {MADE_FOR_KEY: image_id}, False)


def purge(internal: Any, image_id: str, like: Any,
          same_backend: Callable[[Any, Any], bool]) -> list[str]:
    """Delete the half-made cache volumes of an image on ``like``'s backend.

    Failures are logged and left for the next time.

    :param internal: the internal tenant's context.
    :param like: a volume of the backend whose leftovers are deleted.
    :param same_backend: whether two volumes share a backend.
    :returns: the ids of the volumes whose deletion was asked.
    """
    admin = internal.elevated()
    candidates = objects.VolumeList.get_all_by_project(
        admin, internal.project_id,
        filters={"display_name": display_name(image_id),
                 "status": list(LEFT_STATUSES)})
    deleted = []
    for volume in candidates:
        if (volume.admin_metadata.get(MADE_FOR_KEY) != image_id or
                not same_backend(volume, like)):
            continue
        LOG.info("Deleting cache volume %(vol)s of image %(img)s, left "
                 "%(status)s by an interrupted create or rotation.",
                 {"vol": volume.id, "img": image_id,
                  "status": volume.status})
        try:
            # A volume in error_deleting needs the force an admin would use.
            volume_api.API().delete(
                admin, volume, force=volume.status == "error_deleting")
        except Exception:
            LOG.warning("Could not delete half-made cache volume %s; "
                        "trying again before the next cache volume of "
                        "its image is made.", volume.id, exc_info=True)
            continue
        deleted.append(volume.id)
    return deleted
