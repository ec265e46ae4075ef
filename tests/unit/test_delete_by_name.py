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
"""Deleting a volume or snapshot that has no array volume id (issue 20).

Its create failed, but the array may have made an array volume named
after it (a lost answer). Deleting it removes that array volume by name,
but only on a real delete, only when no other Cinder record owns it and
the array does not report it mapped; and a lookup the array does not
answer fails the delete instead of forgetting the array volume.
"""

from typing import Any

from cinder import exception
from cinder import objects
from cinder.tests.unit import utils as cinder_test_utils

from powerflex_cache_driver import lost_answer
from tests.unit import base

BUSY = (500, {"errorCode": 0, "httpStatusCode": 500,
              "message": "The gateway is busy"})
"""An answer to getVolumeByName that tells nothing about the name."""


class DeleteByName(base.DriverTestCase):
    """What a delete removes by name, and when it fails instead."""

    def setUp(self) -> None:
        super().setUp()
        self.driver = self.make_driver(base.OURS)
        self.volume_type = cinder_test_utils.create_volume_type(
            self.ctx, name="powerflex")

    # -- helpers ------------------------------------------------------------

    def record(self, status: str = "deleting",
               **updates: Any) -> objects.Volume:
        """A volume record in Cinder's database."""
        return cinder_test_utils.create_volume(
            self.ctx, host=base.HOST, size=8, status=status,
            volume_type_id=self.volume_type.id, **updates)

    def snapshot_record(self, status: str = "deleting") -> objects.Snapshot:
        """A snapshot record in Cinder's database, of a volume it holds."""
        source = self.record("available",
                             provider_id=self.gateway.add_volume(8))
        return cinder_test_utils.create_snapshot(self.ctx, source.id,
                                                 status=status)

    def late(self, object_id: str) -> str:
        """The array volume a failed create of ``object_id`` made late."""
        pid = self.gateway.add_volume(8)
        self.gateway.names[lost_answer.array_name(object_id)] = pid
        return pid

    def removed(self) -> list[str]:
        """Array volume ids of every removeVolume sent."""
        return [c.volume_id for c in self.gateway.calls
                if c.op == "removeVolume"]

    def assert_kept(self, pid: str) -> None:
        """The array volume is still there, and no removal was asked."""
        self.assertIn(pid, self.gateway.sizes_kb)
        self.assertNotIn(pid, self.removed())

    def delete_logged(self, delete: Any, obj: Any, level: str) -> str:
        """Run a driver delete; return what lost_answer logged."""
        with self.assertLogs("powerflex_cache_driver.lost_answer",
                             level) as logs:
            delete(obj)
        return "\n".join(logs.output)

    # -- what works today keeps working ------------------------------------

    def test_deleting_volume_removes_late_array_volume(self):
        """The user deletes the volume in error: its late volume goes."""
        volume = self.record()
        pid = self.late(volume.id)
        self.driver.delete_volume(volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)
        self.assertIn(pid, self.removed())

    def test_deleting_snapshot_removes_late_array_volume(self):
        """The same for a snapshot in error."""
        snapshot = self.snapshot_record()
        pid = self.late(snapshot.id)
        self.driver.delete_snapshot(snapshot)
        self.assertNotIn(pid, self.gateway.sizes_kb)

    # -- item 3: an array volume another record owns, or mapped ------------

    def test_array_volume_another_volume_owns_is_kept(self):
        """Issue 20 item 3: a managed orphan survives the error volume."""
        volume = self.record()
        pid = self.late(volume.id)
        owner = self.record("available", provider_id=pid)
        log = self.delete_logged(self.driver.delete_volume, volume,
                                 "WARNING")
        self.assert_kept(pid)
        self.assertIn("volume %s" % owner.id, log)
        self.assertIn(pid, log)

    def test_array_volume_a_snapshot_owns_is_kept(self):
        """Issue 20 item 3: a snapshot record's array volume survives."""
        volume = self.record()
        pid = self.late(volume.id)
        owner = self.snapshot_record("available")
        owner.provider_id = pid
        owner.save()
        log = self.delete_logged(self.driver.delete_volume, volume,
                                 "WARNING")
        self.assert_kept(pid)
        self.assertIn("snapshot %s" % owner.id, log)

    def test_deleted_record_owns_nothing(self):
        """Issue 20 item 3: deleted rows do not keep an array volume."""
        volume = self.record()
        pid = self.late(volume.id)
        self.record("available", provider_id=pid).destroy()
        self.driver.delete_volume(volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)
        self.assertIn(pid, self.removed())

    def test_mapped_array_volume_is_kept(self):
        """Issue 20 item 3: an array volume the array reports mapped."""
        volume = self.record()
        pid = self.late(volume.id)
        self.gateway.mapped.add(pid)
        log = self.delete_logged(self.driver.delete_volume, volume,
                                 "WARNING")
        self.assert_kept(pid)
        self.assertIn("mapped", log)

    def test_snapshot_delete_keeps_array_volume_a_volume_owns(self):
        """Issue 20 item 3: the same rule when deleting a snapshot."""
        snapshot = self.snapshot_record()
        pid = self.late(snapshot.id)
        owner = self.record("available", provider_id=pid)
        log = self.delete_logged(self.driver.delete_snapshot, snapshot,
                                 "WARNING")
        self.assert_kept(pid)
        self.assertIn("volume %s" % owner.id, log)

    # -- item 4: the array does not answer the lookup ----------------------

    def test_failed_lookup_fails_the_delete(self):
        """Issue 20 item 4: no answer to getVolumeByName, no delete."""
        volume = self.record()
        pid = self.late(volume.id)
        self.gateway.fail("getVolumeByName", *BUSY)
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  self.driver.delete_volume, volume)
        self.assertIn(volume.id, str(error))
        self.assertIn(lost_answer.array_name(volume.id), str(error))
        self.assertEqual([], self.removed())
        self.assertIn(pid, self.gateway.sizes_kb)
        # The retry, once the array answers, removes it.
        self.driver.delete_volume(volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)

    def test_failed_lookup_fails_the_snapshot_delete(self):
        """Issue 20 item 4: the same for a snapshot."""
        snapshot = self.snapshot_record()
        pid = self.late(snapshot.id)
        self.gateway.fail("getVolumeByName", *BUSY)
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  self.driver.delete_snapshot, snapshot)
        self.assertIn(snapshot.id, str(error))
        self.assertEqual([], self.removed())
        self.assertIn(pid, self.gateway.sizes_kb)

    # -- item 5: a create of the same object may be at work elsewhere ------

    def test_volume_being_created_is_left_alone(self):
        """Issue 20 item 5: a reschedule's clean-up, the retry in flight.

        The row is ``creating`` (a rescheduled create keeps that status);
        the array volume of that name is the retry's.
        """
        volume = self.record("creating")
        pid = self.late(volume.id)
        log = self.delete_logged(self.driver.delete_volume, volume, "INFO")
        self.assert_kept(pid)
        self.assertNotIn("getVolumeByName", self.gateway.ops())
        self.assertIn("creating", log)

    def test_volume_created_meanwhile_keeps_its_array_volume(self):
        """Issue 20 item 5: the retry finished before the clean-up.

        The clean-up holds the failed attempt's copy of the volume,
        without provider_id; the row has the retry's.
        """
        stale = self.record("creating")
        pid = self.late(stale.id)
        done = objects.Volume.get_by_id(self.ctx, stale.id)
        done.update({"status": "available", "provider_id": pid})
        done.save()
        self.driver.delete_volume(stale)
        self.assert_kept(pid)

    def test_snapshot_being_created_is_left_alone(self):
        """Issue 20 item 5: the same reasoning for snapshots."""
        snapshot = self.snapshot_record("creating")
        pid = self.late(snapshot.id)
        self.driver.delete_snapshot(snapshot)
        self.assert_kept(pid)

    def test_volume_in_error_deleted_by_cinder_is_cleaned(self):
        """Issue 20 item 5: Cinder's own clean-ups delete ``error`` rows.

        ``VolumeManager._clone_image_volume`` deletes the image volume
        whose create failed without the API (no ``deleting`` status); no
        create is at work then, so the late array volume still goes.
        """
        volume = self.record("error")
        pid = self.late(volume.id)
        self.driver.delete_volume(volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)

    def test_error_deleting_volume_is_cleaned_on_retry(self):
        """Issue 20 item 5: a retried delete (``error_deleting``) removes."""
        volume = self.record("error_deleting")
        pid = self.late(volume.id)
        self.driver.delete_volume(volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)
