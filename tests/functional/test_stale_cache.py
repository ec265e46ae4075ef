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
"""Scenario 4: an image updated in the image service is never served stale.

The image gets new data and a new ``updated_at``. The next volume must not
come from the old cache entry: Cinder evicts and deletes it (a cast to the
volume service), downloads the new data and caches it; the volume holds the
new bytes, the volume made before keeps the old ones, and the old cache
volume is gone from the database and from the array.
"""

import datetime

from cinder import exception
from cinder import objects
from oslo_utils import units

from tools.beds import driver_testcases

GIB = units.Gi
MIB = units.Mi
VIRTUAL_SIZE = 2 * GIB
OLD_PIECES = [(0, MIB), (GIB, MIB)]
NEW_PIECES = [(4096, MIB), (GIB + MIB, MIB), (VIRTUAL_SIZE - MIB, MIB)]


class StaleCacheScenario:
    """Image updates, for the driver of the concrete class."""

    def _updated_image(self, disk_format: str) -> None:
        meta, old_image = self.make_image("img", VIRTUAL_SIZE, OLD_PIECES,
                                          "old", disk_format=disk_format)
        before, _unused = self.create_volume(8, image_id=meta["id"])
        stale = self.cache_volume(meta["id"])
        self.assert_volume_content(stale, old_image)

        _new_meta, new_image = self.make_image(
            "img-v2", VIRTUAL_SIZE, NEW_PIECES, "new",
            disk_format=disk_format)
        updated_at = meta["updated_at"] + datetime.timedelta(minutes=5)
        self.images.replace_data(meta["id"], new_image, updated_at)

        after, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(1, recorded.counts()["createVolume"])
        self.assertEqual([(stale.provider_id,)],
                         [(c.volume_id,) for c in recorded.of("removeVolume")])
        self.assertRaises(exception.VolumeNotFound, objects.Volume.get_by_id,
                          self.admin_ctx, stale.id)
        self.assertNotIn(stale.provider_id, self.sim.array.volumes)
        fresh = self.cache_volume(meta["id"])
        self.assertNotEqual(stale.id, fresh.id)
        entry = self.cache_entries(meta["id"])[0]
        self.assertEqual(updated_at.replace(tzinfo=None),
                         entry["image_updated_at"])

        self.assert_volume_content(after, new_image)
        self.assert_volume_content(fresh, new_image)
        self.assert_volume_content(before, old_image)

        # And the next volume is a hit on the fresh entry.
        third, hit = self.create_volume(8, image_id=meta["id"])
        self.assertEqual({"snapshotVolumes": 1}, dict(hit.counts()))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(third, new_image)

        for volume in (before, after, third):
            self.delete_volume(volume)
        self.delete_cache_entries()
        self.assert_array_matches_db()

    def test_updated_raw_image_replaces_cache_entry(self) -> None:
        """raw image updated: new download, new entry, new bytes."""
        self._updated_image("raw")

    def test_updated_qcow2_image_replaces_cache_entry(self) -> None:
        """qcow2 image updated: new download, new entry, new bytes."""
        self._updated_image("qcow2")


class TestStaleCacheStock(StaleCacheScenario,
                          driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestStaleCacheOurs(StaleCacheScenario,
                         driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
