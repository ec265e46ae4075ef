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
"""Scenario 6: many volumes from one image, and full vtrees.

A vtree holds at most 126 snapshots. The first volume made from an image
is the base of a vtree and the image-volume cache entry is its first
snapshot, so the 127th volume finds the vtree full.

* Cinder (stock driver): the clone fails with ``SnapshotLimitReached``,
  Cinder deletes the cache entry and re-raises; ``_create_from_image`` is
  decorated ``@utils.retry(SnapshotLimitReached, retries=1)``, which is one
  attempt in all, so that create FAILS. The next create downloads the
  image again and starts a new vtree. Counted below: 300 creates give 2
  failed volumes and 3 downloads.
* Ours: the image is downloaded once into a cache volume (8 GiB, the base
  of the first vtree, every volume a snapshot of it); when its vtree is
  full the cache volume is copied through this host, all of its 8 GiB
  array volume, into a new volume (a new vtree) that replaces it, and the
  clone is made from that: no failed create, one download, two rotations.
  Every 1 GiB volume records and is charged the 8 GiB the array holds.

The same holds with Cinder 29's ``powerflex_max_image_cache_vtree_size``
as the limit. And when the rotation's copy fails, nothing half-made is
left and the create still succeeds through Cinder's own path.
"""

import collections
import os
from typing import Any, Callable
from unittest import mock

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder import exception
from cinder import objects
from cinder.volume.drivers.dell_emc.powerflex import driver as stock_driver
from oslo_utils import units

from powerflex_cache_driver import compat
from powerflex_cache_driver import data_copy
from powerflex_cache_driver import host_attach
from powerflex_cache_driver import image_clone
from powerflex_cache_driver import options
from powerflex_cache_driver import vtree_rotation
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
VIRTUAL_SIZE = 1 * GIB
PIECES = [(0, MIB), (VIRTUAL_SIZE // 2, 2 * MIB)]
DATA_BYTES = 3 * MIB
"""Non-zero bytes of the image, whole 1 MiB chunks."""

MANY = 300
VTREE_LIMIT = 126
VTREE_SIZE_OPTION = "powerflex_max_image_cache_vtree_size"


def _has_vtree_size_option() -> bool:
    """Whether the installed Cinder has powerflex_max_image_cache_vtree_size.

    It came with Cinder 29 (2026.1); Cinder 27 does not have it.
    """
    return VTREE_SIZE_OPTION in {
        opt.name for opt in stock_driver.PowerFlexDriver.get_driver_options()}


class RotationHelpers:
    """Counting creates, downloads and rotations of one image."""

    def create_many(self, count: int, image_id: str
                    ) -> tuple[list[Any], list[int], set[str]]:
        """Create ``count`` 1 GiB volumes one after another.

        Each is 8 GiB on the array, and ours records and charges 8: the
        project's quota has room for that.

        :returns: the volumes, the indexes of the creates that failed and
            the ids of every cache volume the image had along the way.
        """
        self.set_project_quota("volumes", count + 10)
        self.set_project_quota("gigabytes", 8 * (count + 10))
        volumes, failed, cache_ids = [], [], set()
        for index in range(count):
            volume, _unused = self.create_volume(1, image_id=image_id,
                                                 expect_status=None)
            self.assertIn(volume.status, ("available", "error"))
            if volume.status == "error":
                failed.append(index)
            else:
                volumes.append(volume)
            cache_ids.update(e["volume_id"] for e in
                             self.cache_entries(image_id))
        return volumes, failed, cache_ids

    def record_host_copies(self) -> list[Any]:
        """Record every host-assisted copy ours makes (stock makes none)."""
        if not self.is_ours:
            return []
        return self.spy(self.driver, "copy_volume_data_sparse")

    def refused_snapshots(self) -> int:
        """``snapshotVolumes`` the array refused (vtree full, rc 182)."""
        return len([c for c in self.sim.calls_of("snapshotVolumes")
                    if c.status != 200])


class ManyVolumesScenario(RotationHelpers):
    """300 volumes of one image with the array's 126-snapshot vtrees."""

    SIMULATOR_OPTIONS = {"snapshot_limit": VTREE_LIMIT}

    def test_300_volumes_from_one_image(self) -> None:
        """Ours: one download, two rotations, no failure; stock: 2 fail."""
        meta, image = self.make_image("many", VIRTUAL_SIZE, PIECES, "many")
        copies = self.record_host_copies()
        volumes, failed, cache_ids = self.create_many(MANY, meta["id"])

        counts = self.sim.counts()
        # The 127th create finds the first vtree full (base volume, cache
        # entry and 125 clones); stock fails it, and again 127 later.
        self.assertEqual(self.expect(stock=[126, 253], ours=[]), failed)
        self.assertEqual(self.expect(stock=3, ours=1),
                         self.images.downloads[meta["id"]])
        self.assertEqual(2, self.refused_snapshots())
        self.assertEqual(self.expect(stock=3 + 295 + 2, ours=1 + 299 + 2),
                         counts["snapshotVolumes"])
        # Downloads, plus ours' two rotation copies.
        self.assertEqual(self.expect(stock=3, ours=3), counts["createVolume"])
        self.assertEqual(self.expect(stock=3, ours=1 + 2 * 2),
                         counts["addMappedSdc"])
        # No more array calls than stock for the 300: stock attaches each
        # of its 3 downloads with 10 calls; ours attaches its download so,
        # and the two volumes of each rotation copy with 6 in all (the
        # SDC looked up once, the source's mappings read, each volume
        # mapped and unmapped), where Cinder's attach would take 20. A full
        # vtree's refusal is not looked up by name.
        if self.is_ours and compat.DRIVER_MAPS_VOLUMES:
            self.assertEqual(
                {"getSdcs": 2 + 2, "getSdc": 2, "getVolume": 2 + 2 + 2,
                 "getSdcVolumes": 2, "removeMappedSdc": 1 + 2 * 2,
                 "getVolumeByName": 0},
                {name: counts[name] for name in (
                    "getSdcs", "getSdc", "getVolume", "getSdcVolumes",
                    "removeMappedSdc", "getVolumeByName")})
            self.assertEqual(333, sum(counts.values()))
        elif compat.DRIVER_MAPS_VOLUMES:
            self.assertEqual(339, sum(counts.values()))
        self.assertEqual(0, counts["setVolumeSize"])
        # Cache volumes replaced: stock deletes the full entry and
        # downloads, ours copies it; 3 cache volumes either way.
        self.assertEqual(3, len(cache_ids))
        self.assertEqual(2, counts["removeVolume"])
        self.assertEqual(self.expect(stock=0, ours=2), len(copies))
        for stats in copies:
            # The image the 8 GiB cache volume holds (recorded with the
            # entry), holes skipped.
            self.assertEqual(VIRTUAL_SIZE, stats.bytes_total)
            self.assertLess(stats.bytes_read, VIRTUAL_SIZE)
            self.assertEqual(DATA_BYTES, stats.bytes_written)
        self.assertEqual([type(exc) for _name, exc in self.casts.failures],
                         [exception.SnapshotLimitReached] * len(failed))

        self.assertEqual(MANY - len(failed), len(volumes))
        for volume in volumes:
            self.assert_volume_content(volume, image)
        cache_volume = self.cache_volume(meta["id"])
        self.assert_volume_content(cache_volume, image)
        # Both record 8 GiB for every 1 GiB clone (and cache volume);
        # stock keeps 1 for the volumes the image was downloaded into.
        # Stock reserved 1: the usage no longer matches the records.
        # Ours charged the 8.
        self.assertEqual(8, cache_volume.size)
        self.assertEqual(self.expect(stock={1, 8}, ours={8}),
                         {objects.Volume.get_by_id(self.admin_ctx,
                                                   v.id).size
                          for v in volumes})
        self.assertEqual(
            {"volumes": 0, "snapshots": 0,
             "gigabytes": -self.expect(stock=7 * 295, ours=0)},
            self.quota_drift())
        self.assertEqual(
            {"volumes": 1, "snapshots": 0,
             "gigabytes": self.expect(stock=1, ours=8)},
            self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assertEqual(
            {"volumes": 0, "snapshots": 0,
             "gigabytes": -self.expect(stock=7, ours=0)},
            self.quota_drift(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assertEqual(len(volumes) + 1, len(self.sim.array.volumes))
        if self.is_ours:
            self.assert_sizes_cover_array()
        else:
            # The three volumes the image was downloaded into record 1.
            self.assertEqual(
                [(1, 8)] * 3,
                [sizes for sizes in self.volume_sizes().values()
                 if sizes[0] < sizes[1]])
        self.assert_array_matches_db()


class TestManyVolumesStock(ManyVolumesScenario,
                           driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestManyVolumesOurs(ManyVolumesScenario,
                          driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class VtreeSizeOptionScenario(RotationHelpers):
    """``powerflex_max_image_cache_vtree_size = 10`` (Cinder 29)."""

    BACKEND_OPTIONS = {VTREE_SIZE_OPTION: 10}

    def setUp(self) -> None:
        if not _has_vtree_size_option():
            self.skipTest("this Cinder has no %s" % VTREE_SIZE_OPTION)
        super().setUp()

    def test_vtree_size_option_triggers_rotation(self) -> None:
        """25 volumes, at most 10 members per cache vtree."""
        meta, image = self.make_image("ten", VIRTUAL_SIZE, PIECES, "ten")
        copies = self.record_host_copies()
        volumes, failed, cache_ids = self.create_many(25, meta["id"])

        counts = self.sim.counts()
        # The driver counts the vtree's members (base volume included)
        # before each clone of a cache entry and refuses at 10.
        self.assertEqual(self.expect(stock=[9, 19], ours=[]), failed)
        self.assertEqual(self.expect(stock=3, ours=1),
                         self.images.downloads[meta["id"]])
        self.assertEqual(0, self.refused_snapshots())
        self.assertEqual(self.expect(stock=3 + 20, ours=1 + 24),
                         counts["snapshotVolumes"])
        self.assertEqual(3, len(cache_ids))
        self.assertEqual(self.expect(stock=0, ours=2), len(copies))
        for stats in copies:
            self.assertEqual(DATA_BYTES, stats.bytes_written)
        for volume in volumes:
            self.assert_volume_content(volume, image)
        vtree_sizes = collections.Counter(
            v.vtree_id for v in self.sim.array.volumes.values())
        self.assertLessEqual(max(vtree_sizes.values()), 10)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()


class TestVtreeSizeOptionStock(VtreeSizeOptionScenario,
                               driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestVtreeSizeOptionOurs(VtreeSizeOptionScenario,
                              driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class FailedRotationScenario(RotationHelpers):
    """The copy of a full cache entry fails: nothing half-made is left.

    With a vtree limit of 3, the fourth volume of an image finds the cache
    entry's vtree full (stock: base volume, cache entry, two clones; ours:
    the cache volume as base and three clones).
    """

    SIMULATOR_OPTIONS = {"snapshot_limit": 3}

    def _fourth_volume(self, arm: Callable[[], None]) -> None:
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        volumes = [self.create_volume(1, image_id=meta["id"])[0]
                   for _unused in range(3)]
        full_entry = self.cache_volume(meta["id"])
        internal_before = self.quota_usage(
            inprocess_cinder.INTERNAL_PROJECT_ID)
        user_before = self.quota_usage()
        copies = self.record_host_copies()
        arm()

        volume, recorded = self.create_volume(1, image_id=meta["id"],
                                              expect_status=None)
        if not self.is_ours:
            # Stock: the full vtree fails the create before any copy.
            self.assertEqual("error", volume.status)
            self.assertEqual([exception.SnapshotLimitReached],
                             [type(exc) for _name, exc in
                              self.casts.failures])
            self.assertEqual(0, recorded.counts()["addMappedSdc"])
            self.assertEqual(1, self.images.downloads[meta["id"]])
            self.sim.faults.clear()
            return
        self.assertEqual("available", volume.status)
        self.assertEqual([], self.casts.failures)
        # One copy attempted, it failed; the full entry was removed and
        # the image downloaded again into a new cache volume, which the
        # volume is cloned from.
        self.assertEqual(1, len(copies))
        self.assertIsInstance(copies[0], Exception)
        self.assertEqual(0, self.sim.faults.pending())
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(volume, image)
        # Two array volumes made (the copy's, removed at once, and the
        # new cache volume the image went into) and two removed (the
        # copy's and the full entry's).
        self.assertEqual(2, recorded.counts()["createVolume"])
        removed = [c.volume_id for c in recorded.of("removeVolume")]
        self.assertEqual(2, len(removed))
        self.assertEqual(full_entry.provider_id, removed[-1])
        self.assertNotIn(full_entry.provider_id, self.sim.array.volumes)
        internal = objects.VolumeList.get_all_by_project(
            self.admin_ctx, inprocess_cinder.INTERNAL_PROJECT_ID)
        self.assertEqual([self.cache_volume(meta["id"]).id],
                         [v.id for v in internal])
        self.assertNotEqual(full_entry.id, internal[0].id)
        self.assertEqual(
            internal_before,
            self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assertEqual(
            {"volumes": 0, "gigabytes": 0, "snapshots": 0},
            self.quota_drift(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assertEqual(user_before["volumes"] + 1,
                         self.quota_usage()["volumes"])
        self.assertEqual(len(volumes) + 2, len(self.sim.array.volumes))
        self.assert_sizes_cover_array()
        self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_mapping_the_full_entry_fails(self) -> None:
        """The array refuses to map the full cache volume for the copy."""
        self._fourth_volume(lambda: self.sim.faults.fail("addMappedSdc",
                                                         500))

    def test_connection_dropped_mapping_the_new_volume(self) -> None:
        """The new volume's mapping is made but its answer never comes."""
        attach = host_attach.HostAttacher.attach
        attached = []

        def attach_then_drop(attacher: Any, context: Any, volume: Any,
                             **kwargs: Any) -> Any:
            attached.append(volume.id)
            if len(attached) == 2:
                self.sim.faults.drop("addMappedSdc", after=True)
            return attach(attacher, context, volume, **kwargs)

        def arm() -> None:
            self.patch("powerflex_cache_driver.host_attach.HostAttacher."
                       "attach", attach_then_drop)
        self._fourth_volume(arm)
        # Ours: the full entry, then the new volume (dropped).
        self.assertEqual(self.expect(stock=0, ours=2), len(attached))
        # Nothing stays mapped: the lost mapping was undone.
        self.assertEqual([], os.listdir(self.sim.by_id_dir))


class TestFailedRotationStock(FailedRotationScenario,
                              driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestFailedRotationOurs(FailedRotationScenario,
                             driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


class TestRotationDisabledOurs(RotationHelpers,
                               driver_testcases.OurDriverTestCase):
    """``powerflex_cache_rotate_full_vtree = False``: downloaded again."""

    SIMULATOR_OPTIONS = {"snapshot_limit": 3}
    BACKEND_OPTIONS = {options.ROTATE_FULL_VTREE: False}

    def test_full_entry_removed_and_image_downloaded(self) -> None:
        """No copy; the full entry is removed so the create succeeds."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        copies = self.record_host_copies()
        volumes, failed, cache_ids = self.create_many(6, meta["id"])
        self.assertEqual([], failed)
        self.assertEqual([], copies)
        # Downloaded again at the 4th volume, whose vtree then fills.
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(2, len(cache_ids))
        for volume in volumes:
            self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()
        self.assert_no_quota_drift()
        self.assert_array_matches_db()


class TestInterruptedRotationOurs(RotationHelpers,
                                  driver_testcases.OurDriverTestCase):
    """A service stopped in the middle of a rotation copy, then started.

    What the stopped service leaves is built with the driver's own steps
    up to the copy: the new cache volume's row (``creating``, with its
    ``workers`` row), its array volume, and both volumes mapped to this
    host. Cinder's real start-up clean-up then runs for the service, and
    the next create from the image must rotate the entry and remove the
    half-made volume: nothing left on the array, mapped or charged.
    """

    SIMULATOR_OPTIONS = {"snapshot_limit": 3}
    MOCK_WORKER = False

    def test_half_made_volume_removed_by_the_next_create(self) -> None:
        self.patch("cinder.service.Service.service_id",
                   self.manager.service_id)
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        for _unused in range(3):
            self.create_volume(1, image_id=meta["id"])
        full_entry = self.cache_volume(meta["id"])
        internal = cinder_context.get_internal_tenant_context()

        # The rotation as far as the copy, then the service is gone.
        cloner = image_clone.ImageCloner(self.driver)
        half = cloner.volumes.new(internal, full_entry, 8, meta["id"])
        cloner.volumes.create(internal, half, meta["id"])
        half.update(self.driver.create_volume(half))
        half.save()
        copier = data_copy.HostAssistedCopy(self.driver)
        attacher = host_attach.HostAttacher(
            self.driver, copier.connector_properties())
        for volume in (full_entry, half):
            attacher.attach(internal, volume)
        self.assertEqual(2, len(os.listdir(self.sim.by_id_dir)))

        # Cinder's start-up clean-up of the service.
        self.manager.do_cleanup(self.admin_ctx, objects.CleanupRequest(
            service_id=self.manager.service_id))
        half = objects.Volume.get_by_id(self.admin_ctx, half.id)
        self.assertEqual("error", half.status)
        self.assertEqual([], db_api.worker_get_all(self.admin_ctx))
        self.assertIn(half.provider_id, self.sim.array.volumes)

        volume, _unused = self.create_volume(1, image_id=meta["id"])
        self.assert_volume_content(volume, image)
        self.assertRaises(exception.VolumeNotFound, objects.Volume.get_by_id,
                          self.admin_ctx, half.id)
        self.assertNotIn(half.provider_id, self.sim.array.volumes)
        self.assertNotEqual(full_entry.id, self.cache_volume(meta["id"]).id)
        self.assertEqual(1, self.images.downloads[meta["id"]])
        self.assertEqual(
            {"volumes": 0, "gigabytes": 0, "snapshots": 0},
            self.quota_drift(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assert_no_quota_drift()
        self.assert_array_matches_db()


class TestEntriesRemovedUnderCreateOurs(RotationHelpers,
                                        driver_testcases.OurDriverTestCase):
    """Every entry a create finds is removed before it can clone it."""

    def test_image_copied_without_a_second_entry(self) -> None:
        """A boot storm replacing entries under a create: no duplicate.

        Other creates remove each entry this one finds (for instance a
        full vtree with powerflex_cache_rotate_full_vtree False) while the
        entry it would make stays: the create copies the image into the
        volume instead of making a second entry of the image.
        """
        meta, image = self.make_image("storm", 2 * GIB, [(0, MIB)], "s")
        self.create_volume(8, image_id=meta["id"])
        self.assertEqual(1, len(self.cache_entries(meta["id"])))
        found = []
        with mock.patch.object(image_clone.ImageCloner, "_clone_entry",
                               autospec=True,
                               side_effect=lambda *args: found.append(1)):
            volume, _unused = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(image_clone.MAX_ENTRY_LOOKUPS, len(found))
        self.assertEqual(1, len(self.cache_entries(meta["id"])))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()


class TestStormFillsEachNewEntryOurs(RotationHelpers,
                                     driver_testcases.OurDriverTestCase):
    """A boot storm: other creates fill each new entry before this one.

    The clone of the create under test is refused (vtree full) a number of
    times; before each refusal another create has already replaced the
    entry, as the creates ahead of it do in a storm. The create follows
    the replacements without copying anything itself and without
    downloading the image again, as long as other creates make progress.
    """

    def _refuse_after_others_rotate(self, image_meta: dict,
                                    refusals: int) -> list[str]:
        """Refuse the next clones, each after another create rotated.

        :returns: the cache volumes the other creates made, in order.
        """
        internal = cinder_context.get_internal_tenant_context()
        real_clone = self.driver.create_cloned_volume
        made: list[str] = []

        def clone(volume: Any, source: Any) -> Any:
            if len(made) == refusals:
                return real_clone(volume, source)
            entry = self.cache_entries(image_meta["id"])[0]
            other = image_clone.ImageCloner(self.driver)
            self.assertIs(vtree_rotation.Rotation.COPIED,
                          other.rotator.rotate(internal, volume, entry,
                                               image_meta))
            made.append(self.cache_entries(image_meta["id"])[0]["volume_id"])
            raise exception.SnapshotLimitReached(set_limit=VTREE_LIMIT)

        self.mock_object(self.driver, "create_cloned_volume", clone)
        return made

    def test_follows_more_replacements_than_it_may_make(self) -> None:
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(1, image_id=meta["id"])
        refusals = image_clone.MAX_ROTATIONS_PER_CREATE + 3
        made = self._refuse_after_others_rotate(meta, refusals)
        copies = self.record_host_copies()

        volume, _unused = self.create_volume(1, image_id=meta["id"])

        self.assertEqual(refusals, len(made))
        # Every copy was made by the other creates, none by this one.
        self.assertEqual(refusals, len(copies))
        self.assertEqual(1, self.images.downloads[meta["id"]])
        self.assertEqual(made[-1], self.cache_volume(meta["id"]).id)
        self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()
        self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_follows_replacements_with_no_copy_of_its_own_left(
            self) -> None:
        """Out of copies of its own, a create still follows the others'."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(1, image_id=meta["id"])
        self.mock_object(image_clone, "MAX_ROTATIONS_PER_CREATE", 0)
        made = self._refuse_after_others_rotate(meta, 2)

        volume, _unused = self.create_volume(1, image_id=meta["id"])

        self.assertEqual(2, len(made))
        self.assertEqual(1, self.images.downloads[meta["id"]])
        self.assertEqual(made[-1], self.cache_volume(meta["id"]).id)
        self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()

    def test_copies_the_image_with_no_copy_of_its_own_left(self) -> None:
        """Nobody replaced the full entry: it stays, the image is copied."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(1, image_id=meta["id"])
        entry_volume = self.cache_volume(meta["id"]).id
        self.mock_object(image_clone, "MAX_ROTATIONS_PER_CREATE", 0)
        real_clone = self.driver.create_cloned_volume
        refused: list[str] = []

        def clone(volume: Any, source: Any) -> Any:
            if not refused:
                refused.append(source.id)
                raise exception.SnapshotLimitReached(set_limit=VTREE_LIMIT)
            return real_clone(volume, source)
        self.mock_object(self.driver, "create_cloned_volume", clone)
        copies = self.record_host_copies()

        volume, _unused = self.create_volume(1, image_id=meta["id"])

        self.assertEqual([entry_volume], refused)
        self.assertEqual([], copies)
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(entry_volume, self.cache_volume(meta["id"]).id)
        self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()

    def test_copies_the_image_after_too_many_full_entries(self) -> None:
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(1, image_id=meta["id"])
        self.mock_object(image_clone, "MAX_FULL_ENTRIES_PER_CREATE", 4)
        made = self._refuse_after_others_rotate(meta, 10)

        volume, _unused = self.create_volume(1, image_id=meta["id"])

        self.assertEqual(4, len(made))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(made[-1], self.cache_volume(meta["id"]).id)
        self.assert_volume_content(volume, image)
        self.assert_sizes_cover_array()
        self.assert_no_quota_drift()
        self.assert_array_matches_db()
