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
"""``powerflex-cache-manage cache list|warm|evict`` against a real Cinder.

The commands run in-process against the harness's cinder-volume service,
database and simulated array, with the harness's configuration (its
``[powerflex]`` section). The harness has no HTTP API: changes go through
:class:`ApiAdapter <tools.beds.manage_command.ApiAdapter>`, which offers
:class:`BlockStorage
<powerflex_cache_driver.cmd.block_storage.BlockStorage>`'s methods over
Cinder's real volume API (quotas, cache eviction, the volume manager).
The HTTP client itself is covered by ``tests/unit/test_block_storage.py``.
The command line (parsing, ``--config-file`` errors, options after the
action) is run in a subprocess against real files (:class:`TestCommandLine`).
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Optional

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import exception
from cinder import objects
from oslo_utils import units
import testtools

from powerflex_cache_driver.cmd import block_storage
from powerflex_cache_driver.cmd import common
from powerflex_cache_driver.cmd import manage
from powerflex_cache_driver import half_made
from tools.beds import inprocess_cinder
from tools.beds import manage_command

GIB = units.Gi
MIB = units.Mi


class TestCacheList(manage_command.ManageTestCase):
    """``cache list``: Cinder's cache entries against the array."""

    def _list(self, images: Optional[Any] = None) -> tuple[int, dict]:
        status, output = self.run_command(manage.run_cache_list, "json",
                                          images=images)
        return status, json.loads(output)

    def test_entry_of_an_image_create(self) -> None:
        meta, _volume = self.cached_image("img")
        entry_volume = self.cache_volume(meta["id"])
        array = self.array_volume(entry_volume.provider_id)
        mark = len(self.sim.calls)
        status, listing = self._list(manage_command.ApiAdapter(self))
        self.assertEqual(0, status)
        self.assertEqual([], listing["half_made"])
        [entry] = listing["entries"]
        self.assertEqual(
            (meta["id"], "img", entry_volume.id, self.pool_host(), 8, 8,
             []),
            (entry["image_id"], entry["image_name"], entry["volume_id"],
             entry["service"], entry["recorded_gib"], entry["array_gib"],
             entry["flags"]))
        self.assertEqual(2 * GIB, entry["virtual_size_bytes"])
        self.assertEqual("cache volume", entry["virtual_size_source"])
        # The entry's vtree holds the user's volume (a snapshot).
        self.assertEqual(self.sim.array.snapshot_count(array.vtree_id),
                         entry["vtree_snapshots"])
        self.assertEqual(1, entry["vtree_snapshots"])
        self.assertEqual(126, entry["vtree_snapshot_limit"])
        # Looking is free: the array only answered GET requests.
        self.assertEqual({"GET"}, {call.method for call in
                                   self.sim.calls[mark:]
                                   if call.op != "login"})

    def test_table_without_image_service(self) -> None:
        meta, _volume = self.cached_image("img")
        entry_volume = self.cache_volume(meta["id"])
        status, output = self.run_command(manage.run_cache_list, "table")
        self.assertEqual(0, status)
        self.assertIn(entry_volume.id, output)
        self.assertIn("1/126 snapshots", output)
        self.assertIn("2.00 GiB (cache volume)", output)

    def test_flags_entries_whose_volumes_are_gone(self) -> None:
        gone_meta, _volume = self.cached_image("gone-on-array")
        on_array = self.cache_volume(gone_meta["id"])
        # Removed on the array behind Cinder's back.
        self.sim.array.remove_volume(on_array.provider_id)
        deleted_meta, _volume = self.cached_image("gone-in-cinder")
        in_cinder = self.cache_volume(deleted_meta["id"])
        # Test only: the row deleted behind the cache's back (the command
        # never writes Cinder's database).
        db.volume_destroy(self.admin_ctx, in_cinder.id)

        status, listing = self._list()
        self.assertEqual(1, status)
        flags = {e["volume_id"]: e["flags"] for e in listing["entries"]}
        self.assertEqual({on_array.id: ["array volume gone"],
                          in_cinder.id: ["volume gone"]}, flags)

        status, output = self.run_command(manage.run_cache_list, "table")
        self.assertEqual(1, status)
        self.assertIn("Entry %s (image %s): array volume gone. The array "
                      "volume was removed outside Cinder: run "
                      "`powerflex-cache-manage cache evict %s --backend "
                      "powerflex`." % (on_array.id, gone_meta["id"],
                                       gone_meta["id"]), output)

    def test_stale_entry_is_flagged_when_the_image_service_answers(
            self) -> None:
        meta, disk = self.make_image("img", 2 * GIB, manage_command.PIECES,
                                     "img")
        self.create_volume(8, image_id=meta["id"])
        self.images.replace_data(meta["id"], disk, meta["updated_at"] +
                                 datetime.timedelta(minutes=5))
        status, listing = self._list(manage_command.ApiAdapter(self))
        self.assertEqual((1, ["stale"]),
                         (status, listing["entries"][0]["flags"]))

    def test_half_made_cache_volume_is_listed(self) -> None:
        meta, _volume = self.cached_image("img")
        # Test only: what a cinder-volume killed while making a cache
        # volume leaves once its start-up clean-up ran.
        internal = cinder_context.RequestContext(
            user_id=inprocess_cinder.INTERNAL_USER_ID,
            project_id=inprocess_cinder.INTERNAL_PROJECT_ID, is_admin=False)
        left = objects.Volume(
            context=internal, size=8, host=self.pool_host(),
            user_id=inprocess_cinder.INTERNAL_USER_ID,
            project_id=inprocess_cinder.INTERNAL_PROJECT_ID,
            display_name=half_made.display_name(meta["id"]),
            status="error", attach_status="detached")
        left.create()
        half_made.mark(db, internal, left, meta["id"])
        status, listing = self._list()
        self.assertEqual(1, status)
        self.assertEqual([(left.id, meta["id"], "error")],
                         [(h["volume_id"], h["image_id"], h["status"])
                          for h in listing["half_made"]])
        self.assertEqual([], listing["entries"][0]["flags"])
        status, output = self.run_command(manage.run_cache_list, "table")
        self.assertIn("Volume %s (image %s): half-made, error." %
                      (left.id, meta["id"]), output)


class TestCacheWarm(manage_command.ManageTestCase):
    """``cache warm``: a fresh entry per volume type, through the API."""

    def test_miss_then_fresh(self) -> None:
        meta, _disk = self.make_image("img", 2 * GIB, manage_command.PIECES,
                                      "img")
        before = self.quota_usage(manage_command.ADMIN_PROJECT_ID)
        api = manage_command.ApiAdapter(self)
        status, output = self.run_command(manage.run_cache_warm, api,
                                          meta["id"], [], "json")
        self.assertEqual(0, status, output)
        [row] = json.loads(output)["warm"]
        entry_volume = self.cache_volume(meta["id"])
        self.assertEqual(("warmed", entry_volume.id, True, "__DEFAULT__"),
                         (row["result"], row["entry_volume_id"],
                          row["downloaded"], row["volume_type"]))
        self.assertEqual(1, self.images.downloads[meta["id"]])
        # The warming volume: 1 GiB asked (2 GiB image -> 2), made, gone.
        self.assertEqual(("create", 2, meta["id"], "__DEFAULT__"),
                         api.writes[0])
        self.assertEqual(("delete", row["warming_volume_id"]),
                         api.writes[1])
        self.assertRaises(exception.VolumeNotFound, objects.Volume.get_by_id,
                          self.admin_ctx, row["warming_volume_id"])
        self.assertEqual(before,
                         self.quota_usage(manage_command.ADMIN_PROJECT_ID))
        self.assertEqual(8, self.array_size_gib(entry_volume))

        again = manage_command.ApiAdapter(self)
        mark = len(self.sim.calls)
        status, output = self.run_command(manage.run_cache_warm, again,
                                          meta["id"], [], "table")
        self.assertEqual(0, status, output)
        self.assertEqual([], again.writes)
        self.assertEqual([], [c for c in self.sim.calls[mark:]
                              if c.method != "GET"])
        self.assertIn("fresh", output)
        self.assertIn(entry_volume.id, output)
        self.assertEqual(1, self.images.downloads[meta["id"]])

    def test_wait_timeout_names_the_warming_volume(self) -> None:
        """A volume still being made is reported, not hidden by an error."""
        meta, _disk = self.make_image("img", 2 * GIB, manage_command.PIECES,
                                      "img")
        api = manage_command.ApiAdapter(self)

        def never_available(volume_id: str, statuses: Any,
                            timeout: float = 0) -> dict:
            raise block_storage.WaitTimeout(
                "Volume %s is still downloading after 600 s." % volume_id)
        api.wait_for_status = never_available
        status, output = self.run_command(manage.run_cache_warm, api,
                                          meta["id"], [], "json")
        self.assertEqual(2, status, output)
        [row] = json.loads(output)["warm"]
        self.assertEqual("failed", row["result"])
        self.assertIn("Delete the warming volume once it is settled "
                      "(openstack volume delete %s)"
                      % row["warming_volume_id"], row["message"])

    def test_unknown_volume_type_is_refused(self) -> None:
        meta, _disk = self.make_image("img", 2 * GIB, manage_command.PIECES,
                                      "img")
        self.assertRaises(common.CommandError, manage.cache_warm,
                          self.backends, manage_command.ApiAdapter(self),
                          meta["id"], ["no-such-type"])


class TestCacheEvict(manage_command.ManageTestCase):
    """``cache evict``: entries' volumes deleted through the API."""

    def test_evict_one_image(self) -> None:
        first, _volume = self.cached_image("first")
        second, _volume = self.cached_image("second")
        evicted = self.cache_volume(first["id"])
        kept = self.cache_volume(second["id"])
        internal_before = self.quota_usage(
            inprocess_cinder.INTERNAL_PROJECT_ID)
        api = manage_command.ApiAdapter(self)
        status, output = self.run_command(manage.run_cache_evict, api,
                                          first["id"], "json")
        self.assertEqual(0, status, output)
        self.assertEqual([(first["id"], evicted.id, "evicted")],
                         [(r["image_id"], r["volume_id"], r["result"])
                          for r in json.loads(output)["evicted"]])
        self.assertEqual([], self.cache_entries(first["id"]))
        self.assertEqual([kept.id], [e["volume_id"]
                                     for e in self.cache_entries()])
        self.assertNotIn(evicted.provider_id, self.sim.array.volumes)
        internal = self.quota_usage(inprocess_cinder.INTERNAL_PROJECT_ID)
        self.assertEqual(internal_before["gigabytes"] - 8,
                         internal["gigabytes"])
        self.assert_no_quota_drift()

    def test_evict_all(self) -> None:
        first, _volume = self.cached_image("first")
        second, _volume = self.cached_image("second")
        volumes = {self.cache_volume(first["id"]).id,
                   self.cache_volume(second["id"]).id}
        status, output = self.run_command(manage.run_cache_evict,
                                          manage_command.ApiAdapter(self),
                                          None, "table")
        self.assertEqual(0, status, output)
        self.assertEqual([], self.cache_entries())
        for volume_id in volumes:
            self.assertIn(volume_id, output)
        self.assertEqual(0, self.quota_usage(
            inprocess_cinder.INTERNAL_PROJECT_ID)["gigabytes"])
        status, output = self.run_command(manage.run_cache_evict,
                                          manage_command.ApiAdapter(self),
                                          None, "table")
        self.assertEqual((0, True), (status, "No cache entry" in output))


CONF_LVM = """[DEFAULT]
enabled_backends = lvm
[lvm]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
"""

CONF_OURS = """[DEFAULT]
enabled_backends = pf
[pf]
volume_driver = powerflex_cache_driver.driver.PowerFlexCacheDriver
san_ip = 127.0.0.1
san_login = admin
san_password = not-printed-secret
"""


class TestCommandLine(testtools.TestCase):
    """``main([...])`` in a fresh interpreter, with real files."""

    def setUp(self) -> None:
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def _conf(self, text: str) -> str:
        path = os.path.join(self.tmp, "cinder.conf")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return path

    def main(self, *argv: str) -> tuple[int, str, str]:
        """Run ``manage.main(argv)``; status, stdout, stderr."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OS_")}
        env.update(HOME=self.tmp, PYTHONWARNINGS="ignore")
        code = ("import sys; from powerflex_cache_driver.cmd import manage;"
                "sys.exit(manage.main(sys.argv[1:]))")
        done = subprocess.run([sys.executable, "-c", code] + list(argv),
                              capture_output=True, text=True, env=env,
                              cwd=self.tmp, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def test_missing_config_file(self) -> None:
        missing = os.path.join(self.tmp, "nope.conf")
        status, out, err = self.main("--config-file", missing,
                                     "cache", "list")
        self.assertEqual(2, status)
        self.assertIn("Cannot read the configuration file(s) %s. Give "
                      "cinder.conf with --config-file." % missing, err)

    def test_options_after_the_action(self) -> None:
        path = self._conf(CONF_LVM)
        status, out, err = self.main("--config-file", path, "cache", "list",
                                     "--format", "json", "--backend", "lvm")
        self.assertEqual(2, status)
        error = json.loads(out)["error"]
        self.assertIn("--backend lvm: its volume_driver is "
                      "cinder.volume.drivers.lvm.LVMVolumeDriver", error)

    def test_options_before_the_category(self) -> None:
        path = self._conf(CONF_LVM)
        status, out, err = self.main("--config-file", path, "--backend",
                                     "nosuch", "--format", "json",
                                     "volumes", "reconcile")
        self.assertEqual(2, status)
        self.assertIn("--backend nosuch: no such backend in "
                      "enabled_backends (lvm)", json.loads(out)["error"])

    def test_evict_needs_an_image_or_all(self) -> None:
        path = self._conf(CONF_OURS)
        status, out, err = self.main("--config-file", path, "cache",
                                     "evict", "--backend", "pf")
        self.assertEqual(2, status)
        self.assertIn("give an image id or --all", err)

    def test_changes_need_credentials(self) -> None:
        path = self._conf(CONF_OURS)
        status, out, err = self.main("--config-file", path, "cache",
                                     "warm", "some-image")
        self.assertEqual(2, status)
        self.assertIn("No Keystone URL: set OS_AUTH_URL", err)
        self.assertNotIn("not-printed-secret", out + err)

    def test_unknown_format_is_refused(self) -> None:
        path = self._conf(CONF_OURS)
        status, out, err = self.main("--config-file", path, "cache", "list",
                                     "--format", "yaml")
        self.assertEqual(2, status)
        self.assertIn("invalid choice: 'yaml'", err)
