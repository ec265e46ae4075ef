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
"""

import datetime
import enum
from typing import Any, Optional

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder.image import cache as image_cache
from cinder.image import image_utils
from cinder.message import api as message_api
from cinder.message import message_field
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
from powerflex_cache_driver import half_made
from powerflex_cache_driver import image_download
from powerflex_cache_driver import lost_answer
from powerflex_cache_driver import options
from powerflex_cache_driver import sizing

CONF = cfg.CONF
LOG = logging.getLogger(__name__)
QUOTAS = quota.QUOTAS

NOT_CLONED: tuple[None, bool] = (None, False)

DOWNLOAD = object()
"""What :meth:`ImageCloner._clone_entry` returns when an entry cannot be
cloned and the image is to be copied into the volume instead. The copy is
made here, not left to Cinder: Cinder's path would create the volume
through the driver, then set its size back to the requested one, below
what the array holds."""

IMAGE_BYTES_KEY = "powerflex_cache_written_bytes"
"""Admin metadata of a cache volume made here: the bytes written into it,
the virtual size of the image once unpacked (:mod:`.image_download`). Past
it the volume holds only zeros, so a rotation copies no more, and no
request smaller than it is served from the entry. (Earlier releases
recorded ``powerflex_cache_image_bytes``, measured before a compressed
image was unpacked: it is not read, and such an entry is copied whole.)"""

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


def cinder_volume_ids(image_location: Any) -> list[str]:
    """Volume ids named by ``cinder://[store/]<id>`` image locations.

    Parsed by the create-volume flow's own parser, so the locations Cinder
    accepts for its cinder:// clones are exactly the ones used here.
    """
    if not image_location or not isinstance(image_location, tuple):
        # Cinder passes (direct_url, locations); anything else names no
        # volume.
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
    """Whether two volumes are served by the same Cinder backend.

    In a cluster the cluster name stands for the host; both carry the pool
    (``cluster@backend#pool``), which is left out here. A clustered volume
    and one that is not are never on the same backend, and a volume with
    neither host nor cluster (never placed) is on none: the answers
    Cinder's own ``cinder://`` clone gets from filtering the database by
    the new volume's cluster or host.
    """
    if volume_a.cluster_name or volume_b.cluster_name:
        hosts = (volume_a.cluster_name, volume_b.cluster_name)
    else:
        hosts = (volume_a.host, volume_b.host)
    if not all(hosts):
        return False
    return (volume_utils.extract_host(hosts[0], "backend") ==
            volume_utils.extract_host(hosts[1], "backend"))


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
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
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

    # -- cinder:// locations --------------------------------------------------

    def _image_volume(self, context: Any, volume: Any, image_location: Any,
                      image_meta: dict) -> Optional[Any]:
        """The volume a raw image's cinder:// location names, if usable.

        Usable: on this backend, ``available``, and the image owner's: in
        the image owner's project, or marked with the image owner in its
        ``image_owner`` metadata (Cinder's upload to an image, its volume
        in the internal tenant). Cinder's own path checks only that the
        image's owner is the project asking (or that mark), so an image
        of the asking project whose location names another project's
        volume would clone that volume; here it is skipped, and the
        image is downloaded.
        """
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
            owner = ((candidate.metadata or {}).get("image_owner")
                     or candidate.project_id)
            if image_meta.get("owner") != owner:
                LOG.warning("Volume %(vol)s: image %(img)s of project "
                            "%(image_owner)s names volume %(src)s of "
                            "project %(owner)s in a cinder:// location; "
                            "not cloned.",
                            {"vol": volume.id, "img": image_meta.get("id"),
                             "image_owner": image_meta.get("owner"),
                             "src": candidate.id, "owner": owner})
                continue
            if candidate.status != "available":
                LOG.info("Volume %(vol)s: image volume %(src)s is "
                         "%(status)s, not available; not cloned.",
                         {"vol": volume.id, "src": candidate.id,
                          "status": candidate.status})
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

    def _fresh_entry(self, internal: Any, volume: Any, image_meta: dict
                     ) -> Optional[tuple[Any, Any]]:
        """The fresh cache entry of an image and its volume, if any.

        A stale entry (the image changed since) is removed, as Cinder's
        cache removes it.

        :raises ImageUnacceptable: the image the entry holds does not fit
            the size asked for, as Cinder's download path refuses it.
        """
        image_id = image_meta.get("id")
        entry = self._cache_entry(internal, image_id, volume)
        if entry is None:
            LOG.info("Volume %(vol)s: no image-volume cache entry for image "
                     "%(img)s yet.", {"vol": volume.id, "img": image_id})
            return None
        if not entry_is_fresh(entry, image_meta):
            LOG.info("Volume %(vol)s: image-volume cache entry %(src)s is "
                     "older than image %(img)s; removing it.",
                     {"vol": volume.id, "src": entry["volume_id"],
                      "img": image_id})
            self._remove_entry(internal, entry, "Deleting image-volume "
                               "cache entry that is out-dated")
            return None
        try:
            source = objects.Volume.get_by_id(internal, entry["volume_id"])
        except exception.VolumeNotFound:
            LOG.info("Volume %(vol)s: the volume of image-volume cache entry "
                     "%(src)s was deleted meanwhile.",
                     {"vol": volume.id, "src": entry["volume_id"]})
            return None
        written = self._image_bytes(internal, source)
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

    def _from_cache(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
        if not self._config.safe_get("image_volume_cache_enabled"):
            return NOT_CLONED
        internal = cinder_context.get_internal_tenant_context()
        if internal is None:
            LOG.info("Volume %s: no Cinder internal tenant configured, the "
                     "image-volume cache is not used.", volume.id)
            return NOT_CLONED
        for _attempt in range(MAX_ENTRY_LOOKUPS):
            found = self._fresh_entry(internal, volume, image_meta)
            if found is None:
                # The lock Cinder's own cache-miss path takes: one entry
                # per image. Held to look again and, on a miss, to make
                # the entry; an entry another create made meanwhile is
                # cloned outside it, as Cinder's own path does, so that
                # the creates that waited for it clone side by side.
                with coordination.COORDINATOR.get_lock(image_meta["id"]):
                    found = self._fresh_entry(internal, volume, image_meta)
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
                    self._remove_entry(internal, entry, "Removing "
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
        rotation = self._replace_full_entry(internal, volume, entry,
                                            image_meta, rotations_left > 0)
        if rotation is Rotation.GONE:
            return None
        if rotation is Rotation.NOT_COPIED:
            LOG.warning("Volume %(vol)s: the vtree of cache entry %(src)s "
                        "is full and this create has replaced %(max)d "
                        "entries already; copying the image into the "
                        "volume.", {"vol": volume.id, "src": source.id,
                                    "max": MAX_ROTATIONS_PER_CREATE})
            return DOWNLOAD
        if rotation is Rotation.COPIED:
            rotations_left -= 1
        # The replacement, or a newer entry if other creates filled the
        # replacement's vtree meanwhile and replaced it in turn.
        found = self._fresh_entry(internal, volume, image_meta)
        if found is None:
            return None
        return self._clone_entry(internal, volume, found, image_meta,
                                 rotations_left, full_left)

    def _replace_full_entry(self, internal: Any, volume: Any, entry: Any,
                            image_meta: dict, may_copy: bool) -> Rotation:
        """Replace an entry whose vtree is full, or find it replaced.

        :param may_copy: this create may copy the entry itself.
        """
        if not self._config.safe_get(options.ROTATE_FULL_VTREE):
            LOG.info("Volume %(vol)s: powerflex_cache_rotate_full_vtree is "
                     "False; removing cache entry %(src)s, the image is "
                     "downloaded again.",
                     {"vol": volume.id, "src": entry["volume_id"]})
            self._remove_entry(internal, entry, "Removing image-volume "
                               "cache entry whose vtree is full")
            return Rotation.GONE
        try:
            return self._rotate(internal, volume, entry, image_meta,
                                may_copy)
        except Exception:
            LOG.exception("Volume %(vol)s: could not replace cache entry "
                          "%(src)s whose vtree is full; the image is "
                          "downloaded again.",
                          {"vol": volume.id, "src": entry["volume_id"]})
            return Rotation.GONE

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
            entry_volume = self._internal_volume(internal, volume, entry_gib,
                                                 image_id)
            cache = self._cache()
            if not cache.ensure_space(internal, entry_volume):
                LOG.warning("Volume %(vol)s: the image-volume cache has no "
                            "room for a %(size)s GiB entry of image "
                            "%(img)s; copying the image into the volume.",
                            {"vol": volume.id, "size": entry_gib,
                             "img": image_id})
                return self._copy_into(context, volume, image_location,
                                       image_meta, image), True
            try:
                self._create_internal_volume(internal, entry_volume,
                                             image_id)
                self._copy_into(context, entry_volume, image_location,
                                image_meta, image)
                self._make_available(internal, entry_volume,
                                     image.virtual_bytes)
                entry = cache.create_cache_entry(internal, entry_volume,
                                                 image_id, image_meta)
            except IMAGE_CHECK_ERRORS:
                with excutils.save_and_reraise_exception():
                    self._discard_if_created(internal, entry_volume)
            except Exception:
                LOG.exception("Volume %(vol)s: could not make an "
                              "image-volume cache entry for image %(img)s; "
                              "copying the image into the volume.",
                              {"vol": volume.id, "img": image_id})
                self._discard_if_created(internal, entry_volume)
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

    # -- internal-tenant volumes ----------------------------------------------

    def _internal_volume(self, internal: Any, like: Any, size_gib: int,
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

    def _create_internal_volume(self, internal: Any, new: Any,
                                image_id: str) -> None:
        """Charge the internal tenant for ``new`` and save its row.

        The quota reservation Cinder's ``_clone_image_volume`` makes for
        the cache entries it creates. Cache volumes of the image that an
        interrupted create or rotation left behind are deleted first
        (:mod:`.half_made`).
        """
        half_made.purge(internal, image_id, new, same_backend)
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

    def _make_available(self, internal: Any, new: Any,
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
            metadata[IMAGE_BYTES_KEY] = str(image_bytes)
        self.driver.db.volume_admin_metadata_update(
            internal.elevated(), new.id, metadata, False)

    def _image_bytes(self, internal: Any, volume: Any) -> Optional[int]:
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

    def _discard_if_created(self, internal: Any, volume: Any) -> None:
        """Remove a half-made internal volume, if its row was saved."""
        if volume.obj_attr_is_set("id"):
            self._discard(internal, volume)

    def _discard(self, internal: Any, volume: Any) -> None:
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

    # -- vtree rotation -------------------------------------------------------

    def _rotate(self, internal: Any, volume: Any, entry: Any,
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
            current = self._cache_entry(internal, image_id, volume)
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
                new = self._copy_to_new_cache_volume(internal, old,
                                                     image_meta)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._remove_entry(
                        internal, entry, "Removing image-volume cache entry "
                        "whose vtree is full and could not be copied")
            try:
                self._cache().create_cache_entry(internal, new, image_id,
                                                 image_meta)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._discard(internal, new)
                    self._remove_entry(
                        internal, entry, "Removing image-volume cache entry "
                        "whose vtree is full and could not be replaced")
            self._remove_entry(internal, entry, "Replacing image-volume "
                               "cache entry whose vtree is full")
            LOG.info("Image %(img)s: cache entry %(old)s replaced by "
                     "%(new)s.", {"img": image_id, "old": old.id,
                                  "new": new.id})
            return Rotation.COPIED

    def _copy_to_new_cache_volume(self, internal: Any, old: Any,
                                  image_meta: dict) -> Any:
        """Make a new internal-tenant volume holding ``old``'s data.

        It is made at ``old``'s array size, so it holds all of it.
        """
        size = sizing.round_up(old.size, self.driver._granularity())
        image_bytes = self._image_bytes(internal, old)
        new = self._internal_volume(internal, old, size, image_meta["id"])
        self._create_internal_volume(internal, new, image_meta["id"])
        try:
            new.update(self.driver.create_volume(new) or {})
            new.save()
            self.driver.copy_volume_data_sparse(internal, old, new,
                                                image_bytes)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error("Could not copy cache volume %(old)s; removing "
                          "%(new)s.", {"old": old.id, "new": new.id})
                self._discard(internal, new)
        self._make_available(internal, new, image_bytes)
        return new
