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
"""Sparse backing files, snapshot data, mappings and the by-id links."""

import os

import fixtures
import testtools

from powerflex_cache_driver.simulator import storage
from tests.unit.simulator import base

GIB = 1024 ** 3
MIB = 1024 ** 2


def _write(path, offset, data):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def _read(path, offset, length):
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


class TestSparseStore(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.store = storage.SparseStore(
            self.useFixture(fixtures.TempDir()).path)

    def test_create_clone_resize_remove(self):
        src = self.store.create("a", 8 * GIB)
        _write(src, 3 * GIB, b"hello")
        _write(src, 5 * GIB + 7, b"\0\0\0world")
        dst = self.store.clone(src, "b")
        self.assertEqual(8 * GIB, os.path.getsize(dst))
        self.assertEqual(b"hello", _read(dst, 3 * GIB, 5))
        self.assertEqual(b"\0\0\0world", _read(dst, 5 * GIB + 7, 8))
        self.assertLess(os.stat(dst).st_blocks * 512, 4 * MIB)
        self.store.resize(dst, 16 * GIB)
        self.assertEqual(16 * GIB, os.path.getsize(dst))
        self.store.resize(dst, 8 * GIB)  # never shrinks
        self.assertEqual(16 * GIB, os.path.getsize(dst))
        self.store.remove(dst)
        self.store.remove(dst)
        self.assertFalse(os.path.exists(dst))

    def test_zero_blocks_inside_data_are_not_written(self):
        src = self.store.create("a", 64 * MIB)
        _write(src, 0, bytes(16 * MIB))  # allocated zeros
        _write(src, 16 * MIB, b"x")
        self.assertGreater(os.stat(src).st_blocks * 512, 15 * MIB)
        dst = self.store.clone(src, "b")
        self.assertLess(os.stat(dst).st_blocks * 512, MIB)
        self.assertEqual(b"x", _read(dst, 16 * MIB, 1))

    def test_fallback_without_seek_data(self):
        src = self.store.create("a", 32 * MIB)
        _write(src, 20 * MIB, b"data")
        self.useFixture(fixtures.MonkeyPatch("os.SEEK_DATA", None))
        self.assertEqual([(0, 32 * MIB)],
                         list(storage.data_extents(0, 32 * MIB)))
        dst = self.store.clone(src, "b")
        self.assertEqual(b"data", _read(dst, 20 * MIB, 4))
        self.assertLess(os.stat(dst).st_blocks * 512, MIB)

    def test_overwrite_keeps_size_and_inode(self):
        src = self.store.create("a", 8 * MIB)
        dst = self.store.create("b", 16 * MIB)
        _write(src, 0, b"snap")
        _write(dst, 12 * MIB, b"later")
        inode = os.stat(dst).st_ino
        self.store.overwrite(src, dst)
        self.assertEqual(inode, os.stat(dst).st_ino)
        self.assertEqual(16 * MIB, os.path.getsize(dst))
        self.assertEqual(b"snap", _read(dst, 0, 4))
        self.assertEqual(bytes(5), _read(dst, 12 * MIB, 5))


class TestSnapshotData(base.SimulatorTestCase):

    def test_snapshot_copies_data_and_stays_sparse(self):
        vid = self.client.new_volume("v", 8)
        src = self.sim.array.volumes[vid].backing_path
        _write(src, 0, b"boot sector")
        _write(src, 7 * GIB, b"tail")
        sid = self.client.new_snapshot(vid, "s")
        snap = self.sim.array.volumes[sid].backing_path
        self.assertNotEqual(src, snap)
        self.assertEqual(b"boot sector", _read(snap, 0, 11))
        self.assertEqual(b"tail", _read(snap, 7 * GIB, 4))
        self.assertEqual(8 * GIB, os.path.getsize(snap))
        self.assertLess(os.stat(snap).st_blocks, 1024)
        # Point in time: later writes to the source do not show.
        _write(src, 0, b"BOOT")
        self.assertEqual(b"boot", _read(snap, 0, 4))

    def test_extend_then_clone(self):
        vid = self.client.new_volume("v", 8)
        _write(self.sim.array.volumes[vid].backing_path, 0, b"x")
        sid = self.client.new_snapshot(vid, "s")
        r = self.client.action(sid, "setVolumeSize", {"sizeInGB": "16"})
        self.assertEqual(200, r.status_code)
        path = self.sim.array.volumes[sid].backing_path
        self.assertEqual(16 * GIB, os.path.getsize(path))
        self.assertEqual(b"x", _read(path, 0, 1))

    def test_revert_restores_snapshot_data(self):
        vid = self.client.new_volume("v", 8)
        path = self.sim.array.volumes[vid].backing_path
        _write(path, 0, b"v1")
        sid = self.client.new_snapshot(vid, "s")
        _write(path, 0, b"v2")
        r = self.client.action(vid, "overwriteVolumeContent",
                               {"srcVolumeId": sid})
        self.assertEqual(200, r.status_code)
        self.assertEqual(b"v1", _read(path, 0, 2))


class TestMapping(base.SimulatorTestCase):

    sim_kwargs = {"sdc_guids": (base.SDC_GUID,
                                "0C4E8A9B-0000-4000-8000-00000000A002")}

    def setUp(self):
        super().setUp()
        self.sdc1, self.sdc2 = self.sim.sdc_ids.values()

    def test_by_id_link_follows_the_mappings(self):
        vid = self.client.new_volume("v")
        link = os.path.join(self.sim.by_id_dir, "emc-vol-%s-%s" % (
            self.sim.system_id, vid))
        self.assertEqual(link, self.sim.device_path(vid))
        self.assertFalse(os.path.lexists(link))
        self.assertEqual(200, self.client.map(vid, self.sdc1).status_code)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(self.sim.array.volumes[vid].backing_path,
                         os.path.realpath(link))
        with open(link, "r+b") as device:
            device.write(b"through the device")
        sid = self.client.new_snapshot(vid, "s")
        self.assertEqual(b"through the device", _read(
            self.sim.array.volumes[sid].backing_path, 0, 18))
        self.assertEqual(200, self.client.map(vid, self.sdc2).status_code)
        r = self.client.action(vid, "removeMappedSdc", {"sdcId": self.sdc1})
        self.assertEqual(200, r.status_code)
        self.assertTrue(os.path.islink(link))
        r = self.client.action(vid, "removeMappedSdc", {"sdcId": self.sdc2})
        self.assertEqual(200, r.status_code)
        self.assertFalse(os.path.lexists(link))

    def test_mapped_sdc_info_and_sdc_volumes(self):
        vid = self.client.new_volume("v")
        self.assertEqual(200, self.client.map(vid, self.sdc1).status_code)
        info = self.client.volume(vid)["mappedSdcInfo"]
        self.assertEqual([self.sdc1], [m["sdcId"] for m in info])
        self.assertEqual("SdcHost", info[0]["hostType"])
        self.assertEqual([self.sdc1],
                         self.sim.array.volumes[vid].mapped_sdc_ids)
        r = self.client.get("/api/instances/Sdc::%s/relationships/Volume"
                            % self.sdc1)
        self.assertEqual([vid], [v["id"] for v in r.json()])
        r = self.client.get("/api/instances/Sdc::%s/relationships/Volume"
                            % self.sdc2)
        self.assertEqual([], r.json())
        r = self.client.action(vid, "removeMappedSdc", {"allSdcs": ""})
        self.assertEqual(200, r.status_code)
        self.assertIsNone(self.client.volume(vid)["mappedSdcInfo"])

    def test_mapping_rules(self):
        vid = self.client.new_volume("v")
        self.client.map(vid, self.sdc1, multiple=False)
        self.assertError(self.client.map(vid, self.sdc1), 500, 4037)
        self.assertError(self.client.map(vid, self.sdc2, multiple=False),
                         500, 315)
        r = self.client.action(vid, "addMappedSdc", {
            "sdcId": self.sdc2, "allowMultipleMappings": "TRUE"})
        self.assertEqual(200, r.status_code)
        self.assertError(self.client.map(vid, "ffffffffffffffff"), 500, 80)
        self.assertError(self.client.map("ffffffffffffffff", self.sdc1),
                         500, 79)
        self.assertError(self.client.action(vid, "addMappedSdc", {}),
                         400, 0)
        self.client.action(vid, "removeMappedSdc", {"allSdcs": ""})
        self.assertError(self.client.action(vid, "removeMappedSdc",
                                            {"sdcId": self.sdc1}),
                         500, 4039)

    def test_old_versions_use_81_and_84(self):
        sim = self.start_sim(version="3.6")
        client = self.make_client(sim)
        sdc = sim.sdc_ids[base.SDC_GUID]
        vid = client.new_volume("v")
        client.map(vid, sdc)
        self.assertError(client.map(vid, sdc), 500, 81)
        client.action(vid, "removeMappedSdc", {"sdcId": sdc})
        self.assertError(client.action(vid, "removeMappedSdc",
                                       {"sdcId": sdc}), 500, 84)

    def test_os_brick_legacy_guid_forms(self):
        vid = self.client.new_volume("v")
        guid = base.SDC_GUID.lower()
        r = self.client.action(vid, "addMappedSdc", {
            "guid": guid, "allowMultipleMappings": "TRUE"})
        self.assertEqual(200, r.status_code, r.text)
        r = self.client.action(vid, "setMappedSdcLimits", {
            "guid": guid, "iopsLimit": "100", "bandwidthLimitInKbps": "2048"})
        self.assertEqual(200, r.status_code, r.text)
        info = self.client.volume(vid)["mappedSdcInfo"][0]
        self.assertEqual((100, 2), (info["limitIops"],
                                    info["limitBwInMbps"]))
        r = self.client.action(vid, "removeMappedSdc", {"guid": guid})
        self.assertEqual(200, r.status_code)

    def test_set_mapped_sdc_limits_rules(self):
        vid = self.client.new_volume("v")
        r = self.client.action(vid, "setMappedSdcLimits",
                               {"sdcId": self.sdc1, "iopsLimit": 0})
        self.assertError(r, 500, 4039)
        self.client.map(vid, self.sdc1)
        for body in ({"iopsLimit": 5}, {"bandwidthLimitInKbps": 1000}):
            body["sdcId"] = self.sdc1
            self.assertError(self.client.action(vid, "setMappedSdcLimits",
                                                body), 400, 0)
        r = self.client.action(vid, "setMappedSdcLimits", {
            "sdcId": self.sdc1, "iopsLimit": 0, "bandwidthLimitInKbps": 0})
        self.assertEqual(200, r.status_code)

    def test_read_only_snapshot_maps_read_only(self):
        sim = self.start_sim(gen_type="EC")
        client = self.make_client(sim)
        vid = client.new_volume("v", 1)
        sid = client.new_snapshot(vid, "s", "createSnapshot")
        client.map(sid, sim.sdc_ids[base.SDC_GUID])
        self.assertEqual("ReadOnly",
                         client.volume(sid)["mappedSdcInfo"][0]["accessMode"])
