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
"""The volume manager's allocated capacity, counted in Cinder's database."""

import logging
from typing import Optional
from unittest import mock

from cinder import context
from cinder import objects
import testtools

from powerflex_cache_driver import compat
from powerflex_cache_driver import manager
from tests.unit import base
from tools.beds import cinder_testcase

PROJECT = "5f1d2a6b-0c11-4c59-9a53-7b0f3c2e1d0a"

# host, cluster_name, size, deleted
VOLUMES = [
    ("h1@pf#PD1:SP1", "c1@pf#PD1:SP1", 16, False),
    ("h1@pf#PD1:SP1", None, 8, False),
    ("h2@pf#PD1:SP1", "c1@pf#PD1:SP1", 32, False),
    ("h1@pf#PD1:SP10", None, 24, False),
    ("h1@pf#PD1:SP1", None, 40, True),
    ("h1@other#PD1:SP1", None, 64, False),
    ("h1@pf#PD1:SP2", "c1@pf#PD1:SP2", 80, False),
]

# backend, clustered, pool, expected GiB
COUNTS = [
    ("h1@pf", False, "PD1:SP1", 16 + 8),
    ("h2@pf", False, "PD1:SP1", 32),
    ("h1@pf", False, "PD1:SP10", 24),
    ("h1@pf", False, "PD1:SP2", 80),
    ("c1@pf", True, "PD1:SP1", 16 + 32),
    ("c1@pf", True, "PD1:SP2", 80),
    ("c1@pf", True, "PD1:SP3", 0),
    ("h1@other", False, "PD1:SP1", 64),
    ("h3@pf", False, "PD1:SP1", 0),
]


def allocated(vol_stats: dict) -> list[int]:
    """allocated_capacity_gb of each pool of a stats report."""
    return [pool["allocated_capacity_gb"] for pool in vol_stats["pools"]]


def make_volumes(ctx: context.RequestContext) -> None:
    """Save :data:`VOLUMES` in the database."""
    for host, cluster_name, size, deleted in VOLUMES:
        volume = objects.Volume(context=ctx, host=host,
                                cluster_name=cluster_name, size=size,
                                project_id=PROJECT, status="available")
        volume.create()
        if deleted:
            volume.destroy()


class PoolSummaries(cinder_testcase.CinderTestCase):
    """pool_summaries sums one pool of one backend or cluster."""

    def test_counts(self):
        ctx = context.get_admin_context()
        make_volumes(ctx)
        for backend, clustered, pool, expected in COUNTS:
            _volumes, gib = manager.pool_summaries(ctx, backend, clustered,
                                                   [pool])[pool]
            self.assertEqual(
                expected, gib,
                "%s %s (clustered: %s)" % (backend, pool, clustered))


class AppendVolumeStats(cinder_testcase.CinderTestCase):
    """The stats report carries the database's figure for each pool."""

    def make_manager(self, cluster: Optional[str] = None
                     ) -> manager.VolumeManager:
        self.override_config(
            "volume_driver", "powerflex_cache_driver.driver."
            "PowerFlexCacheDriver", "backend_defaults")
        volume_manager = manager.VolumeManager(host="h1@pf", service_name="pf",
                                               cluster=cluster)
        # What the running count would say after a 10 GiB request recorded
        # at 16 GiB was deleted.
        volume_manager.stats["pools"] = {
            "PD1:SP1": {"allocated_capacity_gb": -6}}
        return volume_manager

    @staticmethod
    def stats() -> dict:
        return {"pools": [{"pool_name": "PD1:SP1"},
                          {"pool_name": "PD1:SP2"}]}

    def test_reported_from_the_database(self):
        make_volumes(context.get_admin_context())
        vol_stats = self.stats()
        self.make_manager()._append_volume_stats(vol_stats)
        self.assertEqual([24, 80], allocated(vol_stats))

    def test_cluster_counted_whole(self):
        make_volumes(context.get_admin_context())
        vol_stats = self.stats()
        self.make_manager(cluster="c1@pf")._append_volume_stats(vol_stats)
        self.assertEqual([48, 80], allocated(vol_stats))

    def test_running_count_kept_when_the_database_fails(self):
        volume_manager = self.make_manager()
        vol_stats = self.stats()
        with mock.patch.object(compat.SQL_API, "model_query",
                               side_effect=RuntimeError("db gone")), \
                self.assertLogs(manager.LOG.logger, logging.ERROR) as logs:
            volume_manager._append_volume_stats(vol_stats)
        self.assertEqual([-6, 0], allocated(vol_stats))
        self.assertIn("PD1:SP1", logs.output[0])


class ToldApart(testtools.TestCase):
    """Which pools one statement can count together (no row in two)."""

    def test_whole_values_told_apart(self):
        for other in ("h1@pf#PD1:SP10", "h1@pf#PD1:SP2", "h2@pf#PD1:SP1",
                      "h1@pfx#PD1:SP1", "h1@pf#PD1:SP1#x"):
            self.assertTrue(manager.told_apart("h1@pf#PD1:SP1", other),
                            other)

    def test_alike_for_a_collation(self):
        for other in ("h1@pf#pd1:sp1", "h1@pf#PD1:SP1 ", "H1@PF#PD1:SP1",
                      "h1@pf#PD1:SP1"):
            self.assertFalse(manager.told_apart("h1@pf#PD1:SP1", other),
                             other)

    def test_backend_and_beyond_ascii_never(self):
        self.assertFalse(manager.told_apart("h1@pf", "h1@pf#PD1:SP1"))
        self.assertFalse(manager.told_apart("h1@pf#PD1:SP1", "h1@pf"))
        self.assertFalse(manager.told_apart("h1@pf#P\u00d6OL", "h1@pf#POOL"))
        self.assertFalse(manager.told_apart("h1@pf#A\tB", "h1@pf#AB"))

    def test_rounds(self):
        self.assertEqual([], manager._rounds({}))
        self.assertEqual(
            [{"SP1": "h@b#SP1", "SP10": "h@b#SP10", "SP2": "h@b#SP2"}],
            manager._rounds({"SP1": "h@b#SP1", "SP10": "h@b#SP10",
                             "SP2": "h@b#SP2"}))
        self.assertEqual(
            [{"SP1": "h@b#SP1", "SP2": "h@b#SP2"}, {"sp1": "h@b#sp1"},
             {"": "h@b"}],
            manager._rounds({"SP1": "h@b#SP1", "sp1": "h@b#sp1",
                             "": "h@b", "SP2": "h@b#SP2"}))


class VolumeManagerWarning(base.DriverTestCase):
    """do_setup warns when volume_manager will not count the database."""

    def test_warns_under_cinders_manager(self):
        with self.assertLogs("powerflex_cache_driver.driver",
                             logging.WARNING) as logs:
            self.make_driver(base.OURS)
        warnings = [line for line in logs.output if "volume_manager" in line]
        self.assertEqual(1, len(warnings))
        self.assertIn(manager.CLASS_PATH, warnings[0])

    def test_silent_under_this_manager(self):
        self.override_config("volume_manager", manager.CLASS_PATH)
        with self.assertNoLogs("powerflex_cache_driver.driver",
                               logging.WARNING):
            self.make_driver(base.OURS)
