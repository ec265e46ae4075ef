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
"""The benchmark's statistics over rounds and its profile helpers.

Known per-round numbers in, known medians, spreads, verdicts and tables
out; nothing is timed.
"""

from typing import Optional

import testtools

from tools import bench_output
from tools import bench_profile


def _summary(mean: float, calls: float, failed: int = 0,
             origins: Optional[dict] = None,
             endpoints: Optional[dict] = None) -> dict:
    return {"creates": 10, "failed": failed, "mean_s": mean,
            "p95_s": mean * 2, "max_s": mean * 3, "total_s": mean * 10,
            "calls_per_create": calls,
            "calls_per_create_by_endpoint": endpoints or {},
            "extends": 0, "redundant_extends": 0, "downloads": 1,
            "bytes_copied": 1024, "origins": origins or {}}


class Spread(testtools.TestCase):

    def test_median_and_range_of_three_rounds(self):
        spread = bench_profile.spread([1.30, 1.10, 1.60])
        self.assertEqual(1.30, spread["median"])
        self.assertEqual(1.10, spread["min"])
        self.assertEqual(1.60, spread["max"])
        self.assertEqual(3, spread["rounds"])
        self.assertNotIn("q1", spread)

    def test_median_of_an_even_number_is_the_middle_mean(self):
        self.assertAlmostEqual(
            0.885, bench_profile.spread([0.66, 1.11])["median"])

    def test_quartiles_from_four_rounds(self):
        spread = bench_profile.spread([4.0, 1.0, 3.0, 2.0])
        self.assertEqual(2.5, spread["median"])
        self.assertEqual(1.75, spread["q1"])
        self.assertEqual(3.25, spread["q3"])

    def test_missing_ratios_are_left_out(self):
        spread = bench_profile.spread([None, 2.0, 1.0])
        self.assertEqual(1.5, spread["median"])
        self.assertEqual(2, spread["rounds"])
        self.assertIsNone(bench_profile.spread([None, None]))

    def test_ratio_spreads_by_key(self):
        spreads = bench_profile.ratio_spreads([
            {"mean_s": 1.2, "extends": None},
            {"mean_s": 0.9, "extends": None},
            {"mean_s": 1.5, "extends": None}])
        self.assertEqual((1.2, 0.9, 1.5), (spreads["mean_s"]["median"],
                                           spreads["mean_s"]["min"],
                                           spreads["mean_s"]["max"]))
        self.assertIsNone(spreads["extends"])


class Verdict(testtools.TestCase):

    def verdict(self, *ratios: float) -> str:
        return bench_profile.verdict(bench_profile.spread(list(ratios)))

    def test_slower_when_even_the_smallest_ratio_is_above_one(self):
        self.assertEqual(bench_profile.VERDICT_SLOWER,
                         self.verdict(1.49, 1.05, 1.30))

    def test_within_when_one_round_is_not_slower(self):
        self.assertEqual(bench_profile.VERDICT_WITHIN,
                         self.verdict(1.49, 0.97, 1.30))

    def test_a_ratio_printed_as_one_is_not_slower(self):
        self.assertEqual(bench_profile.VERDICT_WITHIN,
                         self.verdict(1.004, 1.2))

    def test_faster_when_even_the_largest_ratio_is_below_one(self):
        self.assertEqual(bench_profile.VERDICT_FASTER,
                         self.verdict(0.8, 0.93, 0.85))

    def test_no_ratio_is_within(self):
        self.assertEqual(bench_profile.VERDICT_WITHIN,
                         bench_profile.verdict(None))


class Rounds(testtools.TestCase):

    def test_orders_alternate(self):
        self.assertEqual([("stock", "ours"), ("ours", "stock"),
                          ("stock", "ours"), ("ours", "stock")],
                         bench_profile.round_orders(4))

    def test_median_summary(self):
        summary = bench_profile.median_summary([
            _summary(0.5, 2.0, failed=1, origins={"a": 9, "b": 1},
                     endpoints={"getVolume": 1.0}),
            _summary(0.9, 2.0, origins={"a": 10},
                     endpoints={"getVolume": 3.0, "login": 1.0}),
            _summary(0.6, 4.0, origins={"a": 10},
                     endpoints={"getVolume": 2.0})])
        self.assertEqual(0.6, summary["mean_s"])
        self.assertEqual(1.2, summary["p95_s"])
        self.assertEqual(2.0, summary["calls_per_create"])
        self.assertEqual(10, summary["creates"])
        self.assertEqual(1, summary["failed"])
        self.assertEqual(3, summary["rounds"])
        self.assertEqual({"a": 29, "b": 1}, summary["origins"])
        self.assertEqual({"getVolume": 2.0, "login": 0.0},
                         summary["calls_per_create_by_endpoint"])


class Statements(testtools.TestCase):

    def test_normalize_replaces_literals_and_ids(self):
        sql = ("SELECT volumes.id FROM volumes\n  WHERE volumes.id = "
               "'5f0c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b' AND deleted = 0 "
               "AND volumes.host IN (?, ?, ?) LIMIT ?")
        self.assertEqual(
            "SELECT volumes.id FROM volumes WHERE volumes.id = '?' AND "
            "deleted = N AND volumes.host IN (?...) LIMIT ?",
            bench_profile.normalize_statement(sql))

    def test_lists_of_any_length_read_the_same(self):
        self.assertEqual(
            bench_profile.normalize_statement("x IN (?)"),
            bench_profile.normalize_statement("x IN (?, ?)"))

    def test_verbs(self):
        self.assertEqual("SELECT", bench_profile.statement_verb(" select 1"))
        self.assertEqual("BEGIN", bench_profile.statement_verb("BEGIN"))
        self.assertEqual("other",
                         bench_profile.statement_verb("SAVEPOINT sa_1"))

    def test_short_statement_drops_column_lists(self):
        self.assertEqual(
            "SELECT [2 columns] FROM volumes WHERE volumes.id = ?",
            bench_profile.short_statement(
                "SELECT volumes.id AS a, (SELECT count(*) FROM x) AS b "
                "FROM volumes WHERE volumes.id = ?"))
        self.assertEqual(
            "INSERT INTO reservations (…) VALUES (?...)",
            bench_profile.short_statement(
                "INSERT INTO reservations (uuid, delta) VALUES (?...)"))
        self.assertEqual(10, len(bench_profile.short_statement(
            "UPDATE t SET a = ?, b = ?", width=10)))

    def test_lock_kind(self):
        self.assertEqual(
            "cinder-powerflex-cache-rotate-<id>",
            bench_profile.lock_kind(
                b"cinder-powerflex-cache-rotate-"
                b"5f0c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"))

    def test_added_statements_per_create_with_origins(self):
        stock = [{"creates": 10, "texts": {"s1": 20, "s2": 10},
                  "origins": {"s1": {"cinder/x.py:f": 20}}},
                 {"creates": 10, "texts": {"s1": 20, "s2": 10},
                  "origins": {"s1": {"cinder/x.py:f": 20}}}]
        ours = [{"creates": 10, "texts": {"s1": 40, "s2": 10, "s3": 5},
                 "origins": {"s1": {"quota_charge.py:_settle": 15,
                                    "cinder/x.py:f": 25}}},
                {"creates": 10, "texts": {"s1": 30, "s2": 10, "s3": 5},
                 "origins": {"s1": {"quota_charge.py:_settle": 15,
                                    "cinder/x.py:f": 15}}}]
        added = bench_profile.added_statements(
            stock, ours, {"s1": "SELECT a FROM b", "s3": "UPDATE c SET d"})
        self.assertEqual(["s1", "s3"], [row["id"] for row in added])
        first = added[0]
        self.assertEqual((2.0, 3.5, 1.5),
                         (first["stock"], first["ours"], first["added"]))
        self.assertEqual("SELECT", first["verb"])
        self.assertEqual({"cinder/x.py:f": 2.0,
                          "quota_charge.py:_settle": 1.5}, first["origins"])
        self.assertEqual(["cinder/x.py:f", "quota_charge.py:_settle"],
                         list(first["origins"]))
        self.assertEqual({"quota_charge.py:_settle": 1.5},
                         first["added_by_origin"])
        self.assertEqual(0.5, added[1]["added"])

    def test_ours_code_paths(self):
        ours = [{"creates": 4, "texts": {},
                 "origins": {"s1": {"powerflex_cache_driver/a.py:f": 4,
                                    "powerflex_cache_driver/a.py:f > "
                                    "cinder/image/cache.py:g": 2,
                                    "cinder/x.py:h": 8},
                             "s2": {"powerflex_cache_driver/b.py:k": 2}}}]
        self.assertEqual({"powerflex_cache_driver/a.py:f": 1.5,
                          "powerflex_cache_driver/b.py:k": 0.5},
                         bench_profile.ours_code_paths(ours))

    def test_profile_per_create_and_median(self):
        def profile(count: int, wait: float) -> dict:
            return bench_profile.profile_per_create({
                "creates": 4,
                "statements": {"SELECT": 8, "INSERT": 4},
                "locks": {"k": {"count": count, "wait_s": wait,
                                "max_wait_s": wait, "held_s": 0.0}}})
        one = profile(4, 0.4)
        self.assertEqual({"SELECT": 2.0, "INSERT": 1.0, "all": 3.0},
                         one["statements"])
        self.assertEqual(1.0, one["locks"]["k"]["taken"])
        self.assertAlmostEqual(100.0, one["locks"]["k"]["wait_ms"])
        median = bench_profile.median_profile(
            [one, profile(2, 0.8), profile(8, 0.0)])
        self.assertEqual(1.0, median["locks"]["k"]["taken"])
        self.assertAlmostEqual(100.0, median["locks"]["k"]["wait_ms"])
        self.assertAlmostEqual(800.0, median["locks"]["k"]["max_wait_ms"])


class Report(testtools.TestCase):

    def results(self, ratios: list) -> dict:
        rounds = [{"round": i + 1, "ratios": {"mean_s": r}}
                  for i, r in enumerate(ratios)]
        spreads = bench_profile.ratio_spreads([r["ratios"] for r in rounds])
        summary = bench_profile.median_summary([_summary(0.5, 2.0)])
        return {"meta": {"rounds": len(ratios)}, "scenarios": [{
            "name": "raw image", "rounds": rounds,
            "drivers": {"stock": {"summary": summary},
                        "ours": {"summary": summary}},
            "ratio_spread": spreads,
            "ratios": {k: v and v["median"] for k, v in spreads.items()},
            "verdict": bench_profile.verdict(spreads["mean_s"])}]}

    def test_ratio_row_is_median_and_range(self):
        table = bench_output.main_table(self.results([1.49, 1.30, 1.60]))
        row = table.splitlines()[-1]
        self.assertIn("| 1.49 (1.30–1.60) |", row)
        self.assertIn("| n/a |", row)

    def test_one_round_ratio_row_is_the_ratio(self):
        table = bench_output.main_table(self.results([1.49]))
        self.assertIn("| 1.49 |", table.splitlines()[-1])

    def test_verdict_line(self):
        lines = bench_output.verdict_lines(
            self.results([1.49, 1.30, 1.60, 1.10]))
        self.assertEqual(
            ["* **raw image**: ours slower beyond spread: mean s/create "
             "ours/stock median 1.40, min–max 1.10–1.60 over 4 rounds, "
             "IQR 1.25–1.52."], lines)
