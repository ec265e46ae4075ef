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
"""Quota for the rounding, against a real quota database."""

import logging
from typing import Any
from unittest import mock

from cinder.db import api as db_api
from cinder import exception
from cinder.objects import fields
from cinder import quota
from cinder.tests.unit import utils as test_utils
from cinder.volume import group_types
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_utils import uuidutils

from powerflex_cache_driver import quota_charge
from tests.unit import base

QUOTAS = quota.QUOTAS
TYPE_NAME = "powerflex"
SHRINK_REFUSED = (500, {"message": "Volume capacity can only be increased",
                        "httpStatusCode": 500, "errorCode": 133})


class QuotaTestCase(base.DriverTestCase):
    """A project, a volume type and the project's quota usage."""

    def setUp(self):
        super().setUp()
        self.project_id = uuidutils.generate_uuid()
        self.volume_type = test_utils.create_volume_type(
            self.ctx, name=TYPE_NAME)

    def usage(self) -> dict[str, int]:
        """In-use gigabytes (total and of the type); asserts none reserved."""
        quotas = QUOTAS.get_project_quotas(self.ctx, self.project_id,
                                           usages=True)
        for name in ("gigabytes", "gigabytes_" + TYPE_NAME):
            self.assertEqual(0, quotas[name]["reserved"], name)
        return {name: quotas[name]["in_use"]
                for name in ("gigabytes", "gigabytes_" + TYPE_NAME)}

    def requested(self, size: int, **kwargs):
        """A volume being created, with its quota charged as the API does."""
        deltas = {"volumes": 1, "gigabytes": size}
        QUOTAS.add_volume_type_opts(self.ctx, deltas, self.volume_type.id)
        QUOTAS.commit(self.ctx, QUOTAS.reserve(
            self.ctx, project_id=self.project_id, **deltas),
            project_id=self.project_id)
        return test_utils.create_volume(
            self.ctx, size=size, host=base.HOST, status="creating",
            project_id=self.project_id, volume_type_id=self.volume_type.id,
            **kwargs)

    def array_requests(self) -> list[str]:
        """Requests sent, less the client's own token refreshes (logins)."""
        return [op for op in self.gateway.ops() if op != "login"]

    def limit_gigabytes(self, limit: int) -> None:
        db_api.quota_create(self.ctx, self.project_id, "gigabytes", limit)


class RoundingQuota(QuotaTestCase):
    def test_create_charges_the_rounding_on_both_resources(self) -> None:
        driver = self.make_driver(base.OURS)
        volume = self.requested(10)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())
        self.assertEqual(16, driver.create_volume(volume)["size"])
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_aligned_create_charges_nothing_more(self) -> None:
        driver = self.make_driver(base.OURS)
        volume = self.requested(16)
        driver.create_volume(volume)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_rounding_over_quota_makes_nothing(self) -> None:
        driver = self.make_driver(base.OURS)
        self.limit_gigabytes(12)
        volume = self.requested(10)
        error = self.assertRaises(quota_charge.RoundingExceedsQuota,
                                  driver.create_volume, volume)
        message = str(error)
        for text in ("16 GiB", "requested 10 GiB", "gigabytes", "12 GiB",
                     volume.id):
            self.assertIn(text, message)
        self.assertEqual([], self.array_requests())
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_clone_over_quota_makes_no_snapshot(self) -> None:
        driver = self.make_driver(base.OURS)
        source = self.volume(60, 64)
        self.limit_gigabytes(62)
        volume = self.requested(60)
        self.gateway.reset_calls()
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual([], self.array_requests())
        self.assertEqual(60, self.usage()["gigabytes"])

    def test_failed_create_gives_the_rounding_back(self) -> None:
        driver = self.make_driver(base.OURS)
        volume = self.requested(10)
        self.gateway.fail("createVolume", 500,
                          {"message": "Error", "errorCode": 0})
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_volume, volume)
        self.assertEqual(10, self.usage()["gigabytes"])

    def test_failed_clone_extend_gives_the_rounding_back(self) -> None:
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        volume = self.requested(9)
        self.gateway.fail("setVolumeSize", *SHRINK_REFUSED, times=3)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual(9, self.usage()["gigabytes"])
        self.assertEqual("removeVolume", self.gateway.ops()[-1])

    def test_clone_of_grown_source_charges_what_the_array_holds(self) -> None:
        # The source holds 32 GiB on the array although Cinder records 10:
        # the clone holds 32 too and the project pays for 32.
        driver = self.make_driver(base.OURS)
        source = self.volume(10, 32)
        volume = self.requested(20)
        self.assertEqual(32, driver.create_cloned_volume(volume,
                                                         source)["size"])
        self.assertEqual(32, self.usage()["gigabytes"])

    def test_clone_of_grown_source_over_quota_is_removed(self) -> None:
        driver = self.make_driver(base.OURS)
        source = self.volume(10, 32)
        self.limit_gigabytes(24)
        volume = self.requested(20)
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual("removeVolume", self.gateway.ops()[-1])
        self.assertEqual(20, self.usage()["gigabytes"])

    def test_stock_charges_only_the_requested_size(self) -> None:
        driver = self.make_driver(base.STOCK)
        volume = self.requested(10)
        self.assertEqual(16, driver.create_volume(volume)["size"])
        self.assertEqual(10, self.usage()["gigabytes"])


class WholeCharges(QuotaTestCase):
    """A charge is made whole and once, or not at all; so is a refund.

    :class:`~powerflex_cache_driver.quota_charge.RoundingCharge` on its
    own, for a 10 GiB volume Cinder's API charged, which the array holds
    in 16 (or more) GiB.
    """

    def charge(self, size: int = 10, **kwargs: Any) -> Any:
        return quota_charge.RoundingCharge(self.requested(size, **kwargs), 8)

    def reserved(self) -> dict[str, int]:
        quotas = QUOTAS.get_project_quotas(self.ctx, self.project_id,
                                           usages=True)
        return {name: quotas[name]["reserved"]
                for name in ("gigabytes", "gigabytes_" + TYPE_NAME)}

    def test_charged_to_the_type_charged_not_the_loaded_one(self) -> None:
        """A volume whose loaded type is not the one its charge names.

        As in a retype, where the volume's type id changes after its
        type was loaded: the charge goes to the type named.
        """
        volume = self.requested(10)
        self.assertEqual(TYPE_NAME, volume.volume_type.name)
        gold = test_utils.create_volume_type(self.ctx, name="gold")
        volume.volume_type_id = gold.id
        quota_charge.RoundingCharge(volume, 8).cover(16)
        quotas = QUOTAS.get_project_quotas(self.ctx, self.project_id,
                                           usages=True)
        self.assertEqual((16, 10, 6), (quotas["gigabytes"]["in_use"],
                                       quotas["gigabytes_powerflex"]["in_use"],
                                       quotas["gigabytes_gold"]["in_use"]))

    def test_cover_twice_charges_once(self) -> None:
        charge = self.charge()
        charge.cover(16)
        charge.cover(16)
        self.assertEqual(6, charge.charged_gib)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_cover_of_a_larger_size_charges_the_difference(self) -> None:
        charge = self.charge()
        charge.cover(16)
        charge.cover(24)
        charge.cover(16)
        self.assertEqual(14, charge.charged_gib)
        self.assertEqual({"gigabytes": 24, "gigabytes_powerflex": 24},
                         self.usage())

    def test_refund_gives_back_the_charge_once(self) -> None:
        charge = self.charge()
        charge.cover(16)
        charge.cover(24)
        charge.refund()
        charge.refund()
        self.assertEqual(0, charge.charged_gib)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_check_charges_and_reserves_nothing(self) -> None:
        charge = self.charge()
        charge.check(16)
        self.assertEqual(0, charge.charged_gib)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())
        self.limit_gigabytes(12)
        self.assertRaises(quota_charge.RoundingExceedsQuota, charge.check,
                          16)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_over_quota_charges_and_reserves_nothing(self) -> None:
        charge = self.charge()
        self.limit_gigabytes(15)
        error = self.assertRaises(quota_charge.RoundingExceedsQuota,
                                  charge.cover, 16)
        self.assertIn("quota gigabytes is 15 GiB with 10 GiB consumed",
                      str(error))
        self.assertEqual(0, charge.charged_gib)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_reserve_leaves_the_reservations_to_the_caller(self) -> None:
        """An extend's rounding, committed with Cinder's reservations."""
        charge = self.charge()
        reservations = charge.reserve(16)
        self.assertEqual(2, len(reservations))
        self.assertEqual({"gigabytes": 6, "gigabytes_powerflex": 6},
                         self.reserved())
        QUOTAS.commit(self.ctx, reservations, project_id=self.project_id)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_a_failed_commit_charges_nothing(self) -> None:
        """Its reservations go with the transaction: none left open."""
        charge = self.charge()
        with mock.patch.object(quota_charge.compat,
                               "commit_reservations_joined",
                               side_effect=db_exc.DBError("gone")):
            self.assertRaises(db_exc.DBError, charge.cover, 16)
        self.assertEqual(0, charge.charged_gib)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())
        self.assertEqual({"gigabytes": 0, "gigabytes_powerflex": 0},
                         self.reserved())
        charge.cover(16)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_a_deadlock_retries_the_whole_reservation_once(self) -> None:
        """The first attempt's reservation goes with its transaction."""
        charge = self.charge()
        reserve = QUOTAS._driver.reserve
        with mock.patch.object(
                QUOTAS._driver, "reserve",
                side_effect=_deadlocks_once(reserve)) as reserving, \
                mock.patch.object(oslo_db_api.time, "sleep"):
            charge.cover(16)
        self.assertEqual(2, reserving.call_count)
        self.assertEqual(6, charge.charged_gib)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_a_deadlock_in_the_commit_retries_the_whole_charge(self) -> None:
        """Reserved again and committed once: charged 6 GiB, not 12."""
        charge = self.charge()
        commit = quota_charge.compat.commit_reservations_joined
        with mock.patch.object(
                quota_charge.compat, "commit_reservations_joined",
                side_effect=_deadlocks_once(commit)) as committing, \
                mock.patch.object(oslo_db_api.time, "sleep"):
            charge.cover(16)
        self.assertEqual(2, committing.call_count)
        self.assertEqual(6, charge.charged_gib)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())
        self.assertEqual({"gigabytes": 0, "gigabytes_powerflex": 0},
                         self.reserved())

    def test_a_failed_refund_keeps_the_charge_to_give_back(self) -> None:
        charge = self.charge()
        charge.cover(16)
        with mock.patch.object(quota_charge.compat,
                               "commit_reservations_joined",
                               side_effect=db_exc.DBError("gone")), \
                self.assertLogs("powerflex_cache_driver.quota_charge",
                                logging.ERROR) as logs:
            charge.refund()
        self.assertIn("cinder-manage quota sync", logs.output[0])
        self.assertEqual(6, charge.charged_gib)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())
        charge.refund()
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_first_charge_of_a_project_counts_its_volumes(self) -> None:
        """No usage row yet: Cinder's engine counts the records first."""
        volume = test_utils.create_volume(
            self.ctx, size=10, host=base.HOST, status="creating",
            project_id=self.project_id, volume_type_id=self.volume_type.id)
        quota_charge.RoundingCharge(volume, 8).cover(16)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_temporary_volume_is_charged_by_no_method(self) -> None:
        volume = test_utils.create_volume(
            self.ctx, size=10, host=base.HOST, status="creating",
            project_id=self.project_id, volume_type_id=self.volume_type.id,
            use_quota=False)
        charge = quota_charge.RoundingCharge(volume, 8)
        self.limit_gigabytes(0)
        self.assertEqual([], charge.reserve(16))
        charge.check(16)
        charge.cover(16)
        charge.refund()
        self.assertEqual(0, charge.charged_gib)
        self.assertEqual({"gigabytes": 0, "gigabytes_powerflex": 0},
                         self.usage())


def _deadlocks_once(call: Any) -> Any:
    """A side effect: ``call``, then a deadlock the first time."""
    calls = []

    def side_effect(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        calls.append(result)
        if len(calls) == 1:
            raise db_exc.DBDeadlock()
        return result
    return side_effect


class TemporaryVolumes(QuotaTestCase):
    """Issue 20 item 6: Cinder's temporary volumes are charged nothing.

    Cinder makes them with ``use_quota`` False (a migration or retype
    destination, a generic revert's volume, a backup's copy), charges
    nothing for them and gives nothing back when it deletes them.
    """

    def temporary(self, size: int, status: str = "creating"):
        """A volume Cinder makes outside the quota (no reservation)."""
        return test_utils.create_volume(
            self.ctx, size=size, host=base.HOST, status=status,
            project_id=self.project_id, volume_type_id=self.volume_type.id,
            use_quota=False)

    def test_temporary_volume_is_charged_nothing(self) -> None:
        """Issue 20 item 6: a temporary 10 GiB volume (16 on the array)."""
        driver = self.make_driver(base.OURS)
        volume = self.temporary(10)
        self.assertEqual(16, driver.create_volume(volume)["size"])
        self.assertEqual({"gigabytes": 0, "gigabytes_powerflex": 0},
                         self.usage())

    def test_temporary_clone_is_charged_nothing_and_logged_once(self) -> None:
        """Issue 20 item 6: a temporary clone of a grown source.

        The clone covers the source's 32 GiB twice (before the snapshot
        and after the extend decision): one log line says why nothing is
        charged.
        """
        driver = self.make_driver(base.OURS)
        volume = self.temporary(20)
        with self.assertLogs("powerflex_cache_driver.quota_charge",
                             logging.DEBUG) as logs:
            self.assertEqual(32, driver.create_cloned_volume(
                volume, self.volume(10, 32))["size"])
        self.assertEqual({"gigabytes": 0, "gigabytes_powerflex": 0},
                         self.usage())
        self.assertEqual(
            ["INFO:powerflex_cache_driver.quota_charge:Volume %s is a "
             "temporary volume of Cinder's (use_quota False), not counted "
             "in project %s's quota: no quota charged for the size the "
             "array holds." % (volume.id, self.project_id)], logs.output)

    def migrated(self, size: int, recorded: int, volume_type_id=None):
        """A counted volume and the temporary volume it migrates to."""
        volume = self.requested(size)
        new_volume = self.temporary(size, status="available")
        new_volume.size = recorded
        if volume_type_id:
            new_volume.volume_type_id = volume_type_id
        return volume, new_volume

    def test_migration_charges_the_source_record_the_size_it_takes(
            self) -> None:
        """Issue 20 item 6: the counted record takes the temporary's size.

        When a migration completes, Cinder swaps the records: the source
        (counted) takes the destination's 24 GiB. Nothing was charged for
        the destination; the source's project pays the 4 GiB then.
        """
        driver = self.make_driver(base.OURS)
        volume, new_volume = self.migrated(20, 24)
        update = driver.update_migrated_volume(self.ctx, volume, new_volume,
                                               "in-use")
        self.assertEqual(new_volume.id, update["_name_id"])
        self.assertEqual({"gigabytes": 24, "gigabytes_powerflex": 24},
                         self.usage())

    def test_retype_migration_charges_the_new_type(self) -> None:
        """Issue 20 item 6: a retype's record takes the new type too."""
        driver = self.make_driver(base.OURS)
        gold = test_utils.create_volume_type(self.ctx, name="gold")
        volume, new_volume = self.migrated(20, 24, gold.id)
        driver.update_migrated_volume(self.ctx, volume, new_volume,
                                      "in-use")
        quotas = QUOTAS.get_project_quotas(self.ctx, self.project_id,
                                           usages=True)
        self.assertEqual(
            {"gigabytes": 24, "gigabytes_powerflex": 20, "gigabytes_gold": 4},
            {name: quotas[name]["in_use"] for name in
             ("gigabytes", "gigabytes_powerflex", "gigabytes_gold")})

    def test_migration_without_room_completes_and_says_so(self) -> None:
        """Issue 20 item 6: no room for the 4 GiB at completion.

        The copy is over and Cinder would keep the destination of a
        migration failed here (a duplicate volume, an array volume): it
        completes, uncharged, and the log says how to set it right. (The
        source driver checked the room before the copy.)
        """
        driver = self.make_driver(base.OURS)
        volume, new_volume = self.migrated(20, 24)
        self.limit_gigabytes(22)
        with self.assertLogs("powerflex_cache_driver.driver",
                             logging.ERROR) as logs:
            update = driver.update_migrated_volume(
                self.ctx, volume, new_volume, "in-use")
        self.assertEqual(new_volume.id, update["_name_id"])
        self.assertIn("migration completes without the quota", logs.output[0])
        self.assertIn("cinder-manage quota sync", logs.output[0])
        self.assertEqual(20, self.usage()["gigabytes"])

    def test_copy_below_the_array_size_is_refused(self) -> None:
        """A source recording 20 GiB of 24: Cinder would copy 20.

        Refused before the copy with the fix in the message, and nothing
        charged.
        """
        driver = self.make_driver(base.OURS)
        volume, new_volume = self.migrated(20, 24)
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  driver.before_volume_copy, self.ctx,
                                  volume, new_volume, remote="dest")
        self.assertIn("Extend the volume to 24 GiB first", str(error))
        self.assertEqual([], self.array_requests())
        self.assertEqual(20, self.usage()["gigabytes"])

    def test_copy_into_a_larger_record_checks_the_room(self) -> None:
        """The destination records more (another granularity): room first.

        Without room the migration is refused before the copy; with room
        nothing is charged yet (the record takes the size at completion).
        """
        driver = self.make_driver(base.OURS)
        volume, new_volume = self.migrated(16, 24)
        self.limit_gigabytes(20)
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.before_volume_copy, self.ctx, volume,
                          new_volume, remote="dest")
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())
        db_api.quota_update(self.ctx, self.project_id, "gigabytes", 24)
        driver.before_volume_copy(self.ctx, volume, new_volume,
                                  remote="dest")
        # Nothing charged, nothing left reserved (usage() checks).
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_failed_rename_gives_the_migration_charge_back(self) -> None:
        """Issue 20 item 6: the array refuses the rename; 4 GiB back."""
        driver = self.make_driver(base.OURS)
        volume, new_volume = self.migrated(20, 24)
        volume.provider_id = self.gateway.add_volume(24)
        new_volume.provider_id = self.gateway.add_volume(24)
        # The fake routes no setVolumeName: it answers it as "unknown".
        self.gateway.fail("unknown", 500, {"message": "Name in use",
                                           "errorCode": 6})
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.update_migrated_volume, self.ctx, volume,
                          new_volume, "available")
        self.assertEqual(["unknown"], self.array_requests())
        self.assertEqual(20, self.usage()["gigabytes"])


class GroupFromSource(QuotaTestCase):
    """Issue 20 item 7: a consistency group clone that fails part-way."""

    def group(self, consistent: bool = True):
        """A group being created; a consistency group by default."""
        specs = {"consistent_group_snapshot_enabled": "<is> %s" % consistent}
        group_type = group_types.create(self.ctx, "cg-%s" % consistent,
                                        specs)
        return test_utils.create_group(
            self.ctx, host=base.HOST, group_type_id=group_type["id"],
            volume_type_ids=[self.volume_type.id],
            status=fields.GroupStatus.CREATING)

    def test_second_clone_without_room_undoes_the_first(self) -> None:
        """Issue 20 item 7: the first clone removed, its 4 GiB given back.

        Two sources recorded at 20 GiB hold 24 on the array (extended);
        the project has room for the first clone's rounding only.
        """
        driver = self.make_driver(base.OURS)
        sources = [self.volume(20, 24), self.volume(20, 24)]
        group = self.group()
        volumes = [self.requested(20, group_id=group.id) for _s in sources]
        self.limit_gigabytes(44)
        before = set(self.gateway.sizes_kb)
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.create_group_from_src, self.ctx, group,
                          volumes, source_group=mock.sentinel.group,
                          source_vols=sources)
        self.assertEqual(set(), set(self.gateway.sizes_kb) - before)
        requests = self.array_requests()
        self.assertEqual(1, requests.count("snapshotVolumes"))
        self.assertEqual("removeVolume", requests[-1])
        self.assertEqual({"gigabytes": 40, "gigabytes_powerflex": 40},
                         self.usage())
        self.assertEqual([None, None],
                         [volume.provider_id for volume in volumes])

    def test_an_undo_that_fails_does_not_stop_the_others(self) -> None:
        """Issue 20 item 7: every clone made is undone, whatever fails.

        Three sources; the third clone fails; undoing the first raises
        (its record cannot be saved): the second is still removed and
        both charges are given back.
        """
        driver = self.make_driver(base.OURS)
        sources = [self.volume(20, 24) for _unused in range(3)]
        group = self.group()
        volumes = [self.requested(20, group_id=group.id) for _s in sources]
        self.limit_gigabytes(68)
        real_remove = driver._remove_unfinished
        calls = []

        def remove(volume, provider_id):
            calls.append(volume.id)
            if len(calls) == 1:
                raise exception.VolumeNotFound(volume_id=volume.id)
            return real_remove(volume, provider_id)

        with mock.patch.object(driver, "_remove_unfinished",
                               side_effect=remove):
            self.assertRaises(quota_charge.RoundingExceedsQuota,
                              driver.create_group_from_src, self.ctx,
                              group, volumes,
                              source_group=mock.sentinel.group,
                              source_vols=sources)
        self.assertEqual([volumes[0].id, volumes[1].id], calls)
        self.assertEqual(1, self.array_requests().count("removeVolume"))
        self.assertEqual({"gigabytes": 60, "gigabytes_powerflex": 60},
                         self.usage())

    def test_clones_of_a_group_are_charged_their_array_size(self) -> None:
        """Issue 20 item 7: the path that succeeds charges as before."""
        driver = self.make_driver(base.OURS)
        sources = [self.volume(20, 24), self.volume(16, 16)]
        group = self.group()
        volumes = [self.requested(source.size, group_id=group.id)
                   for source in sources]
        group_update, updates = driver.create_group_from_src(
            self.ctx, group, volumes, source_group=mock.sentinel.group,
            source_vols=sources)
        self.assertEqual({"status": "available"}, group_update)
        self.assertEqual(
            [(volume.id, "available", size) for volume, size in
             zip(volumes, (24, 16))],
            [(update["id"], update["status"], update["size"])
             for update in updates])
        self.assertEqual({"gigabytes": 40, "gigabytes_powerflex": 40},
                         self.usage())

    def test_other_groups_left_to_cinder(self) -> None:
        """Issue 20 item 7: a group that is not a CG: generic support."""
        driver = self.make_driver(base.OURS)
        self.assertRaises(NotImplementedError, driver.create_group_from_src,
                          self.ctx, self.group(consistent=False), [],
                          source_vols=[])
        self.assertEqual([], self.array_requests())
