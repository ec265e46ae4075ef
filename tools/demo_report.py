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
"""The demo's printout: every volume, then both drivers side by side."""

import textwrap
from typing import Any, Sequence

from tools import texttable

WIDTH = 100
ROW = "    %-5s  %s  %5.2f s  DB %3d  array %3d  extend %s"


def _extends(totals: Any) -> str:
    if not totals.resizes:
        return "-"
    return ", ".join("%d" % r.target_gib for r in totals.resizes)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent + "  ")


def volumes(runs: Sequence[Any]) -> str:
    """Where every volume came from and why it was (not) extended."""
    width = max(len(c.origin) for run in runs for c in run.creates)
    out = ["Volumes created (the same requests for both drivers). DB = size "
           "in Cinder's database, array = size on the array (GiB), "
           "extend = setVolumeSize targets sent.", ""]
    for index, first in enumerate(runs[0].creates):
        out.append("%2d. %s" % (index + 1, first.label))
        for run in runs:
            created = run.creates[index]
            out.append(ROW % (
                run.driver, created.origin.ljust(width),
                created.totals.seconds, created.db_gib, created.array_gib,
                _extends(created.totals)))
            for reason in created.why:
                out.append(_wrap(reason, " " * 11))
        out.append("")
    return "\n".join(out)


def _calls_rows(runs: Sequence[Any]) -> list[list[str]]:
    ops = sorted(set().union(*(r.create_totals.calls for r in runs)))
    rows = [["  " + op] + [str(r.create_totals.calls.get(op, 0))
                           for r in runs] for op in ops]
    rows.append(["  all requests during the creates"] +
                [str(sum(r.create_totals.calls.values())) for r in runs])
    rows.append(["  all requests, deletes included"] +
                [str(sum(r.all_totals.calls.values())) for r in runs])
    return rows


def _quota_rows(runs: Sequence[Any]) -> list[list[str]]:
    def per_run(fmt: str, key: Any) -> list[str]:
        return [fmt % key(r.quota) for r in runs]
    return [
        ["  in use before (32 GiB baseline)"] +
        per_run("%d GiB", lambda q: q["start"]),
        ["  requested (the creates and the snapshot)"] +
        per_run("%d GiB", lambda q: q["requested"]),
        ["  in use after the creates"] +
        per_run("%d GiB", lambda q: q["after_creates"]),
        ["  the volume records add up to"] +
        per_run("%d GiB", lambda q: q["records_after_creates"]),
        ["  in use after deleting them all"] +
        per_run("%d GiB", lambda q: q["after_deletes"]),
        ["  drift (should be 0)"] +
        per_run("%+d GiB", lambda q: q["after_deletes"] - q["start"]),
    ]


def summary(runs: Sequence[Any]) -> str:
    """Both drivers side by side."""
    headers = ["", *("%s driver" % r.driver for r in runs)]
    rows: list[list[str]] = [["array requests per endpoint (creates)"] +
                             [""] * len(runs)]
    rows += _calls_rows(runs)
    rows.append(["setVolumeSize sent (targets)"] + [
        "%d (%s)" % (len(r.create_totals.resizes), ", ".join(
            "%d%s" % (x.target_gib, "*" if x.redundant else "")
            for x in r.create_totals.resizes) or "-") for r in runs])
    rows.append(["image downloads"] +
                [str(r.create_totals.downloads) for r in runs])
    rows.append(["bytes copied through this host"] +
                [texttable.size(r.create_totals.bytes_copied)
                 for r in runs])
    rows.append(["project gigabytes (quota)"] + [""] * len(runs))
    rows += _quota_rows(runs)
    rows.append(["time, all creates"] +
                ["%.2f s" % r.create_totals.seconds for r in runs])
    rows.append(["volumes checked byte for byte"] +
                [str(r.content_checked) for r in runs])
    return (texttable.plain(headers, rows) +
            "\n  * = redundant: sent to a volume that already had that size")
