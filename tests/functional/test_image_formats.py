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
"""Scenario 3: raw and qcow2 images are both served from the cache.

Each image is downloaded once; the second volume of each is a clone of its
cache entry (one snapshot on the array, no new array volume, no mapping),
and all volumes hold the image's disk byte for byte.
"""

from oslo_utils import units

from tools.beds import driver_testcases

GIB = units.Gi
MIB = units.Mi
VIRTUAL_SIZE = 2 * GIB
PIECES = [(0, MIB), (VIRTUAL_SIZE // 3, 512 * units.Ki),
          (VIRTUAL_SIZE - MIB, MIB)]


class ImageFormatScenario:
    """Cache hits per format, for the driver of the concrete class."""

    def _two_volumes(self, disk_format: str) -> None:
        meta, image = self.make_image("img-%s" % disk_format, VIRTUAL_SIZE,
                                      PIECES, disk_format,
                                      disk_format=disk_format)
        first, miss = self.create_volume(8, image_id=meta["id"])
        second, hit = self.create_volume(8, image_id=meta["id"])
        self.assertEqual({meta["id"]: 1}, dict(self.images.downloads))
        self.assertEqual(1, miss.counts()["createVolume"])
        self.assertEqual(1, miss.counts()["addMappedSdc"])
        # The cache entry is a snapshot of the first volume.
        self.assertEqual(1, miss.counts()["snapshotVolumes"])
        self.assertEqual({"snapshotVolumes": 1}, dict(hit.counts()))
        cache_volume = self.cache_volume(meta["id"])
        hit_volume = self.array_volume(second.provider_id)
        self.assertEqual(
            self.array_volume(cache_volume.provider_id).vtree_id,
            hit_volume.vtree_id)
        for volume in (first, second, cache_volume):
            self.assert_volume_content(volume, image)
        for volume in (first, second):
            self.delete_volume(volume)
        self.delete_cache_entries()
        self.assert_array_matches_db()

    def test_raw_image_second_volume_from_cache(self) -> None:
        """raw: one download, the second volume is a cache clone."""
        self._two_volumes("raw")

    def test_qcow2_image_second_volume_from_cache(self) -> None:
        """qcow2: one download, the second volume is a cache clone."""
        self._two_volumes("qcow2")


class TestImageFormatsStock(ImageFormatScenario,
                            driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestImageFormatsOurs(ImageFormatScenario,
                           driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
