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
"""Scenario 1, the seed: a 60 GiB image into 60 GiB volumes, cache on.

The traced flow the product was created from: the first volume misses the
image-volume cache, three more are served from the cache. For every create
the test counts the ``setVolumeSize`` requests and their targets, checks the
volume's bytes against the image and the array size against the database,
and at the end that quota usage is back where it started and that no array
volume outlived its Cinder record.

Ours takes the miss over in ``clone_image``: the image is downloaded once
into a new internal-tenant cache volume of 64 GiB (the 60 GiB image rounded
up to the array granularity), which becomes the cache entry, and the user's
volume is a snapshot of it. Every volume records the 64 GiB the array holds,
and the project is charged for those 64 GiB (the API reserved 60, the
driver the 4 more), so usage matches the records at every step.

What Cinder 29's stock driver does here, as observed: it sends no
``setVolumeSize`` at all (its ``extend_volume`` compares rounded sizes, so
the seed's "extend to 60" of a 64 GiB volume is no longer sent), but it
records 64 GiB in the database for every clone (cache entry and cache
hits), while the API reserved quota for 60: each hit deleted takes 4 GiB
too many off the project's usage. With ``verify_glance_signatures =
disabled`` the cache-miss volume is recorded at 64 GiB as well.
"""

from tools.beds import driver_testcases
from tools.beds import inprocess_cinder
from tools.beds import scenario_images

BASELINE_SIZE = 32
REQUESTED = 60
HITS = 3


class SeedScenario:
    """The seed flow, for the driver of the concrete class."""

    def _run_seed(self, disk_format: str,
                  signature_verification: bool = True) -> None:
        if not signature_verification:
            self.override_config("verify_glance_signatures", "disabled")
        meta, image = self.make_image(
            "seed", scenario_images.SEED_VIRTUAL_SIZE,
            scenario_images.SEED_PIECES, "seed", disk_format=disk_format)
        self.require_conversion_space(image)
        baseline, _unused = self.create_volume(BASELINE_SIZE)
        start = self.quota_usage()

        volumes, extends, db_sizes = [], [], []
        for index in range(1 + HITS):
            volume, recorded = self.create_volume(REQUESTED,
                                                  image_id=meta["id"])
            self.assertEqual(64, self.array_size_gib(volume))
            self.assert_volume_content(volume, image)
            for array_id, _size in recorded.extends:
                self.assertEqual(volume.provider_id, array_id)
            if index == 0:
                # The miss: one array volume (stock: the user's, then
                # snapshotted into the cache; ours: the cache volume, then
                # snapshotted for the user).
                self.assertEqual(1, recorded.counts()["createVolume"])
                self.assertEqual(1, recorded.counts()["snapshotVolumes"])
            volumes.append(volume)
            extends.append(recorded.extend_targets)
            db_sizes.append(volume.size)
            if self.is_ours:
                self.assert_sizes_cover_array()
                self.assert_no_quota_drift()
        self.assertEqual({meta["id"]: 1}, dict(self.images.downloads))
        cache_volume = self.cache_volume(meta["id"])
        self.assertEqual(64, self.array_size_gib(cache_volume))
        if self.is_ours:
            # The cache volume is the vtree's base, the miss a snapshot.
            self.assertEqual(
                self.array_volume(cache_volume.provider_id).vtree_id,
                self.array_volume(volumes[0].provider_id).vtree_id)
            self.assertFalse(
                self.array_volume(cache_volume.provider_id).is_snapshot)

        # Stock Cinder 29 sends no setVolumeSize here: the seed's "extend
        # to 60" of a 64 GiB volume is gone; ours sends none either.
        self.assertEqual([[]] * (1 + HITS), extends)
        # Stock keeps the request for the miss (glance metadata written
        # by signature verification), records 64 for clones; ours
        # records the 64 GiB the array holds for every volume.
        miss_db = self.expect(stock=REQUESTED, ours=64)
        if not signature_verification:
            miss_db = 64
        self.assertEqual([miss_db] + [64] * HITS, db_sizes)
        self.assertEqual(64, cache_volume.size)

        # Quota: the API reserved 60 per volume; stock records more and
        # leaves the usage at 60, ours charges the 4 GiB more.
        drift = self.expect(stock=(miss_db - REQUESTED) +
                            HITS * (64 - REQUESTED), ours=0)
        self.assertEqual({"volumes": 0, "gigabytes": -drift,
                          "snapshots": 0}, self.quota_drift())
        self.assertEqual(
            start["gigabytes"] + self.expect(stock=REQUESTED, ours=64) *
            (1 + HITS), self.quota_usage()["gigabytes"])
        # Stock: the internal tenant reserved the miss volume's DB size
        # for the cache entry, which records 64. Ours: it reserved the
        # 64 GiB cache volume it made.
        self.assertEqual(
            {"volumes": 0, "snapshots": 0,
             "gigabytes": self.expect(stock=miss_db - 64, ours=0)},
            self.quota_drift(inprocess_cinder.INTERNAL_PROJECT_ID))

        for volume in volumes:
            self.delete_volume(volume)
        self.delete_cache_entries()
        end = self.quota_usage()
        self.assertEqual(start["volumes"], end["volumes"])
        self.assertEqual(start["gigabytes"] - drift, end["gigabytes"])
        self.delete_volume(baseline)
        if self.is_ours:
            self.assertEqual({"volumes": 0, "gigabytes": 0, "snapshots": 0},
                             self.quota_usage())
            self.assertEqual(
                {"volumes": 0, "gigabytes": 0, "snapshots": 0},
                self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID))
        self.assert_array_matches_db()

    def test_seed_raw_image(self) -> None:
        """Sparse 60 GiB raw image: miss then three hits."""
        self._run_seed("raw")

    def test_seed_qcow2_image(self) -> None:
        """The same disk as qcow2: miss then three hits."""
        self._run_seed("qcow2")

    def test_seed_without_signature_verification(self) -> None:
        """verify_glance_signatures = disabled, as in the traced cloud."""
        self._run_seed("qcow2", signature_verification=False)


class TestSeedStock(SeedScenario, driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestSeedOurs(SeedScenario, driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
