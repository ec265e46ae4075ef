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
"""Checks of the harness itself: what the scenarios rely on is real.

* os-brick's connector factory hands Cinder the simulated SDC connector,
  and the connector properties Cinder collects carry the simulator's SDC
  GUID, which is what the driver maps volumes to;
* the driver talks to the simulator over HTTPS with certificate
  verification on;
* an image copy goes through os-brick and qemu-img: the volume is mapped to
  the SDC, written, unmapped, and keeps its array size.
"""

import logging

from cinder.volume import volume_utils
from os_brick.initiator import connector as brick_connector
from oslo_utils import units
import testtools

from powerflex_cache_driver import compat
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder
from tools.beds import simulated_sdc


class TestHarness(driver_testcases.StockDriverTestCase):
    """The wiring, checked once with the stock driver."""

    STOCK_29_SCENARIO = False

    def test_connector_factory_and_properties(self) -> None:
        """Cinder's brick helpers reach the simulated SDC."""
        properties = volume_utils.brick_get_connector_properties()
        self.assertEqual(inprocess_cinder.SDC_GUID, properties["sdc_guid"])
        connector = volume_utils.brick_get_connector("scaleio")
        self.assertIsInstance(connector, simulated_sdc.SimulatedSdcConnector)
        self.assertEqual(self.sim.by_id_dir, connector.get_search_path())
        self.assertIn("scaleio", type(connector).__mro__[1].__module__)

    def test_driver_uses_verified_https(self) -> None:
        """The REST client verifies the simulator's certificate."""
        client = self.driver._get_client()
        self.assertTrue(client.verify_certificate)
        self.assertEqual(self.sim.ca_cert_path, client.certificate_path)
        self.assertEqual(self.sim.port, client.rest_port)

    def test_image_copy_maps_writes_and_unmaps(self) -> None:
        """A cache miss maps the volume to our SDC and unmaps it after."""
        meta, image = self.make_image("h", units.Gi, [(0, units.Mi)], "h")
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        sdc_id = self.sim.sdc_ids[inprocess_cinder.SDC_GUID]
        maps = recorded.of("addMappedSdc")
        self.assertEqual([volume.provider_id], [c.volume_id for c in maps])
        unmaps = recorded.of("removeMappedSdc")
        self.assertEqual([volume.provider_id], [c.volume_id for c in unmaps])
        self.assert_volume_content(volume, image)
        if compat.DRIVER_MAPS_VOLUMES:
            self.assertEqual(sdc_id, maps[0].body["sdcId"])
            self.assertEqual([], self.sdc.legacy_attempts)
        else:
            # Cinder 25 and 26: os-brick maps, by the SDC's GUID, with the
            # credentials of the host's connector.conf.
            self.assertEqual(inprocess_cinder.SDC_GUID, maps[0].body["guid"])
            self.assertEqual(1, len(self.sdc.legacy_attempts))
        self.assertEqual([], self.casts.failures)
        self.delete_volume(volume)
        self.delete_cache_entries()
        self.assert_array_matches_db()

    def test_secret_in_a_log_record_is_found(self) -> None:
        """The scan of every test finds a token in a DEBUG record."""
        token = self.sim.tokens.issue()
        self.assertEqual([], self.logged.leaks())
        try:
            raise ValueError("refused %s" % token)
        except ValueError:
            logging.getLogger("cinder.volume").debug("login", exc_info=True)
        leaks = self.logged.leaks()
        self.assertEqual(1, len(leaks))
        self.assertIn("cinder.volume DEBUG", leaks[0])
        self.assertNotIn(token, leaks[0])
        self.logged.handler.records.clear()


class TestSdcFixture(testtools.TestCase):
    """The registration is undone after a test."""

    def test_registration_is_restored(self) -> None:
        """Mapping and connector list come back as they were."""
        mapping = brick_connector.get_connector_mapping()
        before_entry = mapping.get("SCALEIO")
        before_list = list(brick_connector.unix_connector_list)
        fixture = simulated_sdc.SimulatedSdcFixture("guid", "/nonexistent")
        with fixture:
            self.assertEqual(simulated_sdc.CONNECTOR_PATH, mapping["SCALEIO"])
            self.assertEqual([simulated_sdc.BASE_CONNECTOR_PATH,
                              simulated_sdc.CONNECTOR_PATH],
                             brick_connector.unix_connector_list)
            self.assertEqual("guid", simulated_sdc.active_sdc().guid)
        self.assertEqual(before_entry, mapping.get("SCALEIO"))
        self.assertEqual(before_list, brick_connector.unix_connector_list)
        self.assertRaises(RuntimeError, simulated_sdc.active_sdc)
