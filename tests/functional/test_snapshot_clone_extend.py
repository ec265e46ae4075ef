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
"""Scenario 5: volumes from snapshots, clones of clones, extend_volume.

A 10 GiB volume is 16 GiB on the array, and so are its snapshots and the
clones of those. A volume from such a snapshot needs no extend up to 16
GiB: the stock driver sends ``setVolumeSize`` 16 to the 16 GiB clone anyway
when the database knows the source as 10 GiB (Cinder keeps the request for
the stock driver's volumes made from an image, so it accepts a 12 GiB
volume from the snapshot); ours records the source at 16 GiB, so the
volume from the snapshot is at least 16 GiB, with no extend.

Both drivers record the array size in the database for every clone and
empty volume (16 for a 10 GiB volume, 16 for the 12 GiB clone; ours also
for a volume made from an image), so Cinder's API refuses a 12 GiB volume
from the snapshot of a "10 GiB" volume, or a 14 GiB clone of a "12 GiB"
one: the source is 16 GiB to Cinder, as it is to the guest. The stock
driver leaves quota usage at the requested sizes, so it drifts by the
rounding; ours charges the project for the rounding when it makes the
volume.

``extend_volume`` is decided from the recorded size: 16 -> 20 sends an
extend to 24 (the array size of 20), with no GET before it. Cinder's
volume manager records what the extend asked for (20; a later extend to
24 then sends nothing, 24 already covering 24); this package's records
the 24 GiB the array holds, and charges the project for it.
"""

from cinder import exception

from tools.beds import driver_testcases
from tools.beds import scenario_images

BASELINE_SIZE = 32


class SnapshotCloneExtendScenario:
    """Snapshots, clones and extends, for the concrete class's driver."""

    def test_snapshot_clone_and_extend_of_an_image_volume(self) -> None:
        """10 GiB volume -> snapshot -> 12 (ours: 16) GiB -> clones."""
        meta, image = self.make_image(
            "tiny", scenario_images.SMALL_VIRTUAL_SIZE,
            scenario_images.SMALL_PIECES, "tiny")
        baseline, _unused = self.create_volume(BASELINE_SIZE)
        start = self.quota_usage()

        source, recorded = self.create_volume(10, image_id=meta["id"])
        # The cache miss makes a 1 GiB image into an 8 GiB array volume
        # (stock: the user's volume, ours: the cache volume, cloned for
        # the user), then extends the user's to the 10 asked: 16 on the
        # array. Needed by both.
        self.assertEqual([(source.provider_id, 16)], recorded.extends)
        self.assertEqual(self.expect(stock=10, ours=16), source.size)

        snapshot, recorded = self.create_snapshot(source)
        self.assertEqual([], recorded.extends)
        self.assertEqual(self.expect(stock=10, ours=16),
                         snapshot.volume_size)
        self.assertEqual(16, self.array_size_gib(snapshot))

        if self.is_ours:
            # The snapshot of the "16 GiB" volume is 16 GiB to Cinder.
            self.assertRaises(exception.InvalidInput, self.create_volume,
                              12, snapshot=snapshot)
        from_snap, recorded = self.create_volume(
            self.expect(stock=12, ours=16), snapshot=snapshot)
        self.assertEqual(1, recorded.counts()["snapshotVolumes"])
        self.assertEqual(
            self.expect(stock=[(from_snap.provider_id, 16)], ours=[]),
            recorded.extends)
        self.assertEqual(16, self.array_size_gib(from_snap))
        self.assertEqual(16, from_snap.size)
        self.assert_volume_content(from_snap, image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()

        # Clone of the clone, 14 GiB: both drivers recorded the clone as
        # 16 GiB, so Cinder's API refuses a smaller clone.
        self.assertRaises(exception.InvalidInput, self.create_volume,
                          14, source_volume=from_snap)

        clone, recorded = self.create_volume(16, source_volume=from_snap)
        self.assertEqual([], recorded.extends)
        self.assertEqual(16, clone.size)
        self.assertEqual(16, self.array_size_gib(clone))
        self.assert_volume_content(clone, image)

        # Decided from the recorded size (16 -> round8(20) = 24): one
        # extend, and no GET of the volume before it.
        clone, recorded = self.extend_volume(clone, 20)
        self.assertEqual([(clone.provider_id, 24)], recorded.extends)
        self.assertEqual(0, recorded.counts()["getVolume"])
        self.assertEqual(self.expect(stock=20, ours=24), clone.size)
        self.assertEqual(24, self.array_size_gib(clone))
        if not self.is_ours:
            clone, recorded = self.extend_volume(clone, 24)
            self.assertEqual([], recorded.extends)
            self.assertEqual(0, recorded.counts()["getVolume"])
            self.assertEqual(24, clone.size)
        self.assert_volume_content(clone, image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()

        # Stock: 16 recorded, 12 reserved for the volume from the
        # snapshot (and 10 for the source, which keeps 10 in the DB).
        drift = self.expect(stock=16 - 12, ours=0)
        self.assertEqual({"volumes": 0, "snapshots": 0,
                          "gigabytes": -drift}, self.quota_drift())
        for volume in (clone, from_snap):
            self.delete_volume(volume)
        self.delete_snapshot(snapshot)
        self.delete_volume(source)
        self.delete_cache_entries()
        end = self.quota_usage()
        self.assertEqual(start["volumes"], end["volumes"])
        self.assertEqual(start["snapshots"], end["snapshots"])
        self.assertEqual(start["gigabytes"] - drift, end["gigabytes"])
        self.delete_volume(baseline)
        self.assert_array_matches_db()

    def test_snapshot_of_an_empty_volume(self) -> None:
        """10 GiB empty volume -> snapshot -> 12 and 16 GiB volumes."""
        baseline, _unused = self.create_volume(BASELINE_SIZE)
        start = self.quota_usage()
        source, recorded = self.create_volume(10)
        self.assertEqual({"createVolume": 1}, dict(recorded.counts()))
        self.assertEqual(16, self.array_size_gib(source))
        self.assertEqual(16, source.size)

        snapshot, _unused = self.create_snapshot(source)
        self.assertEqual(16, snapshot.volume_size)
        # The snapshot of the "16 GiB" volume is 16 GiB to Cinder.
        self.assertRaises(exception.InvalidInput, self.create_volume,
                          12, snapshot=snapshot)
        volume16, recorded = self.create_volume(16, snapshot=snapshot)
        self.assertEqual([], recorded.extends)
        self.assertEqual(16, volume16.size)
        self.assertEqual(16, self.array_size_gib(volume16))
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()

        drift = self.expect(stock=16 - 10, ours=0)
        self.assertEqual({"volumes": 0, "snapshots": 0,
                          "gigabytes": -drift}, self.quota_drift())
        self.delete_volume(volume16)
        self.delete_snapshot(snapshot)
        self.delete_volume(source)
        end = self.quota_usage()
        self.assertEqual(start["volumes"], end["volumes"])
        self.assertEqual(start["gigabytes"] - drift, end["gigabytes"])
        self.delete_volume(baseline)
        self.assert_array_matches_db()


class TestSnapshotCloneExtendStock(SnapshotCloneExtendScenario,
                                   driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestSnapshotCloneExtendOurs(SnapshotCloneExtendScenario,
                                  driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
