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
"""Volume invariants: sizes, names, VTrees, removal, lookups, pools."""

import concurrent.futures
import os

from tests.unit.simulator import base

GIB_KB = base.GIB_KB
B64_NAME = "obLD1OX2RxGImaq7zN3u/w=="


class TestSizes(base.SimulatorTestCase):

    def test_create_rounds_up_to_8_gib(self):
        vid = self.client.new_volume("v14", 14)
        self.assertEqual(16 * GIB_KB, self.client.volume(vid)["sizeInKb"])
        self.assertEqual(16, self.sim.array.volumes[vid].size_gib)
        vid = self.client.new_volume("v16", 16)
        self.assertEqual(16 * GIB_KB, self.client.volume(vid)["sizeInKb"])

    def test_create_sparse_backing_file_of_the_size(self):
        vid = self.client.new_volume("v", 8)
        volume = self.sim.array.volumes[vid]
        self.assertEqual(8 * 1024 ** 3, os.path.getsize(volume.backing_path))
        self.assertLess(os.stat(volume.backing_path).st_blocks, 64)

    def test_zero_size_is_refused(self):
        r = self.client.create_volume("v", 0)
        self.assertError(r, 500, 225)

    def test_extend_rounds_up_and_grows_the_file(self):
        sim = self.start_sim(strict_size=False)
        self.client = self.make_client(sim)
        self.sim = sim
        vid = self.client.new_volume("v", 8)
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "17"})
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual({}, r.json())
        self.assertEqual(24 * GIB_KB, self.client.volume(vid)["sizeInKb"])
        path = self.sim.array.volumes[vid].backing_path
        self.assertEqual(24 * 1024 ** 3, os.path.getsize(path))

    def test_extend_to_equal_size_is_a_noop(self):
        vid = self.client.new_volume("v", 64)
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "64"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(64 * GIB_KB, self.client.volume(vid)["sizeInKb"])
        # Rounding instead of refusing: 60 rounds up to 64, the size the
        # volume already has.
        self.client = self.make_client(self.start_sim(strict_size=False))
        vid = self.client.new_volume("v", 64)
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "60"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(64 * GIB_KB, self.client.volume(vid)["sizeInKb"])

    def test_no_shrink(self):
        vid = self.client.new_volume("v", 16)
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "8"})
        self.assertError(r, 500, 133)
        self.assertEqual(16 * GIB_KB, self.client.volume(vid)["sizeInKb"])

    def test_non_multiples_are_refused_by_default(self):
        """rc 225, as the array: not rounded (goscaleio VOL_SIZE_ILLEGAL)."""
        self.assertTrue(self.sim.array.strict_size)
        vid = self.client.new_volume("v", 8)
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "12"})
        body = self.assertError(r, 500, 225)
        self.assertEqual("The specified volume size is illegal. Volume size "
                         "must be in 8 GB blocks", body["message"])
        self.assertEqual(8 * GIB_KB, self.client.volume(vid)["sizeInKb"])
        path = self.sim.array.volumes[vid].backing_path
        self.assertEqual(8 * 1024 ** 3, os.path.getsize(path))
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(16 * GIB_KB, self.client.volume(vid)["sizeInKb"])

    def test_ec_refuses_sizes_off_1_gib_only_in_whole_gib(self):
        sim = self.start_sim(gen_type="EC")
        client = self.make_client(sim)
        vid = client.new_volume("v", 1)
        r = client.action(vid, "setVolumeSize", {"sizeInGB": "3"})
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual(3 * GIB_KB, client.volume(vid)["sizeInKb"])

    def test_extend_missing_volume_is_79(self):
        r = self.client.action("deadbeef00000000", "setVolumeSize",
                               {"sizeInGB": "16"})
        body = self.assertError(r, 500, 79)
        self.assertEqual("Could not find the volume", body["message"])

    def test_ec_granularity_is_1_gib(self):
        sim = self.start_sim(gen_type="EC")
        client = self.make_client(sim)
        vid = client.new_volume("v", 14)
        self.assertEqual(14 * GIB_KB, client.volume(vid)["sizeInKb"])
        r = client.action(vid, "setVolumeSize", {"sizeInGB": "15"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(15 * GIB_KB, client.volume(vid)["sizeInKb"])
        r = client.create_volume("odd", 1)
        self.assertEqual(200, r.status_code)

    def test_ec_rounds_partial_gib(self):
        sim = self.start_sim(gen_type="EC")
        client = self.make_client(sim)
        r = client.post("/api/types/Volume/instances", {
            "storagePoolId": sim.pool_ids["SP1"], "name": "v",
            "volumeType": "ThinProvisioned", "volumeSizeInKb": "1048577"})
        self.assertEqual(2 * GIB_KB,
                         client.volume(r.json()["id"])["sizeInKb"])


class TestNames(base.SimulatorTestCase):

    def test_duplicate_name_is_99(self):
        self.client.new_volume(B64_NAME)
        r = self.client.create_volume(B64_NAME, 8)
        body = self.assertError(r, 500, 99)
        self.assertIn("already in use", body["message"])
        vid = self.client.new_volume("other")
        r = self.client.snapshot(vid, B64_NAME)
        self.assertError(r, 500, 99)
        r = self.client.action(vid, "setVolumeName", {"newName": B64_NAME})
        self.assertError(r, 500, 99)

    def test_long_name_is_226(self):
        r = self.client.create_volume("x" * 32, 8)
        self.assertError(r, 500, 226)
        self.assertEqual(200, self.client.create_volume("x" * 31,
                                                        8).status_code)

    def test_space_is_227(self):
        self.assertError(self.client.create_volume("a b", 8), 500, 227)

    def test_base64_punctuation_is_accepted(self):
        for name in ("a+b/c==", "/starts-with-slash", "-_.:~!"):
            self.assertEqual(200, self.client.create_volume(
                name, 8).status_code, name)

    def test_rename(self):
        vid = self.client.new_volume("old")
        r = self.client.action(vid, "setVolumeName", {"newName": "new"})
        self.assertEqual(200, r.status_code)
        self.assertEqual("new", self.client.volume(vid)["name"])
        self.assertEqual(200, self.client.action(
            vid, "setVolumeName", {"newName": "new"}).status_code)
        self.client.new_volume("old")

    def test_rename_missing_volume_is_79(self):
        r = self.client.action("0000000000000000", "setVolumeName",
                               {"newName": "x"})
        self.assertError(r, 500, 79)


class TestLookups(base.SimulatorTestCase):

    def test_domain_and_pool_by_name_with_aliases(self):
        pd = self.client.get("/api/types/Domain/instances/getByName::PD1")
        self.assertEqual(self.sim.protection_domain_id, pd.json())
        alias = self.client.get(
            "/api/types/ProtectionDomain/instances/getByName::PD1")
        self.assertEqual(pd.json(), alias.json())
        for kind in ("Pool", "StoragePool"):
            r = self.client.get("/api/types/%s/instances/getByName::%s,SP2"
                                % (kind, pd.json()))
            self.assertEqual(self.sim.pool_ids["SP2"], r.json())

    def test_lookup_misses(self):
        r = self.client.get("/api/types/Domain/instances/getByName::PD9")
        self.assertError(r, 500, 142)
        r = self.client.get("/api/types/Pool/instances/getByName::%s,SP9"
                            % self.sim.protection_domain_id)
        self.assertError(r, 500, 171)
        r = self.client.get("/api/instances/StoragePool::ffffffff00000000")
        self.assertError(r, 500, 171)

    def test_encoded_pool_name(self):
        sim = self.start_sim(pools=("SP 1/a",))
        client = self.make_client(sim)
        r = client.get("/api/types/Pool/instances/getByName::%s,SP%%201%%2Fa"
                       % sim.protection_domain_id)
        self.assertEqual(sim.pool_ids["SP 1/a"], r.json())

    def test_volume_get_by_name_single_and_double_encoded(self):
        vid = self.client.new_volume(B64_NAME)
        once = "obLD1OX2RxGImaq7zN3u%2Fw%3D%3D"
        twice = "obLD1OX2RxGImaq7zN3u%252Fw%253D%253D"
        for encoded in (once, twice):
            r = self.client.get(
                "/api/types/Volume/instances/getByName::" + encoded)
            self.assertEqual(200, r.status_code, r.text)
            self.assertEqual(vid, r.json())
        r = self.client.get("/api/types/Volume/instances/getByName::nope")
        self.assertError(r, 500, 79)

    def test_plus_stays_plus(self):
        vid = self.client.new_volume("a+b")
        r = self.client.get("/api/types/Volume/instances/getByName::a+b")
        self.assertEqual(vid, r.json())
        r = self.client.get("/api/types/Volume/instances/getByName::a%2Bb")
        self.assertEqual(vid, r.json())

    def test_protection_domain_objects(self):
        pd_id = self.sim.protection_domain_id
        r = self.client.get("/api/instances/ProtectionDomain::" + pd_id)
        self.assertEqual("Mirroring", r.json()["genType"])
        r = self.client.post("/api/types/ProtectionDomain/instances/action/"
                             "queryBySelectedIds", {"ids": [pd_id]})
        self.assertEqual([pd_id], [pd["id"] for pd in r.json()])
        self.assertEqual("Mirroring", r.json()[0]["genType"])

    def test_pools(self):
        sp1 = self.client.get("/api/instances/StoragePool::"
                              + self.sim.pool_ids["SP1"]).json()
        sp2 = self.client.get("/api/instances/StoragePool::"
                              + self.sim.pool_ids["SP2"]).json()
        self.assertTrue(sp1["zeroPaddingEnabled"])
        self.assertEqual("MediumGranularity", sp1["dataLayout"])
        self.assertEqual("FineGranularity", sp2["dataLayout"])
        sim = self.start_sim(gen_type="EC", pools=(
            "SP1", {"name": "SP2", "zero_padding_enabled": False}))
        client = self.make_client(sim)
        pool = client.get("/api/instances/StoragePool::"
                          + sim.pool_ids["SP2"]).json()
        self.assertEqual("ErasureCoding", pool["dataLayout"])
        self.assertEqual("EC", pool["genType"])
        self.assertFalse(pool["zeroPaddingEnabled"])

    def test_pool_volumes(self):
        vid = self.client.new_volume("v")
        sid = self.client.new_snapshot(vid, "s")
        self.client.new_volume("w", pool="SP2")
        r = self.client.get("/api/instances/StoragePool::%s/relationships/"
                            "Volume" % self.sim.pool_ids["SP1"])
        self.assertEqual({vid, sid}, {v["id"] for v in r.json()})


class TestVolumeObject(base.SimulatorTestCase):

    def test_volume_fields(self):
        vid = self.client.new_volume(B64_NAME, 8)
        vol = self.client.volume(vid)
        self.assertEqual(16, len(vid))
        int(vid, 16)
        self.assertEqual(B64_NAME, vol["name"])
        self.assertEqual("ThinProvisioned", vol["volumeType"])
        self.assertIsNone(vol["mappedSdcInfo"])
        self.assertIsNone(vol["ancestorVolumeId"])
        self.assertEqual(self.sim.pool_ids["SP1"], vol["storagePoolId"])
        self.assertEqual("MediumGranularity", vol["dataLayout"])
        vtree = self.client.get("/api/instances/VTree::" + vol["vtreeId"])
        info = vtree.json()["vtreeMigrationInfo"]
        self.assertEqual("NotInMigration", info["migrationStatus"])
        self.assertIsNone(info["migrationPauseReason"])
        self.assertEqual(vid, vtree.json()["baseVolumeId"])

    def test_thick_in_fine_granularity_pool_is_refused(self):
        r = self.client.create_volume("v", 8, pool="SP2",
                                      volume_type="ThickProvisioned")
        self.assertEqual(500, r.status_code)

    def test_get_missing_volume_is_79(self):
        r = self.client.get("/api/instances/Volume::None")
        self.assertEqual({"message": "Could not find the volume",
                          "httpStatusCode": 500, "errorCode": 79}, r.json())


class TestVTrees(base.SimulatorTestCase):

    sim_kwargs = {"snapshot_limit": 3}

    def test_snapshot_joins_the_vtree_with_the_source_size(self):
        vid = self.client.new_volume("v", 8)
        self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        sid = self.client.new_snapshot(vid, "s")
        snap = self.client.volume(sid)
        base_vol = self.client.volume(vid)
        self.assertEqual("Snapshot", snap["volumeType"])
        self.assertEqual(vid, snap["ancestorVolumeId"])
        self.assertEqual(base_vol["vtreeId"], snap["vtreeId"])
        self.assertEqual(16 * GIB_KB, snap["sizeInKb"])
        self.assertIsNotNone(snap["consistencyGroupId"])
        self.assertEqual([vid, sid], [v.id for v in
                                      self.sim.array.vtree_members(
                                          base_vol["vtreeId"])])

    def test_system_id_path_variant(self):
        vid = self.client.new_volume("v")
        r = self.client.post("/api/instances/System::%s/action/"
                             "snapshotVolumes" % self.sim.system_id,
                             {"snapshotDefs": [{"volumeId": vid}]})
        self.assertEqual(200, r.status_code, r.text)
        self.assertIsNone(self.client.volume(
            r.json()["volumeIdList"][0])["name"])
        r = self.client.post("/api/instances/System::ffff/action/"
                             "snapshotVolumes",
                             {"snapshotDefs": [{"volumeId": vid}]})
        self.assertEqual(500, r.status_code)

    def test_vtree_limit_gives_182_in_details(self):
        vid = self.client.new_volume("v")
        snaps = [self.client.new_snapshot(vid, "s%d" % n) for n in range(2)]
        # A snapshot of a snapshot counts in the same VTree.
        self.client.new_snapshot(snaps[0], "s2")
        r = self.client.snapshot(vid, "s3")
        self.assertEqual(500, r.status_code)
        self.assertEqual({
            "message": "Error with details", "httpStatusCode": 500,
            "errorCode": 0,
            "details": [{"error": "TOO_MANY_SNAPS_IN_VTREE", "rc": 182,
                         "errorMessage":
                             "There are too many snapshots in the VTree"}],
        }, r.json())
        vtree = self.client.volume(vid)["vtreeId"]
        stats = self.client.get(
            "/api/instances/VTree::%s/relationships/Statistics" % vtree)
        self.assertEqual(4, stats.json()["numOfVolumes"])
        # Removing a snapshot frees a slot.
        r = self.client.action(snaps[1], "removeVolume",
                               {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        stats = self.client.get(
            "/api/instances/VTree::%s/relationships/Statistics" % vtree)
        self.assertEqual(3, stats.json()["numOfVolumes"])
        self.assertEqual(200, self.client.snapshot(vid, "s3").status_code)

    def test_limit_counts_every_def_of_one_request(self):
        vid = self.client.new_volume("v")
        r = self.client.post("/api/instances/System/action/snapshotVolumes",
                             {"snapshotDefs": [{"volumeId": vid}] * 4})
        self.assertEqual(182, r.json()["details"][0]["rc"])
        self.assertEqual(1, len(self.sim.array.volumes))

    def test_default_limits(self):
        self.assertEqual(126, self.start_sim().array.snapshot_limit)
        self.assertEqual(1022,
                         self.start_sim(gen_type="EC").array.snapshot_limit)

    def test_snapshot_of_missing_volume_is_79(self):
        r = self.client.snapshot("0123456789abcdef", "s")
        self.assertError(r, 500, 79)

    def test_remove_only_me_reparents_children(self):
        vid = self.client.new_volume("v")
        s1 = self.client.new_snapshot(vid, "s1")
        s2 = self.client.new_snapshot(s1, "s2")
        r = self.client.action(s1, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(vid, self.client.volume(s2)["ancestorVolumeId"])
        r = self.client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        snap = self.client.volume(s2)
        self.assertIsNone(snap["ancestorVolumeId"])
        stats = self.client.get("/api/instances/VTree::%s/relationships/"
                                "Statistics" % snap["vtreeId"])
        self.assertEqual(1, stats.json()["numOfVolumes"])
        self.assertFalse(os.path.exists(
            self.sim.array.storage.path_for(vid)))

    def test_remove_modes(self):
        vid = self.client.new_volume("v")
        s1 = self.client.new_snapshot(vid, "s1")
        self.client.new_snapshot(s1, "s2")
        r = self.client.action(vid, "removeVolume",
                               {"removeMode": "DESCENDANTS_ONLY"})
        self.assertEqual(200, r.status_code)
        self.assertEqual([vid], list(self.sim.array.volumes))
        self.client.new_snapshot(vid, "s3")
        r = self.client.action(vid, "removeVolume",
                               {"removeMode": "WHOLE_VTREE"})
        self.assertEqual(200, r.status_code)
        self.assertEqual({}, self.sim.array.volumes)
        self.assertEqual({}, self.sim.array.vtrees)
        r = self.client.action(vid, "removeVolume", {"removeMode": "bogus"})
        self.assertError(r, 500, 79)
        vid = self.client.new_volume("w")
        r = self.client.action(vid, "removeVolume", {"removeMode": "bogus"})
        self.assertError(r, 400, 0)

    def test_remove_missing_volume_is_79(self):
        r = self.client.action("0123456789abcdef", "removeVolume",
                               {"removeMode": "ONLY_ME"})
        self.assertError(r, 500, 79)

    def test_remove_mapped_volume_is_104(self):
        vid = self.client.new_volume("v")
        sdc = self.sim.sdc_ids[base.SDC_GUID]
        self.assertEqual(200, self.client.map(vid, sdc).status_code)
        r = self.client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertError(r, 500, 104)
        self.client.action(vid, "removeMappedSdc", {"allSdcs": ""})
        r = self.client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)

    def test_overwrite_volume_content(self):
        vid = self.client.new_volume("v")
        sid = self.client.new_snapshot(vid, "s")
        other = self.client.new_volume("o")
        r = self.client.action(vid, "overwriteVolumeContent",
                               {"srcVolumeId": sid})
        self.assertEqual(200, r.status_code)
        r = self.client.action(vid, "overwriteVolumeContent",
                               {"srcVolumeId": vid})
        self.assertError(r, 500, 330)
        r = self.client.action(vid, "overwriteVolumeContent",
                               {"srcVolumeId": other})
        self.assertError(r, 500, 198)

    def test_migrate_vtree(self):
        vid = self.client.new_volume("v")
        sp2 = self.sim.pool_ids["SP2"]
        r = self.client.action(vid, "migrateVTree", {
            "destSPId": sp2, "volTypeConversion": "NoConversion",
            "compressionMethod": "None", "allowDuringRebuild": "False"})
        self.assertEqual(200, r.status_code, r.text)
        vol = self.client.volume(vid)
        self.assertEqual(sp2, vol["storagePoolId"])
        vtree = self.client.get("/api/instances/VTree::" + vol["vtreeId"])
        self.assertEqual(sp2, vtree.json()["storagePoolId"])
        r = self.client.action(vid, "migrateVTree", {"destSPId": sp2})
        self.assertError(r, 500, 718)

    def test_migration_pause_is_reported(self):
        vid = self.client.new_volume("v")
        self.sim.array.migration_pause_reason = "MigrationError"
        self.client.action(vid, "migrateVTree",
                           {"destSPId": self.sim.pool_ids["SP2"]})
        vtree = self.client.volume(vid)["vtreeId"]
        info = self.client.get("/api/instances/VTree::" + vtree).json()[
            "vtreeMigrationInfo"]
        self.assertEqual("MigrationError", info["migrationPauseReason"])
        self.assertEqual(self.sim.pool_ids["SP1"],
                         self.client.volume(vid)["storagePoolId"])


class TestEC(base.SimulatorTestCase):

    sim_kwargs = {"gen_type": "EC"}

    def test_read_only_snapshot_and_thin_clone(self):
        vid = self.client.new_volume("v", 3)
        sid = self.client.new_snapshot(vid, "s", "createSnapshot")
        cid = self.client.new_snapshot(sid, "c", "createThinClone")
        snap, clone = self.client.volume(sid), self.client.volume(cid)
        self.assertEqual("ReadOnlySnapshot", snap["volumeType"])
        self.assertEqual("ReadOnly", snap["accessModeLimit"])
        self.assertEqual("ThinClone", clone["volumeType"])
        self.assertEqual("ReadWrite", clone["accessModeLimit"])
        self.assertEqual(sid, clone["ancestorVolumeId"])
        self.assertEqual(3 * GIB_KB, clone["sizeInKb"])
        self.assertEqual("EC", clone["genType"])
        self.assertEqual("ErasureCoding", clone["dataLayout"])

    def test_snapshot_volumes_is_not_an_ec_action(self):
        vid = self.client.new_volume("v")
        self.assertError(self.client.snapshot(vid, "s"), 400, 0)

    def test_ec_actions_are_refused_on_mirroring(self):
        sim = self.start_sim()
        client = self.make_client(sim)
        vid = client.new_volume("v")
        self.assertError(client.snapshot(vid, "s", "createThinClone"),
                         400, 0)

    def test_metrics_query(self):
        vid = self.client.new_volume("v", 5)
        pool = self.sim.pool_ids["SP1"]
        path = self.sim.array.volumes[vid].backing_path
        with open(path, "r+b") as handle:
            handle.write(b"\1" * 1024 * 1024)
        r = self.client.post("/dtapi/rest/v1/metrics/query", {
            "resource_type": "storage_pool", "ids": [pool],
            "metrics": ["physical_total", "logical_provisioned",
                        "physical_free"]})
        self.assertEqual(200, r.status_code, r.text)
        resource = r.json()["resources"][0]
        self.assertEqual(pool, resource["id"])
        metrics = {m["name"]: m["values"][0] for m in resource["metrics"]}
        self.assertEqual(5 * 1024 ** 3, metrics["logical_provisioned"])
        self.assertLess(metrics["physical_free"], metrics["physical_total"])
        self.assertEqual(["physical_total", "logical_provisioned",
                          "physical_free"],
                         [m["name"] for m in resource["metrics"]])


class TestStatistics(base.SimulatorTestCase):

    def test_query_selected_statistics_has_exactly_one_key(self):
        pool = self.sim.pool_ids["SP1"]
        vid = self.client.new_volume("v", 16)
        self.client.new_snapshot(vid, "s")
        props = ["snapshotCapacityInKb", "thickCapacityInUseInKb",
                 "netCapacityInUseInKb", "netUnusedCapacityInKb",
                 "thinCapacityAllocatedInKb"]
        r = self.client.post("/api/types/StoragePool/instances/action/"
                             "querySelectedStatistics",
                             {"ids": [pool], "properties": props})
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual([pool], list(r.json()))
        stats, = r.json().values()
        self.assertEqual(sorted(props), sorted(stats))
        provisioned = (stats["thickCapacityInUseInKb"] +
                       stats["snapshotCapacityInKb"] +
                       stats["thinCapacityAllocatedInKb"]) / 2 / GIB_KB
        self.assertEqual(32, provisioned)
        r = self.client.post("/api/types/StoragePool/instances/action/"
                             "querySelectedStatistics",
                             {"ids": [pool], "properties": ["bogus"]})
        self.assertError(r, 400, 0)


class TestHosts(base.SimulatorTestCase):

    sim_kwargs = {"nvme_host_nqns": ("nqn.2014-08.org.nvmexpress:uuid:1",)}

    def test_sdcs_hosts_sdts_systems(self):
        sdcs = self.client.get("/api/types/Sdc/instances").json()
        self.assertEqual({"SdcHost", "NVMeHost"},
                         {s["hostType"] for s in sdcs})
        guid = base.SDC_GUID
        sdc_id = self.sim.sdc_ids[guid]
        sdc = self.client.get("/api/instances/Sdc::" + sdc_id).json()
        self.assertEqual(guid, sdc["sdcGuid"])
        self.assertError(self.client.get("/api/instances/Sdc::nope"),
                         500, 80)
        hosts = self.client.get("/api/types/Host/instances").json()
        self.assertEqual(len(sdcs), len(hosts))
        r = self.client.post("/api/types/Host/instances",
                             {"nqn": "nqn.x:new", "name": "host_1"})
        self.assertEqual(200, r.status_code, r.text)
        host_id = r.json()["id"]
        self.assertEqual(host_id, self.sim.nvme_host_ids["nqn.x:new"])
        r = self.client.post("/api/types/Host/instances",
                             {"nqn": "NQN.X:NEW", "name": "host_2"})
        self.assertEqual(500, r.status_code)
        self.assertError(self.client.post("/api/types/Host/instances",
                                          {"nqn": "n2", "name": "x" * 32}),
                         500, 226)
        vid = self.client.new_volume("v")
        self.assertEqual(200, self.client.map(vid, host_id).status_code)
        mapped = self.client.volume(vid)["mappedSdcInfo"][0]
        self.assertEqual(("NVMeHost", "nqn.x:new"),
                         (mapped["hostType"], mapped["nqn"]))
        r = self.client.get("/api/instances/Host::%s/relationships/Volume"
                            % host_id)
        self.assertEqual([vid], [v["id"] for v in r.json()])
        sdts = self.client.get("/api/types/Sdt/instances").json()
        self.assertTrue(sdts[0]["ipList"][0]["ip"])
        self.assertEqual(4420, sdts[0]["nvmePort"])
        systems = self.client.get("/api/types/System/instances").json()
        self.assertEqual(self.sim.system_id, systems[0]["id"])
        self.assertTrue(systems[0]["systemNqn"].endswith(self.sim.system_id))


class TestConcurrency(base.SimulatorTestCase):

    def test_parallel_creates_and_snapshots(self):
        def work(n):
            client = base.Client(self.sim)
            client.token = self.client.token
            try:
                vid = client.new_volume("v%d" % n)
                return vid, client.new_snapshot(vid, "s%d" % n)
            finally:
                client.close()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(24)))
        ids = [i for pair in results for i in pair]
        self.assertEqual(48, len(set(ids)))
        self.assertEqual(48, len(self.sim.array.volumes))
