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
"""What the image-volume cache of a backend holds, in Cinder and on the array.

Read only: Cinder's ``image_volume_cache_entries`` and volumes through
Cinder's DB API and objects, the array through the driver's REST client
(``GET`` requests only), the image through the Image API when credentials
are given.
"""

import dataclasses
import datetime
from typing import Any, Optional

from cinder.db import api as db
from cinder import exception
from cinder import objects
from cinder.volume.drivers.dell_emc.powerflex import rest_client
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import units

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver.cmd import common
from powerflex_cache_driver import compat
from powerflex_cache_driver import half_made
from powerflex_cache_driver import lost_answer

LOG = logging.getLogger(__name__)

ARRAY_SNAPSHOT_LIMIT = rest_client.MAX_SNAPS_IN_VTREE
"""Snapshots a Mirroring system's vtree holds (rc 182 beyond)."""

VTREE_SIZE_OPTION = "powerflex_max_image_cache_vtree_size"
"""Cinder 28+: vtree members (base volume included) before rotation."""

VOLUME_GONE = "volume gone"
ARRAY_VOLUME_GONE = "array volume gone"
VTREE_FULL = "vtree full"
STALE = "stale"
HALF_MADE = "half-made"

FIXES = {
    VOLUME_GONE: "The entry names a deleted volume: the next create of "
                 "the image on this backend makes a new entry; nothing "
                 "to do unless creates of the image fail.",
    ARRAY_VOLUME_GONE: "The array volume was removed outside Cinder: run "
                       "`powerflex-cache-manage cache evict %(image)s "
                       "--backend %(backend)s`.",
    VTREE_FULL: "The next create of the image copies the entry into a new "
                "vtree (powerflex_cache_rotate_full_vtree), or run "
                "`powerflex-cache-manage cache evict %(image)s --backend "
                "%(backend)s`.",
    STALE: "The image changed since the entry was made: the next create "
           "replaces it, or run `powerflex-cache-manage cache warm "
           "%(image)s`.",
    HALF_MADE: "Left by an interrupted cache create or rotation: the next "
               "cache volume of the image deletes it, or run `openstack "
               "volume delete --force %(volume)s` as an admin.",
}
"""One sentence of fix per flag."""


@dataclasses.dataclass
class EntryReport:
    """One image-volume cache entry of a backend."""

    image_id: str
    volume_id: str
    backend: str
    service: str
    """The entry's host, or its cluster when clustered."""
    recorded_gib: Optional[int] = None
    array_gib: Optional[int] = None
    image_name: Optional[str] = None
    virtual_size_bytes: Optional[int] = None
    virtual_size_source: Optional[str] = None
    vtree_snapshots: Optional[int] = None
    vtree_snapshot_limit: Optional[int] = ARRAY_SNAPSHOT_LIMIT
    vtree_volumes: Optional[int] = None
    vtree_volume_limit: Optional[int] = None
    last_used: Optional[datetime.datetime] = None
    image_updated_at: Optional[datetime.datetime] = None
    flags: list = dataclasses.field(default_factory=list)
    fixes: list = dataclasses.field(default_factory=list)

    def flag(self, name: str) -> None:
        """Add a flag and its one sentence of fix."""
        self.flags.append(name)
        self.fixes.append(FIXES[name] % {"image": self.image_id,
                                         "backend": self.backend,
                                         "volume": self.volume_id})


@dataclasses.dataclass
class HalfMadeReport:
    """A marked cache volume that no entry names."""

    volume_id: str
    image_id: str
    backend: str
    status: str
    recorded_gib: int
    provider_id: Optional[str]
    fix: str = ""


class ArrayReader:
    """GET-only reads of the array through the driver's REST client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def volume(self, provider_id: Optional[str]) -> Optional[dict]:
        """The array volume ``provider_id``; None when the array has none.

        :raises common.CommandError: the gateway gave no clear answer.
        """
        if not provider_id:
            return None
        r, response = self.client.execute_powerflex_get_request(
            "/instances/Volume::%(vol_id)s", vol_id=provider_id)
        if r.status_code == 200:
            return response
        if lost_answer.is_gone(self.client, provider_id):
            return None
        raise common.CommandError(
            "The gateway did not answer for array volume %s (%s). Check "
            "the gateway and try again." % (provider_id, r.status_code))

    def volume_of(self, volume: Any) -> Optional[dict]:
        """A Cinder volume's array volume: by provider_id, else by name."""
        if volume.provider_id:
            return self.volume(volume.provider_id)
        try:
            return lost_answer.find_by_name(self.client, volume.id)
        except lost_answer.LookupFailed as error:
            raise common.CommandError(
                "The gateway did not say whether it holds volume %s (%s). "
                "Check the gateway and try again." % (volume.id, error))

    def vtree_statistics(self, vtree_id: str) -> dict:
        """``numOfVolumes`` (and ``numOfSnapshots``) of a vtree."""
        r, response = self.client.execute_powerflex_get_request(
            "/instances/VTree::%(vtree_id)s/relationships/Statistics",
            vtree_id=vtree_id)
        if r.status_code != 200:
            raise common.CommandError(
                "The gateway did not give the statistics of vtree %s (%s). "
                "Check the gateway and try again." % (vtree_id,
                                                      r.status_code))
        return response


def size_gib(array_volume: dict) -> int:
    """An array volume's size in GiB (``sizeInKb``)."""
    return int(array_volume.get("sizeInKb") or 0) // units.Mi


def _backend_of(host: Optional[str]) -> Optional[str]:
    return volume_utils.extract_host(host, "backend") if host else None


def entries_of(ctx: Any, backend: common.Backend,
               image_id: Optional[str] = None) -> list:
    """The cache entries of a backend (its host, or its cluster).

    Entries carry ``host@backend#pool`` and ``cluster@backend#pool``; they
    are filtered at the backend level, as a volume service sees them.
    """
    filters = {"image_id": image_id} if image_id else {}
    entries = db.image_volume_cache_get_all(ctx, **filters)
    if backend.cluster:
        return [e for e in entries
                if _backend_of(e["cluster_name"]) == backend.cluster]
    return [e for e in entries
            if not e["cluster_name"] and
            _backend_of(e["host"]) == backend.host]


def backend_volumes(ctx: Any, backend: common.Backend,
                    project_id: Optional[str] = None) -> list:
    """The volumes of a backend (its host, or its cluster), not deleted."""
    field = "cluster_name" if backend.cluster else "host"
    filters = {field: backend.service}
    if project_id:
        filters["project_id"] = project_id
    return list(objects.VolumeList.get_all(ctx, filters=filters))


def _load_volume(ctx: Any, volume_id: str) -> Optional[Any]:
    try:
        volume = objects.Volume.get_by_id(ctx, volume_id)
    except exception.VolumeNotFound:
        return None
    return None if volume.status in ("deleting", "deleted") else volume


def _written_bytes(ctx: Any, volume_id: str) -> Optional[int]:
    metadata = db.volume_admin_metadata_get(ctx, volume_id)
    try:
        return int(metadata[cache_entries.IMAGE_BYTES_KEY])
    except (KeyError, ValueError, TypeError):
        return None


def _image_name_from_glance_metadata(ctx: Any,
                                     volume_id: str) -> Optional[str]:
    try:
        metadata = db.volume_glance_metadata_get(ctx, volume_id)
    except exception.GlanceMetadataNotFound:
        return None
    for item in metadata:
        if item["key"] == "image_name":
            return item["value"]
    return None


def _read_image(images: Optional[Any], image_id: str) -> Optional[dict]:
    if images is None:
        return None
    try:
        return images.get_image(image_id)
    except Exception as error:
        LOG.warning("Image %s: the image service gave nothing (%s).",
                    image_id, error)
        return None


def _fill_image(report: EntryReport, entry: Any, ctx: Any,
                image: Optional[dict], volume: Optional[Any]) -> None:
    """Image name, virtual size (and where it came from), freshness."""
    written = _written_bytes(ctx, volume.id) if volume else None
    if written is not None:
        report.virtual_size_bytes = written
        report.virtual_size_source = "cache volume"
    if image is not None:
        report.image_name = image.get("name")
        if written is None and image.get("virtual_size"):
            report.virtual_size_bytes = int(image["virtual_size"])
            report.virtual_size_source = "image service"
        if (image.get("updated_at") and
                not cache_entries.entry_is_fresh(entry, image)):
            report.flag(STALE)
    if report.image_name is None and volume is not None:
        report.image_name = _image_name_from_glance_metadata(ctx, volume.id)


def _vtree_limits(report: EntryReport, backend: common.Backend,
                  erasure_coded: bool) -> None:
    if erasure_coded:
        report.vtree_snapshot_limit = None
    limit = backend.configuration.safe_get(VTREE_SIZE_OPTION) or 0
    if limit > 0:
        report.vtree_volume_limit = int(limit)


def _fill_array(report: EntryReport, volume: Any, array: ArrayReader,
                backend: common.Backend) -> None:
    """Array size and vtree usage; flags a missing array volume."""
    found = array.volume(volume.provider_id)
    if found is None:
        report.flag(ARRAY_VOLUME_GONE)
        return
    report.array_gib = size_gib(found)
    if not found.get("vtreeId"):
        return
    stats = array.vtree_statistics(found["vtreeId"])
    members = int(stats.get("numOfVolumes") or 0)
    report.vtree_volumes = members
    report.vtree_snapshots = int(stats.get("numOfSnapshots",
                                           max(members - 1, 0)))
    full = (report.vtree_snapshot_limit is not None and
            report.vtree_snapshots >= report.vtree_snapshot_limit)
    full = full or (report.vtree_volume_limit is not None and
                    members >= report.vtree_volume_limit)
    if full:
        report.flag(VTREE_FULL)


def entry_report(ctx: Any, backend: common.Backend, entry: Any,
                 array: ArrayReader, images: Optional[Any] = None,
                 erasure_coded: bool = False) -> EntryReport:
    """What Cinder and the array hold for one cache entry."""
    report = EntryReport(
        image_id=entry["image_id"], volume_id=entry["volume_id"],
        backend=backend.name,
        service=entry["cluster_name"] or entry["host"],
        last_used=entry["last_used"],
        image_updated_at=entry["image_updated_at"])
    _vtree_limits(report, backend, erasure_coded)
    volume = _load_volume(ctx, entry["volume_id"])
    _fill_image(report, entry, ctx, _read_image(images, report.image_id),
                volume)
    if volume is None:
        report.flag(VOLUME_GONE)
        return report
    report.recorded_gib = volume.size
    _fill_array(report, volume, array, backend)
    return report


def half_made_volumes(ctx: Any, backend: common.Backend,
                      named: set) -> list[HalfMadeReport]:
    """Marked cache volumes of the backend that no cache entry names.

    :param named: the volume ids the backend's cache entries name.
    """
    internal = common.CONF.cinder_internal_tenant_project_id
    found = []
    for volume in backend_volumes(ctx, backend, internal):
        image_id = (volume.admin_metadata or {}).get(half_made.MADE_FOR_KEY)
        if not image_id or volume.id in named:
            continue
        found.append(HalfMadeReport(
            volume_id=volume.id, image_id=image_id, backend=backend.name,
            status=volume.status, recorded_gib=volume.size,
            provider_id=volume.provider_id,
            fix=FIXES[HALF_MADE] % {"volume": volume.id}))
    return found


def backend_report(ctx: Any, backend: common.Backend, driver: Any,
                   images: Optional[Any] = None
                   ) -> tuple[list[EntryReport], list[HalfMadeReport]]:
    """Every cache entry of a backend, and its half-made cache volumes."""
    client = driver.primary_client
    array = ArrayReader(client)
    erasure_coded = compat.is_erasure_coded(client)
    entries = entries_of(ctx, backend)
    reports = [entry_report(ctx, backend, entry, array, images,
                            erasure_coded) for entry in entries]
    named = {entry["volume_id"] for entry in entries}
    return reports, half_made_volumes(ctx, backend, named)
