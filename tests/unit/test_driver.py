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
"""Failure handling, configuration errors, model updates and logs."""

import logging
from unittest import mock

from cinder import exception
from cinder.tests.unit import fake_volume
from cinder.volume import manager

from powerflex_cache_driver import compat
from powerflex_cache_driver import lost_answer
from powerflex_cache_driver import options
from tests.unit import base
from tests.unit import test_size_policy

ROUNDING = "powerflex_round_volume_capacity"
SHRINK_REFUSED = (500, {"message": "Volume capacity can only be increased",
                        "httpStatusCode": 500, "errorCode": 133})


class CreateVolume(base.DriverTestCase):
    """create_volume reports the size the array holds."""

    def test_ours_reports_array_size(self):
        driver = self.make_driver(base.OURS)
        model_update = driver.create_volume(self.new_volume(14))
        self.assertEqual(16, model_update["size"])
        self.assertEqual(16, self.gateway.size_gib(
            model_update["provider_id"]))

    def test_size_left_to_cinder_when_its_cache_path_shrinks_volume(self):
        # clone_image leaves the image to Cinder, whose cache-miss path
        # creates the volume at the image's size (3 GiB for a 20 GiB
        # request) and extends it afterwards, writing 20 GiB itself.
        driver = self.make_driver(base.OURS,
                                  **{options.CLONE_IMAGE: False})
        volume = self.new_volume(20)
        self.assertEqual((None, False), driver.clone_image(
            self.ctx, volume, None, {"id": "image"}, None))
        volume.size = 3
        model_update = driver.create_volume(volume)
        self.assertNotIn("size", model_update)
        self.assertEqual(8, self.gateway.size_gib(
            model_update["provider_id"]))
        # Only that create: the next one reports the array size again.
        volume.size = 3
        self.assertEqual(8, driver.create_volume(volume)["size"])

    def test_size_record_dropped_when_cinder_clones_instead(self):
        driver = self.make_driver(base.OURS,
                                  **{options.CLONE_IMAGE: False})
        volume = self.new_volume(20)
        driver.clone_image(self.ctx, volume, None, {"id": "image"}, None)
        driver.create_cloned_volume(volume, self.volume(16, 16))
        self.assertEqual({}, driver._image_volume_sizes)

    def test_stock_reports_rounded_size(self):
        driver = self.make_driver(base.STOCK)
        model_update = driver.create_volume(self.new_volume(14))
        self.assertEqual(16, model_update["size"])

    def test_unaligned_size_refused_when_rounding_off(self):
        driver = self.make_driver(base.OURS, **{ROUNDING: False})
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  driver.create_volume, self.new_volume(12))
        self.assertIn(ROUNDING, str(error))
        self.assertIn("12 GiB", str(error))
        self.assertEqual([], self.gateway.ops())

    def test_aligned_size_accepted_when_rounding_off(self):
        driver = self.make_driver(base.OURS, **{ROUNDING: False})
        driver.create_volume(self.new_volume(16))
        self.assertEqual(["createVolume"], self.gateway.ops())

    def test_ec_takes_any_size_when_rounding_off(self):
        if not test_size_policy.EC_SUPPORTED:
            self.skipTest("this Cinder release has no erasure-coded support")
        driver = self.make_driver(base.OURS, "EC", **{ROUNDING: False})
        model_update = driver.create_volume(self.new_volume(12))
        self.assertEqual(12, self.gateway.size_gib(
            model_update["provider_id"]))


class CloneFailures(base.DriverTestCase):
    """A failed clone leaves nothing on the array."""

    def _clone_needing_extend(self, driver_class):
        driver = self.make_driver(driver_class)
        source = self.volume(8, 8)
        # Cinder's client retries a failed setVolumeSize three times.
        self.gateway.fail("setVolumeSize", *SHRINK_REFUSED, times=3)
        before = set(self.gateway.sizes_kb)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume,
                          self.new_volume(9), source)
        return set(self.gateway.sizes_kb) - before

    def test_ours_removes_clone_when_extend_fails(self):
        left_behind = self._clone_needing_extend(base.OURS)
        self.assertEqual(set(), left_behind)
        self.assertEqual("removeVolume", self.gateway.ops()[-1])

    def test_stock_leaves_clone_when_extend_fails(self):
        left_behind = self._clone_needing_extend(base.STOCK)
        self.assertEqual(1, len(left_behind))

    def test_unaligned_clone_refused_before_any_call(self):
        driver = self.make_driver(base.OURS, **{ROUNDING: False})
        source = self.volume(8, 8)
        self.gateway.reset_calls()
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  driver.create_cloned_volume,
                                  self.new_volume(12), source)
        self.assertIn(ROUNDING, str(error))
        self.assertEqual([], self.gateway.ops())

    def test_unaligned_extend_refused_before_any_call(self):
        driver = self.make_driver(base.OURS, **{ROUNDING: False})
        volume = self.volume(8, 8)
        self.gateway.reset_calls()
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  driver.extend_volume, volume, 12)
        self.assertIn(ROUNDING, str(error))
        self.assertEqual([], self.gateway.ops())

    def test_ours_keeps_clone_it_cannot_remove(self):
        # The volume ends in error holding the half-made clone, which
        # deleting it removes.
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        self.gateway.fail("setVolumeSize", *SHRINK_REFUSED, times=3)
        self.gateway.fail("removeVolume", *SHRINK_REFUSED, times=3)
        volume = self.new_volume(9)
        before = set(self.gateway.sizes_kb)
        with mock.patch.object(volume, "save") as save:
            self.assertRaises(exception.VolumeBackendAPIException,
                              driver.create_cloned_volume, volume, source)
        save.assert_called_once_with()
        left_behind = set(self.gateway.sizes_kb) - before
        self.assertEqual({volume.provider_id}, left_behind)
        driver.delete_volume(volume)
        self.assertNotIn(volume.provider_id, self.gateway.sizes_kb)


class ReplicatedCleanup(base.DriverTestCase):
    """A failed create of a replicated volume leaves no secondary behind."""

    def _replicated(self):
        driver = self.make_driver(base.OURS, replication=True)
        volume = self.new_volume(16)
        volume.volume_type = fake_volume.fake_volume_type_obj(
            self.ctx, extra_specs={"replication_enabled": "<is> True"})
        self.assertTrue(volume.is_replicated())
        return driver, volume

    def test_pairing_fails_after_the_secondary_volume_is_made(self):
        # Cinder's driver makes the secondary's volume, then looks up the
        # replication consistency group named in the volume type, which
        # is not there: the pair is never made.
        driver, volume = self._replicated()
        source = self.volume(16, 16, replicated=True)
        before = set(self.gateway.sizes_kb)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume, volume, source)
        made = [c for c in self.gateway.calls
                if c.op in ("snapshotVolumes", "createVolume")]
        self.assertEqual([("snapshotVolumes", "127.0.0.1"),
                          ("createVolume", "127.0.0.2")],
                         [(c.op, c.host) for c in made])
        removed = [c.host for c in self.gateway.calls
                   if c.op == "removeVolume"]
        self.assertEqual(["127.0.0.2", "127.0.0.1"], removed)
        self.assertEqual(set(), set(self.gateway.sizes_kb) - before)

    def _paired(self):
        # What a create that fails after replication was set up (a
        # cross-pool copy whose data copy fails) leaves.
        driver, volume = self._replicated()
        # A fake volume has no row: what is saved is what it holds.
        self.mock_object(volume, "save")
        primary = self.gateway.add_volume(16)
        secondary = self.gateway.add_volume(16, host="127.0.0.2")
        self.gateway.pair(primary, secondary)
        self.gateway.reset_calls()
        return driver, volume, primary, secondary

    def test_paired_volume_loses_its_pair_and_secondary(self):
        driver, volume, primary, secondary = self._paired()
        driver._remove_unfinished(volume, primary)
        self.assertEqual([], self.gateway.pairs)
        self.assertNotIn(secondary, self.gateway.sizes_kb)
        self.assertNotIn(primary, self.gateway.sizes_kb)
        self.assertEqual(["127.0.0.2", "127.0.0.1"],
                         [c.host for c in self.gateway.calls
                          if c.op == "removeVolume"])

    def test_secondary_clean_up_failure_keeps_the_primary(self):
        """The volume keeps its primary: its delete tears the pair down."""
        driver, volume, primary, secondary = self._paired()
        self.gateway.fail("removePair", 500, {"errorCode": 0,
                                              "message": "busy"})
        with self.assertLogs("powerflex_cache_driver.driver",
                             "ERROR") as logs:
            driver._remove_unfinished(volume, primary)
        self.assertIn(lost_answer.array_name(volume.id), logs.output[0])
        self.assertIn(primary, self.gateway.sizes_kb)
        self.assertIn(secondary, self.gateway.sizes_kb)
        self.assertEqual(primary, volume.provider_id)
        # The user's delete, once the array answers, removes all three.
        volume.replication_status = "enabled"
        driver.delete_volume(volume)
        self.assertEqual([], self.gateway.pairs)
        self.assertNotIn(secondary, self.gateway.sizes_kb)
        self.assertNotIn(primary, self.gateway.sizes_kb)

    def test_a_failed_query_of_the_pairs_is_not_no_pair(self):
        """Cinder's driver would remove the primary and leave the pair."""
        driver, volume, primary, secondary = self._paired()
        self.gateway.fail("getPairs", 500, {"errorCode": 0,
                                            "message": "busy"})
        with self.assertLogs("powerflex_cache_driver.driver", "ERROR"):
            driver._remove_unfinished(volume, primary)
        self.assertEqual(1, len(self.gateway.pairs))
        self.assertIn(primary, self.gateway.sizes_kb)
        self.assertIn(secondary, self.gateway.sizes_kb)
        self.assertEqual([], [c for c in self.gateway.calls
                              if c.op in ("removeVolume", "removePair")])

    def test_delete_with_a_failed_query_of_the_pairs_removes_nothing(self):
        driver, volume, primary, secondary = self._paired()
        volume.provider_id = primary
        volume.replication_status = "enabled"
        self.gateway.fail("getPairs", 500, {"errorCode": 0,
                                            "message": "busy"})
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.delete_volume, volume)
        self.assertIn(primary, self.gateway.sizes_kb)
        self.assertIn(secondary, self.gateway.sizes_kb)
        self.assertEqual(1, len(self.gateway.pairs))


LOST = (500, {"errorCode": 500, "message": "The request to URL "
              "/types/Volume/instances failed with timeout exception"})
"""What Cinder's client makes of a read timeout."""


class LostAnswer(base.DriverTestCase):
    """A create the array made though its answer was lost."""

    def made_anyway(self, object_id, physical, ancestor=None):
        """The array volume a create for ``object_id`` made."""
        pid = self.gateway.add_volume(physical)
        self.gateway.names[lost_answer.array_name(object_id)] = pid
        if ancestor is not None:
            self.gateway.ancestors[pid] = ancestor
        return pid

    def test_create_uses_volume_the_array_made(self):
        driver = self.make_driver(base.OURS)
        volume = self.new_volume(14)
        pid = self.made_anyway(volume.id, 16)
        self.gateway.fail("createVolume", *LOST)
        model_update = driver.create_volume(volume)
        self.assertEqual(pid, model_update["provider_id"])
        self.assertEqual(16, model_update["size"])

    def test_create_removes_volume_not_as_asked(self):
        # Too small for the request: not made by this create.
        driver = self.make_driver(base.OURS)
        volume = self.new_volume(14)
        pid = self.made_anyway(volume.id, 8)
        self.gateway.fail("createVolume", *LOST)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_volume, volume)
        self.assertNotIn(pid, self.gateway.sizes_kb)

    def test_create_fails_when_nothing_was_made(self):
        driver = self.make_driver(base.OURS)
        self.gateway.fail("createVolume", *LOST)
        before = set(self.gateway.sizes_kb)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_volume, self.new_volume(14))
        self.assertEqual(before, set(self.gateway.sizes_kb))
        self.assertEqual("getVolumeByName", self.gateway.ops()[-1])

    def test_clone_uses_snapshot_the_array_made(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        volume = self.new_volume(8)
        pid = self.made_anyway(volume.id, 8, ancestor=source.provider_id)
        self.gateway.fail("snapshotVolumes", *LOST)
        model_update = driver.create_cloned_volume(volume, source)
        self.assertEqual(pid, model_update["provider_id"])

    def test_clone_removes_snapshot_of_another_source(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        volume = self.new_volume(8)
        pid = self.made_anyway(volume.id, 8, ancestor="0" * 16)
        self.gateway.fail("snapshotVolumes", *LOST)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume, volume, source)
        self.assertNotIn(pid, self.gateway.sizes_kb)


class ExtendRefusedByTheArray(base.DriverTestCase):
    """A volume grown on the array behind Cinder's back."""

    def test_clone_records_what_the_array_holds(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(10, 32)
        self.gateway.reset_calls()
        model_update = driver.create_cloned_volume(self.new_volume(20),
                                                   source)
        self.assertEqual(32, model_update["size"])
        self.assertEqual(1, self.gateway.ops().count("getVolume"))
        self.assertNotIn("removeVolume", self.gateway.ops())

    def test_other_extend_errors_still_fail_and_clean_up(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        self.gateway.fail("setVolumeSize", 500,
                          {"message": "Internal error", "errorCode": 0},
                          times=3)
        self.gateway.reset_calls()
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume, self.new_volume(9),
                          source)
        self.assertEqual("removeVolume", self.gateway.ops()[-1])


class DecisionLog(base.DriverTestCase):
    """Each sizing decision is one INFO line an operator can read."""

    def test_seed_decision_logged(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(60, 64)
        new = self.new_volume(60)
        with self.assertLogs("powerflex_cache_driver.driver",
                             logging.INFO) as logs:
            driver.create_cloned_volume(new, source)
        decisions = [line for line in logs.output if "extend" in line]
        self.assertEqual(
            ["INFO:powerflex_cache_driver.driver:Volume %s: array size 64 "
             "GiB already covers requested 60 GiB, no extend." % new.id],
            decisions)
        self.assertIn("Volume %s: Cinder records 64 GiB, the size the array "
                      "holds (requested 60 GiB)." % new.id,
                      "\n".join(logs.output))

    def test_extend_decision_logged_with_array_size(self):
        driver = self.make_driver(base.OURS)
        volume = self.volume(8, 8)
        with self.assertLogs("powerflex_cache_driver.driver",
                             logging.INFO) as logs:
            driver.extend_volume(volume, 9)
        output = "\n".join(logs.output)
        self.assertIn("array size 8 GiB is below requested 9 GiB, extend "
                      "to 16 GiB", output)
        self.assertIn("Volume %s: the array holds 16 GiB after the extend "
                      "to 9 GiB." % volume.id, output)

    def test_password_never_logged(self):
        logger = logging.getLogger()
        with self.assertLogs(logger, logging.DEBUG) as logs:
            driver = self.make_driver(base.OURS)
            driver.create_cloned_volume(self.new_volume(9),
                                        self.volume(8, 8))
        self.assertNotIn("not-logged", "\n".join(logs.output))
        self.assertNotIn("fake-token", "\n".join(logs.output))


class DriverLoading(base.DriverTestCase):
    """cinder-volume loads the drivers from volume_driver."""

    def test_volume_manager_loads_sdc_driver(self):
        self.override_config(
            "volume_driver", "powerflex_cache_driver.driver."
            "PowerFlexCacheDriver", "backend_defaults")
        volume_manager = manager.VolumeManager(service_name="powerflex")
        self.assertIsInstance(volume_manager.driver, base.OURS)
        self.assertIsInstance(volume_manager.driver, base.STOCK)

    def test_volume_manager_loads_nvme_driver(self):
        self.override_config(
            "volume_driver", "powerflex_cache_driver.driver."
            "PowerFlexCacheNVMeDriver", "backend_defaults")
        if compat.STOCK_NVME_DRIVER is None:
            error = self.assertRaises(exception.InvalidConfigurationValue,
                                      manager.VolumeManager,
                                      service_name="powerflex")
            self.assertIn("volume_driver", str(error))
            return
        volume_manager = manager.VolumeManager(service_name="powerflex")
        self.assertIsInstance(volume_manager.driver,
                              compat.STOCK_NVME_DRIVER)


class TokenRevoked(base.DriverTestCase):
    """The gateway refuses the client's token: log in again, send again."""

    UNAUTHORIZED = (401, {"message": "Unauthorized", "httpStatusCode": 401,
                          "errorCode": 0})

    def test_extend_logs_in_again_and_succeeds(self):
        driver = self.make_driver(base.OURS)
        volume = self.volume(8, 8)
        self.gateway.reset_calls()
        self.gateway.fail("setVolumeSize", *self.UNAUTHORIZED)
        driver.extend_volume(volume, 9)
        self.assertEqual(["setVolumeSize", "login", "setVolumeSize"],
                         self.gateway.ops())
        self.assertEqual(16, self.gateway.size_gib(volume.provider_id))

    def test_a_second_refusal_is_an_error(self):
        driver = self.make_driver(base.OURS)
        volume = self.volume(8, 8)
        self.gateway.fail("setVolumeSize", *self.UNAUTHORIZED, times=6)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.extend_volume, volume, 9)
        self.assertEqual(8, self.gateway.size_gib(volume.provider_id))
