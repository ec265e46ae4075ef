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
"""The record of the volumes this host's copies hold mapped."""

import os
import subprocess

from oslo_config import cfg

from powerflex_cache_driver import host_mappings
from tools.beds import cinder_testcase

CONF = cfg.CONF
KEY = host_mappings.key_of("6f24f28a00000000", "aa2d8bf200000000")


class RecordTest(cinder_testcase.CinderTestCase):
    """Records kept under ``[oslo_concurrency] lock_path``."""

    def _path(self) -> str:
        return os.path.join(CONF.oslo_concurrency.lock_path,
                            host_mappings.DIRECTORY, KEY + ".json")

    def test_kept_across_opens_and_removed_when_empty(self) -> None:
        with host_mappings.locked(KEY) as record:
            record.volume_id = "vol"
            record.ours = True
            record.holders["copy"] = host_mappings.this_process()
        with host_mappings.locked(KEY) as record:
            self.assertEqual("vol", record.volume_id)
            self.assertTrue(record.ours)
            self.assertEqual(["copy"], record.live_holders())
            self.assertEqual([], host_mappings.stale_records())
            del record.holders["copy"]
            record.ours = False
        self.assertFalse(os.path.exists(self._path()))

    def test_holder_of_an_ended_process_is_dead(self) -> None:
        process = subprocess.Popen(["sleep", "60"])
        holder = dict(host_mappings.this_process(), pid=process.pid,
                      start=host_mappings._start_time(process.pid))
        self.assertIsNotNone(holder["start"])
        with host_mappings.locked(KEY) as record:
            record.ours = True
            record.holders["killed"] = holder
            self.assertEqual(["killed"], record.live_holders())
        process.kill()
        process.wait()
        self.assertEqual([KEY], [record.key for record in
                                 host_mappings.stale_records()])
        with host_mappings.locked(KEY) as record:
            self.assertEqual(["killed"], record.drop_dead_holders())
            self.assertEqual({}, record.holders)

    def test_pid_reused_by_a_later_process_is_dead(self) -> None:
        holder = host_mappings.this_process()
        holder["start"] = str(int(holder["start"]) - 1)
        with host_mappings.locked(KEY) as record:
            record.holders["earlier"] = holder
            self.assertEqual([], record.live_holders())
            record.holders.clear()

    def test_holder_of_an_earlier_boot_is_dead(self) -> None:
        holder = dict(host_mappings.this_process(), boot="an-earlier-boot")
        with host_mappings.locked(KEY) as record:
            record.holders["before-reboot"] = holder
            self.assertEqual([], record.live_holders())
            record.holders.clear()

    def test_holder_of_another_pid_namespace_is_taken_as_alive(self) -> None:
        """A service in another container: its pids mean nothing here."""
        holder = dict(host_mappings.this_process(), pid=1, start="1",
                      pid_ns="pid:[1]")
        with host_mappings.locked(KEY) as record:
            record.holders["container"] = holder
            self.assertEqual(["container"], record.live_holders())
            self.assertEqual([], record.drop_dead_holders())
            record.holders.clear()

    def test_torn_record_read_as_empty(self) -> None:
        os.makedirs(os.path.dirname(self._path()), exist_ok=True)
        with open(self._path(), "w") as torn:
            torn.write('{"ours": tr')
        with host_mappings.locked(KEY) as record:
            self.assertFalse(record.ours)
            self.assertEqual({}, record.holders)

    def test_lock_path_required(self) -> None:
        self.override_config("lock_path", None, group="oslo_concurrency")
        error = self.assertRaises(cfg.RequiredOptError,
                                  host_mappings.check_configured)
        self.assertIn("lock_path", str(error))
