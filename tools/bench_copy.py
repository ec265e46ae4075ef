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
"""Benchmark of the host-assisted copy against dd, on loop devices.

Usage (as root; ``tox -e bench -- --only copy`` runs it)::

    python -m tools.bench_copy [--size-mib 1024] [--data-mib 256]
                               [--runs 3] [--buffered-loops] [--out-dir D]

Two loop devices over sparse files (``--direct-io=on`` unless
``--buffered-loops``: no page cache of the files between the devices and
the disk, as with a real array). The source is filled with random data;
:meth:`HostAssistedCopy._copy_devices` (the path a cross-pool clone and a
vtree rotation take) copies it into the destination, and so does
``dd if=SRC of=DST bs=4M oflag=direct``, alternately, ``--runs`` times
each, caches dropped before every run where the kernel allows. Then a
source holding data only in its first ``--data-mib`` MiB (the image's
virtual size) is copied with that length, as a rotation copies it.
Prints a table and writes ``doc/bench/copy.md`` and ``copy.json``.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

from oslo_utils import units

NAME = "host copy"
"""The name ``tools.bench --only`` matches."""
COMMAND = "python -m tools.bench_copy"
DEFAULT_OUT = os.path.join("doc", "bench")
DD_BLOCK = "4M"
FILL_CHUNK = 64 * units.Mi


class _Config:
    """The ``configuration`` of a driver with Cinder's defaults."""

    @staticmethod
    def safe_get(name: str) -> Any:
        return None


class _Driver:
    configuration = _Config()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="size of each loop device (default 1024)")
    parser.add_argument("--data-mib", type=int, default=256,
                        help="data of the partial source and length of "
                             "its copy (default 256)")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each copy (default 3; the median "
                             "is reported)")
    parser.add_argument("--buffered-loops", action="store_true",
                        help="loop devices without --direct-io (the "
                             "files' page cache between device and disk)")
    parser.add_argument("--out-dir", default=DEFAULT_OUT,
                        help="where copy.md and copy.json go "
                             "(default doc/bench)")
    parser.add_argument("--quick", action="store_true",
                        help="256 MiB devices, 64 MiB of data, 1 run")
    return parser


def drop_caches() -> bool:
    """Sync and drop the page cache; False where not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def _fill(device: str, length: int) -> None:
    """Write ``length`` bytes of random data at the start of ``device``."""
    fd = os.open(device, os.O_WRONLY)
    try:
        offset = 0
        while offset < length:
            offset += os.pwrite(fd, os.urandom(min(FILL_CHUNK,
                                                   length - offset)),
                                offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _dd(src: str, dst: str, length: int) -> float:
    """Run the reference dd; return its seconds."""
    command = ["dd", "if=" + src, "of=" + dst, "bs=" + DD_BLOCK,
               "oflag=direct", "status=none"]
    if length % (4 * units.Mi) == 0:
        command.append("count=%d" % (length // (4 * units.Mi)))
    else:
        command += ["iflag=count_bytes", "count=%d" % length]
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def _ours(src: str, dst: str, length: int, skip_zeros: bool) -> float:
    """Copy with the driver's host-assisted copy; return its seconds."""
    from powerflex_cache_driver import data_copy
    copier = data_copy.HostAssistedCopy(_Driver())
    stats = copier._copy_devices(src, dst, length, skip_zeros)
    if not (stats.direct_read and stats.direct_write):
        print("  note: O_DIRECT refused (read %s, write %s)"
              % (stats.direct_read, stats.direct_write), flush=True)
    return stats.seconds


def _measure(label: str, tool: str, length: int, runs: list[float],
             dd_median: Optional[float]) -> dict[str, Any]:
    median = statistics.median(runs)
    rate = length / units.Mi / median
    row = {"case": label, "tool": tool, "bytes": length,
           "seconds": runs, "median_s": median, "median_mib_s": rate,
           "ratio_to_dd": None}
    if dd_median is not None:
        row["ratio_to_dd"] = dd_median / median  # ours MiB/s / dd MiB/s
    return row


def _compare(label: str, length: int, runs: int,
             dd: Callable[[], float],
             ours: Callable[[], float]) -> list[dict[str, Any]]:
    """Alternate dd and ours ``runs`` times; return their two rows."""
    timings: dict[str, list[float]] = {"dd": [], "ours": []}
    for number in range(runs):
        for tool, run in (("dd", dd), ("ours", ours)):
            drop_caches()
            seconds = run()
            timings[tool].append(seconds)
            print("  %-40s %-4s run %d: %6.0f MiB/s (%.2f s)" % (
                label, tool, number + 1, length / units.Mi / seconds,
                seconds), flush=True)
    dd_row = _measure(label, "dd", length, timings["dd"], None)
    ours_row = _measure(label, "ours", length, timings["ours"],
                        dd_row["median_s"])
    return [dd_row, ours_row]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the devices, run every case, tear down; return the JSON."""
    from powerflex_cache_driver.simulator import loop

    size = args.size_mib * units.Mi
    data = min(args.data_mib, args.size_mib) * units.Mi
    workdir = tempfile.mkdtemp(prefix="bench-copy-")
    devices: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for name in ("full", "partial", "dst"):
            path = os.path.join(workdir, name + ".img")
            with open(path, "wb") as handle:
                handle.truncate(size)
            devices[name] = loop.attach(path,
                                        direct_io=not args.buffered_loops)
        print("Loop devices: %s (direct-io %s); filling..." % (
            ", ".join("%s=%s" % item for item in devices.items()),
            "off" if args.buffered_loops else "on"), flush=True)
        _fill(devices["full"], size)
        _fill(devices["partial"], data)
        _fill(devices["dst"], size)  # allocated, as a real device is
        full, partial, dst = (devices["full"], devices["partial"],
                              devices["dst"])
        rows += _compare(
            "full %d MiB, random data" % args.size_mib, size, args.runs,
            lambda: _dd(full, dst, size),
            lambda: _ours(full, dst, size, skip_zeros=False))
        rows += _compare(
            "first %d MiB (image size), length %d MiB" % (
                data // units.Mi, data // units.Mi), data, args.runs,
            lambda: _dd(partial, dst, data),
            lambda: _ours(partial, dst, data, skip_zeros=True))
        rows += _compare(
            "first %d MiB of data, length %d MiB, skip zeros" % (
                data // units.Mi, args.size_mib), size, args.runs,
            lambda: _dd(partial, dst, size),
            lambda: _ours(partial, dst, size, skip_zeros=True))
    finally:
        for device in devices.values():
            loop.detach(device)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "meta": {
            "command": getattr(args, "command", None) or " ".join(
                [COMMAND] + sys.argv[1:]),
            "machine": "%s %s %s, Python %s" % (
                platform.system(), platform.release(), platform.machine(),
                platform.python_version()),
            "cpus": os.cpu_count() or 0,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "wall_s": time.monotonic() - started,
            "loop_direct_io": not args.buffered_loops,
            "caches_dropped": drop_caches(),
            "runs": args.runs,
            "dd": "dd if=SRC of=DST bs=%s oflag=direct" % DD_BLOCK,
        },
        "rows": rows,
    }


def table(results: dict[str, Any], style: str = "plain") -> str:
    """The results as a table: ``plain`` text or ``markdown``."""
    from tools import texttable
    headers = ["case", "tool", "MiB/s per run", "median MiB/s",
               "median s", "ours/dd"]
    rows = []
    for row in results["rows"]:
        ratio = row["ratio_to_dd"]
        rows.append([
            row["case"], row["tool"],
            " ".join("%.0f" % (row["bytes"] / units.Mi / s)
                     for s in row["seconds"]),
            "%.0f" % row["median_mib_s"], "%.2f" % row["median_s"],
            "" if ratio is None else "%.2f" % ratio])
    if style == "markdown":
        return texttable.markdown(headers, rows)
    return texttable.plain(headers, rows)


def write(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write copy.md and copy.json into ``out_dir``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    meta = results["meta"]
    md = os.path.join(out_dir, "copy.md")
    with open(md, "w", encoding="utf-8") as handle:
        handle.write(
            "# Host-assisted copy vs dd\n\n"
            "`%s` on %s (%d CPUs), %s. Loop devices over sparse files on "
            "the local disk, direct-io %s; page cache dropped before "
            "every run: %s. Each copy %d times, alternating with `%s`; "
            "medians. Ours is `HostAssistedCopy._copy_devices` (O_DIRECT "
            "both sides, 4 MiB chunks read ahead by a thread, `fsync` at "
            "the end); dd does not `fsync`.\n\n%s\n" % (
                meta["command"], meta["machine"], meta["cpus"],
                meta["date"], "on" if meta["loop_direct_io"] else "off",
                "yes" if meta["caches_dropped"] else "no", meta["runs"],
                meta["dd"], table(results, "markdown")))
    js = os.path.join(out_dir, "copy.json")
    with open(js, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
        handle.write("\n")
    return [md, js]


def main(argv: Optional[Sequence[str]] = None,
         args: Optional[argparse.Namespace] = None) -> int:
    """Run the copy benchmark; return the exit status."""
    if args is None:
        args = _parser().parse_args(argv)
    if getattr(args, "quick", False):
        args.size_mib, args.data_mib, args.runs = 256, 64, 1
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        print("%s: needs root and losetup (loop devices)" % COMMAND,
              file=sys.stderr)
        return 2
    print("Copy benchmark: HostAssistedCopy vs dd, %d MiB loop devices, "
          "%d runs" % (args.size_mib, args.runs), flush=True)
    results = run(args)
    written = write(results, args.out_dir)
    print()
    print(table(results))
    print()
    print("Wrote %s (%.0f s)." % (", ".join(written),
                                  results["meta"]["wall_s"]))
    return 0


def bench_args(command: str, out_dir: str,
               quick: bool) -> argparse.Namespace:
    """The defaults, for ``tools.bench --only copy``."""
    args = _parser().parse_args([])
    args.command = command
    args.out_dir = out_dir
    args.quick = quick
    return args


if __name__ == "__main__":
    sys.exit(main())
