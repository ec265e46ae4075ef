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
"""Scenario 2: small images into large volumes, and a size sweep.

On a cache miss Cinder's own path (stock) creates the volume at the
image's virtual size, clones it into the cache and then extends it to the
requested size. Ours downloads the image into a new cache volume made at
the image's virtual size rounded up to the array granularity (8 GiB for a
3 GiB or a 1 GiB image) and clones the volume from it, extending the clone.
Cache hits clone the (small) cache entry and extend the clone. Every one of
those extends is needed, for both drivers. The sweep of requested sizes
shows where the array's 8 GiB granularity already covers the request.

Ours records the array size of every volume (cache entries included) and
charges the project for it; stock records it for clones but reserves quota
for the request only.

The last test clones a volume made from an image (whose database size is
the requested one for stock, as Cinder keeps it on the image path, and the
array size for ours): there the stock driver extends clones to the size
they already have.
"""

from cinder import exception
from oslo_utils import units

from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi

SMALL_VIRTUAL_SIZE = 3 * GIB
SMALL_PIECES = [(0, MIB), (SMALL_VIRTUAL_SIZE // 2, MIB),
                (SMALL_VIRTUAL_SIZE - MIB, MIB)]
TINY_VIRTUAL_SIZE = 1 * GIB
TINY_PIECES = [(0, MIB), (TINY_VIRTUAL_SIZE // 2 + 4096, MIB),
               (TINY_VIRTUAL_SIZE - MIB, MIB)]

SWEEP = (1, 8, 9, 16, 60, 62, 64, 65)
"""Requested sizes; the first is the cache miss, the others are hits."""

SWEEP_TARGETS = {1: [], 8: [], 9: [16], 16: [16], 60: [64], 62: [64],
                 64: [64], 65: [72]}
"""setVolumeSize targets per requested size (both drivers): the cache
entry holds a 1 GiB image in an 8 GiB array volume."""

CLONE_SIZES = (60, 62, 64, 65)
"""Clones of a 60 GiB volume (64 GiB on the array)."""


def _round8(size: int) -> int:
    return -(-size // 8) * 8


class SmallImageScenario:
    """Small images, for the driver of the concrete class."""

    def test_3gib_image_into_60gib_volumes(self) -> None:
        """Miss then hits: the extends to 64 are all needed."""
        meta, image = self.make_image("small", SMALL_VIRTUAL_SIZE,
                                      SMALL_PIECES, "small")
        baseline, _unused = self.create_volume(16)
        start = self.quota_usage()
        volumes = []
        for index in range(3):
            volume, recorded = self.create_volume(60, image_id=meta["id"])
            self.assertEqual([(volume.provider_id, 64)], recorded.extends)
            if index == 0:
                # The miss, stock: created at the image's size, cloned to
                # the cache, then extended to what the user asked. Ours:
                # the cache volume is created and filled, the volume is
                # cloned from it and extended.
                self.assertEqual(1, recorded.counts()["createVolume"])
                self.assertEqual(1, recorded.counts()["snapshotVolumes"])
            else:
                self.assertEqual(0, recorded.counts()["createVolume"])
                self.assertEqual(1, recorded.counts()["snapshotVolumes"])
            self.assertEqual(64, self.array_size_gib(volume))
            self.assert_volume_content(volume, image)
            volumes.append(volume)
        self.assertEqual({meta["id"]: 1}, dict(self.images.downloads))
        cache_volume = self.cache_volume(meta["id"])
        self.assertEqual(8, self.array_size_gib(cache_volume))
        self.assert_volume_content(cache_volume, image)
        self.assertEqual(8, cache_volume.size)
        self.assertEqual([self.expect(stock=60, ours=64)] + [64] * 2,
                         [v.size for v in volumes])
        self.assertEqual(-self.expect(stock=2 * 4, ours=0),
                         self.quota_drift()["gigabytes"])
        internal = self.quota_drift(inprocess_cinder.INTERNAL_PROJECT_ID)
        self.assertEqual(-self.expect(stock=8 - 3, ours=0),
                         internal["gigabytes"])
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        for volume in volumes:
            self.delete_volume(volume)
        self.delete_cache_entries()
        end = self.quota_usage()
        self.assertEqual(start["volumes"], end["volumes"])
        self.assertEqual(start["gigabytes"] - self.expect(stock=8, ours=0),
                         end["gigabytes"])
        self.delete_volume(baseline)
        self.assert_array_matches_db()

    def test_requested_size_sweep_from_cache(self) -> None:
        """1, 8, 9, 16, 60, 62, 64, 65 GiB volumes of a 1 GiB image."""
        meta, image = self.make_image("tiny", TINY_VIRTUAL_SIZE, TINY_PIECES,
                                      "tiny")
        observed, reads, db_sizes = {}, {}, {}
        for size in SWEEP:
            volume, recorded = self.create_volume(size, image_id=meta["id"])
            for array_id, _target in recorded.extends:
                self.assertEqual(volume.provider_id, array_id)
            observed[size] = recorded.extend_targets
            reads[size] = len(recorded.of("getVolume"))
            db_sizes[size] = volume.size
            self.assertEqual(_round8(size), self.array_size_gib(volume))
            self.assert_volume_content(volume, image)
            self.delete_volume(volume)
        self.assertEqual(SWEEP_TARGETS, observed)
        self.assertEqual({meta["id"]: 1}, dict(self.images.downloads))
        if self.is_ours:
            # The database size is the array size, miss included; the
            # extends of the hits are decided from the recorded sizes,
            # without a GET (the miss reads the cache volume it attaches
            # for the download).
            self.assertEqual({size: _round8(size) for size in SWEEP},
                             db_sizes)
            self.assertEqual({size: 0 for size in SWEEP[1:]},
                             {size: reads[size] for size in SWEEP[1:]})
        else:
            # The miss keeps the request; clones record the array size.
            expected = {size: _round8(size) for size in SWEEP}
            expected[SWEEP[0]] = SWEEP[0]
            self.assertEqual(expected, db_sizes)
        self.delete_cache_entries()
        self.assert_array_matches_db()

    def test_clones_of_an_image_volume(self) -> None:
        """Clones of a 60 GiB volume: stock extends 64 GiB clones to 64.

        Ours records the source at 64 GiB, so Cinder refuses the 60 and
        62 GiB clones, and the 64 GiB one needs no extend.
        """
        meta, image = self.make_image("tiny", TINY_VIRTUAL_SIZE, TINY_PIECES,
                                      "tiny")
        source, _unused = self.create_volume(60, image_id=meta["id"])
        self.assertEqual(self.expect(stock=60, ours=64), source.size)
        self.assertEqual(64, self.array_size_gib(source))
        start = self.quota_usage()
        observed = {}
        for size in CLONE_SIZES:
            if size < source.size:
                # Ours recorded the 64 GiB the array holds: Cinder's API
                # refuses a smaller clone, as the guest's disk could not
                # shrink either.
                self.assertRaises(exception.InvalidInput, self.create_volume,
                                  size, source_volume=source)
                observed[size] = None
                continue
            clone, recorded = self.create_volume(size, source_volume=source)
            observed[size] = recorded.extends
            for array_id, _target in recorded.extends:
                self.assertEqual(clone.provider_id, array_id)
            self.assertEqual(_round8(size), self.array_size_gib(clone))
            self.assertEqual(_round8(size), clone.size)
            self.assert_volume_content(clone, image)
            if self.is_ours:
                self.assert_sizes_cover_array()
                self.assert_no_quota_drift()
            self.delete_volume(clone)
        targets = {size: observed[size] and
                   [t for _unused, t in observed[size]]
                   for size in CLONE_SIZES}
        self.assertEqual(
            self.expect(stock={60: [], 62: [64], 64: [64], 65: [72]},
                        ours={60: None, 62: None, 64: [], 65: [72]}),
            targets)
        # Both record the rounded size of every clone. Stock reserved the
        # request only: deleting one frees more than the API reserved for
        # it (4 GiB for the 60 GiB clone, 2 for the 62, 7 for the 65).
        # Ours charged the rounding when it made the clone.
        self.assertEqual(
            start["gigabytes"] - self.expect(
                stock=sum(_round8(size) - size for size in CLONE_SIZES),
                ours=0),
            self.quota_usage()["gigabytes"])
        if self.is_ours:
            self.assert_no_quota_drift()
        self.delete_volume(source)
        self.delete_cache_entries()
        self.assert_array_matches_db()


class TestSmallImageStock(SmallImageScenario,
                          driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestSmallImageOurs(SmallImageScenario,
                         driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
