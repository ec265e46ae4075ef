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
"""tools/cloudlib/recount.py: the scratch cloud's rows, the timing, clean-up.

No MariaDB here: ``python -m tools.cloudlib.recount`` runs against one.
"""

import collections
import contextlib
import io
import os
from unittest import mock

import sqlalchemy
import testtools

from tools.cloudlib import layout
from tools.cloudlib import procs
from tools.cloudlib import recount


def volume_row(row: tuple) -> dict:
    """A row of ``Fill.volumes`` by column name."""
    return dict(zip(recount.VOLUME_COLUMNS, row))


class PlanPools(testtools.TestCase):

    def test_unequal_shares_of_one(self) -> None:
        pools = recount.plan_pools(20)
        self.assertEqual(20, len({pool.name for pool in pools}))
        self.assertAlmostEqual(1.0, sum(pool.share for pool in pools))
        self.assertEqual(recount.LARGEST_SHARE, pools[0].share)
        shares = [pool.share for pool in pools]
        self.assertEqual(sorted(shares, reverse=True), shares)
        self.assertLess(pools[-1].share, 0.01)

    def test_every_fourth_pool_is_the_standalone_services(self) -> None:
        pools = recount.plan_pools(8)
        self.assertEqual(
            [recount.STANDALONE if index % 4 == 0 else recount.CLUSTER
             for index in range(1, 9)],
            [pool.backend for pool in pools])
        self.assertEqual([index % 4 != 0 for index in range(1, 9)],
                         [pool.clustered for pool in pools])
        self.assertEqual(recount.CLUSTER_HOSTS, pools[0].hosts)
        self.assertEqual((recount.STANDALONE,), pools[3].hosts)

    def test_one_pool_has_everything(self) -> None:
        self.assertEqual([1.0], [p.share for p in recount.plan_pools(1)])
        self.assertRaises(ValueError, recount.plan_pools, 0)


class Apportion(testtools.TestCase):

    def test_largest_remainders(self) -> None:
        self.assertEqual([5, 3, 2], recount.apportion(10, [0.5, 0.25, 0.25]))
        self.assertEqual([0, 0, 1], recount.apportion(1, [0.2, 0.3, 0.5]))

    def test_sums_to_the_total(self) -> None:
        shares = [pool.share for pool in recount.plan_pools(20)]
        for total in (0, 1, 19, 99001):
            self.assertEqual(total, sum(recount.apportion(total, shares)))


class MakeRows(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.pools = recount.plan_pools(12)
        self.fill = recount.make_rows(3000, self.pools)
        self.volumes = [volume_row(row) for row in self.fill.volumes]

    def test_deterministic(self) -> None:
        again = recount.make_rows(3000, self.pools)
        self.assertEqual(self.fill.volumes, again.volumes)
        self.assertEqual(self.fill.metadata, again.metadata)
        self.assertNotEqual(
            self.fill.volumes,
            recount.make_rows(3000, self.pools, seed=2).volumes)

    def test_rows(self) -> None:
        self.assertEqual(3000, len(self.volumes))
        self.assertEqual(3000, len({v["id"] for v in self.volumes}))
        self.assertEqual(3 * 3000, len(self.fill.metadata))
        self.assertGreaterEqual(len(self.fill.admin_metadata), 3000)
        for row in self.fill.volumes:
            self.assertEqual(len(recount.VOLUME_COLUMNS), len(row))
        deleted = sum(v["deleted"] for v in self.volumes)
        self.assertLess(abs(deleted / 3000 - recount.DELETED_SHARE), 0.03)
        for volume in self.volumes:
            self.assertEqual(volume["deleted"], volume["status"] == "deleted")
        # Metadata of a deleted volume is deleted too.
        deleted_ids = {v["id"] for v in self.volumes if v["deleted"]}
        for row in self.fill.metadata + self.fill.admin_metadata:
            if row[0] in deleted_ids:
                self.assertTrue(row[3])

    def test_expected_is_what_the_rows_hold(self) -> None:
        """Each pool's volumes not deleted, matched whole and by case."""
        counted = collections.defaultdict(lambda: [0, 0])
        rows = collections.Counter()
        for pool in self.pools:
            field = "cluster_name" if pool.clustered else "host"
            locations = ({"%s#%s" % (pool.backend, pool.name)}
                         if pool.clustered else
                         {"%s#%s" % (host, pool.name) for host in pool.hosts})
            for volume in self.volumes:
                if volume[field] in locations:
                    rows[pool.name] += 1
                    if not volume["deleted"]:
                        counted[pool.name][0] += 1
                        counted[pool.name][1] += volume["size"]
        self.assertEqual({name: tuple(figures)
                          for name, figures in counted.items()},
                         self.fill.expected)
        self.assertEqual(dict(rows), self.fill.rows)
        self.assertGreater(self.fill.expected["PD1:SP1"][0], 0.3 * 3000)

    def test_rows_in_no_pool(self) -> None:
        hosts = [v["host"] for v in self.volumes]
        self.assertIn(None, hosts)
        without_pool = [host for host in hosts
                        if host is not None and "#" not in host]
        self.assertTrue(without_pool)
        pool_names = {pool.name for pool in self.pools}
        lookalikes = [host for host in hosts if host and "#" in host
                      and host.split("#", 1)[1] not in pool_names]
        self.assertTrue(lookalikes)
        for host in lookalikes:
            name = host.split("#", 1)[1]
            self.assertIn(name.strip().upper(), pool_names)


class TimeRecount(testtools.TestCase):

    def test_statements_of_one_run_and_the_figures(self) -> None:
        engine = sqlalchemy.create_engine("sqlite://")
        runs = []

        def count() -> dict[str, int]:
            runs.append(1)
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
                connection.exec_driver_sql("SELECT 2")
            return {"pool": 7}

        timing = recount.time_recount(engine, count, runs=3)
        self.assertEqual(3, len(runs))
        self.assertEqual(["SELECT 1", "SELECT 2"],
                         [statement for statement, _p in timing.statements])
        self.assertEqual({"pool": 7}, timing.figures)
        self.assertGreaterEqual(timing.ms, 0)
        # The listener is gone after the first run.
        with recount.Statements(engine) as log:
            pass
        self.assertEqual([], log.seen)

    def test_rows_read_and_shorten(self) -> None:
        self.assertEqual(1030, recount.rows_read(
            [{"r_rows": "1000.00"}, {"r_rows": 30.0}, {"r_rows": None}]))
        self.assertEqual("SELECT a FROM b",
                         recount.shorten("SELECT a\n  FROM b"))
        self.assertEqual(10, len(recount.shorten("x" * 40, width=10)))


class CleanUp(testtools.TestCase):

    def test_scratch_database_dropped_on_failure(self) -> None:
        db = mock.Mock(spec=["query", "create_database", "url"])
        dirs = []

        def fail(config_dir: str, _url: str) -> None:
            dirs.append(config_dir)
            raise RuntimeError("no")

        with mock.patch.object(recount, "configure_cinder",
                               side_effect=fail), \
                mock.patch.object(recount, "_repository_first"), \
                mock.patch.object(recount, "sql_api"):
            self.assertRaises(RuntimeError, recount.run, db, 10, 2)
        drops = [call.args[0] for call in db.query.call_args_list]
        # Dropped before (a run stopped short) and after.
        self.assertEqual(2, len(drops))
        for sql in drops:
            self.assertIn("DROP DATABASE IF EXISTS `cinder_recount`", sql)
            self.assertIn("DROP USER IF EXISTS 'cinder_recount'", sql)
        db.create_database.assert_called_once_with(
            "cinder_recount", "cinder_recount", mock.ANY)
        self.assertFalse(os.path.exists(dirs[0]))

    def test_port_taken_without_a_cloud(self) -> None:
        stderr = io.StringIO()
        with mock.patch.object(recount, "_has_dependencies",
                               return_value=True), \
                mock.patch.object(procs.ProcessTable, "is_running",
                                  return_value=False), \
                mock.patch.object(recount.infra, "port_free",
                                  return_value=False), \
                mock.patch.object(recount.infra.MariaDB, "start") as start, \
                contextlib.redirect_stderr(stderr):
            self.assertEqual(1, recount.main(["--volumes", "10"]))
        start.assert_not_called()
        self.assertIn("port 21950", stderr.getvalue())
        self.assertIn("taken", stderr.getvalue())

    def test_arguments(self) -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, recount.main, ["--pools", "0"])
            self.assertRaises(SystemExit, recount.main, ["--volumes", "x"])


class Interpreter(testtools.TestCase):
    """Without Cinder or PyMySQL, the cloud's virtualenv runs it."""

    def test_runs_again_in_the_cloud_venv(self) -> None:
        with mock.patch.object(recount, "_has_dependencies",
                               return_value=False), \
                mock.patch.object(layout.Layout, "venv_bin",
                                  return_value=__file__), \
                mock.patch.object(recount.subprocess, "Popen") as popen:
            popen.return_value.wait.return_value = 0
            self.assertEqual(0, recount.main(["--pools", "3"]))
        argv = popen.call_args.args[0]
        self.assertEqual([__file__, "-m", "tools.cloudlib.recount",
                          "--pools", "3"], argv)
        self.assertEqual(layout.Layout.of_repository().root,
                         popen.call_args.kwargs["cwd"])

    def test_no_cloud_venv(self) -> None:
        stderr = io.StringIO()
        with mock.patch.object(recount, "_has_dependencies",
                               return_value=False), \
                mock.patch.object(layout.Layout, "venv_bin",
                                  return_value="/nonexistent/python"), \
                contextlib.redirect_stderr(stderr):
            self.assertEqual(2, recount.main([]))
        self.assertIn("/nonexistent/python", stderr.getvalue())
