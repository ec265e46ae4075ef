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
"""Issue 20: what deleting a volume without array volume id removes.

A volume whose ``createVolume`` answer was lost ends in error without
``provider_id``; the array may make its volume later, named after the
Cinder volume. Deleting the volume removes that array volume by name,
through Cinder's real delete and create flows here, except:

* when another Cinder record owns it (an operator managed the orphan);
* when the array does not answer the lookup: the delete fails, and a
  retry removes it;
* in Cinder's reschedule clean-up, when the retry of the create (on
  another service, same array, same name) has made it.
"""

import time
from typing import Any, Optional

from cinder import exception
from cinder import objects
from cinder.volume import api as volume_api

from powerflex_cache_driver import lost_answer
from tools.beds import driver_testcases
from tools.beds import fake_rpc
from tools.beds import gateway_faults
from tools.beds import inprocess_cinder

SECOND_HOST = "cinder-functional-2@%s" % inprocess_cinder.BACKEND
"""A second cinder-volume service on the same array."""


class DeleteByName(driver_testcases.OurDriverTestCase):
    """Deletes of volumes without provider_id, on the simulator."""

    # -- helpers ------------------------------------------------------------

    def lost_create(self) -> tuple[Any, str]:
        """A volume in error whose array volume the array made late.

        ``createVolume`` answers after the client gave up waiting; the
        create fails, then the array makes the volume.

        :returns: the volume and the late array volume's id.
        """
        gateway_faults.slow("createVolume")(self, {})
        volume, _unused = self.create_volume(10, expect_status="error")
        self.assertIsNone(volume.provider_id)
        name = lost_answer.array_name(volume.id)
        deadline = time.monotonic() + gateway_faults.SLOW * 5
        while self.sim.array.volume_by_name(name) is None:
            self.assertLess(time.monotonic(), deadline,
                            "the array never made %s" % name)
            time.sleep(0.05)
        return volume, self.sim.array.volume_by_name(name).id

    def manage(self, provider_id: str) -> Any:
        """Manage an array volume through Cinder's API, as an admin."""
        def schedule(ctxt: Any, volume: Any, request_spec: dict,
                     filter_properties: Optional[dict] = None) -> None:
            self.casts.cast("manage_existing", self.manager.manage_existing,
                            ctxt, volume=volume, ref=request_spec["ref"])
        self.scheduler.manage_existing = schedule
        volume = self.api.manage_existing(
            self.user_ctx, self.pool_host(), None,
            {"source-id": provider_id}, name="managed")
        self._deliver()
        return objects.Volume.get_by_id(self.admin_ctx, volume.id)

    def status_after_delete(self, volume: Any, force: bool = False) -> str:
        """Delete through the API as an admin; the status left, or gone."""
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.api.delete(self.admin_ctx, volume, force=force)
        self._deliver()
        try:
            return objects.Volume.get_by_id(self.admin_ctx, volume.id).status
        except exception.VolumeNotFound:
            return "deleted"

    # -- item 3 -------------------------------------------------------------

    def test_managed_orphan_survives_delete_of_the_error_volume(self):
        """Issue 20 item 3: another record's array volume is kept.

        The operator manages the orphan (manage_existing keeps its name,
        the error volume's array name); deleting the error volume then
        must not remove the managed volume's array volume.
        """
        volume, orphan = self.lost_create()
        managed = self.manage(orphan)
        self.assertEqual(("available", orphan),
                         (managed.status, managed.provider_id))

        self.assertEqual("deleted", self.status_after_delete(volume))
        self.assertIn(orphan, self.sim.array.volumes,
                      "the managed volume's array volume was removed")
        # The managed volume is whole: a snapshot of it, then both go.
        snapshot, _unused = self.create_snapshot(managed)
        self.delete_snapshot(snapshot)
        self.assertEqual("deleted", self.status_after_delete(managed))
        self.assertEqual({}, self.sim.array.volumes)

    # -- item 4 -------------------------------------------------------------

    def test_failed_lookup_fails_the_delete_until_retried(self):
        """Issue 20 item 4: getVolumeByName unanswered, the delete fails.

        The volume ends error_deleting with the late array volume still
        on the array; the retry, once the array answers, removes it.
        """
        volume, late = self.lost_create()
        self.sim.faults.drop("getVolumeByName")
        self.assertEqual("error_deleting", self.status_after_delete(volume))
        self.assertEqual(0, self.sim.faults.pending(), "fault never met")
        self.assertIn(late, self.sim.array.volumes)

        self.assertEqual("deleted",
                         self.status_after_delete(volume, force=True))
        self.assertEqual({}, self.sim.array.volumes)

    # -- item 5 -------------------------------------------------------------

    def test_reschedule_clean_up_keeps_the_retrys_array_volume(self):
        """Issue 20 item 5: the failed attempt's clean-up spares the retry.

        The first service's createVolume fails; Cinder reschedules, the
        second service makes the array volume (same name: same volume
        id) and the volume is available; then the first attempt's
        clean-up (``driver_delete_volume`` on its copy of the volume,
        without provider_id) runs. The retry's array volume survives and
        the volume can be used.
        """
        second = inprocess_cinder.start_volume_manager(self.admin_ctx,
                                                       SECOND_HOST)
        fake_rpc.reschedule_to(self, second, inprocess_cinder.POOL)
        cleanups = self.spy(self.manager, "driver_delete_volume")
        self.sim.faults.fail("createVolume", 190)

        with self.assertLogs("powerflex_cache_driver.lost_answer",
                             "INFO") as logs:
            volume, recorded = self.create_volume(10, expect_status=None)

        self.assertEqual([None], cleanups, "the reschedule clean-up did "
                         "not run, or failed")
        self.assertEqual("available", volume.status)
        self.assertNotIn(volume.provider_id, [
            call.volume_id for call in recorded.of("removeVolume")])
        self.assertIn("%s is available in Cinder's database, with array "
                      "volume id %s" % (volume.id, volume.provider_id),
                      "\n".join(logs.output))
        self.assertEqual(SECOND_HOST, volume.host.split("#")[0])
        self.assertIn(volume.provider_id, self.sim.array.volumes,
                      "the retry's array volume was removed")
        self.assertEqual(lost_answer.array_name(volume.id),
                         self.array_volume(volume.provider_id).name)
        # The volume is usable: the second service snapshots it, then
        # deletes both.
        api = volume_api.API()
        api.scheduler_rpcapi = fake_rpc.FakeSchedulerAPI(self.casts, second,
                                                         inprocess_cinder.POOL)
        api.volume_rpcapi = fake_rpc.FakeVolumeRPCAPI(self.casts, second)
        snapshot = api.create_snapshot(self.user_ctx, volume, "snap", None)
        self._deliver()
        snapshot = objects.Snapshot.get_by_id(self.admin_ctx, snapshot.id)
        self.assertEqual("available", snapshot.status)
        self.assertEqual(volume.provider_id, self.array_volume(
            snapshot.provider_id).ancestor_id)
        api.delete_snapshot(self.user_ctx, snapshot)
        self._deliver()
        api.delete(self.user_ctx, volume)
        self._deliver()
        self.assertEqual({}, self.sim.array.volumes)
        self.assert_no_quota_drift()
