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
"""An extend records the size the array holds, and charges the project.

Cinder's volume manager writes the size an extend asked for after the
driver returns: an 8 GiB volume extended to 10 GiB recorded 10 while the
array holds 16 and the guest sees 16, and the project was charged 10.
This package's volume manager records the array size and charges the
rounding before the array is asked (issue 18 item 6). A project without
room for the rounding gets a user message, and its volume is left as it
was. Under Cinder's volume manager (the control) the driver still
records the size asked for.
"""

from typing import Any
from unittest import mock

from cinder.db import api as db_api
from cinder.message import message_field
from cinder import objects
from cinder import quota

from powerflex_cache_driver import quota_charge
from powerflex_cache_driver.simulator import errors
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder


class ExtendScenario:
    """Extends of a blank 8 GiB volume through Cinder's volume API."""

    def _extend(self, volume: Any, new_size: int) -> tuple[Any, Any]:
        """Extend; return the volume as recorded after, and the calls."""
        mark = len(self.sim.calls)
        volume = objects.Volume.get_by_id(self.user_ctx, volume.id)
        self.api.extend(self.user_ctx, volume, new_size)
        self.casts.drain()
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        return volume, self._record("extend %s" % new_size, mark)

    def _messages(self, volume: Any) -> list[tuple[str, str]]:
        """The user messages about ``volume``: (action, detail) ids."""
        return [(m["action_id"], m["detail_id"])
                for m in db_api.message_get_all(
                    self.admin_ctx, filters={"resource_uuid": volume.id})]


class TestExtendRecordsArraySize(ExtendScenario,
                                 driver_testcases.OurDriverTestCase):
    """This package's driver and volume manager."""

    def test_extend_records_the_array_size(self) -> None:
        volume, _unused = self.create_volume(8)
        volume, recorded = self._extend(volume, 10)
        self.assertEqual(("available", 16, 16),
                         (volume.status, volume.size,
                          self.array_size_gib(volume)))
        self.assertEqual([(volume.provider_id, 16)], recorded.extends)
        self.assertEqual(16, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()
        self.assert_sizes_cover_array()
        self.assertEqual([], self._messages(volume))

    def test_aligned_extend_charges_nothing_more(self) -> None:
        volume, _unused = self.create_volume(8)
        volume, recorded = self._extend(volume, 24)
        self.assertEqual((24, 24), (volume.size,
                                    self.array_size_gib(volume)))
        self.assertEqual([(volume.provider_id, 24)], recorded.extends)
        self.assertEqual(24, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()

    def test_extend_of_a_volume_recorded_below_its_array_size(self) -> None:
        """An older volume is brought to its array size with no array call.

        What ``powerflex-cache-manage volumes reconcile --fix`` asks for.
        """
        volume, _unused = self.create_volume(8)
        volume, _unused = self.extend_volume_recording_request(volume, 10)
        self.assertEqual((10, 16, 10),
                         (volume.size, self.array_size_gib(volume),
                          self.quota_usage()["gigabytes"]))
        volume, recorded = self._extend(volume, 16)
        self.assertEqual(("available", 16), (volume.status, volume.size))
        self.assertEqual(0, recorded.counts()["setVolumeSize"])
        self.assertEqual(16, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()

    def test_no_room_for_the_rounding_refuses_the_extend(self) -> None:
        """Room for the 2 GiB asked, not for the 8 the array adds."""
        self.set_project_quota("gigabytes", 12)
        volume, _unused = self.create_volume(8)
        volume, recorded = self._extend(volume, 10)
        self.assertEqual(("available", 8, 8),
                         (volume.status, volume.size,
                          self.array_size_gib(volume)))
        self.assertEqual([], recorded.of("setVolumeSize"))
        self.assertEqual(8, self.quota_usage()["gigabytes"])
        self.assertEqual([(message_field.Action.EXTEND_VOLUME[0],
                           message_field.Detail.QUOTA_EXCEED[0])],
                         self._messages(volume))
        # With room for the array size, the same extend goes through.
        db_api.quota_update(self.admin_ctx, inprocess_cinder.PROJECT_ID,
                            "gigabytes", 16)
        volume, _unused = self._extend(volume, 10)
        self.assertEqual(("available", 16), (volume.status, volume.size))
        self.assertEqual(16, self.quota_usage()["gigabytes"])

    def test_failed_array_extend_gives_back_everything(self) -> None:
        volume, _unused = self.create_volume(8)
        # Cinder's REST client retries a failed request twice.
        self.sim.faults.fail("setVolumeSize", errors.VOL_SIZE_TOO_LARGE,
                             times=3)
        volume, _unused = self._extend(volume, 10)
        self.assertEqual(0, self.sim.faults.pending(), "fault never met")
        self.assertEqual(("error_extending", 8, 8),
                         (volume.status, volume.size,
                          self.array_size_gib(volume)))
        self.assertEqual(8, self.quota_usage()["gigabytes"])
        self.assertEqual([(message_field.Action.EXTEND_VOLUME[0],
                           message_field.Detail.DRIVER_FAILED_EXTEND[0])],
                         self._messages(volume))

    def test_volume_grown_outside_cinder_records_what_it_holds(self) -> None:
        """The array refuses to shrink a volume grown on it to 32 GiB."""
        volume, _unused = self.create_volume(8)
        self.sim.array.set_volume_size(volume.provider_id, 32)
        volume, _unused = self._extend(volume, 10)
        self.assertEqual(("available", 32, 32),
                         (volume.status, volume.size,
                          self.array_size_gib(volume)))
        self.assertEqual(32, self.quota_usage()["gigabytes"])
        self.assert_no_quota_drift()
        self.assert_sizes_cover_array()

    def test_service_dying_mid_extend_leaves_only_reservations(self) -> None:
        """Nothing is committed before Cinder records the size.

        The rounding is reserved beside Cinder's own reservation; when the
        service dies before the completion, both expire as Cinder's do.
        """
        self.override_config("reservation_expire", -1)
        volume, _unused = self.create_volume(8)

        class ServiceKilled(BaseException):
            """The process ends here: no handler, no clean-up runs."""

        # A killed process gives nothing back either.
        with mock.patch.object(self.driver, "extend_volume",
                               side_effect=ServiceKilled()), \
                mock.patch.object(quota_charge.RoundingCharge, "refund"):
            self.assertRaises(ServiceKilled, self._extend, volume, 10)
        quota.QUOTAS.expire(self.admin_ctx)
        self.assertEqual(8, self.quota_usage()["gigabytes"])
        self.assertEqual({}, self.manager._extends)


class TestExtendUnderCinderManager(ExtendScenario,
                                   driver_testcases.OurDriverTestCase):
    """This package's driver under Cinder's volume manager (the control)."""

    VOLUME_MANAGER = inprocess_cinder.CINDER_MANAGER

    def test_extend_records_the_size_asked(self) -> None:
        volume, _unused = self.create_volume(8)
        volume, recorded = self._extend(volume, 10)
        self.assertEqual((10, 16), (volume.size,
                                    self.array_size_gib(volume)))
        self.assertEqual([(volume.provider_id, 16)], recorded.extends)
        self.assertEqual(10, self.quota_usage()["gigabytes"])
