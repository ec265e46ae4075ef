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
"""Benchmark: time and array calls per create, stock vs this driver.

Usage (as root, from the source checkout; ``tox -e bench`` runs it)::

    python -m tools.bench [--latency OP=SECONDS ...] [--latency-file F]
                          [--no-latency] [--only NAME ...] [--quick]
                          [--repeat K]

Runs every scenario (:mod:`tools.bench_scenarios`,
:mod:`tools.bench_cluster`) with Cinder's ``PowerFlexDriver`` and with
``PowerFlexCacheDriver``, each in a fresh in-process Cinder (Cinder's real
volume manager and create-volume flow, the gateway simulator with a
per-endpoint latency, see :mod:`tools.latency`), and writes
``doc/bench/latest.md``, ``latest.json`` and ``latest.png``. Numbers, not
tests: it fails only when a run cannot complete.

With ``--repeat K`` each scenario runs K rounds, stock first in odd rounds
and ours first in even ones; the report gives the median of each round's
ours/stock ratio with its spread, and a verdict
(:mod:`tools.bench_profile`). Every run is profiled: database statements,
locks and array calls per create.

``--only copy`` runs :mod:`tools.bench_copy` instead (the host-assisted
copy against ``dd`` on loop devices; ``doc/bench/copy.md``).
"""

import argparse
import datetime
import os
import platform
import sys
import time
from typing import Any, Callable, Optional, Sequence

from tools import preflight

COMMAND = "python -m tools.bench"
DEFAULT_OUT = os.path.join("doc", "bench")
MATPLOTLIB = (("matplotlib", "matplotlib (in the bench tox env: "
                             "tox -e bench), or pass --no-plot"),)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", action="append", default=[],
                        metavar="OP=SECONDS",
                        help="latency of one simulator operation "
                             "(repeatable), over the defaults")
    parser.add_argument("--latency-file", metavar="JSON",
                        help='a JSON object {"op": seconds} over the '
                             "defaults")
    parser.add_argument("--no-latency", action="store_true",
                        help="start from zero latency everywhere")
    parser.add_argument("--only", action="append", default=[],
                        metavar="NAME", help="run only scenarios whose name "
                        "contains NAME (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (a smoke run, not for the "
                             "published figures)")
    parser.add_argument("--vtree-creates", type=int, default=None,
                        help="creates of the vtree-limit scenario "
                             "(default 300)")
    parser.add_argument("--concurrent", type=int, default=None,
                        help="creates of the cluster scenario (default 20)")
    parser.add_argument("--out-dir", default=DEFAULT_OUT,
                        help="where latest.{md,json,png} go "
                             "(default doc/bench)")
    parser.add_argument("--no-plot", action="store_true",
                        help="do not draw latest.png (no matplotlib)")
    parser.add_argument("--repeat", type=preflight.positive_int, default=1,
                        metavar="K",
                        help="run each scenario K times, stock and ours "
                             "alternating which goes first; report the "
                             "median of each ratio and its spread "
                             "(default 1)")
    return parser


def _settings(args: argparse.Namespace) -> Any:
    from tools import bench_scenarios
    settings = bench_scenarios.Settings()
    if args.quick:
        settings = bench_scenarios.Settings(
            misses=2, sweep=(60, 65), sweep_repeats=1, format_hits=2,
            vtree_creates=130, concurrent=4)
    changes = {}
    if args.vtree_creates is not None:
        changes["vtree_creates"] = args.vtree_creates
    if args.concurrent is not None:
        changes["concurrent"] = args.concurrent
    return bench_scenarios.Settings(**{**settings.__dict__, **changes})


def _latency_summary(table: dict[str, float]) -> str:
    from tools import latency
    gets = {s for op, s in table.items()
            if latency.operations()[op] == "GET" and op not in latency.CHANGES}
    parts = []
    if len(gets) == 1:
        parts.append("every GET %.0f ms" % (gets.pop() * 1000))
    parts += ["%s %.0f ms" % (op, table[op] * 1000)
              for op in sorted(latency.CHANGES)]
    others = {s for op, s in table.items()
              if latency.operations()[op] != "GET" and
              op not in latency.CHANGES}
    if len(others) == 1:
        parts.append("other changes %.0f ms" % (others.pop() * 1000))
    return ", ".join(parts)


def _run_one(name: str, driver: str, label: str,
             run: Callable[[Any], Any], prepare: Callable[[Any], None],
             texts: dict[str, str]) -> dict[str, Any]:
    """Run one scenario once with one driver, profiled."""
    from tools import bench_profile
    from tools import harness
    from tools import samples
    profiler = bench_profile.Profiler()
    started = time.perf_counter()
    result = harness.run_scenario(
        driver, run, prepare=bench_profile.installer(prepare, profiler))
    wall = time.perf_counter() - started
    summary = samples.summarize(result)
    if isinstance(result, samples.Measured):
        result = result.samples
    print("  %-24s %-7s %-5s %4d creates (%d failed), mean %.3f s, "
          "p95 %.3f s  [%.0f s]" % (
              name, label, driver, summary["creates"], summary["failed"],
              summary["mean_s"], summary["p95_s"], wall), flush=True)
    return {"summary": summary,
            "samples": [s.__dict__ for s in result],
            "profile": profiler.result(summary["creates"], texts),
            "wall_s": wall}


def _run_rounds(name: str, run: Callable[[Any], Any],
                prepare: Callable[[Any], None], repeat: int,
                texts: dict[str, str]) -> list[dict[str, Any]]:
    """Run a scenario ``repeat`` times, alternating which driver is first."""
    from tools import bench_profile
    from tools import samples
    rounds = []
    for index, order in enumerate(bench_profile.round_orders(repeat)):
        label = "%d/%d" % (index + 1, repeat)
        drivers = {driver: _run_one(name, driver, label, run, prepare,
                                    texts)
                   for driver in order}
        rounds.append({
            "round": index + 1, "order": list(order),
            "drivers": {d: drivers[d] for d in bench_profile.DRIVERS},
            "ratios": samples.ratios(drivers["stock"]["summary"],
                                     drivers["ours"]["summary"])})
    return rounds


def _combine(entry: dict[str, Any], texts: dict[str, str]) -> None:
    """Medians, spreads, verdict and profile of a scenario's rounds."""
    from tools import bench_profile
    rounds = entry["rounds"]
    drivers = {}
    for driver in bench_profile.DRIVERS:
        per_round = [r["drivers"][driver] for r in rounds]
        drivers[driver] = {
            "summary": bench_profile.median_summary(
                [r["summary"] for r in per_round]),
            "profile": bench_profile.median_profile(
                [bench_profile.profile_per_create(r["profile"])
                 for r in per_round]),
        }
    entry["drivers"] = drivers
    spreads = bench_profile.ratio_spreads([r["ratios"] for r in rounds])
    entry["ratio_spread"] = spreads
    entry["ratios"] = {key: (value["median"] if value else None)
                       for key, value in spreads.items()}
    entry["verdict"] = bench_profile.verdict(spreads.get("mean_s"))
    entry["ours_adds"] = bench_profile.added_statements(
        [r["drivers"]["stock"]["profile"] for r in rounds],
        [r["drivers"]["ours"]["profile"] for r in rounds], texts)
    entry["ours_code_paths"] = bench_profile.ours_code_paths(
        [r["drivers"]["ours"]["profile"] for r in rounds])
    # Where each statement came from is kept, pooled, for those ours adds
    # only: per round and driver it would make up most of latest.json.
    for one in rounds:
        for driver in bench_profile.DRIVERS:
            one["drivers"][driver]["profile"].pop("origins", None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected scenarios; return the JSON document."""
    from tools import bench_cluster
    from tools import bench_scenarios
    from tools import latency

    table = latency.build(args.latency, args.latency_file, args.no_latency)
    settings = _settings(args)

    def prepare(cinder: Any) -> None:
        cinder.sim.faults.latency.update(table)

    scenarios = bench_scenarios.sequential(settings)
    scenarios.append(bench_cluster.scenario(settings))
    if args.only:
        scenarios = [s for s in scenarios
                     if any(word in s.name for word in args.only)]
    started = time.perf_counter()
    texts: dict[str, str] = {}
    out = []
    for scenario in scenarios:
        entry: dict[str, Any] = {"name": scenario.name,
                                 "description": scenario.description}
        entry["rounds"] = _run_rounds(
            scenario.name, lambda cinder, s=scenario: s.run(cinder, settings),
            prepare, args.repeat, texts)
        _combine(entry, texts)
        out.append(entry)
    return {
        "meta": {
            "command": " ".join([COMMAND] + sys.argv[1:]),
            "cinder": preflight.cinder_version(),
            "machine": "%s %s, Python %s" % (platform.system(),
                                             platform.machine(),
                                             platform.python_version()),
            "cpus": os.cpu_count() or 0,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "wall_s": time.perf_counter() - started,
            "rounds": args.repeat,
            "latency_summary": _latency_summary(table),
            "settings": settings.__dict__,
        },
        "latency_s": table,
        "scenarios": out,
        "statement_texts": dict(sorted(texts.items())),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; return the exit status."""
    args = _parser().parse_args(argv)
    from tools import bench_copy
    if args.only and all(word in bench_copy.NAME for word in args.only):
        return bench_copy.main(args=bench_copy.bench_args(
            " ".join([COMMAND] + sys.argv[1:]), args.out_dir, args.quick))
    preflight.require(COMMAND, () if args.no_plot else MATPLOTLIB)
    preflight.quiet_library_warnings()
    preflight.green_start()
    from tools import bench_output
    from tools import harness
    from tools import latency

    try:
        latency.build(args.latency, args.latency_file, args.no_latency)
    except (OSError, ValueError) as exc:
        print("%s: %s" % (COMMAND, exc), file=sys.stderr)
        return preflight.EXIT_MISSING
    print("Benchmark: Cinder %s, stock PowerFlexDriver vs "
          "PowerFlexCacheDriver, gateway simulator with per-endpoint "
          "latency" % preflight.cinder_version(), flush=True)
    try:
        results = run(args)
    except harness.ScenarioError as exc:
        print("%s: %s" % (COMMAND, exc), file=sys.stderr)
        return 1
    written = bench_output.write(results, args.out_dir,
                                 plot=not args.no_plot)
    print()
    print(bench_output.main_table(results))
    print()
    print("\n".join(bench_output.verdict_lines(results)))
    print()
    print("The same table for doc/source/contributor/benchmark.rst:")
    print()
    print(bench_output.main_table(results, style="rst"))
    print()
    print("Wrote %s (%.0f s)." % (", ".join(written),
                                  results["meta"]["wall_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
