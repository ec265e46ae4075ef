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
"""The pools' ``allocated_capacity_gb``: what the scheduler is told.

Every step of the scenario publishes the service's capabilities the way
the manager does after a delete and every stats interval, and compares
each pool's ``allocated_capacity_gb`` with the sum of the sizes Cinder
records for the pool's volumes. The steps: a blank 10 GiB volume (16 on
the array and in the database), a cache miss (the driver makes the 8 GiB
entry itself), clones from the entry until its vtree is full and the
driver copies it into a new cache volume, a volume in the second pool, a
clone, a volume from a snapshot, an extend, then every volume and cache
entry deleted.

* With this package's ``volume_manager``, the figure equals the records
  after every step.
* With Cinder's (the control), the running count adds 10 GiB for the
  10 GiB request and subtracts the recorded 16 at the delete, and never
  adds the cache volumes the driver makes: it ends below zero with
  nothing left in the pool.

The manager counts all the pools of a report in one statement of its own
(:func:`~powerflex_cache_driver.manager.pool_summaries`) rather than with
Cinder's ``get_volume_summary``; :class:`TestPoolSummariesAreCinders`
holds it to that summary's count and size on pools that differ from each
other only by a suffix, a case, a deleted row, a cluster or a backend.
"""

import collections
from typing import Any, Optional

from cinder import context
from cinder import objects
from cinder.volume import volume_utils
from oslo_utils import units
import sqlalchemy

from powerflex_cache_driver import compat
from powerflex_cache_driver import manager
from tools.beds import cinder_testcase
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
SNAPSHOT_LIMIT = 3
"""A vtree of the cache entry plus three snapshots is full."""


def summary(ctxt: Any, backend: str, clustered: bool,
            pool: str) -> tuple[int, int]:
    """(volumes, GiB) of a pool by Cinder's ``get_volume_summary``.

    What the manager counted with up to now, with the filter it used.
    """
    field = "cluster_name" if clustered else "host"
    count, size, _metadata = objects.VolumeList.get_volume_summary(
        ctxt, False, filters={field: volume_utils.append_host(backend, pool)})
    return count, size


class AllocatedCapacityScenario:
    """Create, clone, rotate and delete; the figure after each step."""

    SIMULATOR_OPTIONS = {"snapshot_limit": SNAPSHOT_LIMIT}
    BACKEND_OPTIONS = inprocess_cinder.TWO_POOLS

    def reported(self) -> dict[str, int]:
        """Each pool's allocated_capacity_gb as published to schedulers."""
        self.manager.publish_service_capabilities(self.admin_ctx)
        return {pool["pool_name"]: pool["allocated_capacity_gb"]
                for pool in self.manager.last_capabilities["pools"]}

    def recorded(self) -> dict[str, int]:
        """Each pool's sum of the sizes Cinder records for its volumes."""
        sums = collections.Counter({inprocess_cinder.POOL: 0,
                                    inprocess_cinder.SECOND_POOL: 0})
        for volume in objects.VolumeList.get_all(self.admin_ctx):
            sums[volume_utils.extract_host(volume.host, "pool")] += (
                volume.size)
        return dict(sums)

    def summarized(self) -> dict[str, int]:
        """Each pool's size by Cinder's ``get_volume_summary``."""
        return {pool: summary(self.admin_ctx, inprocess_cinder.SERVICE_HOST,
                              False, pool)[1]
                for pool in (inprocess_cinder.POOL,
                             inprocess_cinder.SECOND_POOL)}

    def run_steps(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """Run the scenario; (step, reported, recorded) after each step."""
        figures = []

        def step(name: str) -> None:
            recorded = self.recorded()
            self.assertEqual(recorded, self.summarized(),
                             "Cinder's summary after step %r" % name)
            figures.append((name, self.reported(), recorded))

        step("start")
        blank, _unused = self.create_volume(10)
        step("blank 10 GiB")
        self.delete_volume(blank)
        step("blank deleted")
        meta, _image = self.make_image("img", GIB, [(0, MIB)], "alloc")
        from_image = []
        for _index in range(SNAPSHOT_LIMIT + 1):
            volume, _unused = self.create_volume(10, image_id=meta["id"])
            from_image.append(volume)
            step("from image, %d" % len(from_image))
        other, _unused = self.create_volume(
            10, pool=inprocess_cinder.SECOND_POOL)
        step("blank 10 GiB in %s" % inprocess_cinder.SECOND_POOL)
        clone, _unused = self.create_volume(16, source_volume=other)
        step("clone")
        snapshot, _unused = self.create_snapshot(clone)
        from_snapshot, _unused = self.create_volume(20, snapshot=snapshot)
        step("from snapshot")
        self.extend_volume(other, 30)
        step("extend to 30 GiB")
        self.delete_volume(from_snapshot)
        self.delete_snapshot(snapshot)
        for volume in from_image + [clone, other]:
            self.delete_volume(volume)
        step("user volumes deleted")
        self.delete_cache_entries()
        step("cache entries deleted")
        return figures


class TestAllocatedCapacityOurs(AllocatedCapacityScenario,
                                driver_testcases.OurDriverTestCase):
    """This package's driver and volume manager."""

    def test_reported_equals_recorded_after_every_step(self) -> None:
        copies = self.spy(self.driver, "copy_volume_data_sparse")
        figures = self.run_steps()
        for name, reported, recorded in figures:
            self.assertEqual(recorded, reported, "after step %r" % name)
        # The scenario went where it says: the entry was rotated, both
        # pools held volumes, and nothing is left.
        self.assertEqual(1, len(copies))
        peak = {pool: max(recorded[pool] for _n, _r, recorded in figures)
                for pool in (inprocess_cinder.POOL,
                             inprocess_cinder.SECOND_POOL)}
        # Four 16 GiB volumes and the 8 GiB entry; in the second pool 32
        # (extended to 30), 16 and 24 GiB.
        self.assertEqual({inprocess_cinder.POOL: 16 * (SNAPSHOT_LIMIT + 1) + 8,
                          inprocess_cinder.SECOND_POOL: 72}, peak)
        self.assertEqual({inprocess_cinder.POOL: 0,
                          inprocess_cinder.SECOND_POOL: 0}, figures[-1][2])


class TestAllocatedCapacityCinderManager(AllocatedCapacityScenario,
                                         driver_testcases.OurDriverTestCase):
    """This package's driver under Cinder's volume manager (the control)."""

    VOLUME_MANAGER = inprocess_cinder.CINDER_MANAGER

    def test_running_count_drifts_below_the_records(self) -> None:
        figures = self.run_steps()
        name, reported, recorded = figures[2]
        self.assertEqual("blank deleted", name)
        # 10 GiB added for the request, the recorded 16 subtracted.
        self.assertEqual({inprocess_cinder.POOL: -6,
                          inprocess_cinder.SECOND_POOL: 0}, reported)
        self.assertEqual({inprocess_cinder.POOL: 0,
                          inprocess_cinder.SECOND_POOL: 0}, recorded)
        _name, reported, recorded = figures[-1]
        self.assertEqual({inprocess_cinder.POOL: 0,
                          inprocess_cinder.SECOND_POOL: 0}, recorded)
        self.assertLess(reported[inprocess_cinder.POOL], -6)
        self.assertLess(reported[inprocess_cinder.SECOND_POOL], 0)


# host, cluster_name, GiB (a power of two each: a sum tells its volumes),
# deleted
LOOKALIKES = [
    ("h1@pf#PD1:SP1", "c1@pf#PD1:SP1", 1, False),
    ("h1@pf#PD1:SP1", "c1@pf#PD1:SP1", 2, True),
    ("h2@pf#PD1:SP1", "c1@pf#PD1:SP1", 4, False),
    ("h1@pf#PD1:SP10", "c1@pf#PD1:SP10", 8, False),
    ("h1@pf#PD1:SP1", None, 16, False),
    ("h1@pf", "c1@pf", 32, False),
    (None, None, 64, False),
    ("h1@pf2#PD1:SP1", None, 128, False),
    ("h1@pfx#PD1:SP1", None, 256, False),
    ("h1@pf#pd1:sp1", "c1@pf#pd1:sp1", 512, False),
    ("h1@pf#PD1:SP2", "c1@pf#PD1:SP2", 1024, False),
    ("h1@pf#PD1:SP2", "c1@pf#PD1:SP2", 2048, True),
    ("h11@pf#PD1:SP1", "c11@pf#PD1:SP1", 4096, False),
    ("h1@pf#PD1:SP1 ", "c1@pf#PD1:SP1 ", 8192, False),
    ("h1@pf#PD1:SP10", None, 16384, True),
]
"""Volumes of pools that differ by a suffix (``PD1:SP1``, ``PD1:SP10``), a
case, a trailing space, a backend or host sharing a prefix (``h1@pf``,
``h1@pfx``, ``h11@pf``), a cluster; deleted ones; one with a host and no
pool; one never scheduled."""
BACKENDS = [("h1@pf", False), ("h2@pf", False), ("h11@pf", False),
            ("h1@pf2", False), ("h1@pfx", False), ("h3@pf", False),
            ("c1@pf", True), ("c11@pf", True), ("c2@pf", True),
            ("c1@pf", False), ("h1@pf", True)]
"""Each service (host, or cluster when clustered) that counts pools."""
POOLS = ["PD1:SP1", "PD1:SP10", "PD1:SP2", "pd1:sp1", "PD1:SP3"]


class TestPoolSummariesAreCinders(cinder_testcase.CinderTestCase):
    """The manager's count of a pool is Cinder's ``get_volume_summary``'s.

    For every service and pool of :data:`BACKENDS` and :data:`POOLS`
    over the volumes of :data:`LOOKALIKES`: the same count and size,
    with each pool counted alone and all of a service's counted in one
    statement.
    """

    def setUp(self) -> None:
        super().setUp()
        self.ctxt = context.get_admin_context()
        for host, cluster_name, size, deleted in LOOKALIKES:
            volume = objects.Volume(context=self.ctxt, host=host,
                                    cluster_name=cluster_name, size=size,
                                    project_id=inprocess_cinder.PROJECT_ID,
                                    status="available")
            volume.create()
            if deleted:
                volume.destroy()

    def cinders(self, backend: str, clustered: bool,
                pools: list[str]) -> dict[str, tuple[int, int]]:
        return {pool: summary(self.ctxt, backend, clustered, pool)
                for pool in pools}

    def test_each_pool_alone(self) -> None:
        for backend, clustered in BACKENDS:
            for pool in POOLS:
                self.assertEqual(
                    self.cinders(backend, clustered, [pool]),
                    manager.pool_summaries(self.ctxt, backend, clustered,
                                           [pool]),
                    "%s (clustered: %s) %s" % (backend, clustered, pool))

    def test_all_pools_of_a_service_at_once(self) -> None:
        apart = [pool for pool in POOLS if pool != "pd1:sp1"]
        for backend, clustered in BACKENDS:
            for pools in (POOLS, apart, list(reversed(POOLS))):
                self.assertEqual(
                    self.cinders(backend, clustered, pools),
                    manager.pool_summaries(self.ctxt, backend, clustered,
                                           pools),
                    "%s (clustered: %s) %s" % (backend, clustered, pools))

    def test_a_pool_without_a_name_is_the_backend(self) -> None:
        # Cinder then matches the backend and all its pools (LIKE).
        for backend, clustered in BACKENDS:
            self.assertEqual(
                self.cinders(backend, clustered, ["", "PD1:SP1"]),
                manager.pool_summaries(self.ctxt, backend, clustered,
                                       ["", "PD1:SP1"]),
                "%s (clustered: %s)" % (backend, clustered))

    def test_the_lookalikes_are_told_apart(self) -> None:
        """The figures the comparisons above hold both ways."""
        self.assertEqual(
            {"PD1:SP1": (2, 1 + 16), "PD1:SP10": (1, 8),
             "PD1:SP2": (1, 1024), "pd1:sp1": (1, 512), "PD1:SP3": (0, 0)},
            manager.pool_summaries(self.ctxt, "h1@pf", False, POOLS))
        self.assertEqual(
            {"PD1:SP1": (2, 1 + 4), "PD1:SP10": (1, 8),
             "PD1:SP2": (1, 1024), "pd1:sp1": (1, 512), "PD1:SP3": (0, 0)},
            manager.pool_summaries(self.ctxt, "c1@pf", True, POOLS))
        self.assertEqual(
            {"PD1:SP1": (1, 128)},
            manager.pool_summaries(self.ctxt, "h1@pf2", False, ["PD1:SP1"]))
        self.assertEqual({}, manager.pool_summaries(self.ctxt, "h1@pf",
                                                    False, []))

    def queries_of(self, service: manager.VolumeManager,
                   pools: list[str]) -> list[str]:
        """The statements ``service._count_pools(pools)`` runs."""
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str,
                   _parameters: Any, _context: Any, _many: bool) -> None:
            statements.append(statement)

        engine = compat.SQL_API.get_engine()
        sqlalchemy.event.listen(engine, "before_cursor_execute", record)
        try:
            service._count_pools(pools)
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", record)
        # Cinder's SQLite set-up sends its own BEGIN.
        return [statement for statement in statements
                if statement != "BEGIN"]

    def test_one_statement_for_a_report_without_metadata(self) -> None:
        for cluster in ("c1@pf", None):
            service = self.make_manager(cluster)
            backend = cluster or "h1@pf"
            apart = [pool for pool in POOLS if pool != "pd1:sp1"]
            queries = self.queries_of(service, apart)
            self.assertEqual(1, len(queries), queries)
            self.assertNotIn("volume_metadata", queries[0])
            # Names alike for a collation: one statement each.
            self.assertEqual(2, len(self.queries_of(service, POOLS)))
            self.assertEqual(
                {pool: summary(self.ctxt, backend, bool(cluster), pool)[1]
                 for pool in POOLS},
                {pool: service.stats["pools"][pool]["allocated_capacity_gb"]
                 for pool in POOLS})

    def make_manager(self, cluster: Optional[str]) -> manager.VolumeManager:
        """This package's manager of service ``h1@pf``, pools uncounted."""
        self.override_config("volume_driver", inprocess_cinder.OURS,
                             "backend_defaults")
        service = manager.VolumeManager(host="h1@pf", service_name="pf",
                                        cluster=cluster)
        service.stats["pools"] = {}
        return service
