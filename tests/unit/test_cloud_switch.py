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
"""The pure parts of ``tools/cloud switch-driver`` and ``switch-over``."""

import datetime
import os
import tempfile

import testtools

from tools.cloudlib import configs
from tools.cloudlib import layout
from tools.cloudlib import switch
from tools.cloudlib import switch_over

OURS = layout.DRIVERS["ours"]
STOCK = layout.DRIVERS["stock"]
OUR_MANAGER = layout.MANAGERS["ours"]
STOCK_MANAGER = layout.MANAGERS["stock"]

CONF = """[DEFAULT]
# the services' options
debug = true
volume_manager = %s
enabled_backends = powerflex

[database]
connection = mysql+pymysql://cinder:secret@127.0.0.1/cinder

[powerflex]
volume_backend_name = powerflex
volume_driver = %s
powerflex_max_image_cache_vtree_size = 10
san_password = secret
""" % (OUR_MANAGER, OURS)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """Pairs of lines that differ (same line count expected)."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


class TestRewriteConf(testtools.TestCase):

    def test_to_stock_changes_the_two_lines_only(self):
        text, changes = switch.rewrite_conf(
            CONF, switch.driver_options("stock"))
        self.assertEqual(
            [("volume_manager = %s" % OUR_MANAGER,
              "volume_manager = %s" % STOCK_MANAGER),
             ("volume_driver = %s" % OURS, "volume_driver = %s" % STOCK)],
            changed_lines(CONF, text))
        self.assertEqual(
            [("DEFAULT", "volume_manager", OUR_MANAGER, STOCK_MANAGER),
             ("powerflex", "volume_driver", OURS, STOCK)], changes)
        # The options only this package knows stay.
        self.assertIn("powerflex_max_image_cache_vtree_size = 10", text)

    def test_idempotent(self):
        once, _ = switch.rewrite_conf(CONF, switch.driver_options("stock"))
        twice, changes = switch.rewrite_conf(
            once, switch.driver_options("stock"))
        self.assertEqual(once, twice)
        self.assertEqual([], changes)
        same, changes = switch.rewrite_conf(CONF,
                                            switch.driver_options("ours"))
        self.assertEqual(CONF, same)
        self.assertEqual([], changes)

    def test_round_trip(self):
        stock, _ = switch.rewrite_conf(CONF, switch.driver_options("stock"))
        back, changes = switch.rewrite_conf(stock,
                                            switch.driver_options("ours"))
        self.assertEqual(CONF, back)
        self.assertEqual(2, len(changes))

    def test_other_sections_untouched(self):
        text = ("[DEFAULT]\nvolume_manager = %s\n[other]\nvolume_driver = "
                "x.Y\n[powerflex]\nvolume_driver = %s\n" % (OUR_MANAGER,
                                                            OURS))
        new, changes = switch.rewrite_conf(text,
                                           switch.driver_options("stock"))
        self.assertIn("[other]\nvolume_driver = x.Y\n", new)
        self.assertEqual(2, len(changes))

    def test_every_occurrence(self):
        text = ("[powerflex]\nvolume_driver = a.B\nvolume_driver = c.D\n"
                "[DEFAULT]\nvolume_manager = %s\n" % STOCK_MANAGER)
        new, changes = switch.rewrite_conf(text,
                                           switch.driver_options("stock"))
        self.assertEqual(2, new.count("volume_driver = %s" % STOCK))
        self.assertEqual(2, len(changes))

    def test_missing_option_added_to_its_section(self):
        text = ("[DEFAULT]\ndebug = true\n\n[powerflex]\n"
                "volume_driver = %s\n" % OURS)
        new, changes = switch.rewrite_conf(text,
                                           switch.driver_options("stock"))
        self.assertEqual(
            "[DEFAULT]\ndebug = true\nvolume_manager = %s\n\n[powerflex]\n"
            "volume_driver = %s\n" % (STOCK_MANAGER, STOCK), new)
        self.assertIn(("DEFAULT", "volume_manager", None, STOCK_MANAGER),
                      changes)
        again, changes = switch.rewrite_conf(
            new, switch.driver_options("stock"))
        self.assertEqual((new, []), (again, changes))

    def test_missing_section_appended(self):
        text = "[DEFAULT]\nvolume_manager = %s" % OUR_MANAGER
        new, changes = switch.rewrite_conf(text,
                                           switch.driver_options("ours"))
        self.assertEqual("[DEFAULT]\nvolume_manager = %s\n\n[powerflex]\n"
                         "volume_driver = %s\n" % (OUR_MANAGER, OURS), new)
        self.assertEqual([("powerflex", "volume_driver", None, OURS)],
                         changes)

    def test_unknown_driver(self):
        self.assertRaises(ValueError, switch.driver_options, "other")

    def test_the_clouds_own_cinder_conf(self):
        lay = layout.Layout("/nonexistent/repo")

        def written(tmp: str, driver: str) -> str:
            path = configs.write(os.path.join(tmp, "%s.conf" % driver),
                                 configs.cinder(
                                     lay, database="mysql://x",
                                     transport="rabbit://x",
                                     coordination="redis://x",
                                     password="p", driver=driver,
                                     internal_project="ip",
                                     internal_user="iu",
                                     backend={"san_ip": "127.0.0.1"}))
            with open(path) as handle:
                return handle.read()
        with tempfile.TemporaryDirectory() as tmp:
            ours = written(tmp, "ours")
            stock = written(tmp, "stock")
        # Switching what `up --driver ours` wrote gives what `up --driver
        # stock` writes, and back.
        switched, changes = switch.rewrite_conf(
            ours, switch.driver_options("stock"))
        self.assertEqual(stock, switched)
        self.assertEqual(2, len(changes))
        self.assertEqual(ours, switch.rewrite_conf(
            switched, switch.driver_options("ours"))[0])


class TestLogsAndTimes(testtools.TestCase):

    LINES = [
        "2026-12-04 01:13:05.336 6393 INFO cinder.volume.manager [-] "
        "Starting volume driver PowerFlexDriver (4.0.0)",
        "2026-12-04 01:13:05.400 6393 ERROR cinder.volume.manager [-] boom",
        "2026-12-04 01:13:05.401 6393 WARNING cinder.volume.manager [-] hm",
        "2026-12-04 01:13:05.402 6393 DEBUG oslo [-] ERROR_FOR_DIVISION",
        "Traceback (most recent call last):",
    ]

    def test_problems_and_warnings(self):
        self.assertEqual([self.LINES[1]], switch.problems(self.LINES))
        self.assertEqual([self.LINES[2]], switch.warnings(self.LINES))

    def test_new_log_lines(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write("old\nnew 1\nnew 2\n")
        self.addCleanup(os.unlink, handle.name)
        self.assertEqual(["new 1", "new 2"],
                         switch.new_log_lines(handle.name, 4))
        self.assertEqual([], switch.new_log_lines(handle.name + ".x", 0))

    def test_parse_api_time(self):
        self.assertEqual(datetime.datetime(2026, 12, 4, 1, 11, 52),
                         switch.parse_api_time("2026-12-04T01:11:52.000000"))
        self.assertEqual(datetime.datetime(2026, 12, 4, 1, 11, 32, 149855),
                         switch.parse_api_time("2026-12-04T01:11:32.149855"))
        self.assertEqual(datetime.datetime(2026, 12, 4, 1, 11, 32),
                         switch.parse_api_time("2026-12-04T01:11:32Z"))
        self.assertIsNone(switch.parse_api_time(None))
        self.assertIsNone(switch.parse_api_time("yesterday"))


GATEWAY_LOG = """\
2026-12-04 01:11:32,129 DEBUG powerflex_cache_driver.simulator.server \
127.0.0.1 "POST /api/types/StoragePool/instances/action/querySelected\
Statistics HTTP/1.1" 200 -
2026-12-04 01:11:32,346 DEBUG powerflex_cache_driver.simulator.server \
POST /api/types/StoragePool/instances/action/querySelectedStatistics -> 200 \
(queryPoolStatistics)
2026-12-04 01:11:33,000 DEBUG powerflex_cache_driver.simulator.server \
GET /api/instances/Volume::c4c872bc00000001 -> 200 (getVolume)
2026-12-04 01:11:33,100 DEBUG powerflex_cache_driver.simulator.server \
POST /api/instances/Volume::c4c872bc00000001/action/setVolumeSize -> 200 \
(setVolumeSize)
2026-12-04 01:11:33,200 DEBUG powerflex_cache_driver.simulator.server \
POST /api/instances/Volume::c4c872bc00000002/action/setVolumeSize -> 400 \
(setVolumeSize)
2026-12-04 01:11:33,300 DEBUG powerflex_cache_driver.simulator.server \
POST /api/instances/System/action/snapshotVolumes -> 200 (snapshotVolumes)
2026-12-04 01:11:33,400 DEBUG powerflex_cache_driver.simulator.server \
GET /api/login -> 200 (login)
"""


class TestArrayCalls(testtools.TestCase):

    def test_array_calls_leave_reads_out(self):
        calls = switch_over.array_calls(GATEWAY_LOG.splitlines())
        self.assertEqual(
            [{"op": "setVolumeSize", "status": "200",
              "volume": "c4c872bc00000001"},
             {"op": "setVolumeSize", "status": "400",
              "volume": "c4c872bc00000002"},
             {"op": "snapshotVolumes", "status": "200", "volume": ""}],
            calls)
        self.assertEqual({"c4c872bc00000001": ["setVolumeSize"],
                          "c4c872bc00000002": ["setVolumeSize"],
                          "": ["snapshotVolumes"]},
                         switch_over.calls_per_volume(calls))

    def test_no_calls(self):
        self.assertEqual([], switch_over.array_calls(
            GATEWAY_LOG.splitlines()[:3]))

    def test_requests_logged(self):
        self.assertEqual(6, switch_over.requests_logged(
            GATEWAY_LOG.splitlines()))
        self.assertEqual(0, switch_over.requests_logged(
            ["2026-12-04 01:11:32,129 WARNING something else"]))


REPORT = {
    "volumes": [
        {"volume_id": "v1", "project_id": "p", "status": "available",
         "recorded_gib": 1, "array_gib": 8, "action": "to fix",
         "reason": "recorded 1 GiB, the array holds 8 GiB",
         "command": "openstack volume set --size 8 v1"},
        {"volume_id": "v2", "project_id": "p", "status": "in-use",
         "recorded_gib": 10, "array_gib": 16, "action": "left",
         "reason": "attached", "command": "..."},
        {"volume_id": "v3", "project_id": "p", "status": "available",
         "recorded_gib": 16, "array_gib": 16, "action": "extended",
         "reason": "recorded 16 GiB, was 10 GiB", "command": ""}],
    "projects": [{"project_id": "p", "usage_gib": 20, "records_gib": 27,
                  "difference_gib": -7}]}


class TestReport(testtools.TestCase):

    def test_entries_and_pending(self):
        entries = switch_over.reconcile_entries(REPORT)
        self.assertEqual(["v1", "v2", "v3"], sorted(entries))
        self.assertEqual(["v1", "v3"], [e["volume_id"] for e in
                                        switch_over.pending(REPORT)])
        self.assertEqual({}, switch_over.reconcile_entries(None))
        self.assertEqual([], switch_over.pending(None))
        self.assertEqual([], switch_over.pending({"volumes": []}))

    def test_summary(self):
        self.assertEqual(
            "volumes: 1 extended, 1 left, 1 to fix; projects whose usage "
            "differs from the records: p (-7 GiB)",
            switch_over.summary(REPORT))
        self.assertEqual("no JSON report", switch_over.summary(None))
        self.assertEqual(
            "volumes: none; projects whose usage differs from the "
            "records: none",
            switch_over.summary({"volumes": [], "projects": [
                {"project_id": "p", "difference_gib": 0}]}))

    def test_pattern(self):
        first = switch_over.pattern("x")
        self.assertEqual(switch_over.MIB, len(first))
        self.assertEqual(first, switch_over.pattern("x"))
        self.assertNotEqual(first, switch_over.pattern("y"))
        self.assertEqual(100, len(switch_over.pattern("x", 100)))

    def test_table(self):
        text = switch_over.table(
            [{"a": 1, "b": "long value"}, {"a": None, "b": "x"}],
            [("a", "A"), ("b", "B column")])
        self.assertEqual(
            "=  ==========\n"
            "A  B column\n"
            "=  ==========\n"
            "1  long value\n"
            "-  x\n"
            "=  ==========", text)

    def test_old_volume_rows(self):
        old = [
            {"name": "image-miss", "made": "1 GiB from the image (miss)",
             "kind": "volume", "id": "v1", "project": "p",
             "array_id": "a1", "recorded": 1, "array": 8,
             "recorded_after": 8},
            {"name": "blank-1", "made": "blank, 1 GiB", "kind": "volume",
             "id": "v9", "project": "p", "array_id": "a9", "recorded": 8,
             "array": 8, "recorded_after": 8},
            {"name": "snap-10", "made": "snapshot", "kind": "snapshot",
             "id": "s1", "project": "q", "array_id": "a2",
             "recorded": 10, "array": 16},
        ]
        rows = switch_over.old_volume_rows(
            old, switch_over.reconcile_entries(REPORT), {"p": 20},
            {"p": 27}, {"a1": ["setVolumeSize"]})
        self.assertEqual(
            [{"name": "image-miss", "made": "1 GiB from the image (miss)",
              "recorded": 1, "array": 8, "action": "to fix", "after": 8,
              "usage": "20 -> 27", "calls": "setVolumeSize"},
             {"name": "blank-1", "made": "blank, 1 GiB", "recorded": 8,
              "array": 8, "action": "not listed", "after": 8,
              "usage": "20 -> 27", "calls": "none"},
             {"name": "snap-10", "made": "snapshot", "recorded": 10,
              "array": 16, "action": "n/a", "after": None,
              "usage": "? -> ?", "calls": "none"}], rows)
        text = switch_over.table(rows, switch_over.ROW_COLUMNS)
        self.assertIn("image-miss", text)
        self.assertEqual(3 + 3 + 1, len(text.splitlines()))

    def test_array_name(self):
        # Cinder's PowerFlex driver names array volumes after the base64
        # of the object's UUID bytes.
        self.assertEqual(
            "AAECAwQFBgcICQoLDA0ODw==",
            switch_over.array_name("00010203-0405-0607-0809-0a0b0c0d0e0f"))


class CloudPorts(testtools.TestCase):
    """The cloud's fixed ports cannot be handed out as source ports."""

    def test_ports_below_the_ephemeral_range(self) -> None:
        with open("/proc/sys/net/ipv4/ip_local_port_range",
                  encoding="ascii") as ports:
            low, _high = (int(port) for port in ports.read().split())
        self.assertEqual({}, {name: port for name, port
                              in layout.PORTS.items() if port >= low})
        self.assertEqual(len(layout.PORTS), len(set(layout.PORTS.values())))
