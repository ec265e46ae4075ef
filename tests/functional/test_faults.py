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
"""Scenario 10: array faults on every entry point of our driver.

A table of rows, each one test: an entry point (a blank create, a clone,
a clone that needs an extend, a snapshot, a volume from a snapshot, an
extend, a delete, a create from an image on a cache miss or hit, a cache
entry rotation, a clone into another pool), a fault injected into the
simulated gateway (an error answer with the array's error code, a read
timeout, a connection dropped before or after the array acted, rc 182,
an array volume removed behind Cinder's back) and the outcome the user
must see: the volume (or snapshot) available, in error, or deleted.

After every row, whatever the outcome:

* nothing is left in a transient status (creating, deleting...);
* Cinder's records and the array agree (:meth:`FaultMatrix.
  assert_array_consistent`);
* every image-volume cache entry names an available volume whose array
  volume exists;
* quota usage equals the records, for the user project and the internal
  tenant, with nothing left reserved;
* nothing is mapped to the SDC.

Then everything is deleted through the volume API (volumes in error
included) and usage must be back to zero, the array empty.

The simulated array keeps removed volumes in deletion for longer than a
row runs (``removal_seconds``), as a real array does while it frees their
capacity: a request naming one answers rc 212 and its name stays taken.

Only our driver runs here: the subject is how it and Cinder's flows
around it survive array faults, not a comparison with Cinder's driver.
"""

import collections
import dataclasses
import os
import time
from typing import Any, Callable, Optional
import uuid

from cinder import exception
from cinder import objects
from oslo_utils import units

from powerflex_cache_driver import compat
from powerflex_cache_driver import lost_answer
from powerflex_cache_driver.simulator import errors
from tools.beds import driver_testcases
from tools.beds import gateway_faults
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
IMAGE_SIZE = 1 * GIB
PIECES = [(0, MIB), (IMAGE_SIZE // 2, MIB)]
SOURCE_POOL = inprocess_cinder.POOL
OTHER_POOL = inprocess_cinder.SECOND_POOL

_OS_BRICK_MAPS = (
    not compat.DRIVER_MAPS_VOLUMES,
    "on Cinder 25 and 26 os-brick maps and unmaps the volume with its own "
    "gateway requests, not the driver's: this fault is not met the same "
    "way there")
OLD_RELEASE_ROWS = {
    "setVolumeSize times out once (retried)": (
        not driver_testcases.STOCK_RECORDS_ROUNDED_SIZE,
        "before Cinder 29 the REST client does not retry a read timeout: "
        "it sets the status on the requests.Response class and fails with "
        "TypeError (Response.json() missing 'self')"),
    "removeMappedSdc rc 84 detaching the entry": _OS_BRICK_MAPS,
    "removeMappedSdc rc 84 on detach and during clean-up": _OS_BRICK_MAPS,
    "removeMappedSdc rc 84 after the copy: unmapped meanwhile":
        _OS_BRICK_MAPS,
    # There os-brick maps in connect_volume, and the driver's
    # terminate_connection (called after a failed attach) does not unmap.
    "addMappedSdc answer dropped after mapping the source": _OS_BRICK_MAPS,
}
"""Rows whose outcome on some releases is Cinder's older code's, not this
driver's: (whether this release is one of them, why)."""

REMOVAL_SECONDS = 3600
"""How long a removed array volume stays in deletion: longer than any row,
so every removal of a row is still in progress when the row looks."""

AVAILABLE = "available"
ERROR = "error"
DELETED = "deleted"

SETTLED_VOLUME = ("available", "error", "error_deleting", "error_extending")
"""Statuses a volume may be left in once every cast is delivered."""
ARRAYLESS_STATUSES = ("error", "error_deleting")
"""A row in one of these may have no array volume (nothing was made, or
the array volume went while its delete failed)."""
ERROR_STATUS = {"create": "error", "snapshot": "error",
                "extend": "error_extending", "delete": "error_deleting"}
"""The status a failed operation of each kind leaves."""

Arm = Callable[["FaultMatrix", dict], None]


@dataclasses.dataclass(frozen=True)
class Row:
    """One fault on one entry point and what the user must see."""

    name: str
    entry: str
    arm: Arm
    outcome: str
    faulted: tuple[str, ...] = ()
    """Operations that must have met the fault (a non-200 or no answer)."""

    def __str__(self) -> str:
        return "%s: %s" % (self.entry, self.name)


# -- faults -------------------------------------------------------------------


def fail(op: str, code: int, times: int = 1, details_rc: Optional[int] = None,
         http_status: int = 500) -> Arm:
    """The array answers ``op`` with ``code`` ``times`` times."""
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        if details_rc is not None:
            test.sim.faults.fail(op, 0, http_status, times=times,
                                 details_rc=details_rc)
        else:
            test.sim.faults.fail(op, code, http_status, times=times)
    return arm


def drop(op: str, after: bool, times: int = 1) -> Arm:
    """The connection of ``op`` closes before (or after) the array acts."""
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        test.sim.faults.drop(op, times=times, after=after)
    return arm


def both(*arms: Arm) -> Arm:
    """Several faults at once."""
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        for one in arms:
            one(test, ctx)
    return arm


def revoke_tokens() -> Arm:
    """The gateway revokes every token (a restart, a password change)."""
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        test.sim.faults.invalidate_tokens()
    return arm


def unmapped_meanwhile(times: int) -> Arm:
    """The next ``times`` unmaps find the volume unmapped already.

    Something else (a concurrent clean-up, an unmap whose answer was lost)
    unmaps the volume between the driver's check that it is mapped and
    its ``removeMappedSdc``, which the array then refuses with rc 84.
    """
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        client = test.driver._get_client()
        post = client.execute_powerflex_post_request
        left = [times]

        def execute_powerflex_post_request(url: str, *args: Any,
                                           **kwargs: Any) -> Any:
            if left[0] and url.endswith("/action/removeMappedSdc"):
                left[0] -= 1
                # Cinder's client formats the URL itself; ours leaves it
                # to the client (``vol_id``).
                test.sim.array.unmap_volume(
                    kwargs.get("vol_id") or
                    url.split("Volume::")[1].split("/")[0])
            return post(url, *args, **kwargs)
        test.mock_object(client, "execute_powerflex_post_request",
                         side_effect=execute_powerflex_post_request)
    return arm


def remove_behind_cinder(key: str, finished: bool = True) -> Arm:
    """Remove the array volume of ``ctx[key]`` outside Cinder.

    :param finished: the array completed the removal (rc 79 from then
        on); else it is still in deletion (rc 212).
    """
    def arm(test: "FaultMatrix", ctx: dict) -> None:
        test.sim.array.remove_volume(ctx[key].provider_id)
        if finished:
            test.sim.array.finish_removals()
    return arm


# -- the table ----------------------------------------------------------------

SNAP_RC = errors.CAPACITY_TOO_LOW_FOR_SNAP
VTREE_FULL = errors.TOO_MANY_SNAPS_IN_VTREE

ROWS = [
    # The gateway revokes the client's token: the driver logs in again and
    # sends the request once more, instead of failing until the client's
    # five-minute token refresh.
    Row("token revoked", "create", revoke_tokens(), AVAILABLE,
        ("createVolume",)),
    Row("token revoked", "clone_extend", revoke_tokens(), AVAILABLE,
        ("snapshotVolumes",)),
    Row("token revoked", "extend", revoke_tokens(), AVAILABLE,
        ("setVolumeSize",)),
    Row("token revoked", "snapshot", revoke_tokens(), AVAILABLE,
        ("snapshotVolumes",)),
    Row("token revoked", "delete", revoke_tokens(), DELETED),
    Row("token revoked", "image_miss", revoke_tokens(), AVAILABLE),
    # A blank volume.
    Row("createVolume rc 190 (size too large)", "create",
        fail("createVolume", errors.VOL_SIZE_TOO_LARGE), ERROR,
        ("createVolume",)),
    Row("createVolume rc 171 (pool not found)", "create",
        fail("createVolume", errors.STORAGE_POOL_NOT_FOUND), ERROR,
        ("createVolume",)),
    Row("createVolume dropped before the array acts", "create",
        drop("createVolume", after=False), ERROR, ("createVolume",)),
    # The array made the volume but its answer was lost: the driver finds
    # it by the name it gave it and uses it.
    Row("createVolume answer dropped after the array acts", "create",
        drop("createVolume", after=True), AVAILABLE, ("createVolume",)),
    # The array makes the volume only after the client gave up: the create
    # fails, and deleting the volume in error removes the late array volume.
    Row("createVolume times out, the array acts later", "create",
        gateway_faults.slow("createVolume"), ERROR),
    # A clone in the source's pool: one snapshot.
    Row("snapshotVolumes rc 191 (capacity too low)", "clone",
        fail("snapshotVolumes", 0, details_rc=SNAP_RC), ERROR,
        ("snapshotVolumes",)),
    Row("snapshotVolumes rc 182 (vtree full)", "clone",
        fail("snapshotVolumes", 0, details_rc=VTREE_FULL), ERROR,
        ("snapshotVolumes",)),
    Row("snapshotVolumes dropped before the array acts", "clone",
        drop("snapshotVolumes", after=False), ERROR, ("snapshotVolumes",)),
    Row("snapshotVolumes answer dropped after the array acts", "clone",
        drop("snapshotVolumes", after=True), AVAILABLE, ("snapshotVolumes",)),
    Row("snapshotVolumes times out, the array acts later", "clone",
        gateway_faults.slow("snapshotVolumes"), ERROR),
    # A clone that needs an extend: 16 GiB source, 20 requested.
    Row("setVolumeSize rc 190 on every retry", "clone_extend",
        fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE, times=3), ERROR,
        ("setVolumeSize",)),
    Row("setVolumeSize rc 190 once (retried)", "clone_extend",
        fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE), AVAILABLE,
        ("setVolumeSize",)),
    Row("setVolumeSize times out once (retried)", "clone_extend",
        gateway_faults.slow("setVolumeSize"), AVAILABLE),
    Row("setVolumeSize answer dropped after the extend", "clone_extend",
        drop("setVolumeSize", after=True), ERROR, ("setVolumeSize",)),
    Row("setVolumeSize rc 133, then getVolume fails", "clone_extend",
        both(fail("setVolumeSize", errors.VOL_DECREASE_NOT_SUPPORTED,
                  times=3),
             fail("getVolume", errors.VOL_NOT_FOUND)), ERROR,
        ("setVolumeSize", "getVolume")),
    Row("setVolumeSize fails, removeVolume of the clone fails once",
        "clone_extend",
        both(fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE, times=3),
             fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS)), ERROR,
        ("setVolumeSize", "removeVolume")),
    # The half-made clone cannot be removed: the volume in error keeps its
    # array volume, which deleting the volume removes.
    Row("setVolumeSize fails, removeVolume of the clone fails on every retry",
        "clone_extend",
        both(fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE, times=3),
             fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3)),
        ERROR, ("setVolumeSize", "removeVolume")),
    # A snapshot.
    Row("snapshotVolumes rc 191 (capacity too low)", "snapshot",
        fail("snapshotVolumes", 0, details_rc=SNAP_RC), ERROR,
        ("snapshotVolumes",)),
    Row("snapshotVolumes answer dropped after the array acts", "snapshot",
        drop("snapshotVolumes", after=True), AVAILABLE, ("snapshotVolumes",)),
    # A volume from a snapshot.
    Row("snapshotVolumes rc 181 (too many volumes)", "from_snapshot",
        fail("snapshotVolumes", 0, details_rc=errors.TOO_MANY_VOLS_IN_VTREE),
        ERROR, ("snapshotVolumes",)),
    Row("snapshotVolumes dropped before the array acts", "from_snapshot",
        drop("snapshotVolumes", after=False), ERROR, ("snapshotVolumes",)),
    Row("snapshotVolumes answer dropped after the array acts",
        "from_snapshot", drop("snapshotVolumes", after=True), AVAILABLE,
        ("snapshotVolumes",)),
    # extend_volume 16 -> 20 (24 on the array, recorded 24).
    Row("setVolumeSize rc 190 on every retry", "extend",
        fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE, times=3), ERROR,
        ("setVolumeSize",)),
    Row("setVolumeSize times out once (retried)", "extend",
        gateway_faults.slow("setVolumeSize"), AVAILABLE),
    Row("setVolumeSize rc 225 once (retried)", "extend",
        fail("setVolumeSize", errors.VOL_SIZE_ILLEGAL), AVAILABLE,
        ("setVolumeSize",)),
    Row("setVolumeSize answer dropped after the extend", "extend",
        drop("setVolumeSize", after=True), ERROR, ("setVolumeSize",)),
    # delete_volume.
    Row("removeVolume rc 212 on every retry", "delete",
        fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3), ERROR,
        ("removeVolume",)),
    Row("removeVolume rc 212 once (retried)", "delete",
        fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS), DELETED,
        ("removeVolume",)),
    Row("removeVolume dropped before the array acts", "delete",
        drop("removeVolume", after=False), ERROR, ("removeVolume",)),
    Row("removeVolume answer dropped after the removal", "delete",
        drop("removeVolume", after=True), ERROR, ("removeVolume",)),
    Row("getVolume fails before removeVolume", "delete",
        fail("getVolume", errors.NOT_FOUND), DELETED, ("getVolume",)),
    Row("array volume removed out of band (rc 79)", "delete",
        remove_behind_cinder("volume"), DELETED),
    # Cinder's client takes rc 212 for a failure (three attempts); the
    # driver sees the array removing the volume and deletes the record.
    Row("array volume being removed out of band (rc 212)", "delete",
        remove_behind_cinder("volume", finished=False), DELETED,
        ("removeVolume",)),
    # An admin deletes an image-volume cache entry.
    Row("removeVolume rc 212 on every retry", "delete_entry",
        fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3), ERROR,
        ("removeVolume",)),
    Row("removeVolume answer dropped after the removal", "delete_entry",
        drop("removeVolume", after=True), ERROR, ("removeVolume",)),
    # A create from an image not cached yet: a new cache entry.
    Row("createVolume of the cache entry fails", "image_miss",
        fail("createVolume", errors.VOL_SIZE_TOO_LARGE), AVAILABLE,
        ("createVolume",)),
    Row("createVolume fails for the entry and the volume", "image_miss",
        fail("createVolume", errors.VOL_SIZE_TOO_LARGE, times=2), ERROR,
        ("createVolume",)),
    Row("addMappedSdc rc 80 mapping the new entry", "image_miss",
        fail("addMappedSdc", errors.INI_NOT_FOUND), AVAILABLE,
        ("addMappedSdc",)),
    Row("addMappedSdc answer dropped after mapping the entry", "image_miss",
        drop("addMappedSdc", after=True), AVAILABLE, ("addMappedSdc",)),
    Row("addMappedSdc fails, removeVolume of the half-made entry fails",
        "image_miss",
        both(fail("addMappedSdc", errors.INI_NOT_FOUND),
             fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3)),
        AVAILABLE, ("addMappedSdc", "removeVolume")),
    Row("removeMappedSdc rc 84 detaching the entry", "image_miss",
        fail("removeMappedSdc", errors.VOL_NOT_MAPPED_TO_INI), AVAILABLE,
        ("removeMappedSdc",)),
    Row("removeMappedSdc rc 84 on detach and during clean-up", "image_miss",
        fail("removeMappedSdc", errors.VOL_NOT_MAPPED_TO_INI, times=3),
        AVAILABLE, ("removeMappedSdc",)),
    Row("snapshotVolumes fails cloning the new entry", "image_miss",
        fail("snapshotVolumes", 0, details_rc=SNAP_RC), AVAILABLE,
        ("snapshotVolumes",)),
    # A create from an image with a cache entry.
    Row("snapshotVolumes rc 182 mid-run (rotation)", "image_hit",
        fail("snapshotVolumes", 0, details_rc=VTREE_FULL), AVAILABLE,
        ("snapshotVolumes",)),
    Row("snapshotVolumes rc 182, again on the new entry", "image_hit",
        fail("snapshotVolumes", 0, details_rc=VTREE_FULL, times=2),
        AVAILABLE, ("snapshotVolumes",)),
    Row("snapshotVolumes rc 191 once", "image_hit",
        fail("snapshotVolumes", 0, details_rc=SNAP_RC), AVAILABLE,
        ("snapshotVolumes",)),
    Row("snapshotVolumes answer dropped after the array acts", "image_hit",
        drop("snapshotVolumes", after=True), AVAILABLE, ("snapshotVolumes",)),
    # The entry's array volume went behind Cinder's back: the entry is
    # evicted and the image downloaded into a new one.
    Row("cache entry removed out of band (rc 79)", "image_hit",
        remove_behind_cinder("entry"), AVAILABLE, ("snapshotVolumes",)),
    Row("cache entry being removed out of band (rc 212)", "image_hit",
        remove_behind_cinder("entry", finished=False), AVAILABLE,
        ("snapshotVolumes",)),
    # The entry's vtree is full: it is copied into a new cache volume.
    Row("createVolume of the new cache volume fails", "rotation",
        fail("createVolume", errors.VOL_SIZE_TOO_LARGE), AVAILABLE,
        ("createVolume",)),
    Row("addMappedSdc rc 80 mapping the full entry", "rotation",
        fail("addMappedSdc", errors.INI_NOT_FOUND), AVAILABLE,
        ("addMappedSdc",)),
    Row("addMappedSdc times out mapping the full entry", "rotation",
        gateway_faults.slow("addMappedSdc"), AVAILABLE),
    # "Not mapped" is believed: nothing unmaps it again.
    Row("removeMappedSdc rc 84 after the copy: unmapped meanwhile",
        "rotation", unmapped_meanwhile(times=1), AVAILABLE,
        ("removeMappedSdc",)),
    Row("removeVolume of the replaced entry fails", "rotation",
        fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3),
        AVAILABLE, ("removeVolume",)),
    # A transient error on the full entry: Cinder's own path would clone it
    # again, meet the full vtree and download the image.
    Row("snapshotVolumes 500 once on the full entry", "rotation",
        fail("snapshotVolumes", 500), AVAILABLE, ("snapshotVolumes",)),
    # A clone into another pool: a copy through this host.
    Row("addMappedSdc rc 80", "cross_pool",
        fail("addMappedSdc", errors.INI_NOT_FOUND), ERROR,
        ("addMappedSdc",)),
    # The source is mapped but the answer is lost: unmapped again.
    Row("addMappedSdc answer dropped after mapping the source",
        "cross_pool", drop("addMappedSdc", after=True), ERROR,
        ("addMappedSdc",)),
    Row("createVolume rc 99 (name in use)", "cross_pool",
        fail("createVolume", errors.VOL_NAME_IN_USE), ERROR,
        ("createVolume",)),
    Row("createVolume answer dropped after the array acts", "cross_pool",
        drop("createVolume", after=True), AVAILABLE, ("createVolume",)),
    # The volumes are unmapped already (rc 84): the copy is done.
    Row("removeMappedSdc rc 84 after the copy: unmapped meanwhile",
        "cross_pool", unmapped_meanwhile(times=2), AVAILABLE,
        ("removeMappedSdc",)),
    Row("addMappedSdc rc 80, removeVolume of the copy fails on every retry",
        "cross_pool",
        both(fail("addMappedSdc", errors.INI_NOT_FOUND),
             fail("removeVolume", errors.VOL_REMOVE_IN_PROGRESS, times=3)),
        ERROR, ("addMappedSdc", "removeVolume")),
]


class FaultMatrix(driver_testcases.OurDriverTestCase):
    """One test per row of :data:`ROWS`."""

    BACKEND_OPTIONS = inprocess_cinder.TWO_POOLS
    SIMULATOR_OPTIONS = {"removal_seconds": REMOVAL_SECONDS}

    def setUp(self) -> None:
        super().setUp()
        # cinder.utils.retry waits 1 s, then 2 s, between attempts.
        self.retry_waits = []
        self.patch("tenacity.nap.sleep", side_effect=self.retry_waits.append)
        self.set_project_quota("volumes", 50)
        self.set_project_quota("snapshots", 50)
        self.baseline = {project: self.quota_usage(project) for project in
                         (inprocess_cinder.PROJECT_ID,
                          inprocess_cinder.INTERNAL_PROJECT_ID)}
        self.assertEqual({}, self.sim.array.volumes)

    # -- helpers ------------------------------------------------------------

    def fill_vtree(self, volume: Any) -> None:
        """Make the array refuse the next snapshot in ``volume``'s vtree."""
        array = self.sim.array
        self.addCleanup(setattr, array, "snapshot_limit",
                        array.snapshot_limit)
        array.snapshot_limit = array.snapshot_count(
            self.array_volume(volume.provider_id).vtree_id)

    def _image(self, ctx: dict) -> str:
        meta, image = self.make_image("img", IMAGE_SIZE, PIECES, "img")
        ctx["image"] = image
        return meta["id"]

    # -- entry points: prepare, then act (returns the status seen) ---------

    def prepare(self, entry: str) -> dict:
        """Make what the entry point acts on, before any fault."""
        ctx: dict = {}
        if entry in ("clone", "clone_extend", "snapshot", "from_snapshot",
                     "extend", "delete", "cross_pool"):
            ctx["volume"] = self.create_volume(10)[0]
        if entry == "from_snapshot":
            ctx["snapshot"] = self.create_snapshot(ctx["volume"])[0]
        if entry in ("image_miss", "image_hit", "rotation", "delete_entry"):
            ctx["image_id"] = self._image(ctx)
        if entry in ("image_hit", "rotation", "delete_entry"):
            self.create_volume(1, image_id=ctx["image_id"])
            ctx["entry"] = self.cache_volume(ctx["image_id"])
        if entry == "rotation":
            self.fill_vtree(ctx["entry"])
        return ctx

    def act(self, entry: str, ctx: dict) -> str:
        """Run the entry point as a user; return the status seen."""
        if entry == "create":
            return self._created(self.create_volume(10, expect_status=None))
        if entry == "clone":
            return self._created(self.create_volume(
                16, source_volume=ctx["volume"], expect_status=None))
        if entry == "clone_extend":
            return self._created(self.create_volume(
                20, source_volume=ctx["volume"], expect_status=None))
        if entry == "cross_pool":
            return self._created(self.create_volume(
                16, source_volume=ctx["volume"], pool=OTHER_POOL,
                expect_status=None))
        if entry == "from_snapshot":
            return self._created(self.create_volume(
                16, snapshot=ctx["snapshot"], expect_status=None))
        if entry in ("image_miss", "image_hit", "rotation"):
            return self._created(self.create_volume(
                1, image_id=ctx["image_id"], expect_status=None))
        if entry == "delete_entry":
            entry_volume = objects.Volume.get_by_id(self.admin_ctx,
                                                    ctx["entry"].id)
            self.api.delete(self.admin_ctx, entry_volume)
            self._deliver()
            try:
                return objects.Volume.get_by_id(self.admin_ctx,
                                                entry_volume.id).status
            except exception.VolumeNotFound:
                return DELETED
        volume = objects.Volume.get_by_id(self.user_ctx, ctx["volume"].id)
        if entry == "snapshot":
            snapshot = self.api.create_snapshot(
                self.user_ctx, volume, "snap-%s" % uuid.uuid4().hex[:8],
                None)
            self._deliver()
            snapshot = objects.Snapshot.get_by_id(self.admin_ctx,
                                                  snapshot.id)
            ctx["made"] = snapshot
            return snapshot.status
        if entry == "extend":
            self.api.extend(self.user_ctx, volume, 20)
            self._deliver()
            volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
            if volume.status == "available":
                # Recorded at the array size (this package's manager).
                self.assertEqual(24, volume.size)
                self.assertEqual(24, self.array_size_gib(volume))
                self.assert_no_quota_drift()
            return volume.status
        if entry == "delete":
            self.api.delete(self.user_ctx, volume)
            self._deliver()
            try:
                return objects.Volume.get_by_id(self.admin_ctx,
                                                volume.id).status
            except exception.VolumeNotFound:
                return DELETED
        raise AssertionError("unknown entry point %s" % entry)

    def _created(self, made: tuple[Any, Any]) -> str:
        volume, _unused = made
        if volume.status == "available":
            # What the user got is usable: its array volume is there and
            # records what the array holds.
            self.assertIn(volume.provider_id, self.sim.array.volumes)
            self.assertGreaterEqual(volume.size,
                                    self.array_size_gib(volume))
            if "image" in self._ctx:
                self.assert_volume_content(volume, self._ctx["image"])
        return volume.status

    # -- invariants ---------------------------------------------------------

    def assert_settled(self) -> None:
        """No volume or snapshot is left in a transient status."""
        stuck = {v.id: v.status for v in
                 objects.VolumeList.get_all(self.admin_ctx)
                 if v.status not in SETTLED_VOLUME}
        stuck.update({s.id: s.status for s in
                      objects.SnapshotList.get_all(self.admin_ctx, {})
                      if s.status not in ("available", "error")})
        self.assertEqual({}, stuck, "volumes or snapshots left in a "
                         "transient status")

    def assert_array_consistent(self) -> None:
        """Cinder's records and the array agree.

        Laxer than :meth:`assert_array_matches_db`: a row in error (or
        error_deleting) may have no array volume, since nothing was made or
        the array volume went while its delete failed; deleting it again
        must then succeed (checked at the end). But:

        * every array volume belongs to a volume or snapshot row (no leak,
          also not a row that Cinder deleted): the row's ``provider_id``
          names it or, for a row in error without one (a create whose
          answer the client gave up waiting for, made by the array late),
          the array volume has the row's array name, by which deleting the
          row removes it;
        * no array volume belongs to two rows (deleting one would pull it
          from under the other);
        * every other row has its array volume.
        """
        rows = list(objects.VolumeList.get_all(self.admin_ctx))
        rows += list(objects.SnapshotList.get_all(self.admin_ctx, {}))
        array = set(self.sim.array.volumes)
        owners = collections.Counter(r.provider_id for r in rows
                                     if r.provider_id)
        self.assertEqual({}, {pid: n for pid, n in owners.items() if n > 1},
                         "array volumes of more than one row")
        late = {lost_answer.array_name(r.id) for r in rows
                if not r.provider_id and r.status == "error"}
        leaked = {pid: self.sim.array.volumes[pid].name
                  for pid in array - set(owners)
                  if self.sim.array.volumes[pid].name not in late}
        self.assertEqual({}, leaked, "array volumes no row knows of")
        missing = {r.id: (r.status, r.provider_id) for r in rows
                   if r.provider_id not in array and
                   r.status not in ARRAYLESS_STATUSES}
        self.assertEqual({}, missing, "rows without their array volume")

    def assert_cache_entries_usable(self) -> None:
        """Every cache entry names a usable internal-tenant volume."""
        array = self.sim.array.volumes
        for entry in self.cache_entries():
            try:
                volume = objects.Volume.get_by_id(self.admin_ctx,
                                                  entry["volume_id"])
            except exception.VolumeNotFound:
                self.fail("cache entry %s names a deleted volume" % entry)
            self.assertEqual(inprocess_cinder.INTERNAL_PROJECT_ID,
                             volume.project_id)
            self.assertEqual("available", volume.status,
                             "cache volume %s" % volume.id)
            self.assertIn(volume.provider_id, array,
                          "cache volume %s has no array volume" % volume.id)

    def assert_nothing_mapped(self) -> None:
        """No array volume is mapped, no device left in by-id."""
        mapped = {vid: list(v.mappings) for vid, v in
                  self.sim.array.volumes.items() if v.mappings}
        self.assertEqual({}, mapped, "array volumes left mapped")
        self.assertEqual([], os.listdir(self.sim.by_id_dir))

    def assert_invariants(self) -> None:
        """Everything that must hold after any fault."""
        self.assert_settled()
        self.assert_array_consistent()
        self.assert_cache_entries_usable()
        self.assert_no_quota_drift()
        self.assert_nothing_mapped()

    def delete_everything(self) -> None:
        """Delete every snapshot and volume through the API, as an admin.

        Volumes in error are deleted like any other; one left in
        error_deleting needs ``force`` (the admin's ``os-force_delete``).
        """
        for snapshot in objects.SnapshotList.get_all(self.admin_ctx, {}):
            self.api.delete_snapshot(self.admin_ctx, snapshot)
            self._deliver()
        # The user's volumes first: cache volumes are their vtree bases.
        volumes = sorted(objects.VolumeList.get_all(self.admin_ctx),
                         key=lambda v: v.project_id ==
                         inprocess_cinder.INTERNAL_PROJECT_ID)
        for volume in volumes:
            volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
            self.api.delete(self.admin_ctx, volume,
                            force=volume.status == "error_deleting")
            self._deliver()
        left = {v.id: v.status for v in
                objects.VolumeList.get_all(self.admin_ctx)}
        self.assertEqual({}, left, "volumes Cinder could not delete")
        self.assertEqual([], list(objects.SnapshotList.get_all(
            self.admin_ctx, {})))
        self.assertEqual([], self.cache_entries())
        self.assertEqual({}, self.sim.array.volumes)
        for project, usage in self.baseline.items():
            self.assertEqual(usage, self.quota_usage(project),
                             "usage of project %s" % project)
        self.assert_no_quota_drift()
        self.assert_nothing_mapped()

    def _wait_for_delayed(self, op: str, mark: int) -> None:
        """Wait until the array has acted on the request the client left.

        The client gave up waiting; the simulator answers (and acts) when
        the delay is over, and logs the request then.
        """
        deadline = time.monotonic() + gateway_faults.SLOW * 5
        while not [c for c in self.sim.calls[mark:]
                   if c.op == op and c.duration >= gateway_faults.SLOW]:
            self.assertLess(time.monotonic(), deadline,
                            "the delayed %s never finished" % op)
            time.sleep(0.05)

    # -- one row ------------------------------------------------------------

    def check(self, row: Row) -> None:
        """Run one row: prepare, arm, act, then the invariants."""
        older, reason = OLD_RELEASE_ROWS.get(row.name, (False, ""))
        if older:
            self.skipTest(reason)
        self._ctx = ctx = self.prepare(row.entry)
        self.assertEqual([], self.casts.failures)
        mark = len(self.sim.calls)
        row.arm(self, ctx)
        status = self.act(row.entry, ctx)
        if "slow" in ctx:
            self._wait_for_delayed(ctx["slow"], mark)
        calls = self.sim.calls[mark:]

        kind = {"snapshot": "snapshot", "extend": "extend",
                "delete": "delete",
                "delete_entry": "delete"}.get(row.entry, "create")
        expected = {AVAILABLE: "available", DELETED: DELETED,
                    ERROR: ERROR_STATUS[kind]}[row.outcome]
        self.assertEqual(expected, status, "%s ended %s" % (row, status))
        # The fault was met: every rule consumed, and each faulted
        # operation got an error or no answer.
        self.assertEqual(0, self.sim.faults.pending(), "fault never met")
        for op in row.faulted:
            self.assertIn(op, [c.op for c in calls
                               if c.status != 200], "%s not faulted" % op)
        self.assert_invariants()
        self.delete_everything()


def _add_rows() -> None:
    seen: set[str] = set()
    for row in ROWS:
        name = driver_testcases.row_test_name(row.entry, row.name, seen)

        def test(self: FaultMatrix, row: Row = row) -> None:
            self.check(row)
        test.__name__ = name
        test.__doc__ = str(row)
        setattr(FaultMatrix, name, test)


_add_rows()
