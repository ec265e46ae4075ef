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
"""Creates from one image past the array's snapshots-per-vtree limit.

A cache entry's clones are array snapshots in the entry's vtree, which
holds ``snapshot_limit`` of them. When it is full the driver copies the
entry into a new volume (a new vtree) that becomes the cache entry, deletes
the old entry's Cinder volume (its clones live on as array volumes) and
clones the new one: every create succeeds, the image is not downloaded
again, and the image keeps one cache entry.
"""

import shutil

from tempest import config
from tempest.lib import decorators

from powerflex_cache_driver.tempest_plugin.tests.api.volume import base

CONF = config.CONF

BATCH = 4
"""Creates sent at once after the first: two cinder-volume services of a
cluster may meet the full vtree together, and only one may rotate it."""


class VtreeLimitTest(base.ImageCacheBaseTest):
    """More volumes from one image than a vtree holds snapshots."""

    @classmethod
    def skip_checks(cls) -> None:
        """Skip without the cache, or when the limit makes it too long."""
        super().skip_checks()
        count = CONF.powerflex_cache.snapshot_limit + 2
        if count > CONF.powerflex_cache.max_vtree_test_volumes:
            raise cls.skipException(
                "snapshot_limit + 2 = %d volumes is more than "
                "[powerflex_cache] max_vtree_test_volumes = %d; lower the "
                "array's snapshot limit (the simulator's --snapshot-limit)"
                % (count, CONF.powerflex_cache.max_vtree_test_volumes))

    @decorators.idempotent_id("5fc48b3b-53cf-41ff-ae60-1d4577834ad5")
    def test_creates_past_vtree_limit(self) -> None:
        """snapshot_limit + 2 volumes from one image all become available."""
        gran = self.granularity
        count = CONF.powerflex_cache.snapshot_limit + 2
        self.raise_project_quota(volumes=-1, gigabytes=-1)
        images = base.ImageFiles(["raw"])
        self.addCleanup(images.remove)
        image = self.upload_image(images.raw, "raw")
        self.remove_cache_entries_at_cleanup(image["id"])

        first = self.create_volume(imageRef=image["id"], size=gran)
        self.assert_recorded_size(first, gran)
        first_entry = self.single_cache_entry(image["id"])

        volumes = [first]
        while len(volumes) < count:
            volumes += self.create_volumes_at_once(
                min(BATCH, count - len(volumes)), imageRef=image["id"],
                size=gran)
        for volume in volumes[1:]:
            self.assertEqual("available", volume["status"])
            self.assertEqual(gran, volume["size"],
                             "volume %s is recorded at %s GiB"
                             % (volume["id"], volume["size"]))

        entry = self.single_cache_entry(image["id"])
        self.assertNotEqual(
            first_entry["id"], entry["id"],
            "%d clones of cache entry %s, which holds %d snapshots, and it "
            "was not replaced" % (count, first_entry["id"],
                                  CONF.powerflex_cache.snapshot_limit))
        if (CONF.powerflex_cache.verify_content and
                shutil.which("qemu-img")):
            self.assert_volume_holds(volumes[-1]["id"], images.raw)
        self.assert_usage_matches_records()
        self.assert_usage_matches_records(
            entry["os-vol-tenant-attr:tenant_id"])
