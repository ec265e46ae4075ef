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
"""Cinder's real PowerFlex RestClient against the simulator, TLS verified.

The client is configured through oslo.config exactly as a backend section
of cinder.conf would configure it, with ``driver_ssl_cert_verify = True``
and ``driver_ssl_cert_path`` = the simulator's CA.
"""

import logging
import os
from unittest import mock
import uuid

import fixtures
import testtools

from tests.unit.simulator import base

try:
    from cinder import exception
    from cinder.volume import configuration
    from cinder.volume import driver as volume_driver
    from cinder.volume.drivers.dell_emc.powerflex import driver as pf_driver
    from cinder.volume.drivers.dell_emc.powerflex import rest_client
    from cinder.volume.drivers.san import san
    from oslo_config import cfg
    from oslo_config import fixture as config_fixture
    HAVE_CINDER = True
except ImportError:  # pragma: no cover
    HAVE_CINDER = False

GIB_KB = base.GIB_KB
GROUP = "powerflex_simulator"
SKIP_REASON = "cinder is not installed in this environment"


def _client_has(name: str) -> bool:
    return HAVE_CINDER and hasattr(rest_client.RestClient, name)


def _has_ec_support() -> bool:
    """Cinder >= 2025.2 (29) knows PowerFlex 5 (EC); 27 does not."""
    return _client_has("init_powerflex_gen_type")


# Cinder 29 logs in at setup and refreshes its token periodically, never
# on 401; Cinder 27 logs in lazily, on its first 401 (or 403).
LOGIN_AT_SETUP = _client_has("_start_token_refresh_thread")


@testtools.skipUnless(HAVE_CINDER, SKIP_REASON)
class CinderClientTestCase(testtools.TestCase):
    """Start a simulator and configure Cinder's RestClient for it."""

    gen_type = "Mirroring"
    snapshot_limit = None

    def setUp(self) -> None:
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        kwargs = {"gen_type": self.gen_type}
        if self.snapshot_limit is not None:
            kwargs["snapshot_limit"] = self.snapshot_limit
        self.sim = self.useFixture(base.SimulatorFixture(**kwargs)).sim
        conf = self.useFixture(config_fixture.Config(cfg.CONF))
        self.configuration = configuration.Configuration(
            pf_driver.powerflex_opts + san.san_opts +
            volume_driver.volume_opts, config_group=GROUP)
        conf.config(group=GROUP, **self.sim.backend_options(["SP1"]))
        if LOGIN_AT_SETUP:
            # Cinder's periodic token refresh is an eventlet greenthread; it
            # would only run (and log in again) when the hub gets control.
            self.useFixture(fixtures.MockPatchObject(
                rest_client.RestClient, "_start_token_refresh_thread"))
        self.client = rest_client.RestClient(self.configuration)
        self.client.do_setup()
        if _has_ec_support():
            self.client.init_powerflex_gen_type("PD1")

    def create(self, size_gib: int = 8, pool: str = "SP1") -> str:
        return self.client.create_volume("PD1", pool, str(uuid.uuid4()),
                                         size_gib, "ThinProvisioned",
                                         "None")


class TestCinderClientMirroring(CinderClientTestCase):

    snapshot_limit = 3

    def test_setup_verifies_the_certificate(self):
        self.assertTrue(self.client.verify_certificate)
        self.assertEqual(self.sim.ca_cert_path,
                         self.client._get_verify_cert())
        self.assertEqual("4.5", self.client.query_rest_api_version())
        self.assertIsInstance(self.client.rest_token, str)
        self.assertEqual(1, self.sim.counts()["login"])
        if not LOGIN_AT_SETUP:
            self.assertEqual(401, self.sim.calls_of("version")[0].status)

    @testtools.skipUnless(_has_ec_support(), "Cinder without EC support")
    def test_gen_type(self):
        self.assertEqual("Mirroring",
                         self.client.init_powerflex_gen_type("PD1"))
        self.assertFalse(self.client.check_powerflex_ec_version())

    def test_create_volume_rounds_to_8_gib(self):
        vid = self.create(14)
        volume = self.client.query_volume(vid)
        self.assertEqual(16 * GIB_KB, volume["sizeInKb"])
        self.assertEqual("ThinProvisioned", volume["volumeType"])
        self.assertIsNone(volume["mappedSdcInfo"])
        create = self.sim.calls_of("createVolume")[0]
        self.assertEqual(str(14 * GIB_KB), create.body["volumeSizeInKb"])
        self.assertEqual("None", create.body["compressionMethod"])

    def test_snapshot_extend_query_remove(self):
        vid = self.create(8)
        sid = self.client.snapshot_volume(vid, str(uuid.uuid4()))
        snap = self.client.query_volume(sid)
        self.assertEqual(("Snapshot", vid, 8 * GIB_KB),
                         (snap["volumeType"], snap["ancestorVolumeId"],
                          snap["sizeInKb"]))
        self.sim.reset_calls()
        self.client.extend_volume(sid, 24)
        self.assertEqual(24 * GIB_KB,
                         self.client.query_volume(sid)["sizeInKb"])
        extends = self.sim.calls_of("setVolumeSize")
        self.assertEqual([(sid, {"sizeInGB": "24"})],
                         [(c.volume_id, c.body) for c in extends])
        if _client_has("query_vtree_statistics"):
            stats = self.client.query_vtree_statistics(snap["vtreeId"])
            self.assertEqual(2, int(stats["numOfVolumes"]))
        path = self.sim.array.volumes[sid].backing_path
        self.client.remove_volume(sid)
        self.assertNotIn(sid, self.sim.array.volumes)
        self.assertFalse(os.path.exists(path))
        # Deleting again: 79 is ignored by Cinder.
        self.client.remove_volume(sid)
        self.assertEqual(500, self.sim.calls_of("removeVolume")[-1].status)

    def test_extend_cannot_shrink(self):
        vid = self.create(16)
        with mock.patch("time.sleep"):
            self.assertRaises(exception.VolumeBackendAPIException,
                              self.client.extend_volume, vid, 8)
        self.assertEqual(3, self.sim.counts()["setVolumeSize"])

    def test_snapshot_limit_reached(self):
        vid = self.create()
        for _unused in range(3):
            self.client.snapshot_volume(vid, str(uuid.uuid4()))
        self.assertRaises(exception.SnapshotLimitReached,
                          self.client.snapshot_volume, vid,
                          str(uuid.uuid4()))

    @testtools.skipUnless(_client_has("query_sdc_id_by_guid"),
                          "this Cinder release's REST client does not map "
                          "volumes (os-brick does, Cinder 25 and 26)")
    def test_map_unmap(self):
        vid = self.create()
        sdc_id = self.client.query_sdc_id_by_guid(base.SDC_GUID.lower())
        self.assertEqual(self.sim.sdc_ids[base.SDC_GUID], sdc_id)
        self.assertEqual(sdc_id, self.client.query_sdc_by_id(sdc_id)["id"])
        link = self.sim.device_path(vid)
        self.client.map_volume(vid, sdc_id)
        self.assertEqual([vid], self.client.query_sdc_volumes(sdc_id))
        self.assertTrue(os.path.islink(link))
        self.client.set_sdc_limits(vid, sdc_id, bandwidth_limit="2048",
                                   iops_limit="1000")
        self.client.unmap_volume(vid, sdc_id)
        self.assertEqual([], self.client.query_sdc_volumes(sdc_id))
        self.assertFalse(os.path.lexists(link))
        # remove_volume unmaps from every SDC first when mapped.
        self.client.map_volume(vid, sdc_id)
        self.client.remove_volume(vid)
        self.assertEqual({"allSdcs": ""},
                         self.sim.calls_of("removeMappedSdc")[-1].body)
        self.assertEqual({}, self.sim.array.volumes)

    def test_rename_and_migrate(self):
        vid = self.create()
        volume = mock.Mock(provider_id=vid, id=str(uuid.uuid4()))
        self.client.rename_volume({"provider_id": vid}, volume.id)
        self.assertEqual(self.sim.array.volumes[vid].name,
                         self.sim.calls_of("setVolumeName")[0].body[
                             "newName"])
        params = {"destSPId": self.sim.pool_ids["SP2"],
                  "volTypeConversion": "NoConversion",
                  "compressionMethod": "None",
                  "allowDuringRebuild": "False"}
        self.client.migrate_vtree(volume, params)
        vtree = self.client.query_vtree(
            self.client.query_volume(vid)["vtreeId"], vid)
        self.assertEqual("NotInMigration",
                         vtree["vtreeMigrationInfo"]["migrationStatus"])
        # Already on the destination pool (718) is tolerated.
        self.client.migrate_vtree(volume, params)

    def test_revert(self):
        vid = self.create()
        sid = self.client.snapshot_volume(vid, str(uuid.uuid4()))
        self.client.overwrite_volume_content(
            mock.Mock(provider_id=vid, id="v"),
            mock.Mock(provider_id=sid, id="s"))
        self.assertEqual(200,
                         self.sim.calls_of("overwriteVolumeContent")[0].status)

    @testtools.skipUnless(_client_has("query_hosts"),
                          "Cinder without the NVMe-TCP driver")
    def test_nvme_queries(self):
        nqn = "nqn.2014-08.org.nvmexpress:uuid:test"
        self.assertIsNone(self.client.query_host_by_nqn(nqn))
        host_id = self.client.create_nvme_host("host_1", nqn)
        self.assertEqual(host_id, self.client.query_host_by_nqn(nqn.upper()))
        system_id, system_nqn = self.client.query_system_id_nqn()
        self.assertEqual(self.sim.system_id, system_id)
        self.assertIn(system_id, system_nqn)
        self.assertTrue(self.client.query_SDTs())

    def test_invalidated_token(self):
        vid = self.create()
        self.sim.faults.invalidate_tokens()
        if LOGIN_AT_SETUP:
            # Cinder 29 waits for its periodic refresh; meanwhile its GETs
            # fail to decode the gateway's non-JSON 401 page.
            self.assertRaises(ValueError, self.client.query_volume, vid)
            self.assertTrue(self.client._refresh_token())
        self.assertEqual(vid, self.client.query_volume(vid)["id"])

    def test_read_timeout_becomes_500(self):
        vid = self.create()
        self.client.rest_api_read_timeout = 0.1
        self.sim.faults.delay("getVolume", 0.4, times=1)
        r, response = self.client.execute_powerflex_get_request(
            "/instances/Volume::%(vol_id)s", vol_id=vid)
        self.assertEqual(500, r.status_code)
        self.assertIn("timeout", response["message"])


@testtools.skipUnless(_has_ec_support(), "Cinder without EC support")
class TestCinderClientEC(CinderClientTestCase):

    gen_type = "EC"

    def test_ec_volume_snapshot_clone_and_stats(self):
        self.assertTrue(self.client.check_powerflex_ec_version())
        self.assertEqual("5.0", self.client.query_rest_api_version())
        vid = self.create(14)
        self.assertEqual(14 * GIB_KB,
                         self.client.query_volume(vid)["sizeInKb"])
        self.assertNotIn("compressionMethod",
                         self.sim.calls_of("createVolume")[0].body)
        sid = self.client.snapshot_volume(vid, str(uuid.uuid4()))
        cid = self.client.snapshot_volume(sid, str(uuid.uuid4()),
                                          from_source=True)
        self.assertEqual("ReadOnlySnapshot",
                         self.client.query_volume(sid)["volumeType"])
        self.assertEqual("ThinClone",
                         self.client.query_volume(cid)["volumeType"])
        self.client.extend_volume(cid, 15)
        self.assertEqual(15 * GIB_KB,
                         self.client.query_volume(cid)["sizeInKb"])
        self.assertEqual(1, self.sim.counts()["createSnapshot"])
        self.assertEqual(1, self.sim.counts()["createThinClone"])


@testtools.skipUnless(HAVE_CINDER, SKIP_REASON)
class TestStockDriverSetupAndStats(testtools.TestCase):
    """The stock driver's setup checks and pool statistics."""

    def _driver(self, gen_type: str) -> tuple:
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        sim = self.useFixture(base.SimulatorFixture(gen_type=gen_type)).sim
        conf = self.useFixture(config_fixture.Config(cfg.CONF))
        configuration_ = configuration.Configuration(
            pf_driver.powerflex_opts + san.san_opts +
            volume_driver.volume_opts, config_group=GROUP)
        conf.config(group=GROUP, san_thin_provision=True,
                    **sim.backend_options())
        if LOGIN_AT_SETUP:
            self.useFixture(fixtures.MockPatchObject(
                rest_client.RestClient, "_start_token_refresh_thread"))
        driver = pf_driver.PowerFlexDriver(configuration=configuration_)
        driver.do_setup(None)
        driver.check_for_setup_error()
        return sim, driver

    def _check(self, gen_type: str, stats_op: str) -> None:
        sim, driver = self._driver(gen_type)
        sim.reset_calls()
        pools = driver.get_volume_stats(refresh=True)["pools"]
        self.assertEqual(["PD1:SP1", "PD1:SP2"],
                         [p["pool_name"] for p in pools])
        self.assertEqual(102400, pools[0]["total_capacity_gb"])
        self.assertEqual(2, sim.counts()[stats_op])

    def test_mirroring(self):
        self._check("Mirroring", "queryPoolStatistics")

    @testtools.skipUnless(_has_ec_support(), "Cinder without EC support")
    def test_ec(self):
        self._check("EC", "metricsQuery")
