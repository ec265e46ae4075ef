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
"""Scenario 8: a clone placed in another storage pool of the backend.

The backend serves two pools, ``PD1:SP1`` and ``PD1:SP2``; the source is
in SP1 and the new volume in SP2.

An array snapshot always stays in its source's pool. The stock driver
snapshots anyway: the clone's array volume is in SP1 while Cinder records
it in SP2. Ours creates the volume in SP2 at the requested size rounded up
to the array granularity (and records and charges that size) and copies
the data through this host (os-brick attach of both volumes, zero chunks
skipped). The copy covers the source's whole array volume (the attached
device), not the size Cinder records: a guest writes up to the end of the
disk it sees.

How a driver gets there: Cinder's filter scheduler keeps a clone of a
volume in the source's pool (the request's ``resource_backend`` is the
source's ``host@backend#pool``), so the first test places the clone in SP2
by telling the harness's scheduler to. The second is a path Cinder really
takes: a volume created in SP2 from a raw image whose ``cinder://``
location names a volume in SP1.
"""

import os

import fixtures
from oslo_utils import units

from powerflex_cache_driver import data_copy
from powerflex_cache_driver.simulator import loop
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
VIRTUAL_SIZE = 1 * GIB
PIECES = [(0, MIB), (VIRTUAL_SIZE // 2, MIB)]
SOURCE_POOL = inprocess_cinder.POOL
TARGET_POOL = inprocess_cinder.SECOND_POOL


class CrossPoolScenario:
    """A clone into another pool, for the driver of the concrete class."""

    BACKEND_OPTIONS = inprocess_cinder.TWO_POOLS

    def test_clone_into_another_pool(self) -> None:
        """1 GiB source in SP1, 10 GiB clone placed in SP2."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        source, _unused = self.create_volume(1, image_id=meta["id"])
        # Stock keeps the request of a volume made from an image; ours
        # records the 8 GiB the array holds.
        self.assertEqual(self.expect(stock=1, ours=8), source.size)
        self.assertEqual(8, self.array_size_gib(source))
        self.assertEqual(self.pool_host(SOURCE_POOL), source.host)
        pool_ids = self.sim.pool_ids
        self.assertEqual(pool_ids["SP1"],
                         self.array_volume(source.provider_id).pool_id)
        copies = (self.spy(self.driver, "copy_volume_data_sparse")
                  if self.is_ours else [])
        start = self.quota_usage()

        clone, recorded = self.create_volume(10, source_volume=source,
                                             pool=TARGET_POOL)
        self.assertEqual(self.pool_host(TARGET_POOL), clone.host)
        record = self.array_volume(clone.provider_id)
        counts = recorded.counts()
        if self.is_ours:
            self.assertEqual(pool_ids["SP2"], record.pool_id)
            self.assertNotEqual(self.array_volume(source.provider_id)
                                .vtree_id, record.vtree_id)
            self.assertEqual(0, counts["snapshotVolumes"])
            self.assertEqual(1, counts["createVolume"])
            self.assertEqual([], recorded.extends)
            # Both volumes attached for the copy, both detached after.
            self.assertEqual(2, counts["addMappedSdc"])
            self.assertEqual(2, counts["removeMappedSdc"])
            self.assertEqual(1, len(copies))
            # All 8 GiB the source holds on the array; its holes are
            # skipped, not read.
            self.assertEqual(8 * GIB, copies[0].bytes_total)
            self.assertLess(copies[0].bytes_read, GIB)
            self.assertEqual(2 * MIB, copies[0].bytes_written)
            self.assertEqual(16, clone.size)
        else:
            # The snapshot lands in the source's pool, whatever Cinder
            # recorded, and is then extended to the request.
            self.assertEqual(pool_ids["SP1"], record.pool_id)
            self.assertEqual(1, counts["snapshotVolumes"])
            self.assertEqual(0, counts["createVolume"])
            self.assertEqual(0, counts["addMappedSdc"])
            self.assertEqual([(clone.provider_id, 16)], recorded.extends)
            self.assertEqual(16, clone.size)
        self.assertEqual(16, self.array_size_gib(clone))
        self.assert_volume_content(clone, image)
        # Both record 16 GiB; stock leaves the usage at the 10 reserved,
        # ours charged the 6 more.
        self.assertEqual(start["gigabytes"] + self.expect(stock=10, ours=16),
                         self.quota_usage()["gigabytes"])
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

        self.delete_volume(clone)
        self.assertNotIn(clone.provider_id, self.sim.array.volumes)
        # Stock recorded 16 GiB for the 10 GiB clone and releases 16;
        # Cinder stops the usage at 0, so the 1 GiB source is no longer
        # counted at all.
        self.assertEqual(self.expect(stock=0, ours=start["gigabytes"]),
                         self.quota_usage()["gigabytes"])
        self.assertEqual(self.expect(stock=1, ours=8),
                         self.db_usage()["gigabytes"])
        if self.is_ours:
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_cinder_location_in_another_pool(self) -> None:
        """A raw image's cinder:// volume is in SP1, the new one in SP2."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        source, _unused = self.create_volume(1, image_id=meta["id"])
        self.delete_cache_entries()
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % source.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        copies = (self.spy(self.driver, "copy_volume_data_sparse")
                  if self.is_ours else [])

        volume, recorded = self.create_volume(1, image_id=meta["id"],
                                              pool=TARGET_POOL)
        record = self.array_volume(volume.provider_id)
        self.assertEqual(self.sim.pool_ids["SP2"], record.pool_id)
        counts = recorded.counts()
        if self.is_ours:
            # One volume in SP2 and a host copy of the image volume.
            self.assertEqual(1, self.images.downloads[meta["id"]])
            self.assertEqual(1, len(copies))
            self.assertEqual(MIB * 2, copies[0].bytes_written)
            self.assertEqual(0, counts["snapshotVolumes"])
            self.assertEqual([], self.cache_entries())
        else:
            # Cinder looks for the image volume on the new volume's host,
            # pool included: not found, the image is downloaded (and
            # cached: the cache entry is a snapshot of the new volume).
            self.assertEqual(2, self.images.downloads[meta["id"]])
            self.assertEqual([volume.provider_id],
                             [d["volumeId"] for c in
                              recorded.of("snapshotVolumes")
                              for d in c.body["snapshotDefs"]])
        self.assertEqual(1, counts["createVolume"])
        self.assert_volume_content(volume, image)
        self.assert_array_matches_db()


class TestCrossPoolStock(CrossPoolScenario,
                         driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestCrossPoolOurs(CrossPoolScenario, driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""

    def shrink_source_after_first_read(self, backing_path: str) -> None:
        """Cut the source to 1 MiB once the copy has read its first chunk.

        As when its device goes away or shrinks during the copy; a loop
        device standing for it is made to see the new size.
        """
        real_reader = data_copy._fd_reader
        shrunk = []

        def reader(fd: int):
            read = real_reader(fd)

            def read_then_shrink(buf, offset):
                count = read(buf, offset)
                if not shrunk:
                    shrunk.append(offset)
                    os.truncate(backing_path, MIB)
                    for device in loop.devices_of(backing_path):
                        loop.refresh(device)
                return count
            return read_then_shrink

        self.useFixture(fixtures.MonkeyPatch(
            "powerflex_cache_driver.data_copy._fd_reader", reader))

    def test_source_shrunk_during_the_copy_fails_the_clone(self) -> None:
        """Issue 20 item 2: a copy whose source ends early is no clone.

        The source holds data at 0 and 512 MiB; it shrinks to 1 MiB once
        the copy has read its first chunk. Before the fix the copy
        returned with what it had read and the clone was ``available``
        without the data at 512 MiB. Now the create fails, the new array
        volume is removed and its quota given back.
        """
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        source, _unused = self.create_volume(1, image_id=meta["id"])
        before = set(self.sim.array.volumes)
        start = self.quota_usage()
        self.shrink_source_after_first_read(
            self.array_volume(source.provider_id).backing_path)

        clone, recorded = self.create_volume(10, source_volume=source,
                                             pool=TARGET_POOL,
                                             expect_status="error")
        self.assertEqual(1, recorded.counts()["createVolume"])
        self.assertEqual(1, recorded.counts()["removeVolume"])
        self.assertIsNone(clone.provider_id)
        self.assertEqual(before, set(self.sim.array.volumes))
        self.assertEqual(start["gigabytes"] + 10,
                         self.quota_usage()["gigabytes"])
        self.delete_volume(clone)
        self.assertEqual(start, self.quota_usage())
        self.assert_array_matches_db()
