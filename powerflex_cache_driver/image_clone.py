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
4. otherwise Cinder goes on with its own cache and download path.

Sizes follow the driver's size policy because every clone goes through the
driver's ``create_cloned_volume``.
"""

import datetime
from typing import Any, Optional

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder.image import cache as image_cache
from cinder import objects
from cinder.objects import fields
from cinder import quota
from cinder.volume import api as volume_api
from cinder.volume.flows.manager import create_volume as create_volume_flow
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import timeutils

from powerflex_cache_driver import compat
from powerflex_cache_driver import options

CONF = cfg.CONF
LOG = logging.getLogger(__name__)
QUOTAS = quota.QUOTAS

NOT_CLONED: tuple[None, bool] = (None, False)


def cinder_volume_ids(image_location: Any) -> list[str]:
    """Volume ids named by ``cinder://[store/]<id>`` image locations.

    Parsed by the create-volume flow's own parser, so the locations Cinder
    accepts for its cinder:// clones are exactly the ones used here.
    """
    if not image_location:
        return []
    direct_url, locations = image_location
    urls = [direct_url] + [loc.get("url") for loc in locations or []]
    ids = create_volume_flow.CreateVolumeFromSpecTask._extract_cinder_ids(
        urls)
    return list(dict.fromkeys(ids))


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


def same_backend(volume_a: Any, volume_b: Any) -> bool:
    """Whether two volumes are served by the same Cinder backend."""
    if volume_a.cluster_name or volume_b.cluster_name:
        return volume_a.cluster_name == volume_b.cluster_name
    return (volume_utils.extract_host(volume_a.host, "backend") ==
            volume_utils.extract_host(volume_b.host, "backend"))


def same_pool(volume_a: Any, volume_b: Any) -> bool:
    """Whether two volumes sit in the same PowerFlex storage pool.

    Pools are ``protection_domain:storage_pool`` in the volume host. A
    missing host or pool tells nothing, and then the array is left to decide.
    """
    if not volume_a.host or not volume_b.host:
        return True
    pool_a = volume_utils.extract_host(volume_a.host, "pool")
    pool_b = volume_utils.extract_host(volume_b.host, "pool")
    return pool_a is None or pool_b is None or pool_a == pool_b


class ImageCloner:
    """``clone_image`` for the PowerFlex cache drivers."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @property
    def _config(self) -> Any:
        return self.driver.configuration

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict) -> tuple[Optional[dict], bool]:
        """Clone an image into ``volume`` on the array if possible."""
        image_id = image_meta.get("id")
        if volume.encryption_key_id:
            LOG.info("Volume %(vol)s: encrypted, image %(img)s not cloned.",
                     {"vol": volume.id, "img": image_id})
            return NOT_CLONED
        source = self._image_volume(context, volume, image_location,
                                    image_meta)
        if source is not None:
            LOG.info("Volume %(vol)s: cloning image %(img)s from its "
                     "volume %(src)s (cinder:// location).",
                     {"vol": volume.id, "img": image_id, "src": source.id})
            try:
                return self.driver.create_cloned_volume(volume, source), True
            except exception.CinderException:
                # As Cinder's own cinder:// clone does: fall back.
                LOG.warning("Volume %(vol)s: could not clone image volume "
                            "%(src)s; Cinder takes over.",
                            {"vol": volume.id, "src": source.id},
                            exc_info=True)
        return self._clone_from_cache(context, volume, image_meta)

    # -- cinder:// locations --------------------------------------------------

    def _image_volume(self, context: Any, volume: Any, image_location: Any,
                      image_meta: dict) -> Optional[Any]:
        """The volume a raw image's cinder:// location names, if usable."""
        if (image_meta.get("disk_format") != "raw" or
                image_meta.get("container_format") != "bare"):
            return None
        ids = cinder_volume_ids(image_location)
        if not ids:
            return None
        if "cinder" not in CONF.allowed_direct_url_schemes:
            LOG.info("Volume %(vol)s: image %(img)s has a cinder:// "
                     "location, not used: allowed_direct_url_schemes does "
                     "not include cinder.",
                     {"vol": volume.id, "img": image_meta.get("id")})
            return None
        admin = context.elevated()
        for candidate in objects.VolumeList.get_all(
                admin, filters={"id": ids}):
            if not same_backend(candidate, volume):
                LOG.debug("Image volume %s is on another backend.",
                          candidate.id)
                continue
            owner = (candidate.metadata or {}).get("image_owner")
            if image_meta.get("owner") not in (volume.project_id, owner):
                LOG.info("Volume %(vol)s: image volume %(src)s is not "
                         "accessible by project %(project)s; skipped.",
                         {"vol": volume.id, "src": candidate.id,
                          "project": volume.project_id})
                continue
            return candidate
        return None

    # -- the image-volume cache -----------------------------------------------

    def _cache(self) -> image_cache.ImageVolumeCache:
        return image_cache.ImageVolumeCache(
            self.driver.db, volume_api.API(),
            self._config.safe_get("image_volume_cache_max_size_gb") or 0,
            self._config.safe_get("image_volume_cache_max_count") or 0)

    def _cache_entry(self, internal: Any, image_id: str,
                     volume: Any) -> Optional[Any]:
        """The cache entry of an image for this host (or cluster)."""
        if volume.is_clustered:
            filters = {"cluster_name": volume.cluster_name}
        else:
            filters = {"host": volume.host}
        return self.driver.db.image_volume_cache_get_and_update_last_used(
            internal, image_id, **filters)

    def _clone_from_cache(self, context: Any, volume: Any,
                          image_meta: dict) -> tuple[Optional[dict], bool]:
        image_id = image_meta.get("id")
        if not self._config.safe_get("image_volume_cache_enabled"):
            return NOT_CLONED
        internal = cinder_context.get_internal_tenant_context()
        if internal is None:
            LOG.info("Volume %s: no Cinder internal tenant configured, the "
                     "image-volume cache is not used.", volume.id)
            return NOT_CLONED
        entry = self._cache_entry(internal, image_id, volume)
        if entry is None:
            LOG.info("Volume %(vol)s: no image-volume cache entry for image "
                     "%(img)s yet.", {"vol": volume.id, "img": image_id})
            return NOT_CLONED
        if not entry_is_fresh(entry, image_meta):
            LOG.info("Volume %(vol)s: image-volume cache entry %(src)s is "
                     "older than image %(img)s; Cinder replaces it.",
                     {"vol": volume.id, "src": entry["volume_id"],
                      "img": image_id})
            return NOT_CLONED
        source = objects.Volume.get_by_id(internal, entry["volume_id"])
        LOG.info("Volume %(vol)s: cloning image %(img)s "
                 "(%(fmt)s) from image-volume cache entry %(src)s.",
                 {"vol": volume.id, "img": image_id,
                  "fmt": image_meta.get("disk_format"), "src": source.id})
        try:
            return self.driver.create_cloned_volume(volume, source), True
        except exception.SnapshotLimitReached:
            LOG.info("Volume %(vol)s: vtree of cache entry %(src)s is full.",
                     {"vol": volume.id, "src": source.id})
        except exception.CinderException:
            # As Cinder's own cache path does, leave the volume to Cinder,
            # which tries the entry once more and else downloads the image.
            LOG.warning("Volume %(vol)s: could not clone cache entry "
                        "%(src)s; Cinder takes over.",
                        {"vol": volume.id, "src": source.id}, exc_info=True)
            return NOT_CLONED
        if not self._config.safe_get(options.ROTATE_FULL_VTREE):
            LOG.info("Volume %(vol)s: powerflex_cache_rotate_full_vtree is "
                     "False; removing cache entry %(src)s, Cinder downloads "
                     "the image again.", {"vol": volume.id, "src": source.id})
            # Left in place, Cinder's own cache path would hit the full
            # vtree again and fail the create.
            self._remove_entry(internal, entry, "Removing image-volume "
                               "cache entry whose vtree is full")
            return NOT_CLONED
        try:
            source = self._rotate(internal, volume, entry, image_meta)
        except Exception:
            LOG.exception("Volume %(vol)s: could not replace cache entry "
                          "%(src)s whose vtree is full; Cinder downloads "
                          "the image again.",
                          {"vol": volume.id, "src": entry["volume_id"]})
            return NOT_CLONED
        if source is None:
            return NOT_CLONED
        try:
            return self.driver.create_cloned_volume(volume, source), True
        except exception.CinderException:
            LOG.warning("Volume %(vol)s: could not clone new cache entry "
                        "%(src)s; Cinder takes over.",
                        {"vol": volume.id, "src": source.id}, exc_info=True)
            return NOT_CLONED

    def _remove_entry(self, internal: Any, entry: Any, reason: str) -> None:
        """Evict a cache entry at once and delete its volume.

        Evicted first so that nobody clones it any more (Cinder's own cache
        path included); the volume is deleted the way Cinder deletes cache
        entries. A failed delete is logged: the entry is gone either way.
        """
        cache = self._cache()
        cache.evict(internal, entry)
        try:
            compat.delete_cached_volume(cache, internal, entry, reason)
        except Exception:
            LOG.exception("Could not delete volume %s of an evicted "
                          "image-volume cache entry.", entry["volume_id"])

    def _rotate(self, internal: Any, volume: Any, entry: Any,
                image_meta: dict) -> Optional[Any]:
        """Replace a cache entry whose vtree is full; return its volume.

        Runs under Cinder's coordination lock for the entry, so that two
        services of one cluster never rotate the same entry twice: the second
        finds the entry already replaced and uses the new one. Returns None
        when the entry was removed meanwhile (Cinder then takes over). When
        the copy fails the full entry is removed, so that Cinder's own path
        makes a fresh one instead of failing on the full vtree.
        """
        image_id = image_meta["id"]
        lock_name = "powerflex-cache-rotate-%s" % entry["volume_id"]
        with coordination.COORDINATOR.get_lock(lock_name):
            current = self._cache_entry(internal, image_id, volume)
            if current is None:
                LOG.info("Volume %(vol)s: cache entry %(old)s was removed "
                         "meanwhile; Cinder takes over.",
                         {"vol": volume.id, "old": entry["volume_id"]})
                return None
            if current["volume_id"] != entry["volume_id"]:
                LOG.info("Volume %(vol)s: cache entry %(old)s was already "
                         "replaced by %(new)s.",
                         {"vol": volume.id, "old": entry["volume_id"],
                          "new": current["volume_id"]})
                return objects.Volume.get_by_id(internal,
                                                current["volume_id"])
            old = objects.Volume.get_by_id(internal, entry["volume_id"])
            LOG.info("Volume %(vol)s: vtree of image-volume cache entry "
                     "%(old)s is full; copying it into a new cache volume.",
                     {"vol": volume.id, "old": old.id})
            try:
                new = self._copy_to_new_cache_volume(internal, old,
                                                     image_meta)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._remove_entry(
                        internal, entry, "Removing image-volume cache entry "
                        "whose vtree is full and could not be copied")
            self._cache().create_cache_entry(internal, new, image_id,
                                             image_meta)
            self._remove_entry(internal, entry, "Replacing image-volume "
                               "cache entry whose vtree is full")
            LOG.info("Image %(img)s: cache entry %(old)s replaced by "
                     "%(new)s.", {"img": image_id, "old": old.id,
                                  "new": new.id})
            return new

    def _copy_to_new_cache_volume(self, internal: Any, old: Any,
                                  image_meta: dict) -> Any:
        """Make a new internal-tenant volume holding ``old``'s data."""
        reserve_opts = {"volumes": 1, "gigabytes": old.size}
        QUOTAS.add_volume_type_opts(internal, reserve_opts,
                                    old.volume_type_id)
        reservations = QUOTAS.reserve(internal, **reserve_opts)
        try:
            new = objects.Volume(
                context=internal, size=old.size, host=old.host,
                cluster_name=old.cluster_name,
                availability_zone=old.availability_zone,
                volume_type_id=old.volume_type_id,
                user_id=internal.user_id, project_id=internal.project_id,
                display_name="image-%s" % image_meta["id"],
                status="creating",
                attach_status=fields.VolumeAttachStatus.DETACHED)
            new.create()
        except Exception:
            with excutils.save_and_reraise_exception():
                QUOTAS.rollback(internal, reservations)
        QUOTAS.commit(internal, reservations, project_id=internal.project_id)
        try:
            model_update = self.driver.create_volume(new) or {}
            new.update(model_update)
            new.save()
            self.driver.copy_volume_data_sparse(internal, old, new)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error("Could not copy cache volume %(old)s; removing "
                          "%(new)s.", {"old": old.id, "new": new.id})
                self._discard(internal, new)
        new.status = "available"
        new.save()
        self.driver.db.volume_admin_metadata_update(
            internal.elevated(), new.id, {"readonly": "True"}, False)
        return new

    def _discard(self, internal: Any, volume: Any) -> None:
        """Remove a half-made internal volume: array, quota and DB row."""
        try:
            if volume.provider_id:
                self.driver.delete_volume(volume)
        finally:
            reserve_opts = {"volumes": -1, "gigabytes": -volume.size}
            QUOTAS.add_volume_type_opts(internal, reserve_opts,
                                        volume.volume_type_id)
            reservations = QUOTAS.reserve(
                internal, project_id=internal.project_id, **reserve_opts)
            QUOTAS.commit(internal, reservations,
                          project_id=internal.project_id)
            volume.destroy()
