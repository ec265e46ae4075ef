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
"""The size policy, case by case, for our driver and for stock Cinder.

Each row of :data:`CASES` says what the array is asked on a clone, a clone
of an image-volume cache entry, a volume from a snapshot or an extend, by
stock Cinder and by this package, and what size our driver reports. Every
row runs against both drivers, so the table cannot claim a stock behaviour
stock does not have, and a third test per row checks that ours sends at
most as many array requests as stock, and fewer where stock sends an extend
the array does not need.
"""

import collections
import dataclasses
import datetime
from typing import Optional

from cinder.db import api as db_api
from cinder import exception
from cinder.volume.drivers.dell_emc.powerflex import rest_client

from tests.unit import base

EC_SUPPORTED = hasattr(rest_client.RestClient, "check_powerflex_ec_version")
# Cinder 29 checks the vtree size of image-volume cache entries before
# cloning them (one GET Volume, one GET VTree statistics).
VTREE_LIMIT_SUPPORTED = hasattr(rest_client.RestClient,
                                "query_vtree_statistics")
STOCK_REPORTS_CLONE_SIZE = hasattr(base.STOCK, "_get_actual_vol_size")
STOCK_REFUSED = "refused"
# Cinder's REST client sends a refused setVolumeSize three times.
CLIENT_TRIES = 3


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: a size situation and what each driver asks of the array.

    ``stock`` and ``ours`` list the setVolumeSize targets in GiB (refused
    ones included), or :data:`STOCK_REFUSED` when the array refuses what
    stock sends and the operation fails. ``ours_reads`` counts the GET
    Volume our driver spends after a refused extend. ``ours_size`` is the
    size our model update reports: what the array holds afterwards.
    """

    name: str
    kind: str           # volume, snapshot, cache-entry, extend
    gen: str            # Mirroring (8 GiB) or EC (1 GiB)
    db_size: int        # source (or extended volume) DB size, GiB
    physical: int       # its array size, GiB
    requested: int      # size of the new volume / extend target, GiB
    stock: tuple
    ours: tuple
    ours_size: Optional[int] = None
    ours_reads: int = 0
    replicated: bool = False

    @property
    def stock_redundant(self) -> bool:
        """Stock sends an extend to a size the array already holds."""
        return (self.stock != STOCK_REFUSED and
                any(target <= self.physical for target in self.stock))


REFUSED_24 = (24,) * CLIENT_TRIES

CASES = [
    # The seed: a 60 GiB cache entry holds 64 GiB; a 60 GiB volume.
    Case("seed_cache_entry_60_of_64_to_60", "cache-entry", "Mirroring",
         60, 64, 60, (), (), 64),
    Case("cache_entry_60_of_64_to_62", "cache-entry", "Mirroring",
         60, 64, 62, (64,), (), 64),
    Case("cache_entry_60_of_64_to_64", "cache-entry", "Mirroring",
         60, 64, 64, (64,), (), 64),
    Case("cache_entry_60_of_64_to_65", "cache-entry", "Mirroring",
         60, 64, 65, (72,), (72,), 72),
    Case("cache_entry_3_of_8_to_5", "cache-entry", "Mirroring",
         3, 8, 5, (8,), (), 8),
    Case("cache_entry_3_of_8_to_60", "cache-entry", "Mirroring",
         3, 8, 60, (64,), (64,), 64),
    # A volume of the previous release or of Cinder's driver (DB 60 below
    # array 64), and ours (DB 64).
    Case("clone_60_of_64_to_62", "volume", "Mirroring", 60, 64, 62,
         (64,), (), 64),
    Case("clone_64_of_64_to_64", "volume", "Mirroring", 64, 64, 64,
         (), (), 64),
    Case("clone_8_of_8_to_8", "volume", "Mirroring", 8, 8, 8, (), (), 8),
    Case("clone_8_of_8_to_9", "volume", "Mirroring", 8, 8, 9,
         (16,), (16,), 16),
    # Extended on the array behind Cinder's back: both ask for 24 and the
    # array refuses to shrink; stock fails, ours reads the size once and
    # records what the array holds.
    Case("clone_10_of_32_to_20", "volume", "Mirroring", 10, 32, 20,
         STOCK_REFUSED, REFUSED_24, 32, 1),
    Case("snapshot_of_10_to_12", "snapshot", "Mirroring", 10, 16, 12,
         (16,), (), 16),
    Case("snapshot_of_10_to_16", "snapshot", "Mirroring", 10, 16, 16,
         (16,), (), 16),
    Case("snapshot_of_10_to_17", "snapshot", "Mirroring", 10, 16, 17,
         (24,), (24,), 24),
    Case("ec_clone_10_to_10", "volume", "EC", 10, 10, 10, (), (), 10),
    Case("ec_clone_10_to_12", "volume", "EC", 10, 10, 12, (12,), (12,), 12),
    Case("ec_snapshot_of_10_to_10", "snapshot", "EC", 10, 10, 10, (), (),
         10),
    # The seed's last step: extend_volume(64 GiB volume, 60).
    Case("seed_extend_64_to_60", "extend", "Mirroring", 64, 64, 60, (), ()),
    Case("extend_60_of_64_to_62", "extend", "Mirroring", 60, 64, 62, (), ()),
    Case("extend_60_of_64_to_64", "extend", "Mirroring", 60, 64, 64, (), ()),
    Case("extend_60_of_64_to_65", "extend", "Mirroring", 60, 64, 65,
         (72,), (72,)),
    Case("extend_10_of_32_to_20", "extend", "Mirroring", 10, 32, 20,
         STOCK_REFUSED, REFUSED_24, None, 1),
    Case("ec_extend_10_to_12", "extend", "EC", 10, 10, 12, (12,), (12,)),
    Case("replicated_extend_60_of_64_to_62", "extend", "Mirroring",
         60, 64, 62, (), (), replicated=True),
    Case("replicated_extend_60_of_64_to_72", "extend", "Mirroring",
         60, 64, 72, (72, 72), (72, 72), replicated=True),
]


class SizePolicyTable(base.DriverTestCase):
    """Runs every row of :data:`CASES` on our driver and on stock's."""

    def run_case(self, case: Case, driver_class: type
                 ) -> tuple[collections.Counter, Optional[dict], list]:
        """Run one row; return (REST ops, model update, extends sent)."""
        if case.gen == "EC" and not EC_SUPPORTED:
            self.skipTest("this Cinder release has no erasure-coded support")
        overrides = {}
        if case.kind == "cache-entry" and VTREE_LIMIT_SUPPORTED:
            overrides["powerflex_max_image_cache_vtree_size"] = 126
        driver = self.make_driver(driver_class, case.gen,
                                  replication=case.replicated, **overrides)
        model_update = None
        if case.kind == "extend":
            volume = self.volume(case.db_size, case.physical,
                                 replicated=case.replicated)
            self.gateway.reset_calls()
            driver.extend_volume(volume, case.requested)
        else:
            new = self.new_volume(case.requested)
            if case.kind == "snapshot":
                source = self.snapshot(case.db_size, case.physical)
                self.gateway.reset_calls()
                model_update = driver.create_volume_from_snapshot(new, source)
            else:
                source = self.volume(case.db_size, case.physical)
                if case.kind == "cache-entry":
                    db_api.image_volume_cache_create(
                        self.ctx, base.HOST, None, "image-id",
                        datetime.datetime(2026, 11, 1), source.id,
                        source.size)
                self.gateway.reset_calls()
                model_update = driver.create_cloned_volume(new, source)
        ops = collections.Counter(self.gateway.ops())
        return ops, model_update, [t for _, t in self.gateway.extends()]

    def check_ours(self, case: Case) -> None:
        ops, model_update, extends = self.run_case(case, base.OURS)
        self.assertEqual(list(case.ours), extends)
        vtree_check = case.kind == "cache-entry" and VTREE_LIMIT_SUPPORTED
        self.assertEqual(case.ours_reads + vtree_check, ops["getVolume"])
        self.assertEqual(int(vtree_check), ops["getVTreeStatistics"])
        if case.kind != "extend":
            self.assertEqual(case.ours_size, model_update["size"])
            self.assertEqual(case.ours_size, self.gateway.size_gib(
                model_update["provider_id"]))
            self.assertEqual(1, sum(ops[op] for op in (
                "snapshotVolumes", "createThinClone")))

    def check_stock(self, case: Case) -> None:
        if case.stock == STOCK_REFUSED:
            # Stock asks the array to shrink the volume and fails.
            self.assertRaises(exception.VolumeBackendAPIException,
                              self.run_case, case, base.STOCK)
            targets = {t for _, t in self.gateway.extends()}
            self.assertEqual(1, len(targets))
            self.assertLess(targets.pop(), case.physical)
            return
        ops, model_update, extends = self.run_case(case, base.STOCK)
        self.assertEqual(list(case.stock), extends)
        if model_update is not None and STOCK_REPORTS_CLONE_SIZE:
            gran = 1 if case.gen == "EC" else 8
            self.assertEqual(-(-case.requested // gran) * gran,
                             model_update["size"])

    def check_calls(self, case: Case) -> None:
        """Ours sends at most stock's requests, fewer past a redundant one.

        Where stock fails (the array refuses its extend) ours sends the
        same refused extend and one GET, and succeeds. Logins are left out:
        the client logs in again on its own schedule (after the retries'
        pauses, for one), whatever the driver asks.
        """
        def requests(driver_class: type) -> int:
            ops = self.run_case(case, driver_class)[0]
            return sum(ops.values()) - ops["login"]

        ours = requests(base.OURS)
        try:
            stock = requests(base.STOCK)
        except exception.VolumeBackendAPIException:
            self.assertEqual(STOCK_REFUSED, case.stock)
            stock_ops = self.gateway.ops()
            self.assertEqual(
                len(stock_ops) - stock_ops.count("login") + 1, ours)
            return
        if case.stock_redundant:
            self.assertLess(ours, stock)
        else:
            self.assertLessEqual(ours, stock)


def _add_table_tests() -> None:
    for case in CASES:
        for who in ("ours", "stock", "calls"):
            def test(self, case=case, who=who):
                getattr(self, "check_" + who)(case)
            test.__name__ = "test_%s_%s" % (case.name, who)
            test.__doc__ = "%s: %s" % (who, case)
            setattr(SizePolicyTable, test.__name__, test)


_add_table_tests()
