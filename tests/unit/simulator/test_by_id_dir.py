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
"""Device links in a directory of the caller's (``by_id_dir=``).

The cloud points it at ``/dev/disk/by-id``, where os-brick looks; these
tests use a ``dev/disk/by-id`` inside a temporary directory.
"""

import os
import stat
from typing import Any

import fixtures
import testtools

from powerflex_cache_driver.simulator import GatewaySimulator
from powerflex_cache_driver.simulator import loop
from tests.unit.simulator import base


class SharedByIdDirTestCase(testtools.TestCase):
    """A simulator publishing its links in ``<temp>/dev/disk/by-id``."""

    loop_devices = False

    def setUp(self) -> None:
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.by_id = os.path.join(self.root, "dev", "disk", "by-id")
        self.sim = self.start_sim(self.by_id)
        self.client = self.client_of(self.sim)

    def start_sim(self, by_id_dir: str, **kwargs: Any) -> GatewaySimulator:
        sim = self.useFixture(base.SimulatorFixture(
            by_id_dir=by_id_dir, loop_devices=self.loop_devices,
            **kwargs)).sim
        assert sim is not None
        return sim

    def client_of(self, sim: GatewaySimulator) -> base.Client:
        client = base.Client(sim)
        self.addCleanup(client.close)
        self.assertEqual(200, client.login().status_code)
        return client

    def map(self, client: base.Client, vid: str) -> None:
        sdc = client.sim.sdc_ids[base.SDC_GUID]
        self.assertEqual(200, client.map(vid, sdc).status_code)

    def unmap(self, client: base.Client, vid: str) -> None:
        sdc = client.sim.sdc_ids[base.SDC_GUID]
        r = client.action(vid, "removeMappedSdc", {"sdcId": sdc})
        self.assertEqual(200, r.status_code, r.text)

    def link_name(self, vid: str) -> str:
        """``emc-vol-<systemId>-<volumeId>``, systemId as the gateway says."""
        r = self.client.get("/api/types/System/instances")
        self.assertEqual(200, r.status_code, r.text)
        (system,) = r.json()
        return "emc-vol-%s-%s" % (system["id"], vid)


class TestSharedByIdDir(SharedByIdDirTestCase):

    def test_links_appear_on_map_and_vanish_on_unmap(self):
        self.assertFalse(os.path.exists(os.path.join(self.root, "dev")))
        vid = self.client.new_volume()
        self.map(self.client, vid)
        link = os.path.join(self.by_id, self.link_name(vid))
        self.assertEqual(link, self.sim.device_path(vid))
        self.assertEqual([self.link_name(vid)], os.listdir(self.by_id))
        self.assertTrue(os.path.islink(link))
        self.assertEqual(self.sim.array.volumes[vid].backing_path,
                         os.path.realpath(link))
        self.assertFalse(os.path.exists(
            os.path.join(self.sim.workdir, "by-id")))
        self.unmap(self.client, vid)
        self.assertFalse(os.path.lexists(link))
        self.assertEqual([], os.listdir(self.by_id))

    def test_stop_removes_the_links_and_the_dirs_it_created(self):
        for _unused in range(2):
            self.map(self.client, self.client.new_volume())
        self.assertEqual(2, len(os.listdir(self.by_id)))
        self.sim.stop()
        self.assertEqual([], os.listdir(self.root))

    def test_restart_publishes_the_links_again(self):
        vid = self.client.new_volume()
        self.map(self.client, vid)
        link = self.sim.device_path(vid)
        self.sim.stop()
        self.assertFalse(os.path.exists(self.by_id))
        self.sim.start()
        self.assertTrue(os.path.islink(link))
        self.unmap(self.client_of(self.sim), vid)
        self.assertFalse(os.path.lexists(link))
        self.sim.stop()
        self.assertEqual([], os.listdir(self.root))

    def test_stop_leaves_what_it_did_not_make(self):
        # A by-id directory that exists, with a link of someone else's.
        host_by_id = os.path.join(self.root, "host", "by-id")
        os.makedirs(host_by_id)
        foreign = os.path.join(host_by_id, "wwn-0x5000")
        os.symlink("/dev/null", foreign)
        sim = self.start_sim(host_by_id)
        client = self.client_of(sim)
        vid = client.new_volume()
        self.map(client, vid)
        self.assertEqual(sorted(["wwn-0x5000", os.path.basename(
            sim.device_path(vid))]), sorted(os.listdir(host_by_id)))
        sim.stop()
        self.assertEqual(["wwn-0x5000"], os.listdir(host_by_id))
        # A directory it created, where a file of someone else's appeared.
        vid = self.client.new_volume()
        self.map(self.client, vid)
        other = os.path.join(self.by_id, "emc-vol-other")
        open(other, "w").close()
        self.sim.stop()
        self.assertEqual(["emc-vol-other"], os.listdir(self.by_id))
        self.assertFalse(os.path.lexists(self.sim.device_path(vid)))
        os.unlink(other)

    def test_dir_removed_meanwhile_is_made_again(self):
        # Another simulator sharing the directory removes it as it stops.
        real_symlink = os.symlink
        calls = []

        def symlink(target, link):
            calls.append(link)
            if len(calls) == 1:
                os.rmdir(os.path.dirname(link))
            return real_symlink(target, link)

        self.useFixture(fixtures.MonkeyPatch("os.symlink", symlink))
        vid = self.client.new_volume()
        self.map(self.client, vid)
        self.assertEqual(2, len(calls))
        self.assertTrue(os.path.islink(self.sim.device_path(vid)))
        self.sim.stop()
        self.assertEqual([], os.listdir(self.root))

    def test_no_link_while_stopped(self):
        vid = self.client.new_volume()
        self.sim.stop()
        self.sim.array.map_volume(
            vid, self.sim.array.host_by_guid(base.SDC_GUID))
        self.assertFalse(os.path.exists(os.path.join(self.root, "dev")))
        self.sim.start()
        self.assertTrue(os.path.islink(self.sim.device_path(vid)))


class TestSharedByIdDirLoopDevices(SharedByIdDirTestCase):

    loop_devices = True

    def test_links_point_at_loop_devices(self):
        vid = self.client.new_volume()
        self.map(self.client, vid)
        backing = self.sim.array.volumes[vid].backing_path
        link = os.path.join(self.by_id, self.link_name(vid))
        device = os.path.realpath(link)
        if self.sim.array.loop_refused is not None:
            self.assertEqual(backing, device)
        else:
            self.assertTrue(device.startswith("/dev/loop"), device)
            self.assertTrue(stat.S_ISBLK(os.stat(device).st_mode))
            self.assertEqual(backing, loop.backing_file(device))
        self.sim.stop()
        self.assertEqual([], os.listdir(self.root))
        self.assertEqual([], loop.devices_of(backing))
        self.assertEqual({}, self.sim.array.loops)

    def test_unmap_detaches_and_removes_the_link(self):
        vid = self.client.new_volume()
        self.map(self.client, vid)
        backing = self.sim.array.volumes[vid].backing_path
        self.unmap(self.client, vid)
        self.assertEqual([], os.listdir(self.by_id))
        self.assertEqual([], loop.devices_of(backing))
