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
"""The benchmark's outputs: Markdown, JSON and a PNG plot.

``results`` is the JSON document :func:`tools.bench.run` builds::

    {"meta": {..., "rounds": K}, "latency_s": {op: s},
     "scenarios": [{"name", "description",
                    "rounds": [{"round", "order",
                                "drivers": {"stock": {"summary", "samples",
                                                      "profile", "wall_s"},
                                            "ours": ...},
                                "ratios": {...}}, ...],
                    "drivers": {"stock": {"summary", "profile"}, "ours": ...},
                    "ratios": {...}, "ratio_spread": {...}, "verdict",
                    "ours_adds": [...]}],
     "statement_texts": {id: normalized statement}}

Each round keeps its raw numbers; ``drivers`` holds the medians over the
rounds (:func:`tools.bench_profile.median_summary`), ``ratios`` the
median of the rounds' ratios and ``ratio_spread`` their spread.
"""

import json
import os
from typing import Any, Optional

from tools import bench_profile
from tools import texttable

DRIVERS = bench_profile.DRIVERS
LOG_SCALE_SPREAD = 20
"""A subplot whose slowest create is this many times its fastest is
drawn on a log scale."""
ADDED_TOP = 15
"""Statements listed per scenario in "What ours adds"."""
ADDED_ORIGINS = 2
"""Code paths shown per statement there (all are in latest.json)."""
STATEMENT_LABELS = {"BEGIN": "… BEGIN (transactions)",
                    "other": "… other (SAVEPOINT, PRAGMA...)"}


def _rounds(results: dict[str, Any]) -> int:
    return int(results["meta"].get("rounds", 1))


def _ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.2f" % value


def _ratio_spread(spread: Optional[dict[str, Any]], rounds: int) -> str:
    """``median (min–max)`` of a ratio over the rounds (one round: alone)."""
    if spread is None:
        return "n/a"
    if rounds <= 1:
        return _ratio(spread["median"])
    return "%.2f (%.2f–%.2f)" % (spread["median"], spread["min"],
                                 spread["max"])


def _count(value: float) -> str:
    """An integer as such, a median between two integers with a decimal."""
    return "%d" % value if float(value).is_integer() else "%.1f" % value


def main_table(results: dict[str, Any], style: str = "markdown") -> str:
    """One row per scenario and driver, then ours/stock.

    :param style: ``markdown`` or ``rst`` (the documentation's table).
    """
    headers, rows = _main_rows(results)
    if style == "rst":
        return texttable.rst(headers, [[cell.replace("**", "")
                                        for cell in row] for row in rows])
    return texttable.markdown(headers, rows)


def _main_rows(results: dict[str, Any]) -> tuple[list[str], list[list]]:
    headers = ["scenario", "driver", "creates (failed)", "mean s/create",
               "p95 s/create", "max s", "array calls/create",
               "extends (redundant)", "downloads", "bytes copied"]
    rounds = _rounds(results)
    rows = []
    for scenario in results["scenarios"]:
        for driver in DRIVERS:
            s = scenario["drivers"][driver]["summary"]
            rows.append([
                scenario["name"], driver,
                "%s (%d)" % (_count(s["creates"]), s["failed"]),
                "%.3f" % s["mean_s"], "%.3f" % s["p95_s"],
                "%.2f" % s["max_s"], "%.1f" % s["calls_per_create"],
                "%s (%s)" % (_count(s["extends"]),
                             _count(s["redundant_extends"])),
                _count(s["downloads"]), texttable.size(s["bytes_copied"])])
        r = scenario["ratio_spread"]
        rows.append([scenario["name"], "**ours/stock**", ""] + [
            _ratio_spread(r.get(key), rounds)
            for key in ("mean_s", "p95_s", "max_s", "calls_per_create",
                        "extends", "downloads", "bytes_copied")])
    return headers, rows


def verdict_lines(results: dict[str, Any]) -> list[str]:
    """One line per scenario: the verdict on time per create."""
    rounds = _rounds(results)
    out = []
    for scenario in results["scenarios"]:
        spread = (scenario.get("ratio_spread") or {}).get("mean_s")
        if spread is None:
            out.append("* **%s**: %s (no ratio: stock took no time)."
                       % (scenario["name"], scenario["verdict"]))
            continue
        text = ("* **%s**: %s: mean s/create ours/stock median %.2f, "
                "min–max %.2f–%.2f over %d round%s" % (
                    scenario["name"], scenario["verdict"], spread["median"],
                    spread["min"], spread["max"], rounds,
                    "" if rounds == 1 else "s"))
        if "q1" in spread:
            text += ", IQR %.2f–%.2f" % (spread["q1"], spread["q3"])
        if rounds == 1:
            text += " (one round: no spread to judge by; use --repeat)"
        out.append(text + ".")
    return out


def endpoint_table(results: dict[str, Any]) -> str:
    """Array calls per create by endpoint, stock vs ours."""
    headers = ["scenario", "endpoint", "stock", "ours"]
    rows = []
    for scenario in results["scenarios"]:
        per = {d: scenario["drivers"][d]["summary"][
            "calls_per_create_by_endpoint"] for d in DRIVERS}
        for op in sorted(set(per["stock"]) | set(per["ours"])):
            rows.append([scenario["name"], op] +
                        ["%.2f" % per[d].get(op, 0.0) for d in DRIVERS])
    return texttable.markdown(headers, rows)


def origins_table(results: dict[str, Any]) -> str:
    """Where the volumes came from, per scenario and driver."""
    headers = ["scenario", "driver", "volumes by origin"]
    rows = []
    for scenario in results["scenarios"]:
        for driver in DRIVERS:
            origins = scenario["drivers"][driver]["summary"]["origins"]
            rows.append([scenario["name"], driver, "; ".join(
                "%s: %d" % item for item in origins.items())])
    return texttable.markdown(headers, rows)


def _signed(value: float, fmt: str = "%.2f") -> str:
    text = fmt % value
    if text.lstrip("-").strip("0.") == "":
        return fmt % 0.0
    return ("+" + text) if value > 0 else text


def profile_table(results: dict[str, Any]) -> str:
    """Statements, locks and array calls per create, stock vs ours."""
    headers = ["scenario", "per create", "stock", "ours", "ours − stock"]
    rows = []
    for scenario in results["scenarios"]:
        name = scenario["name"]
        prof = {d: scenario["drivers"][d]["profile"] for d in DRIVERS}
        stmts = {d: prof[d]["statements"] for d in DRIVERS}
        for kind, label in (("all", "DB statements"),) + tuple(
                (verb, STATEMENT_LABELS.get(verb, "… %s" % verb))
                for verb in bench_profile.VERBS + ("other",)):
            values = [stmts[d].get(kind, 0.0) for d in DRIVERS]
            if kind == "other" and not any(values):
                continue
            rows.append([name, label] + ["%.1f" % v for v in values] +
                        [_signed(values[1] - values[0], "%.1f")])
        kinds = sorted(set(prof["stock"]["locks"]) |
                       set(prof["ours"]["locks"]))
        for kind in kinds:
            locks = [prof[d]["locks"].get(kind, {}) for d in DRIVERS]
            taken, wait, held = ([lock.get(field, 0.0) for lock in locks]
                                 for field in ("taken", "wait_ms",
                                               "held_ms"))
            rows.append(
                [name, "lock `%s`: taken (wait, held)" % kind] +
                ["%.2f (%.1f ms, %.1f ms)" % values
                 for values in zip(taken, wait, held)] +
                ["%s (%s ms, %s ms)" % (
                    _signed(taken[1] - taken[0]),
                    _signed(wait[1] - wait[0], "%.1f"),
                    _signed(held[1] - held[0], "%.1f"))])
        calls = [scenario["drivers"][d]["summary"]["calls_per_create"]
                 for d in DRIVERS]
        rows.append([name, "array calls"] + ["%.2f" % c for c in calls] +
                    [_signed(calls[1] - calls[0])])
    return texttable.markdown(headers, rows)


def added_section(results: dict[str, Any]) -> list[str]:
    """"What ours adds": statements ours runs more, where ours is slower."""
    out = []
    for scenario in results["scenarios"]:
        spread = (scenario.get("ratio_spread") or {}).get("mean_s")
        if not _slower(spread):
            continue
        added = scenario.get("ours_adds", [])
        stmts = {d: scenario["drivers"][d]["profile"]["statements"]["all"]
                 for d in DRIVERS}
        out += ["### %s (ours/stock %s: %s)" % (
                    scenario["name"],
                    _ratio_spread(spread, _rounds(results)),
                    scenario["verdict"]), "",
                "Ours runs %.1f statements per create, stock %.1f (medians "
                "over the rounds); the %d statements ours runs more often "
                "add %.1f per create over all rounds (the top %d below; all "
                "in latest.json, `ours_adds`)."
                % (stmts["ours"], stmts["stock"], len(added),
                   sum(row["added"] for row in added), ADDED_TOP), ""]
        rows = []
        for row in added[:ADDED_TOP]:
            where = "; ".join(
                "%s (%+.2f)" % (origin, n) for origin, n in
                list(row["added_by_origin"].items())[:ADDED_ORIGINS])
            rows.append(["%+.2f" % row["added"], "%.2f" % row["stock"],
                         "%.2f" % row["ours"], "`%s`" % row["id"],
                         "`%s`" % bench_profile.short_statement(row["text"]),
                         where])
        out += [texttable.markdown(
            ["ours − stock", "stock", "ours", "id", "statement (normalized)",
             "where ours runs it more (per create)"], rows), ""]
        paths = scenario.get("ours_code_paths", {})
        if paths:
            out += ["Statements per create run from this package's code "
                    "(gross, by its innermost function; %.1f in all):"
                    % sum(paths.values()), "",
                    texttable.markdown(
                        ["code path of ours", "statements/create"],
                        [["`%s`" % path, "%.2f" % n]
                         for path, n in paths.items()]), ""]
    if not out:
        out = ["Ours was not slower than stock in any round of any "
               "scenario of this run.", ""]
    return out


def _slower(spread: Optional[dict[str, Any]]) -> bool:
    """Whether ours was slower in any round (so also in the median)."""
    return spread is not None and round(spread["max"], 2) > 1.0


def _header(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    rounds = _rounds(results)
    if rounds > 1:
        how = ("%d rounds per scenario, stock and ours alternating which "
               "goes first (stock first in odd rounds)" % rounds)
    else:
        how = "one round per scenario (stock first)"
    return ["# Benchmark: stock PowerFlexDriver vs PowerFlexCacheDriver", "",
            "Cinder %s create-volume flow and image-volume cache against "
            "the PowerFlex gateway simulator, on %s (%d cores); generated "
            "by `%s` on %s in %.0f s; %s." % (
                meta["cinder"], meta["machine"], meta["cpus"],
                meta["command"], meta["date"], meta["wall_s"], how), "",
            "Times are per create, from the API call to the volume being "
            "available, with the simulator's per-endpoint latency "
            "(assumed values, see `tools/latency.py`): %s." % (
                meta["latency_summary"]), ""]


def _results_section(results: dict[str, Any]) -> list[str]:
    rounds = _rounds(results)
    if rounds > 1:
        note = ("Driver rows are medians over the %d rounds (creates per "
                "round, failures over all rounds); the ours/stock row is "
                "the median of the %d per-round ratios, with their "
                "min–max. " % (rounds, rounds))
    else:
        note = "Ratios are ours/stock from the same run. "
    return ["## Results", "", main_table(results), "",
            note + "n/a where stock is 0. "
            "Extends are `setVolumeSize` requests; redundant ones were sent "
            "to a volume that already had the target size. Bytes copied "
            "are written by this host into array volumes (image "
            "conversion, host-assisted copies).", "",
            "## Verdict", ""] + verdict_lines(results) + [
            "",
            "Ours is slower beyond the spread when even its smallest "
            "per-round ratio of mean time per create is above 1.00, "
            "faster beyond it when even the largest is below 1.00; "
            "within the spread otherwise.", ""]


def _profile_section(results: dict[str, Any]) -> list[str]:
    how = "medians over the rounds" if _rounds(results) > 1 else "one round"
    return ["## Per create, ours against stock", "", profile_table(results),
            "",
            "Counted inside the measured creates only (set-up and deletes "
            "outside them are not), divided by the creates of the round; "
            "%s. DB statements are those Cinder's database engine ran "
            "(SQLAlchemy `before_cursor_execute`), by kind. Locks are "
            "Cinder's coordination locks (tooz) and oslo.concurrency locks "
            "(`cinder.utils.synchronized`, os-brick), named with ids "
            "replaced by `<id>`; wait is the time spent acquiring them and "
            "held the time from acquiring to releasing, both per create "
            "(the longest single wait and hold are in latest.json)." % how,
            "",
            "## What ours adds", "",
            "Statements (literals and ids replaced) that ours runs more "
            "often per create than stock (top %d), in the scenarios where "
            "ours was slower (mean time per create) in the median or in "
            "any round, counted over all rounds; the full texts are in "
            "latest.json (`statement_texts`, by id). \"Where\" is the "
            "innermost frame of this package's code running it (then, "
            "after `>`, the innermost Cinder frame below it outside "
            "Cinder's database, object and quota layers), or Cinder's own "
            "code when ours is not on the stack; each with how many more "
            "times per create ours runs the statement there than stock "
            "does (this package's functions count in full: stock never "
            "runs them, but may run the same statement elsewhere)."
            % ADDED_TOP, ""
            ] + added_section(results)


def markdown(results: dict[str, Any]) -> str:
    """The whole Markdown report."""
    out = _header(results) + ["## Scenarios", ""]
    for scenario in results["scenarios"]:
        out.append("* **%s**: %s" % (scenario["name"],
                                     scenario["description"]))
    out += [""] + _results_section(results) + _profile_section(results)
    out += ["## Where the volumes came from", ""]
    if _rounds(results) > 1:
        out += ["Counted over all %d rounds." % _rounds(results), ""]
    out += [origins_table(results), "",
            "## Array calls per create, by endpoint", "",
            endpoint_table(results), ""]
    if results["meta"].get("plot"):
        out += ["![time per create](%s)" % results["meta"]["plot"], ""]
    return "\n".join(out)


def write(results: dict[str, Any], out_dir: str, plot: bool) -> list[str]:
    """Write latest.md, latest.json and (if asked) latest.png."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if plot:
        path = os.path.join(out_dir, "latest.png")
        write_plot(results, path)
        results["meta"]["plot"] = "latest.png"
        written.append(path)
    path = os.path.join(out_dir, "latest.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=False)
        handle.write("\n")
    written.append(path)
    path = os.path.join(out_dir, "latest.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(markdown(results))
    written.append(path)
    return written


def write_plot(results: dict[str, Any], path: str) -> None:
    """Time per create against create index, both drivers, per scenario."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib import ticker

    scenarios = results["scenarios"]
    columns = 2
    rows = (len(scenarios) + columns - 1) // columns
    figure, axes = pyplot.subplots(rows, columns, squeeze=False,
                                   figsize=(12, 3.2 * rows))
    styles = {"stock": {"color": "tab:red", "marker": "x"},
              "ours": {"color": "tab:blue", "marker": "."}}
    for ax, scenario in zip(axes.flat, scenarios):
        rounds = scenario["rounds"]
        for driver in DRIVERS:
            for index, one in enumerate(rounds):
                samples = one["drivers"][driver]["samples"]
                xs = [s["index"] for s in samples]
                ys = [s["seconds"] for s in samples]
                ax.plot(xs, ys, label=driver if index == 0 else None,
                        linewidth=0.8, markersize=4,
                        alpha=1.0 if len(rounds) == 1 else 0.6,
                        **styles[driver])
            failed = [(s["index"], s["seconds"]) for one in rounds
                      for s in one["drivers"][driver]["samples"]
                      if s["failed"]]
            if failed:
                ax.scatter(*zip(*failed), s=60, facecolors="none",
                           edgecolors="black", zorder=3,
                           label="%s: failed" % driver)
        ax.set_title(scenario["name"], fontsize=10)
        ax.set_xlabel("create index")
        ax.set_ylabel("seconds per create")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        times = [s["seconds"] for one in rounds for d in DRIVERS
                 for s in one["drivers"][d]["samples"]]
        if min(times) > 0 and max(times) / min(times) > LOG_SCALE_SPREAD:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(
                lambda value, _pos: "%g" % value))
        else:
            ax.set_ylim(bottom=0)
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(scenarios):]:
        ax.set_visible(False)
    rounds_note = ""
    if _rounds(results) > 1:
        rounds_note = "; one line per round, %d rounds" % _rounds(results)
    figure.suptitle("Time per create, stock PowerFlexDriver vs "
                    "PowerFlexCacheDriver\n(log scale where times spread "
                    "over more than %dx%s)" % (LOG_SCALE_SPREAD,
                                               rounds_note))
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
