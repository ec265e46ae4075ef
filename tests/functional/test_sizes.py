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
"""Scenario 9: what Cinder records, what the array holds, what is charged.

The size rule (design, "Size policy", rule 3): every model update of ours
carries the array size, and the project is charged for it before anything
is made on the array. So for ours, after every create path, every volume's
database size covers its array size, and each project's quota usage equals
the sum of its records (user project and internal tenant alike).

* :meth:`SizesScenario.test_sizes_per_path` walks every create path once
  (blank, clone, snapshot, volume from snapshot, clone into another pool,
  cache miss, cache hit, ``cinder://`` clone, cache entry rotation) and
  records per path the database size, the array size and the change of the
  user's and the internal tenant's ``gigabytes`` usage; the table is
  asserted whole against :data:`EXPECTED_STOCK` / :data:`EXPECTED_OURS`.
* :meth:`SizesScenario.test_tail_written_by_the_guest_survives_copies`: a
  guest writes up to the end of the disk it sees (growpart, GPT backup
  header); the bytes written in the last GiB of a "10 GiB" volume (16 on
  the array) must survive Cinder's generic volume copy (migration, retype),
  a clone into another pool and a cache entry rotation.
* :meth:`SizesScenario.test_no_room_for_the_rounding`: a project with room
  for the requested size but not for the array size: ours refuses with
  ``RoundingExceedsQuota`` and makes nothing; stock goes over the quota.
"""

import logging
from typing import Any, Callable, Optional

from cinder.db import api as db_api
from cinder import exception
from cinder import objects
import fixtures
from oslo_utils import units

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver import quota_charge
from tools.beds import disk_images
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
BIG_VIRTUAL_SIZE = 60 * GIB
BIG_PIECES = [(0, MIB), (BIG_VIRTUAL_SIZE - MIB, MIB)]
SMALL_VIRTUAL_SIZE = 1 * GIB
SMALL_PIECES = [(0, MIB), (SMALL_VIRTUAL_SIZE // 2, MIB)]
SOURCE_POOL = inprocess_cinder.POOL
TARGET_POOL = inprocess_cinder.SECOND_POOL

TAIL_OFFSET = 16 * GIB - 3 * MIB + 4096
"""Where the guest writes in a 16 GiB disk: the last GiB, past 10 GiB."""
CACHE_TAIL_OFFSET = 8 * GIB - 3 * MIB + 4096
"""The same in the 8 GiB cache volume of a 1 GiB image."""
TAIL_LENGTH = MIB

Row = dict[str, Optional[int]]

# Per path: the new volume's (or snapshot's) database size and array size
# in GiB, and how much the user project's and the internal tenant's
# ``gigabytes`` usage changed. ``None``: refused by Cinder's API (size below
# the source's), or, for the array size, no array volume.
REFUSED: Row = {"db": None, "array": None, "user": 0, "internal": 0}

EXPECTED_OURS: dict[str, Row] = {
    "blank 10": {"db": 16, "array": 16, "user": 16, "internal": 0},
    "clone 10 of blank": REFUSED,
    "clone 20 of blank": {"db": 24, "array": 24, "user": 24, "internal": 0},
    "snapshot of blank": {"db": 16, "array": 16, "user": 16, "internal": 0},
    "from snapshot 12": REFUSED,
    "from snapshot 17": {"db": 24, "array": 24, "user": 24, "internal": 0},
    "clone 20 into SP2": {"db": 24, "array": 24, "user": 24, "internal": 0},
    "cache miss 60": {"db": 64, "array": 64, "user": 64, "internal": 64},
    "cache entry": {"db": 64, "array": 64, "user": 0, "internal": 0},
    "cache hit 60": {"db": 64, "array": 64, "user": 64, "internal": 0},
    "cinder:// 60": {"db": 64, "array": 64, "user": 64, "internal": 0},
    "rotation 60": {"db": 64, "array": 64, "user": 64, "internal": 0},
    "rotated entry": {"db": 64, "array": 64, "user": 0, "internal": 0},
}
"""Ours: the database holds the array size, usage grows by it."""

EXPECTED_STOCK: dict[str, Row] = {
    "blank 10": {"db": 16, "array": 16, "user": 10, "internal": 0},
    "clone 10 of blank": REFUSED,
    "clone 20 of blank": {"db": 24, "array": 24, "user": 20, "internal": 0},
    "snapshot of blank": {"db": 16, "array": 16, "user": 16, "internal": 0},
    "from snapshot 12": REFUSED,
    "from snapshot 17": {"db": 24, "array": 24, "user": 17, "internal": 0},
    "clone 20 into SP2": {"db": 24, "array": 24, "user": 20, "internal": 0},
    "cache miss 60": {"db": 60, "array": 64, "user": 60, "internal": 60},
    "cache entry": {"db": 64, "array": 64, "user": 0, "internal": 0},
    "cache hit 60": {"db": 64, "array": 64, "user": 60, "internal": 0},
    "cinder:// 60": {"db": 64, "array": 64, "user": 60, "internal": 0},
    "rotation 60": {"db": 60, "array": None, "user": 60, "internal": -60},
    "rotated entry": {"db": None, "array": None, "user": 0, "internal": 0},
}
"""Stock (Cinder 29): usage grows by the request; the cache miss keeps the
request in the database, short of the array; a full cache vtree fails the
create (no rotation: the entry is deleted, which frees the internal
tenant's usage)."""


class SizesScenario:
    """Sizes and quota along every create path, for one driver."""

    BACKEND_OPTIONS = inprocess_cinder.TWO_POOLS

    # -- helpers --------------------------------------------------------------

    def _fill_vtree(self, volume: Any) -> None:
        """Make the array refuse the next snapshot in ``volume``'s vtree.

        The simulator's snapshot limit is lowered to what the vtree holds,
        so the next clone meets the array's rc 182 without 120 more
        creates; restored when the test ends.
        """
        array = self.sim.array
        self.addCleanup(setattr, array, "snapshot_limit",
                        array.snapshot_limit)
        array.snapshot_limit = array.snapshot_count(
            self.array_volume(volume.provider_id).vtree_id)

    def _gigabytes(self) -> tuple[int, int]:
        user = self.quota_usage()
        internal = self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID)
        return (user["gigabytes"], internal["gigabytes"])

    def _measure(self, table: dict[str, Row], path: str,
                 make: Callable[[], Any]) -> Any:
        """Run one create path; put its sizes and usage change in ``table``.

        :param make: returns the new volume or snapshot, or None when
            Cinder's API refused the request.
        """
        user, internal = self._gigabytes()
        made = make()
        row: Row = {"db": None, "array": None}
        if made is not None:
            if isinstance(made, objects.Snapshot):
                row["db"] = made.volume_size
            else:
                row["db"] = made.size
            if made.provider_id:
                row["array"] = self.array_size_gib(made)
        user_after, internal_after = self._gigabytes()
        row["user"] = user_after - user
        row["internal"] = internal_after - internal
        table[path] = row
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        return made

    def _refused(self, **kwargs: Any) -> None:
        self.assertRaises(exception.InvalidInput, self.create_volume,
                          **kwargs)

    def _write_tail(self, obj: Any, offset: int, seed: str) -> bytes:
        """Write what a guest writes near the end of its disk."""
        data = disk_images.pattern(seed, TAIL_LENGTH)
        path = self.array_volume(obj.provider_id).backing_path
        with open(path, "r+b") as handle:
            handle.seek(offset)
            handle.write(data)
        return data

    def _read(self, obj: Any, offset: int) -> bytes:
        path = self.array_volume(obj.provider_id).backing_path
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(TAIL_LENGTH)

    # -- a. every create path -----------------------------------------------

    def test_sizes_per_path(self) -> None:
        """DB size, array size and usage change, path by path."""
        meta, image = self.make_image("big", BIG_VIRTUAL_SIZE, BIG_PIECES,
                                      "big")
        self.require_conversion_space(image)
        start = self.quota_usage()
        internal_start = self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID)
        copies = (self.spy(self.driver, "copy_volume_data_sparse")
                  if self.is_ours else [])
        table: dict[str, Row] = {}
        volumes = []

        blank = self._measure(table, "blank 10",
                              lambda: self.create_volume(10)[0])
        volumes.append(blank)
        self._measure(table, "clone 10 of blank",
                      lambda: self._refused(size=10, source_volume=blank))
        volumes.append(self._measure(
            table, "clone 20 of blank",
            lambda: self.create_volume(20, source_volume=blank)[0]))
        snapshot = self._measure(table, "snapshot of blank",
                                 lambda: self.create_snapshot(blank)[0])
        self._measure(table, "from snapshot 12",
                      lambda: self._refused(size=12, snapshot=snapshot))
        volumes.append(self._measure(
            table, "from snapshot 17",
            lambda: self.create_volume(17, snapshot=snapshot)[0]))
        cross = self._measure(
            table, "clone 20 into SP2",
            lambda: self.create_volume(20, source_volume=blank,
                                       pool=TARGET_POOL)[0])
        volumes.append(cross)
        self.assertEqual(
            self.sim.pool_ids[self.expect(stock="SP1", ours="SP2")],
            self.array_volume(cross.provider_id).pool_id)
        # Stock: every volume so far records at least its array size.
        self.assert_sizes_cover_array()

        miss = self._measure(
            table, "cache miss 60",
            lambda: self.create_volume(60, image_id=meta["id"])[0])
        volumes.append(miss)
        self._measure(table, "cache entry",
                      lambda: self.cache_volume(meta["id"]))
        self.assert_volume_content(miss, image)
        hit = self._measure(
            table, "cache hit 60",
            lambda: self.create_volume(60, image_id=meta["id"])[0])
        volumes.append(hit)
        self.assertEqual(1, self.images.downloads[meta["id"]])

        # A cinder:// location naming the hit volume; ours clones it in
        # clone_image, stock through Cinder's own cinder:// path.
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % hit.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        direct = self._measure(
            table, "cinder:// 60",
            lambda: self.create_volume(60, image_id=meta["id"])[0])
        volumes.append(direct)
        self.assertEqual(self.array_volume(hit.provider_id).vtree_id,
                         self.array_volume(direct.provider_id).vtree_id)
        self.override_config("allowed_direct_url_schemes", [])

        # The entry's vtree is full: ours copies the entry into a new cache
        # volume; stock fails the create and deletes the entry.
        entry = self.cache_volume(meta["id"])
        self._fill_vtree(entry)
        rotated = self._measure(
            table, "rotation 60",
            lambda: self.create_volume(60, image_id=meta["id"],
                                       expect_status=None)[0])
        volumes.append(rotated)
        self.assertEqual(self.expect(stock="error", ours="available"),
                         rotated.status)
        self.assertNotIn(entry.provider_id, self.sim.array.volumes)
        if self.is_ours:
            self._measure(table, "rotated entry",
                          lambda: self.cache_volume(meta["id"]))
            self.assertNotEqual(entry.id, self.cache_volume(meta["id"]).id)
            self.assert_volume_content(rotated, image)
            # The clone into SP2 covers its source's array volume (16 GiB);
            # the rotation the image the cache volume holds (60 GiB of 64:
            # past the image a cache volume made here holds zeros).
            self.assertEqual([16 * GIB, BIG_VIRTUAL_SIZE],
                             [stats.bytes_total for stats in copies])
        else:
            self.assertEqual([exception.SnapshotLimitReached],
                             [type(exc) for _name, exc in
                              self.casts.failures])
            self._measure(table, "rotated entry", lambda: None)
            self.assertEqual([], self.cache_entries())
            # The cache miss volume records the request, short of the
            # array: the one volume whose tail Cinder would not copy.
            self.assertEqual(
                {miss.id: (60, 64)},
                {volume_id: sizes for volume_id, sizes in
                 self.volume_sizes().items() if sizes[0] < sizes[1]})
        self.assertEqual(1, self.images.downloads[meta["id"]])
        self.assertEqual(self.expect(stock=EXPECTED_STOCK,
                                     ours=EXPECTED_OURS), table)

        # Everything deleted: usage back where it started (ours), or off
        # by what stock recorded beyond what it reserved.
        for volume in reversed(volumes):
            if volume.id == blank.id:
                continue
            self.delete_volume(volume)
        self.delete_snapshot(snapshot)
        self.delete_volume(blank)
        self.delete_cache_entries()
        end = self.quota_usage()
        internal_end = self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID)
        self.assertEqual(start["volumes"], end["volumes"])
        self.assertEqual(start["snapshots"], end["snapshots"])
        self.assertEqual(internal_start["volumes"], internal_end["volumes"])
        if self.is_ours:
            self.assertEqual(start, end)
            self.assertEqual(internal_start, internal_end)
            self.assert_no_quota_drift()
        else:
            # Cinder stops usage at 0: the drift shows as usage freed too
            # early, which a quota sync would not notice afterwards.
            self.assertEqual(start["gigabytes"], end["gigabytes"])
            self.assertEqual(internal_start["gigabytes"],
                             internal_end["gigabytes"])
        self.assert_array_matches_db()

    # -- b. bytes a guest wrote at the end of its disk ------------------------

    def test_tail_written_by_the_guest_survives_copies(self) -> None:
        """Migration copy, clone into SP2, rotation keep the last GiB."""
        source, _unused = self.create_volume(10)
        self.assertEqual(16, source.size)
        self.assertEqual(16, self.array_size_gib(source))
        tail = self._write_tail(source, TAIL_OFFSET, "guest")

        # (i) Cinder's generic copy (migration, retype): the new volume
        # is made at the source's DB size and that many GiB are copied.
        target, _unused = self.create_volume(source.size)
        self.assertEqual(16, self.array_size_gib(target))
        # What cinder-volume would answer over RPC; sparse, so that dd
        # does not write the 16 GiB of zeros (the range copied is the
        # same either way).
        self.patch("cinder.volume.rpcapi.VolumeAPI.get_capabilities",
                   return_value={"sparse_copy_volume": True})
        source = objects.Volume.get_by_id(self.admin_ctx, source.id)
        target = objects.Volume.get_by_id(self.admin_ctx, target.id)
        self.manager._copy_volume_data(self.admin_ctx, source, target,
                                       remote=None)
        self.assertEqual(tail, self._read(target, TAIL_OFFSET))

        # (ii) A clone into another pool.
        copies = (self.spy(self.driver, "copy_volume_data_sparse")
                  if self.is_ours else [])
        clone, recorded = self.create_volume(source.size,
                                             source_volume=source,
                                             pool=TARGET_POOL)
        self.assertEqual(16, clone.size)
        self.assertEqual(tail, self._read(clone, TAIL_OFFSET))
        if self.is_ours:
            self.assertEqual(self.sim.pool_ids["SP2"],
                             self.array_volume(clone.provider_id).pool_id)
            self.assertEqual([16 * GIB], [c.bytes_total for c in copies])
            self.assertEqual([TAIL_LENGTH],
                             [c.bytes_written for c in copies])
        else:
            # A snapshot, in the source's pool whatever Cinder recorded.
            self.assertEqual(self.sim.pool_ids["SP1"],
                             self.array_volume(clone.provider_id).pool_id)
            self.assertEqual(1, recorded.counts()["snapshotVolumes"])

        # (iii) Rotation of a cache entry holding data at its end.
        meta, image = self.make_image("small", SMALL_VIRTUAL_SIZE,
                                      SMALL_PIECES, "small")
        first, _unused = self.create_volume(1, image_id=meta["id"])
        entry = self.cache_volume(meta["id"])
        self.assertEqual(8, entry.size)
        self.assertEqual(8, self.array_size_gib(entry))
        if self.is_ours:
            # Ours records the image's size with the entries it makes and a
            # rotation copies no further; an entry made by Cinder's own
            # path or by the first release records nothing and is copied
            # whole. This one stands for such an entry.
            db_api.volume_admin_metadata_delete(
                self.admin_ctx, entry.id, cache_entries.IMAGE_BYTES_KEY)
        cache_tail = self._write_tail(entry, CACHE_TAIL_OFFSET, "entry")
        second, _unused = self.create_volume(1, image_id=meta["id"])
        self.assertEqual(cache_tail, self._read(second, CACHE_TAIL_OFFSET))
        self._fill_vtree(entry)
        third, _unused = self.create_volume(1, image_id=meta["id"],
                                            expect_status=None)
        self.assertNotIn(entry.provider_id, self.sim.array.volumes)
        if self.is_ours:
            self.assertEqual("available", third.status)
            new_entry = self.cache_volume(meta["id"])
            self.assertNotEqual(entry.id, new_entry.id)
            self.assertEqual(8, new_entry.size)
            self.assertEqual(cache_tail,
                             self._read(new_entry, CACHE_TAIL_OFFSET))
            self.assertEqual(cache_tail,
                             self._read(third, CACHE_TAIL_OFFSET))
            self.assertEqual(1, self.images.downloads[meta["id"]])
            self.assertEqual(8 * GIB, copies[-1].bytes_total)
        else:
            # No rotation: the create fails and the entry is deleted; the
            # next create downloads the image into a new entry.
            self.assertEqual("error", third.status)
            self.assertEqual([], self.cache_entries())
            fourth, _unused = self.create_volume(1, image_id=meta["id"])
            new_entry = self.cache_volume(meta["id"])
            self.assertEqual(bytes(TAIL_LENGTH),
                             self._read(new_entry, CACHE_TAIL_OFFSET))
            self.assertEqual(2, self.images.downloads[meta["id"]])
            self.assert_volume_content(fourth, image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    # -- c. no room for the rounding ------------------------------------------

    def _over_quota_by_rounding(self, create: Callable[[], Any],
                                requested: int, array: int,
                                image_id: Optional[str] = None,
                                stock_db: Optional[int] = None) -> None:
        """Quota = usage + ``requested``: the rounding does not fit.

        :param image_id: the image of a create from an image; ours may
            make its cache entry (charged to the internal tenant), nothing
            for the user.
        :param stock_db: what stock records (by default the array size).
        """
        stock_db = array if stock_db is None else stock_db
        before = self.quota_usage()
        self.set_project_quota("gigabytes", before["gigabytes"] + requested)
        log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        array_volumes = set(self.sim.array.volumes)
        self.casts.failures.clear()

        volume, recorded = create()
        after = self.quota_usage()
        if self.is_ours:
            self.assertEqual("error", volume.status)
            self.assertIsNone(volume.provider_id)
            made = set(self.sim.array.volumes) - array_volumes
            entries = {objects.Volume.get_by_id(
                self.admin_ctx, e["volume_id"]).provider_id
                for e in self.cache_entries(image_id)} if image_id else set()
            self.assertEqual(set(), made - entries)
            self.assertEqual(set(),
                             array_volumes - set(self.sim.array.volumes))
            self.assertEqual(len(made), recorded.counts()["createVolume"])
            self.assertEqual(0, recorded.counts()["snapshotVolumes"])
            self.assertEqual([quota_charge.RoundingExceedsQuota],
                             [type(exc) for _name, exc in
                              self.casts.failures])
            message = str(self.casts.failures[0][1])
            for words in ("the array holds %d GiB for the requested %d GiB"
                          % (array, requested),
                          "quota gigabytes is %d GiB" %
                          (before["gigabytes"] + requested)):
                self.assertIn(words, message)
                self.assertIn(words, log.output)
            # Cinder's API charged the request, as for any volume row;
            # nothing more is charged, nothing left reserved (see
            # quota_usage).
            self.assertEqual(before["gigabytes"] + requested,
                             after["gigabytes"])
            self.assert_no_quota_drift()
        else:
            # Stock makes it, records the array size, and the project
            # holds more than its quota while usage says it does not.
            self.assertEqual("available", volume.status)
            self.assertEqual(stock_db, volume.size)
            self.assertEqual(array, self.array_size_gib(volume))
            self.assertEqual(before["gigabytes"] + requested,
                             after["gigabytes"])
            self.assertEqual(-(stock_db - requested),
                             self.quota_drift()["gigabytes"])
        self.delete_volume(volume)
        # Stock frees what it recorded; Cinder stops usage at 0.
        self.assertEqual(self.expect(stock=max(0, before["gigabytes"] -
                                               (stock_db - requested)),
                                     ours=before["gigabytes"]),
                         self.quota_usage()["gigabytes"])
        self.assertEqual(before["volumes"], self.quota_usage()["volumes"])
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_no_room_for_the_rounding(self) -> None:
        """10 GiB fits the quota, the 16 the array holds does not."""
        self._over_quota_by_rounding(
            lambda: self.create_volume(10, expect_status=None), 10, 16)

    def test_no_room_for_the_rounding_of_a_cache_hit(self) -> None:
        """A 10 GiB clone of an 8 GiB cache entry: 16 GiB on the array."""
        meta, image = self.make_image("small", SMALL_VIRTUAL_SIZE,
                                      SMALL_PIECES, "small")
        first, _unused = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(8, first.size)
        self._over_quota_by_rounding(
            lambda: self.create_volume(10, image_id=meta["id"],
                                       expect_status=None), 10, 16,
            image_id=meta["id"])
        # Refused before anything is made: no reason to fetch the image.
        self.assertEqual(1, self.images.downloads[meta["id"]],
                         "the image was downloaded again for a create "
                         "refused for quota")

    def test_no_room_for_the_rounding_of_a_cache_miss(self) -> None:
        """A 10 GiB volume of a 1 GiB image not cached yet."""
        meta, image = self.make_image("small", SMALL_VIRTUAL_SIZE,
                                      SMALL_PIECES, "small")
        self._over_quota_by_rounding(
            lambda: self.create_volume(10, image_id=meta["id"],
                                       expect_status=None), 10, 16,
            image_id=meta["id"], stock_db=10)
        self.assertEqual(1, self.images.downloads[meta["id"]],
                         "the image was downloaded more than once for a "
                         "create refused for quota")


class TestSizesStock(SizesScenario, driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestSizesOurs(SizesScenario, driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
