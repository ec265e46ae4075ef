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
"""Release differences handled in :mod:`powerflex_cache_driver.compat`."""

from unittest import mock

from cinder.image import cache as image_cache
from cinder.volume.drivers.dell_emc.powerflex import rest_client
import testtools

from powerflex_cache_driver import compat

GUID = "e3d2e5a1-0000-4000-8000-000000000001"


def _info() -> dict:
    return {"driver_volume_type": "scaleio",
            "data": {"scaleIO_volname": "v", "serverIP": "192.0.2.1"}}


class WithSdcGuid(testtools.TestCase):
    """``sdc_guid`` only where the driver mapped the volume itself."""

    def test_flag_follows_the_rest_client(self) -> None:
        self.assertEqual(
            hasattr(rest_client.RestClient, "query_sdc_id_by_guid"),
            compat.DRIVER_MAPS_VOLUMES)

    @mock.patch.object(compat, "DRIVER_MAPS_VOLUMES", True)
    def test_added_where_the_driver_maps(self) -> None:
        info = compat.with_sdc_guid(_info(), {"sdc_guid": GUID})
        self.assertEqual(GUID, info["data"]["sdc_guid"])

    @mock.patch.object(compat, "DRIVER_MAPS_VOLUMES", False)
    def test_left_out_where_os_brick_maps(self) -> None:
        # Cinder 25 and 26: with sdc_guid os-brick would wait for a device
        # that nobody mapped.
        info = compat.with_sdc_guid(_info(), {"sdc_guid": GUID})
        self.assertNotIn("sdc_guid", info["data"])

    @mock.patch.object(compat, "DRIVER_MAPS_VOLUMES", True)
    def test_nvme_and_empty_connector_untouched(self) -> None:
        nvme = {"driver_volume_type": "nvmeof", "data": {}}
        self.assertEqual({}, compat.with_sdc_guid(
            nvme, {"sdc_guid": GUID})["data"])
        self.assertNotIn("sdc_guid",
                         compat.with_sdc_guid(_info(), {})["data"])


class DeleteCachedVolume(testtools.TestCase):
    """Cache entry volumes are deleted the way the release does."""

    ENTRY = {"volume_id": "vol-1", "image_id": "img-1"}

    def test_public_method(self) -> None:
        cache = mock.Mock(spec=["delete_cached_volume"])
        compat.delete_cached_volume(cache, "ctx", self.ENTRY, "why")
        cache.delete_cached_volume.assert_called_once_with(
            "ctx", self.ENTRY, "why")

    def test_private_method_before_cinder_27(self) -> None:
        cache = mock.Mock(spec=["_delete_image_volume"])
        compat.delete_cached_volume(cache, "ctx", self.ENTRY, "why")
        cache._delete_image_volume.assert_called_once_with("ctx", self.ENTRY)

    def test_this_release_has_one_of_them(self) -> None:
        cls = image_cache.ImageVolumeCache
        self.assertTrue(hasattr(cls, "delete_cached_volume") or
                        hasattr(cls, "_delete_image_volume"))
