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
"""The image-volume cache through Cinder's API, for every disk format.

For each format an image is made with ``qemu-img`` from one raw file with a
known pattern, uploaded to Glance, and several volumes of different sizes
are made from it: the first one a cache miss, the others cache hits. Each
must be available, bootable, recorded at its requested size rounded up to
the array granularity, and the image must have exactly one cache entry,
owned by Cinder's internal tenant, recorded at the image's size rounded up.
One volume per image is uploaded back to Glance and compared with the raw
file byte for byte; the quota usage of the test project and of the internal
tenant must equal what their records add up to.
"""

import shutil

from tempest import config
from tempest.lib import decorators

from powerflex_cache_driver.tempest_plugin.tests.api.volume import base

CONF = config.CONF


class ImageCacheTest(base.ImageCacheBaseTest):
    """One cache entry per image, whatever its disk format."""

    @classmethod
    def skip_checks(cls) -> None:
        """Skip without the cache, or without qemu-img for the images."""
        super().skip_checks()
        if shutil.which("qemu-img") is None:
            raise cls.skipException("qemu-img is needed to make the images")

    @classmethod
    def resource_setup(cls) -> None:
        """Make the raw reference and its conversions."""
        super().resource_setup()
        cls.images = base.ImageFiles(CONF.powerflex_cache.image_formats)
        cls.addClassResourceCleanup(cls.images.remove)

    def _requested_sizes(self) -> list[int]:
        """Sizes of the volumes made from each image, the miss first.

        The miss asks for more than one granule (the clone of the new
        entry is extended), then one below a granule and one of exactly
        one granule.
        """
        gran = self.granularity
        cycle = [gran + 2, 1, gran, 2 * gran]
        count = CONF.powerflex_cache.volumes_per_image
        return [cycle[i % len(cycle)] for i in range(count)]

    def _check_format(self, disk_format: str) -> None:
        if disk_format not in self.images.paths:
            raise self.skipException(
                "%s is not in [powerflex_cache] image_formats" % disk_format)
        image = self.upload_image(self.images.paths[disk_format],
                                  disk_format)
        self.remove_cache_entries_at_cleanup(image["id"])
        entry_ids = []
        last = None
        for requested in self._requested_sizes():
            volume = self.create_volume(imageRef=image["id"], size=requested)
            last = self.assert_recorded_size(
                volume, self.rounded(requested), requested)
            self.assertEqual("true", last["bootable"])
            self.assertEqual(
                image["id"],
                last.get("volume_image_metadata", {}).get("image_id"))
            entry_ids.append(self.single_cache_entry(image["id"])["id"])

        entry = self.single_cache_entry(image["id"])
        # The entry holds the image: its virtual size (a few MiB) is less
        # than a GiB, rounded up to one granule.
        self.assertEqual(self.rounded(1), entry["size"])
        if (CONF.powerflex_cache.volumes_per_image <
                CONF.powerflex_cache.snapshot_limit):
            # No vtree filled up: every create used the same entry.
            self.assertEqual([entry["id"]] * len(entry_ids), entry_ids,
                             "the cache entry changed between creates")
        if CONF.powerflex_cache.verify_content:
            self.assert_volume_holds(last["id"], self.images.raw)
        self.assert_usage_matches_records()
        self.assert_usage_matches_records(
            entry["os-vol-tenant-attr:tenant_id"])

    @decorators.idempotent_id("f53513f2-b8a3-4f56-bc29-06b5cf42f2b8")
    def test_image_cache_raw(self) -> None:
        """Volumes from a raw image share one cache entry."""
        self._check_format("raw")

    @decorators.idempotent_id("2b70071e-e14a-486b-baaa-593d7c2d82cb")
    def test_image_cache_qcow2(self) -> None:
        """Volumes from a qcow2 image share one cache entry."""
        self._check_format("qcow2")

    @decorators.idempotent_id("0906dac1-d2b8-4210-bb27-c59d180ad461")
    def test_image_cache_vmdk(self) -> None:
        """Volumes from a VMDK (monolithicSparse) image share one entry."""
        self._check_format("vmdk")

    @decorators.idempotent_id("4a2ee843-b418-4d5c-97a2-c12807ceac2a")
    def test_image_cache_vhdx(self) -> None:
        """Volumes from a VHDX image share one cache entry."""
        self._check_format("vhdx")

    @decorators.idempotent_id("28fc6205-10ce-4002-9236-53ecfe6ece0b")
    def test_image_cache_vdi(self) -> None:
        """Volumes from a VDI image share one cache entry."""
        self._check_format("vdi")
