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
"""``volumes reconcile``: volumes recorded below what the array holds.

Volumes made by Cinder's own driver (or an older release of this package)
may record less than their array volume: the guest sees, and may write,
the whole array volume, but Cinder copies only the recorded size on
migration and retype, and the project is charged the recorded size. They
are found here by reading Cinder's database (Cinder's objects) and the
array (``GET`` only). With ``--fix`` each ``available`` one is extended
through Cinder's API to exactly its array size: Cinder records it and
charges the quota for it, and the driver sends nothing to the array, which
already holds that size. Then each project whose ``gigabytes`` usage still
differs from what its records add up to (Cinder's own driver charged the
size asked for while recording more) is synced by Cinder's own
``cinder-manage quota sync --project-id``, now that the records are right.
Nothing else is changed; the rest is listed with the reason and the
command that finishes it.
"""

import dataclasses
from typing import Any, Iterable, Optional

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import objects

from powerflex_cache_driver.cmd import block_storage
from powerflex_cache_driver.cmd import cache_report
from powerflex_cache_driver.cmd import common
from powerflex_cache_driver.cmd import quota_sync
from powerflex_cache_driver import compat
from powerflex_cache_driver import sizing

EXTENDED = "extended"
TO_FIX = "to fix"
LEFT = "left"
FAILED = "failed"


@dataclasses.dataclass
class VolumeRow:
    """A volume recorded below its array size (or without one)."""

    volume_id: str
    project_id: str
    status: str
    recorded_gib: int
    array_gib: Optional[int]
    backend: str
    cache_entry: bool = False
    action: str = TO_FIX
    reason: str = ""
    command: str = ""

    def as_dict(self) -> dict:
        """The JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ProjectRow:
    """A project's ``gigabytes`` usage against its records."""

    project_id: str
    usage_gib: int
    records_gib: int
    difference_gib: int = 0
    command: str = ""
    synced_from_gib: Optional[int] = None
    """The usage before ``--fix`` synced it, when it did."""

    def as_dict(self) -> dict:
        """The JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    """What ``volumes reconcile`` found and did."""

    volumes: list = dataclasses.field(default_factory=list)
    projects: list = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 nothing left, 1 something left to do, 2 an extend failed."""
        if any(row.action == FAILED for row in self.volumes):
            return 2
        if any(row.action != EXTENDED for row in self.volumes):
            return 1
        return 1 if any(p.difference_gib for p in self.projects) else 0

    def as_dict(self) -> dict:
        """The JSON form."""
        return {"volumes": [row.as_dict() for row in self.volumes],
                "projects": [row.as_dict() for row in self.projects]}


def _extend_command(row: VolumeRow) -> str:
    return "openstack volume set --size %d %s" % (row.array_gib,
                                                  row.volume_id)


def _row(volume: Any, array_gib: Optional[int], backend: common.Backend,
         cache_ids: set, granularity: int) -> VolumeRow:
    row = VolumeRow(volume_id=volume.id, project_id=volume.project_id,
                    status=volume.status, recorded_gib=volume.size,
                    array_gib=array_gib, backend=backend.name,
                    cache_entry=volume.id in cache_ids)
    if array_gib is None:
        row.action = LEFT
        row.reason = ("the array holds no volume for it (by provider_id "
                      "%s or by name)" % volume.provider_id)
        row.command = "openstack volume show %s" % volume.id
    elif not volume.provider_id:
        # An extend through Cinder would address no array volume.
        row.action = LEFT
        row.reason = ("no provider_id: its array volume was found by its "
                      "name only, so Cinder cannot extend it; look at the "
                      "volume's create in the cinder-volume log")
        row.command = "openstack volume show %s" % volume.id
    elif array_gib > sizing.round_up(volume.size, granularity):
        # The driver decides from the recorded size: it would send the
        # array a resize to the size it already holds.
        row.action = LEFT
        row.reason = ("grown on the array outside Cinder (recorded %d GiB "
                      "stands for %d GiB, the array holds %d): an extend "
                      "sends the array a resize to the size it holds"
                      % (volume.size,
                         sizing.round_up(volume.size, granularity),
                         array_gib))
        row.command = _extend_command(row)
    elif volume.status == "available":
        row.reason = "recorded %d GiB, the array holds %d GiB" % (
            volume.size, array_gib)
        row.command = _extend_command(row)
    elif volume.status == "in-use":
        row.action = LEFT
        row.reason = ("attached: detach it, then extend it to its array "
                      "size")
        row.command = "%s (after detaching)" % _extend_command(row)
    else:
        row.action = LEFT
        row.reason = ("status %s: only available volumes are extended"
                      % volume.status)
        row.command = "%s (once it is available)" % _extend_command(row)
    return row


def short_volumes(ctx: Any, backend: common.Backend,
                  array: cache_report.ArrayReader,
                  volumes: Iterable[Any]) -> list[VolumeRow]:
    """Those of the backend's ``volumes`` recorded below their array size.

    Volumes in ``available`` or ``in-use`` without any array volume are
    listed too; the others without one (creating, error...) are not.
    """
    cache_ids = {entry["volume_id"]
                 for entry in cache_report.entries_of(ctx, backend)}
    granularity = sizing.granularity(compat.is_erasure_coded(array.client))
    rows = []
    for volume in volumes:
        found = array.volume_of(volume)
        if found is None:
            if volume.status in ("available", "in-use"):
                rows.append(_row(volume, None, backend, cache_ids,
                                 granularity))
            continue
        array_gib = cache_report.size_gib(found)
        if volume.size < array_gib:
            rows.append(_row(volume, array_gib, backend, cache_ids,
                             granularity))
    return rows


def _counted(items: Iterable[Any], field: str = "size") -> int:
    return sum(getattr(item, field) or 0 for item in items
               if getattr(item, "use_quota", True))


def project_row(ctx: Any, project_id: str) -> ProjectRow:
    """A project's ``gigabytes`` usage against what its records add up to.

    The records: the sizes of its volumes Cinder counts (``use_quota``),
    on every backend, and of its snapshots unless ``no_snapshot_gb_quota``.
    """
    usages = db.quota_usage_get_all_by_project(ctx, project_id)
    usage = int((usages.get("gigabytes") or {}).get("in_use") or 0)
    records = _counted(objects.VolumeList.get_all_by_project(
        ctx, project_id, filters={}))
    if not getattr(common.CONF, "no_snapshot_gb_quota", False):
        records += _counted(objects.SnapshotList.get_all_by_project(
            ctx, project_id, {}), "volume_size")
    row = ProjectRow(project_id=project_id, usage_gib=usage,
                     records_gib=records, difference_gib=usage - records)
    if row.difference_gib:
        row.command = ("powerflex-cache-manage volumes reconcile --fix "
                       "--project %s (extends, then syncs with "
                       "cinder-manage quota sync)" % project_id)
    return row


BUSY_STATUSES = ("creating", "downloading", "extending", "retyping",
                 "maintenance")
"""Volume statuses whose quota is charged before its size is recorded."""


def busy_volumes(ctx: Any, project_id: str) -> list[str]:
    """The project's volumes between a quota charge and their record.

    A sync then would take back what their creates or extends charged.
    """
    return [volume.id for volume in objects.VolumeList.get_all_by_project(
                ctx, project_id, filters={})
            if volume.status in BUSY_STATUSES or
            volume.migration_status in ("starting", "migrating")]


def sync_usage(ctx: Any, row: ProjectRow) -> ProjectRow:
    """Sync a project's usage to its records with Cinder's own quota sync.

    The code of ``cinder-manage quota sync --project-id``, which Cinder
    allows while its services run (:func:`quota_sync.sync_quota_usage`).
    """
    quota_sync.sync_quota_usage(row.project_id)
    synced = project_row(ctx, row.project_id)
    synced.synced_from_gib = row.usage_gib
    return synced


def _fix_one(api: Any, row: VolumeRow, timeout: float) -> None:
    """Extend one available volume to its array size through the API."""
    try:
        api.extend_volume(row.volume_id, row.array_gib)
    except block_storage.OverQuota as error:
        row.action = LEFT
        row.reason = ("project %s has no quota room for %d GiB more (%s)"
                      % (row.project_id, row.array_gib - row.recorded_gib,
                         error))
        row.command = ("openstack quota set --gigabytes <limit + %d> %s, "
                       "then %s" % (row.array_gib - row.recorded_gib,
                                    row.project_id, _extend_command(row)))
        return
    except block_storage.ApiError as error:
        row.action = FAILED
        row.reason = str(error)
        return
    try:
        volume = api.wait_for_status(row.volume_id, ("available",), timeout)
    except block_storage.WaitTimeout as error:
        row.action = LEFT
        row.reason = "%s after the extend" % error
        row.command = ("openstack volume show %s; once it is available, "
                       "run the reconcile again" % row.volume_id)
        return
    _record_outcome(api, row, volume)


def _record_outcome(api: Any, row: VolumeRow, volume: dict) -> None:
    size = int(volume.get("size") or 0)
    if volume.get("status") == "available" and size >= row.array_gib:
        row.action = EXTENDED
        row.reason = "recorded %d GiB, was %d GiB" % (size, row.recorded_gib)
        row.recorded_gib = size
        row.command = ""
        return
    messages = api.list_messages(row.volume_id)
    row.action = (FAILED if volume.get("status") != "available"
                  else LEFT)
    row.reason = ("the extend ended %s at %d GiB: %s"
                  % (volume.get("status"), size,
                     messages[-1] if messages else "no user message"))


def reconcile(backends: Iterable[common.Backend],
              array_for: Any, api: Optional[Any] = None,
              fix: bool = False, project_id: Optional[str] = None,
              timeout: float = 600.0) -> Report:
    """Find (and with ``fix``, extend) volumes recorded below the array.

    :param array_for: gives the :class:`cache_report.ArrayReader` of a
        backend.
    :param api: a :class:`block_storage.BlockStorage` (or the same
        methods); needed with ``fix`` only.
    """
    ctx = cinder_context.get_admin_context()
    report = Report()
    projects = set()
    for backend in backends:
        volumes = cache_report.backend_volumes(ctx, backend, project_id)
        report.volumes.extend(short_volumes(ctx, backend, array_for(backend),
                                            volumes))
        projects.update(volume.project_id for volume in volumes)
    if fix:
        for row in report.volumes:
            if row.action == TO_FIX:
                _fix_one(api, row, timeout)
    report.projects = [project_row(ctx, project)
                       for project in sorted(projects)]
    if fix:
        report.projects = [_sync_when_settled(ctx, row)
                           for row in report.projects]
    return report


def _sync_when_settled(ctx: Any, row: ProjectRow) -> ProjectRow:
    """Sync a project whose usage differs, unless it has volumes busy."""
    if not row.difference_gib:
        return row
    busy = busy_volumes(ctx, row.project_id)
    if not busy:
        try:
            return sync_usage(ctx, row)
        except Exception as error:  # Cinder's code: report, go on
            row.command = ("the quota sync failed (%s: %s): run "
                           "cinder-manage quota sync --project-id %s"
                           % (type(error).__name__, error, row.project_id))
            return row
    row.command = ("volumes %s are being created, extended or moved: run "
                   "powerflex-cache-manage volumes reconcile --fix "
                   "--project %s again once they are settled"
                   % (", ".join(busy), row.project_id))
    return row
