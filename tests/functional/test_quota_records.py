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
"""Quota usage equals the records through migrations and group clones.

Design, size policy rule 3: each project's usage equals the sum of the
sizes of its volumes Cinder counts (``use_quota`` True), at every moment.
Two of Cinder's flows around the driver are run here whole:

* a host-assisted migration (``cinder migrate --force-host-copy``) of a
  volume recorded at 20 GiB that holds 24 on the array (extended by an
  older release, which recorded the size asked for):
  Cinder makes the destination as a temporary volume (``use_quota``
  False), copies, and at completion swaps the records; the copy fails in
  one test, succeeds in the other (issue 20 item 6);
* a consistency group cloned from another whose second clone the array
  refuses (issue 20 item 7);
* creates from an image-volume cache entry, as the benchmark's size sweep
  makes them, one of whose clones the array refuses twice.

Cinder's RPC between its services ends in the one volume manager:
:class:`ManagerRPC` delivers what the volume manager sends to itself (the
destination of a migration is another pool of the same backend), and the
scheduler's and group API's casts go through the test's cast queue.
"""

import logging
from typing import Any, Optional

from cinder.db import api as db_api
from cinder.group import api as group_api
from cinder.message import message_field
from cinder import objects
from cinder.volume import group_types
from cinder.volume import volume_types
import fixtures
from oslo_utils import units

from powerflex_cache_driver.simulator import errors
from tools.beds import driver_testcases
from tools.beds import fake_rpc
from tools.beds import inprocess_cinder

TARGET_POOL = inprocess_cinder.SECOND_POOL


class ManagerRPC:
    """The volume RPC calls a migration makes, delivered to one manager.

    Calls run at once, as the caller waits for them; casts are queued in
    the test's cast queue, except the create of the destination, which
    Cinder waits for by polling the database (delivered at once too).
    """

    METHODS = ("create_volume", "delete_volume", "initialize_connection",
               "terminate_connection", "remove_export", "get_capabilities",
               "update_migrated_volume")

    def __init__(self, test: Any) -> None:
        self.test = test

    def install(self) -> None:
        """Patch Cinder's volume RPC API with this object's methods."""
        for name in self.METHODS:
            self.test.patch("cinder.volume.rpcapi.VolumeAPI.%s" % name,
                            side_effect=getattr(self, name))

    @property
    def manager(self) -> Any:
        return self.test.manager

    def create_volume(self, ctxt: Any, volume: Any, request_spec: Any,
                      filter_properties: Any,
                      allow_reschedule: bool = True) -> None:
        self.test.casts.cast("create_volume", self.manager.create_volume,
                             ctxt, volume=volume, request_spec=request_spec,
                             filter_properties=filter_properties,
                             allow_reschedule=allow_reschedule)
        self.test.casts.drain()

    def delete_volume(self, ctxt: Any, volume: Any,
                      unmanage_only: bool = False,
                      cascade: bool = False) -> None:
        self.test.casts.cast("delete_volume", self.manager.delete_volume,
                             ctxt, volume=volume,
                             unmanage_only=unmanage_only, cascade=cascade)

    def initialize_connection(self, ctxt: Any, volume: Any,
                              connector: dict) -> dict:
        return self.manager.initialize_connection(ctxt, volume, connector)

    def terminate_connection(self, ctxt: Any, volume: Any, connector: dict,
                             force: bool = False) -> None:
        return self.manager.terminate_connection(ctxt, volume.id, connector,
                                                 force=force)

    def remove_export(self, ctxt: Any, volume: Any,
                      sync: bool = False) -> None:
        return self.manager.remove_export(ctxt, volume.id)

    def get_capabilities(self, ctxt: Any, backend_id: str,
                         discover: bool) -> dict:
        # Sparse, so that dd does not write the zeros (as in test_sizes).
        return {"sparse_copy_volume": True}

    def update_migrated_volume(self, ctxt: Any, volume: Any,
                               new_volume: Any,
                               original_volume_status: str) -> None:
        return self.manager.update_migrated_volume(
            ctxt, volume, new_volume, original_volume_status)


class MigrationScenario:
    """Issue 20 item 6: a host-assisted migration into another pool."""

    BACKEND_OPTIONS = inprocess_cinder.TWO_POOLS

    def setUp(self) -> None:
        super().setUp()
        ManagerRPC(self).install()
        self.scheduler.migrate_volume = self._schedule_migration

    def _schedule_migration(self, ctxt: Any, volume: Any, backend: str,
                            force_copy: bool = False,
                            request_spec: Optional[dict] = None,
                            filter_properties: Optional[dict] = None
                            ) -> None:
        """The scheduler accepts the requested backend and casts."""
        host = {"host": backend, "cluster_name": None, "capabilities": {}}
        self.casts.cast("migrate_volume", self.manager.migrate_volume, ctxt,
                        volume=volume, host=host,
                        force_host_copy=force_copy, new_type_id=None)

    def _grown_volume(self) -> Any:
        """A volume recorded at 20 GiB, 24 on the array (extended).

        As an older release left it (see
        ``extend_volume_recording_request``).
        """
        volume, _unused = self.create_volume(16)
        volume, _unused = self.extend_volume_recording_request(volume, 20)
        self.assertEqual(24, self.array_size_gib(volume))
        self.assertEqual(20, self.quota_usage()["gigabytes"])
        return volume

    def _migrate(self, volume: Any) -> Any:
        """``cinder migrate --force-host-copy`` to the other pool."""
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.api.migrate_volume(self.admin_ctx, volume,
                                self.pool_host(TARGET_POOL), None,
                                force_copy=True, lock_volume=False)
        self.casts.drain()
        return objects.Volume.get_by_id(self.admin_ctx, volume.id)

    def _usage_and_records(self) -> tuple[int, int]:
        return (self.quota_usage()["gigabytes"],
                self.db_usage()["gigabytes"])

    def test_failed_migration_leaves_usage_at_the_records(self) -> None:
        """Issue 20 item 6: a failed migration charges nothing.

        The destination (a temporary volume: 24 GiB on the array for the
        20 Cinder asked) is deleted by Cinder, which gives nothing back
        for it; the project stays charged what it records, and nothing
        once the volume is deleted. (The migration is refused before the
        copy: see the next test.)
        """
        volume = self._grown_volume()
        volume = self._migrate(volume)
        self.assertEqual(("available", "error"),
                         (volume.status, volume.migration_status))
        self.assertEqual(["migrate_volume"],
                         [name for name, _exc in self.casts.failures])
        self.assertEqual([volume.id],
                         [v.id for v in
                          objects.VolumeList.get_all(self.admin_ctx)])
        self.assertEqual((20, 20), self._usage_and_records())
        self.assert_no_quota_drift()
        self.assert_array_matches_db()
        self.delete_volume(volume)
        self.assertEqual((0, 0), self._usage_and_records())
        self.assert_array_matches_db()

    def test_copy_that_would_lose_the_tail_is_refused(self) -> None:
        """A migration copies the recorded size: refused below the array.

        Cinder's host-assisted copy copies the 20 GiB the volume records,
        not the 24 the guest sees: data written at 22 GiB came out as
        zeros. The migration is now refused before the copy with the fix
        in the message; after an extend to 24 GiB (no array request) it
        copies everything.
        """
        volume = self._grown_volume()
        tail = b"written by the guest at 22 GiB"
        self._write(volume, 22 * units.Gi, tail)
        log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        volume = self._migrate(volume)
        self.assertEqual(("available", "error", self.pool_host()),
                         (volume.status, volume.migration_status,
                          volume.host))
        self.assertIn("Extend the volume to 24 GiB first", log.output)
        self.assertEqual(tail, self._read(volume, 22 * units.Gi, len(tail)))
        self.assertEqual((20, 20), self._usage_and_records())

        volume, recorded = self.extend_volume(volume, 24)
        self.assertEqual([], recorded.extends)
        self.casts.failures.clear()
        volume = self._migrate(volume)
        self.assertEqual([], self.casts.failures)
        self.assertEqual(("available", "success", 24,
                          self.pool_host(TARGET_POOL)),
                         (volume.status, volume.migration_status,
                          volume.size, volume.host))
        self.assertEqual(tail, self._read(volume, 22 * units.Gi, len(tail)))
        self.assertEqual((24, 24), self._usage_and_records())
        self.assert_no_quota_drift()
        self.assert_sizes_cover_array()
        self.assert_array_matches_db()
        self.delete_volume(volume)
        self.assertEqual((0, 0), self._usage_and_records())

    def _write(self, volume: Any, offset: int, data: bytes) -> None:
        """Write on the array volume, as the guest would."""
        path = self.array_volume(volume.provider_id).backing_path
        with open(path, "r+b") as disk:
            disk.seek(offset)
            disk.write(data)

    def _read(self, volume: Any, offset: int, length: int) -> bytes:
        path = self.array_volume(volume.provider_id).backing_path
        with open(path, "rb") as disk:
            disk.seek(offset)
            return disk.read(length)


class TestMigrationQuotaOurs(MigrationScenario,
                             driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class GroupRPC:
    """The scheduler's and volume service's group casts, to one manager."""

    def __init__(self, test: Any) -> None:
        self.test = test

    def create_group(self, ctxt: Any, group: Any, *args: Any,
                     **kwargs: Any) -> None:
        """The scheduler places the group in the backend's first pool."""
        group.host = self.test.pool_host()
        group.save()
        self.test.casts.cast("create_group", self.test.manager.create_group,
                             ctxt, group=group)

    def validate_host_capacity(self, ctxt: Any, backend: str,
                               request_spec: Any) -> bool:
        """The scheduler finds room in the source group's backend."""
        return True

    def create_group_from_src(self, ctxt: Any, group: Any,
                              group_snapshot: Any = None,
                              source_group: Any = None) -> None:
        self.test.casts.cast("create_group_from_src",
                             self.test.manager.create_group_from_src, ctxt,
                             group=group, group_snapshot=group_snapshot,
                             source_group=source_group)

    def delete_group(self, ctxt: Any, group: Any) -> None:
        self.test.casts.cast("delete_group", self.test.manager.delete_group,
                             ctxt, group=group)


class GroupCloneScenario:
    """Issue 20 item 7: a consistency group cloned from another."""

    def setUp(self) -> None:
        super().setUp()
        self.groups = group_api.API()
        rpc = GroupRPC(self)
        self.groups.scheduler_rpcapi = rpc
        self.groups.volume_rpcapi = rpc
        self.group_type = group_types.create(
            self.admin_ctx, "consistent",
            {"consistent_group_snapshot_enabled": "<is> True"})
        self.volume_type = volume_types.get_default_volume_type()

    def _source_group(self) -> Any:
        """A group of a 20 GiB volume (24 on the array) and a 16 GiB one."""
        group = self.groups.create(self.user_ctx, "source", None,
                                   self.group_type["id"],
                                   [self.volume_type["id"]])
        self.casts.drain()
        for size in (16, 16):
            self.api.create(self.user_ctx, size, None, None, group=group,
                            volume_type=objects.VolumeType.get_by_id(
                                self.admin_ctx, self.volume_type["id"]))
        self.casts.drain()
        first = self._volumes_of(group)[0]
        self.extend_volume_recording_request(first, 20)
        self.assertEqual(
            [(20, 24), (16, 16)],
            [(v.size, self.array_size_gib(v))
             for v in self._volumes_of(group)])
        return objects.Group.get_by_id(self.admin_ctx, group.id)

    def _volumes_of(self, group: Any) -> list:
        volumes = objects.VolumeList.get_all_by_generic_group(
            self.admin_ctx, group.id)
        return sorted(volumes, key=lambda v: (v.created_at, -v.size))

    def _fail_second_clone(self) -> None:
        """The array refuses the group's second snapshot (rc 191)."""
        client = self.driver._get_client()
        snapshot_volume = client.snapshot_volume

        def first_then_fail(*args: Any, **kwargs: Any) -> Any:
            result = snapshot_volume(*args, **kwargs)
            self.sim.faults.fail("snapshotVolumes", 0, details_rc=errors.
                                 CAPACITY_TOO_LOW_FOR_SNAP)
            return result
        self.mock_object(client, "snapshot_volume",
                         side_effect=first_then_fail)

    def _usage_and_records(self) -> tuple[int, int]:
        return (self.quota_usage()["gigabytes"],
                self.db_usage()["gigabytes"])

    def test_failed_clone_leaves_nothing_half_made(self) -> None:
        """Issue 20 item 7: the first clone is undone with the second.

        Before: the 24 GiB clone of the first volume stayed on the array
        without a record and its project charged 4 GiB more (usage 76,
        records 72) until the volumes in error were deleted.
        """
        source = self._source_group()
        array_volumes = set(self.sim.array.volumes)
        self._fail_second_clone()
        clone = self.groups.create_from_src(self.user_ctx, "clone",
                                            source_group_id=source.id)
        self.casts.drain()
        self.assertEqual(["create_group_from_src"],
                         [name for name, _exc in self.casts.failures])
        self.assertEqual(0, self.sim.faults.pending(), "fault never met")
        clone = objects.Group.get_by_id(self.admin_ctx, clone.id)
        volumes = self._volumes_of(clone)
        self.assertEqual("error", clone.status)
        self.assertEqual([("error", None, 20), ("error", None, 16)],
                         [(v.status, v.provider_id, v.size)
                          for v in volumes])
        # Array volumes made and left; usage and records (GiB).
        self.assertEqual((set(), 72, 72),
                         (set(self.sim.array.volumes) - array_volumes,
                          *self._usage_and_records()))
        self.assert_array_matches_db()
        self.assert_no_quota_drift()

        for group in (clone, source):
            self.groups.delete(self.user_ctx, group, delete_volumes=True)
            self.casts.drain()
        self.assertEqual([], [v.id for v in
                              objects.VolumeList.get_all(self.admin_ctx)])
        self.assertEqual((0, 0), self._usage_and_records())
        self.assertEqual({}, self.sim.array.volumes)

    def test_clone_of_the_group_charges_the_array_sizes(self) -> None:
        """Issue 20 item 7: without a fault, every clone as before."""
        source = self._source_group()
        clone = self.groups.create_from_src(self.user_ctx, "clone",
                                            source_group_id=source.id)
        self.casts.drain()
        self.assertEqual([], self.casts.failures)
        volumes = self._volumes_of(
            objects.Group.get_by_id(self.admin_ctx, clone.id))
        self.assertEqual([("available", 24, 24), ("available", 16, 16)],
                         [(v.status, v.size, self.array_size_gib(v))
                          for v in volumes])
        self.assertEqual((76, 76), self._usage_and_records())
        self.assert_no_quota_drift()
        self.assert_array_matches_db()


class TestGroupCloneOurs(GroupCloneScenario,
                         driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class CacheHitScenario:
    """Cache hits of several sizes: each charged its record, once."""

    def _image(self) -> dict:
        """A 1 GiB image, cached in an 8 GiB entry by a first create."""
        meta, _image = self.make_image("small", units.Gi,
                                       [(0, units.Mi)], "small")
        first, _unused = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(8, first.size)
        return meta

    def _create(self, size: int, image_id: str) -> Any:
        """A create whose record the usage grows by exactly."""
        before = self.quota_usage()["gigabytes"]
        volume, _unused = self.create_volume(size, image_id=image_id)
        self.assertEqual(before + volume.size,
                         self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()
        return volume

    def test_cache_hits_charge_what_they_record(self) -> None:
        meta = self._image()
        volumes = [self._create(size, meta["id"])
                   for size in (8, 9, 16, 17)]
        self.assertEqual([8, 16, 16, 24], [v.size for v in volumes])
        self.assertEqual(1, len(self.cache_entries(meta["id"])))
        for volume in volumes:
            self.delete_volume(volume)
        self.assertEqual(8, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()

    def test_clone_refused_twice_is_charged_once(self) -> None:
        """The array refuses the entry's snapshot twice: the image is copied.

        Each refused clone gives its rounding back; the volume the image
        is copied into is charged its record.
        """
        meta = self._image()
        self.sim.faults.fail("snapshotVolumes", 0, times=2)
        volume = self._create(9, meta["id"])
        self.assertEqual(0, self.sim.faults.pending())
        self.assertEqual(16, volume.size)
        self.delete_volume(volume)
        self.assertEqual(8, self.quota_usage()["gigabytes"])


class TestCacheHitQuotaOurs(CacheHitScenario,
                            driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class TestRoundingRefusalNotRescheduled(driver_testcases.OurDriverTestCase):
    """Issue 21: a create refused for the rounding's quota, once.

    Quota has room for the 1 GiB asked, not for the 8 GiB the array
    holds. Every service of the backend would refuse it the same: the
    create is not rescheduled, the volume ends ``error`` with Cinder's
    "Not enough quota resource for operation" user message.
    """

    def setUp(self) -> None:
        super().setUp()
        second = inprocess_cinder.start_volume_manager(
            self.admin_ctx,
            "cinder-functional-2@%s" % inprocess_cinder.BACKEND)
        self.elsewhere = fake_rpc.reschedule_to(self, second,
                                                inprocess_cinder.POOL)
        self.driver_creates = self.spy(self.manager.driver, "create_volume")
        self.second_creates = self.spy(second.driver, "create_volume")

    def _messages(self, volume: Any) -> list[tuple[str, str]]:
        """The user messages about ``volume``: (action, detail) ids."""
        return sorted((m["action_id"], m["detail_id"])
                      for m in db_api.message_get_all(
                          self.admin_ctx,
                          filters={"resource_uuid": volume.id}))

    def test_refused_once_and_told_why(self) -> None:
        before = self.quota_usage()
        self.set_project_quota("gigabytes", before["gigabytes"] + 3)
        array_volumes = set(self.sim.array.volumes)

        volume, recorded = self.create_volume(1, expect_status=None)

        self.assertEqual("error", volume.status)
        self.assertEqual(self.manager.host + "#" + inprocess_cinder.POOL,
                         volume.host)
        self.assertEqual(0, self.elsewhere.creates, "rescheduled")
        self.assertEqual((1, 0), (len(self.driver_creates),
                                  len(self.second_creates)))
        # One message, the quota's: not Cinder's "Driver failed to create
        # the volume", nor "No valid backend" after reschedules.
        action = message_field.Action.CREATE_VOLUME_FROM_BACKEND[0]
        self.assertEqual([(action, message_field.Detail.QUOTA_EXCEED[0])],
                         self._messages(volume))
        self.assertEqual(array_volumes, set(self.sim.array.volumes))
        self.assertEqual(0, recorded.counts()["createVolume"])
        # Cinder's API charged the 1 GiB asked; nothing more, nothing left
        # reserved (quota_usage asserts that).
        self.assertEqual(before["gigabytes"] + 1,
                         self.quota_usage()["gigabytes"])

    def test_a_kept_array_volume_is_not_rescheduled(self) -> None:
        """The clean-up of a failed clone could not remove its volume.

        The volume ends error naming it, on this service: a reschedule
        would overwrite provider_id and leave the array volume to nobody.
        Its delete removes it.
        """
        source, _unused = self.create_volume(8)
        before = set(self.sim.array.volumes)
        self.sim.faults.fail("setVolumeSize", 0, times=None)
        self.sim.faults.fail("removeVolume", 0, times=None)

        volume, _unused = self.create_volume(16, source_volume=source,
                                             expect_status=None)

        self.assertEqual(0, self.elsewhere.creates, "rescheduled")
        self.assertEqual("error", volume.status)
        kept = set(self.sim.array.volumes) - before
        self.assertEqual({volume.provider_id}, kept)
        self.sim.faults.clear()
        self.delete_volume(volume)
        self.assertEqual(before, set(self.sim.array.volumes))

    def test_an_array_failure_is_still_rescheduled(self) -> None:
        """The change is for quota only: Cinder's reschedule otherwise."""
        self.sim.faults.fail("createVolume", 190)

        volume, _unused = self.create_volume(16, expect_status=None)

        self.assertEqual(1, self.elsewhere.creates)
        self.assertEqual("available", volume.status)
        action = message_field.Action.CREATE_VOLUME_FROM_BACKEND[0]
        self.assertNotIn((action, message_field.Detail.QUOTA_EXCEED[0]),
                         self._messages(volume))
