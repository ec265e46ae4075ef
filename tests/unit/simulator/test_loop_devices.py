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
"""Mapped volumes published as loop devices (``loop_devices=True``).

Where the machine refuses loop devices the simulator publishes the backing
files; the tests then check that fallback instead of being skipped.
"""

import logging
import os
import stat

import fixtures

from powerflex_cache_driver.simulator import loop
from tests.unit.simulator import base

GIB = 1024 ** 3
MIB = 1024 ** 2


class TestLoopDevices(base.SimulatorTestCase):

    sim_kwargs = {"loop_devices": True}

    def setUp(self):
        super().setUp()
        self.sdc = self.sim.sdc_ids[base.SDC_GUID]
        self.logger = self.useFixture(fixtures.FakeLogger(
            name="powerflex_cache_driver.simulator.devices",
            level=logging.WARNING))

    def mapped_volume(self, size_gib=8):
        vid = self.client.new_volume(None, size_gib)
        self.assertEqual(200, self.client.map(vid, self.sdc).status_code)
        return vid, os.path.realpath(self.sim.device_path(vid))

    def unmap(self, vid):
        r = self.client.action(vid, "removeMappedSdc", {"sdcId": self.sdc})
        self.assertEqual(200, r.status_code, r.text)

    def assertDetached(self, device, backing_path):
        self.assertEqual("", loop.backing_file(device))
        self.assertEqual([], loop.devices_of(backing_path))

    def test_map_write_snapshot_unmap(self):
        vid, device = self.mapped_volume()
        backing = self.sim.array.volumes[vid].backing_path
        if self.sim.array.loop_refused is not None:
            self.assertEqual(backing, device)
            self.assertIn("Loop devices refused", self.logger.output)
            return
        self.assertTrue(stat.S_ISBLK(os.stat(device).st_mode))
        self.assertEqual(8 * GIB, loop.device_size(device))
        self.assertEqual({vid: device}, self.sim.array.loops)
        fd = os.open(device, os.O_WRONLY)
        try:
            os.pwrite(fd, b"through the loop device", 7 * GIB + MIB)
            os.fsync(fd)
        finally:
            os.close(fd)
        sid = self.client.new_snapshot(vid)
        with open(self.sim.array.volumes[sid].backing_path, "rb") as snap:
            snap.seek(7 * GIB + MIB)
            self.assertEqual(b"through the loop device", snap.read(23))
        self.unmap(vid)
        self.assertFalse(os.path.lexists(self.sim.device_path(vid)))
        self.assertDetached(device, backing)
        self.assertEqual({}, self.sim.array.loops)
        r = self.client.action(vid, "removeVolume",
                               {"removeMode": "ONLY_ME"})
        self.assertEqual(200, r.status_code, r.text)

    def test_resize_refreshes_the_capacity(self):
        vid, device = self.mapped_volume()
        r = self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual(16 * GIB, loop.device_size(device))
        self.unmap(vid)

    def test_revert_shows_through_the_device(self):
        vid, device = self.mapped_volume()
        backing = self.sim.array.volumes[vid].backing_path
        with open(backing, "r+b") as f:
            f.write(b"v1")
        sid = self.client.new_snapshot(vid)
        with open(device, "r+b") as f:
            f.write(b"v2")
            os.fsync(f.fileno())
        r = self.client.action(vid, "overwriteVolumeContent",
                               {"srcVolumeId": sid})
        self.assertEqual(200, r.status_code, r.text)
        with open(device, "rb") as f:
            self.assertEqual(b"v1", f.read(2))
        self.unmap(vid)

    def test_stop_detaches_and_start_reattaches(self):
        vid, device = self.mapped_volume()
        backing = self.sim.array.volumes[vid].backing_path
        self.sim.stop()
        self.assertEqual({}, self.sim.array.loops)
        self.assertEqual(backing,
                         os.path.realpath(self.sim.device_path(vid)))
        if self.sim.array.loop_refused is None:
            self.assertDetached(device, backing)
        self.sim.start()
        device = os.path.realpath(self.sim.device_path(vid))
        if self.sim.array.loop_refused is None:
            self.assertTrue(stat.S_ISBLK(os.stat(device).st_mode))
            self.assertEqual(backing, loop.backing_file(device))
        # The fixture's stop detaches it again.

    def test_refused_falls_back_to_the_file_and_logs_once(self):
        def refuse(path, direct_io=False):
            raise loop.Unavailable("no loop devices in this test")
        self.useFixture(fixtures.MonkeyPatch(
            "powerflex_cache_driver.simulator.loop.attach", refuse))
        first, path1 = self.mapped_volume()
        second, path2 = self.mapped_volume()
        self.assertEqual(self.sim.array.volumes[first].backing_path, path1)
        self.assertEqual(self.sim.array.volumes[second].backing_path, path2)
        self.assertEqual("no loop devices in this test",
                         self.sim.array.loop_refused)
        self.assertEqual(1, self.logger.output.count("Loop devices refused"))
        self.unmap(first)
        self.unmap(second)
        self.assertEqual([], os.listdir(self.sim.by_id_dir))


class TestWithoutLoopDevices(base.SimulatorTestCase):

    def test_default_publishes_files(self):
        vid = self.client.new_volume(None, 8)
        sdc = self.sim.sdc_ids[base.SDC_GUID]
        self.assertEqual(200, self.client.map(vid, sdc).status_code)
        self.assertEqual(self.sim.array.volumes[vid].backing_path,
                         os.path.realpath(self.sim.device_path(vid)))
        self.assertEqual({}, self.sim.array.loops)
