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
"""Answers as a real array gives them: removal in progress, full pools,
old data in pools without zero padding, no VTree statistics on PowerFlex 5.

(rc 225 on ``setVolumeSize`` is in ``test_volumes``, the non-JSON 401 in
``test_session``.)
"""

import os
import time

from powerflex_cache_driver.simulator import cli
from powerflex_cache_driver.simulator import storage
from tests.unit.simulator import base

GIB_KB = base.GIB_KB
IN_DELETION = "A volume removal operation is currently in progress."


class TestRemovalInProgress(base.SimulatorTestCase):

    sim_kwargs = {"removal_seconds": 60}

    def remove(self, vid):
        r = self.client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code, r.text)

    def test_get_answers_212_while_in_deletion(self):
        vid = self.client.new_volume("v", 8)
        self.remove(vid)
        r = self.client.get("/api/instances/Volume::" + vid)
        body = self.assertError(r, 500, 212)
        self.assertEqual(IN_DELETION, body["message"])
        # Not listed any more, nor in its pool.
        self.assertNotIn(vid, [v["id"] for v in self.client.get(
            "/api/types/Volume/instances").json()])
        self.assertNotIn(vid, self.sim.array.volumes)

    def test_actions_on_it_answer_212(self):
        vid = self.client.new_volume("v", 8)
        self.remove(vid)
        for action, body in (("removeVolume", {"removeMode": "ONLY_ME"}),
                             ("setVolumeSize", {"sizeInGB": "16"}),
                             ("setVolumeName", {"newName": "w"})):
            self.assertError(self.client.action(vid, action, body), 500, 212)
        self.assertError(self.client.snapshot(vid, "s"), 500, 212)

    def test_name_stays_taken(self):
        vid = self.client.new_volume("v", 8)
        self.remove(vid)
        self.assertError(self.client.create_volume("v", 8), 500, 99)
        other = self.client.new_volume("w", 8)
        self.assertError(self.client.action(other, "setVolumeName",
                                            {"newName": "v"}), 500, 99)
        r = self.client.get("/api/types/Volume/instances/getByName::v")
        self.assertError(r, 500, 212)

    def test_pool_statistics_count_it(self):
        vid = self.client.new_volume("v", 8)
        self.client.new_volume("w", 8)
        pool = self.client.pool_id()

        def stats():
            r = self.client.post(
                "/api/types/StoragePool/instances/action/"
                "querySelectedStatistics",
                {"ids": [pool], "properties": ["numOfVolumesInDeletion",
                                               "numOfVolumes"]})
            self.assertEqual(200, r.status_code, r.text)
            return r.json()[pool]

        self.assertEqual({"numOfVolumesInDeletion": 0, "numOfVolumes": 2},
                         stats())
        self.remove(vid)
        self.assertEqual({"numOfVolumesInDeletion": 1, "numOfVolumes": 1},
                         stats())
        self.sim.array.finish_removals()
        self.assertEqual({"numOfVolumesInDeletion": 0, "numOfVolumes": 1},
                         stats())

    def test_removal_completes_after_its_time(self):
        sim = self.start_sim(removal_seconds=0.3)
        client = self.make_client(sim)
        vid = client.new_volume("v", 8)
        path = sim.array.volumes[vid].backing_path
        r = client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        self.assertError(client.get("/api/instances/Volume::" + vid), 500,
                         212)
        self.assertTrue(os.path.exists(path))
        time.sleep(0.4)
        body = self.assertError(client.get("/api/instances/Volume::" + vid),
                                500, 79)
        self.assertEqual("Could not find the volume", body["message"])
        self.assertFalse(os.path.exists(path))
        self.assertEqual(200, client.create_volume("v", 8).status_code)

    def test_off_by_default(self):
        sim = self.start_sim()
        client = self.make_client(sim)
        vid = client.new_volume("v", 8)
        r = client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        self.assertError(client.get("/api/instances/Volume::" + vid), 500, 79)
        self.assertEqual(200, client.create_volume("v", 8).status_code)

    def test_cli_flag(self):
        args = cli.build_parser().parse_args(["--removal-seconds", "5"])
        self.assertEqual(5.0, args.removal_seconds)
        self.assertIsNone(cli.build_parser().parse_args([]).removal_seconds)


class TestFullPool(base.SimulatorTestCase):

    # 16 GiB of capacity: the thin allocation limit is 160 GiB.
    sim_kwargs = {"pools": ({"name": "SP1", "capacity_gib": 16}, "SP2")}

    def create(self, name, size, volume_type):
        return self.client.create_volume(name, size, volume_type=volume_type)

    def test_thick_larger_than_free_is_190(self):
        self.assertEqual(200, self.create("a", 8, "ThickProvisioned")
                         .status_code)
        body = self.assertError(self.create("b", 16, "ThickProvisioned"),
                                500, 190)
        self.assertEqual("The volume size too large", body["message"])
        self.assertEqual(1, len(self.sim.array.volumes))

    def test_thick_extend_beyond_free_is_190(self):
        r = self.create("a", 8, "ThickProvisioned")
        vid = r.json()["id"]
        self.assertError(self.client.action(vid, "setVolumeSize",
                                            {"sizeInGB": "24"}), 500, 190)
        self.assertEqual(8 * GIB_KB, self.client.volume(vid)["sizeInKb"])
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        self.assertEqual(200, r.status_code)

    def test_full_pool_refuses_thin_300_and_snapshots_191(self):
        r = self.create("a", 16, "ThickProvisioned")
        vid = r.json()["id"]
        body = self.assertError(self.create("b", 8, "ThinProvisioned"), 500,
                                300)
        self.assertEqual("Requested volume size exceeds the volume "
                         "allocation limit", body["message"])
        body = self.assertError(self.client.snapshot(vid, "s"), 500, 0)
        self.assertEqual(191, body["details"][0]["rc"])
        self.assertEqual("The capacity of the Storage Pool is too small to "
                         "create new snapshots",
                         body["details"][0]["errorMessage"])
        # The other pool is not full.
        r = self.client.create_volume("c", 8, pool="SP2")
        self.assertEqual(200, r.status_code, r.text)

    def test_thin_beyond_the_allocation_limit_is_300(self):
        self.assertEqual(200, self.create("a", 160, "ThinProvisioned")
                         .status_code)
        self.assertError(self.create("b", 8, "ThinProvisioned"), 500, 300)

    def test_removal_frees_the_space(self):
        vid = self.create("a", 16, "ThickProvisioned").json()["id"]
        r = self.client.action(vid, "removeVolume", {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code)
        self.assertEqual(200, self.create("b", 16, "ThickProvisioned")
                         .status_code)


class TestZeroPadding(base.SimulatorTestCase):

    sim_kwargs = {"pools": ("SP1", {"name": "SP2",
                                    "zero_padding_enabled": False})}

    def read(self, vid, offset, length):
        with open(self.sim.array.volumes[vid].backing_path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def test_padded_pool_reads_zeros(self):
        vid = self.client.new_volume("v", 8)
        for offset in (0, storage.STALE_STRIDE, 8 * 1024 ** 3 - (1 << 20)):
            self.assertEqual(bytes(1 << 20), self.read(vid, offset, 1 << 20))

    def test_unpadded_pool_reads_old_data(self):
        vid = self.client.new_volume("v", 8, pool="SP2")
        size = 8 * 1024 ** 3
        for offset in (0, storage.STALE_STRIDE, size - storage.STALE_STRIDE):
            block = self.read(vid, offset, storage.STALE_BLOCK)
            self.assertEqual(storage.stale_pattern(offset), block)
            self.assertNotEqual(bytes(len(block)), block)
        # Deterministic: another volume reads the same old data.
        other = self.client.new_volume("w", 8, pool="SP2")
        self.assertEqual(self.read(vid, 0, 1 << 20),
                         self.read(other, 0, 1 << 20))
        # Still sparse: one page per stride.
        path = self.sim.array.volumes[vid].backing_path
        self.assertLess(os.stat(path).st_blocks * 512, 64 << 20)

    def test_extended_tail_reads_old_data(self):
        vid = self.client.new_volume("v", 8, pool="SP2")
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        self.assertEqual(200, r.status_code, r.text)
        offset = 8 * 1024 ** 3
        self.assertEqual(storage.stale_pattern(offset),
                         self.read(vid, offset, storage.STALE_BLOCK))

    def test_written_data_replaces_it_and_snapshots_carry_it(self):
        vid = self.client.new_volume("v", 8, pool="SP2")
        path = self.sim.array.volumes[vid].backing_path
        with open(path, "r+b") as f:
            f.write(b"\0" * 4096)
        snap = self.client.new_snapshot(vid, "s")
        self.assertEqual(bytes(4096), self.read(snap, 0, 4096))
        offset = storage.STALE_STRIDE
        self.assertEqual(storage.stale_pattern(offset),
                         self.read(snap, offset, storage.STALE_BLOCK))


class TestVTreeStatistics(base.SimulatorTestCase):

    def test_mirroring_has_them(self):
        vid = self.client.new_volume("v", 8)
        vtree = self.client.volume(vid)["vtreeId"]
        r = self.client.get("/api/instances/VTree::%s/relationships/"
                            "Statistics" % vtree)
        self.assertEqual(200, r.status_code)
        self.assertEqual(1, r.json()["numOfVolumes"])

    def test_powerflex_5_has_none(self):
        sim = self.start_sim(gen_type="EC")
        client = self.make_client(sim)
        vid = client.new_volume("v", 8)
        vtree = client.volume(vid)["vtreeId"]
        r = client.get("/api/instances/VTree::%s/relationships/Statistics"
                       % vtree)
        body = self.assertError(r, 404, 0)
        self.assertIn("Not found", body["message"])
