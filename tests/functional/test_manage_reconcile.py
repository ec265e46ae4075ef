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
"""``powerflex-cache-manage volumes reconcile [--fix]`` against a real Cinder.

A volume recorded below its array size is made the way Cinder's volume
manager leaves one (``extend_volume_recording_request``: an 8 GiB volume
extended to 10 GiB records 10 and is charged 10 while the array holds 16),
so the database is written by Cinder only. ``--fix`` goes through
:class:`ApiAdapter <tools.beds.manage_command.ApiAdapter>`
(Cinder's real volume API, quotas and volume manager).
"""

import json
from typing import Any
from unittest import mock

from cinder.db import api as db
from cinder import objects
from cinder.volume import volume_types

from powerflex_cache_driver.cmd import manage
from powerflex_cache_driver import quota_charge
from tools.beds import inprocess_cinder
from tools.beds import manage_command

ApiAdapter = manage_command.ApiAdapter


class TestReconcile(manage_command.ManageTestCase):
    """Volumes recorded below what the array holds."""

    def short_volume(self) -> Any:
        """A volume recorded 10 GiB, 16 on the array, charged 10."""
        volume, _unused = self.create_volume(8)
        volume, _unused = self.extend_volume_recording_request(volume, 10)
        self.assertEqual((10, 16, 10),
                         (volume.size, self.array_size_gib(volume),
                          self.quota_usage()["gigabytes"]))
        return volume

    def reconcile(self, fix: bool = False, api: Any = None,
                  fmt: str = "json") -> tuple[int, Any]:
        """Run the command; its status and parsed JSON (or the table)."""
        status, output = self.run_command(manage.run_reconcile, api, fix,
                                          None, fmt)
        return status, json.loads(output) if fmt == "json" else output

    def test_lists_without_changing_anything(self) -> None:
        volume = self.short_volume()
        fine, _unused = self.create_volume(8)
        mark = len(self.sim.calls)
        status, report = self.reconcile()
        self.assertEqual(1, status)
        self.assertEqual(
            [{"volume_id": volume.id,
              "project_id": inprocess_cinder.PROJECT_ID,
              "status": "available", "recorded_gib": 10, "array_gib": 16,
              "backend": "powerflex", "cache_entry": False,
              "action": "to fix",
              "reason": "recorded 10 GiB, the array holds 16 GiB",
              "command": "openstack volume set --size 16 %s" % volume.id}],
            report["volumes"])
        self.assertEqual([{"project_id": inprocess_cinder.PROJECT_ID,
                           "usage_gib": 18, "records_gib": 18,
                           "difference_gib": 0, "command": "",
                           "synced_from_gib": None}],
                         report["projects"])
        self.assertEqual({"GET"}, {c.method for c in self.sim.calls[mark:]
                                   if c.op != "login"})
        self.assertEqual(10, objects.Volume.get_by_id(
            self.admin_ctx, volume.id).size)

    def test_fix_records_the_array_size_and_runs_once(self) -> None:
        volume = self.short_volume()
        api = ApiAdapter(self)
        mark = len(self.sim.calls)
        status, output = self.reconcile(fix=True, api=api, fmt="table")
        self.assertEqual(0, status, output)
        self.assertIn("extended", output)
        self.assertEqual([("extend", volume.id, 16)], api.writes)
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.assertEqual(("available", 16, 16),
                         (volume.status, volume.size,
                          self.array_size_gib(volume)))
        # The array already held 16 GiB: nothing was asked of it.
        self.assertEqual([], [c for c in self.sim.calls[mark:]
                              if c.op == "setVolumeSize"])
        self.assertEqual(16, self.quota_usage()["gigabytes"])
        self.assertEqual(self.db_usage()["gigabytes"],
                         self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()

        again = ApiAdapter(self)
        status, report = self.reconcile(fix=True, api=again)
        self.assertEqual((0, [], []), (status, report["volumes"],
                                       again.writes))

    def test_fix_syncs_usage_charged_below_the_records(self) -> None:
        """Usage left below the records is synced once they are right.

        Cinder 29's own driver records a blank 10 GiB volume at 16 GiB
        and charges 10 (made here by this driver with its charge off).
        """
        volume = self.short_volume()
        with mock.patch.object(quota_charge.RoundingCharge, "cover"):
            drifted, _unused = self.create_volume(10)
        self.assertEqual((16, 20), (drifted.size,
                                    self.quota_usage()["gigabytes"]))
        status, report = self.reconcile()
        self.assertEqual(1, status)
        self.assertEqual(
            [(inprocess_cinder.PROJECT_ID, 20, 26, -6)],
            [(p["project_id"], p["usage_gib"], p["records_gib"],
              p["difference_gib"]) for p in report["projects"]])
        self.assertIn("reconcile --fix --project %s"
                      % inprocess_cinder.PROJECT_ID,
                      report["projects"][0]["command"])

        status, output = self.reconcile(fix=True, api=ApiAdapter(self),
                                        fmt="table")
        self.assertEqual(0, status, output)
        self.assertIn("Project %s: usage synced from 26 GiB to its records "
                      "(32 GiB) with cinder-manage quota sync."
                      % inprocess_cinder.PROJECT_ID, output)
        self.assertEqual(16, objects.Volume.get_by_id(
            self.admin_ctx, volume.id).size)
        self.assertEqual(32, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()
        status, report = self.reconcile(fix=True, api=ApiAdapter(self))
        self.assertEqual((0, []), (status, report["volumes"]))

    def test_sync_with_usage_of_a_deleted_volume_type(self) -> None:
        """A project that once used a volume type deleted since.

        Its ``gigabytes_<type>`` and ``volumes_<type>`` usage rows stay;
        Cinder's own quota sync stops on them with a KeyError (seen on the
        one-machine cloud after Tempest).
        """
        gone = volume_types.create(self.admin_ctx, "gone", {})
        volume, _unused = self.create_volume(
            8, volume_type=objects.VolumeType.get_by_id(self.admin_ctx,
                                                        gone["id"]))
        self.delete_volume(volume)
        volume_types.destroy(self.admin_ctx, gone["id"])
        with mock.patch.object(quota_charge.RoundingCharge, "cover"):
            self.create_volume(10)
        status, report = self.reconcile(fix=True, api=ApiAdapter(self))
        self.assertEqual(0, status, report)
        self.assertEqual([(10, 16)], [(p["synced_from_gib"], p["usage_gib"])
                                      for p in report["projects"]])
        self.assert_no_quota_drift()

    def test_no_sync_while_a_create_is_charged_but_not_recorded(self) -> None:
        """A project with a volume being created is not synced.

        The driver charges the rounding before the volume records the
        array size; a sync in between took it back (usage 6 GiB below the
        records once the create ended).
        """
        self.short_volume()
        cover = quota_charge.RoundingCharge.cover
        reports = []

        def cover_then_reconcile(charge: Any, recorded_gib: int) -> None:
            cover(charge, recorded_gib)
            if not reports:
                reports.append(self.reconcile(fix=True,
                                              api=ApiAdapter(self)))
        with mock.patch.object(quota_charge.RoundingCharge, "cover",
                               autospec=True,
                               side_effect=cover_then_reconcile):
            volume, _unused = self.create_volume(10)
        _status, report = reports[0]
        [project] = report["projects"]
        self.assertEqual((None, 6), (project["synced_from_gib"],
                                     project["difference_gib"]))
        self.assertIn("volumes %s are being created" % volume.id,
                      project["command"])
        self.assertEqual(32, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()

    def test_volume_grown_outside_cinder_is_left(self) -> None:
        """Its extend would send the array a resize: listed, not fixed."""
        volume, _unused = self.create_volume(8)
        self.sim.array.set_volume_size(volume.provider_id, 32)
        api = ApiAdapter(self)
        mark = len(self.sim.calls)
        status, report = self.reconcile(fix=True, api=api)
        self.assertEqual(1, status)
        [row] = report["volumes"]
        self.assertEqual(("left", 8, 32), (row["action"], row["recorded_gib"],
                                           row["array_gib"]))
        self.assertIn("grown on the array outside Cinder", row["reason"])
        self.assertEqual([], api.writes)
        self.assertEqual({"GET"}, {c.method for c in self.sim.calls[mark:]
                                   if c.op != "login"})

    def test_volume_without_provider_id_is_left(self) -> None:
        """Found by name only: an extend would address no array volume."""
        volume = self.short_volume()
        # Test only: as a create whose answer was lost leaves it.
        db.volume_update(self.admin_ctx, volume.id, {"provider_id": None})
        api = ApiAdapter(self)
        status, report = self.reconcile(fix=True, api=api)
        self.assertEqual(1, status)
        [row] = report["volumes"]
        self.assertEqual(("left", 10, 16), (row["action"],
                                            row["recorded_gib"],
                                            row["array_gib"]))
        self.assertIn("no provider_id", row["reason"])
        self.assertEqual([], api.writes)
        self.assertEqual("available", objects.Volume.get_by_id(
            self.admin_ctx, volume.id).status)

    def test_in_use_volume_is_left_with_the_command(self) -> None:
        volume = self.short_volume()
        # Test only: attached, as far as the records go.
        db.volume_update(self.admin_ctx, volume.id, {"status": "in-use"})
        api = ApiAdapter(self)
        status, report = self.reconcile(fix=True, api=api)
        self.assertEqual(1, status)
        [row] = report["volumes"]
        self.assertEqual(
            ("left", "attached: detach it, then extend it to its array "
                     "size",
             "openstack volume set --size 16 %s (after detaching)"
             % volume.id),
            (row["action"], row["reason"], row["command"]))
        self.assertEqual([], api.writes)

    def test_project_without_quota_room_is_left(self) -> None:
        volume = self.short_volume()
        self.set_project_quota("gigabytes", 12)
        api = ApiAdapter(self)
        status, output = self.reconcile(fix=True, api=api, fmt="table")
        self.assertEqual(1, status, output)
        self.assertIn("project %s has no quota room for 6 GiB more"
                      % inprocess_cinder.PROJECT_ID, output)
        self.assertIn("openstack quota set --gigabytes <limit + 6> %s, then "
                      "openstack volume set --size 16 %s"
                      % (inprocess_cinder.PROJECT_ID, volume.id), output)
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.assertEqual(("available", 10), (volume.status, volume.size))
        self.assertEqual(10, self.quota_usage()["gigabytes"])

    def test_cache_entry_volumes_are_marked(self) -> None:
        meta, _disk = self.make_image("img", 2 * manage_command.GIB,
                                      manage_command.PIECES, "img")
        self.create_volume(8, image_id=meta["id"])
        entry_volume = self.cache_volume(meta["id"])
        # As Cinder's volume manager records an extend (the size asked).
        admin = ApiAdapter(self)
        with mock.patch.object(self.driver, "reserve_extend", None):
            admin.extend_volume(entry_volume.id, 10)
            self.casts.drain()
        short = objects.Volume.get_by_id(self.admin_ctx, entry_volume.id)
        self.assertEqual((10, 16), (short.size, self.array_size_gib(short)))
        status, report = self.reconcile()
        self.assertEqual(1, status)
        self.assertEqual([(short.id, inprocess_cinder.INTERNAL_PROJECT_ID,
                           True)],
                         [(r["volume_id"], r["project_id"],
                           r["cache_entry"]) for r in report["volumes"]])
        self.assertIn(inprocess_cinder.INTERNAL_PROJECT_ID,
                      [p["project_id"] for p in report["projects"]])
