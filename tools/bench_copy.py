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
                               [--copy-runs 5] [--buffered-loops]
                               [--out-dir D]

Two loop devices over sparse files (``--direct-io=on`` unless
``--buffered-loops``: no page cache of the files between the devices and
the disk, as with a real array). The source is filled with random data;
:meth:`HostAssistedCopy._copy_devices` (the path a cross-pool clone and a
vtree rotation take) copies it into the destination, and so does
``dd if=SRC of=DST bs=4M oflag=direct``, ``--copy-runs`` times each,
alternating (dd first in odd rounds, ours first in even ones), caches
dropped before every run where the kernel allows. Then a source holding
data only in its first ``--data-mib`` MiB (the image's virtual size) is
copied with that length, as a rotation copies it, and with the whole
length skipping zeros. Reports each tool's median, its spread (min-max)
and the ratio of the medians; prints a table and writes
``doc/bench/copy.md`` and ``copy.json`` (nothing else).
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

from tools import preflight

NAME = "host copy"
"""The name ``tools.bench --only`` matches."""
COMMAND = "python -m tools.bench_copy"
DEFAULT_OUT = os.path.join("doc", "bench")
DEFAULT_RUNS = 5
DD_BLOCK = "4M"
FILL_CHUNK = 64 * units.Mi

Timing = tuple[float, dict[str, float]]
"""Wall seconds of one copy, and what it spent where (ours only)."""
SECTOR = 512
"""Unit of the sector counts in ``/sys/block/*/stat``."""


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
    parser.add_argument("--copy-runs", "--runs", dest="copy_runs",
                        type=preflight.positive_int, default=DEFAULT_RUNS,
                        metavar="N",
                        help="runs of each tool per case, alternating "
                             "(default %d; medians and spreads are "
                             "reported)" % DEFAULT_RUNS)
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


def _dd(src: str, dst: str, length: int) -> Timing:
    """Run the reference dd; return its wall seconds (process included)."""
    command = ["dd", "if=" + src, "of=" + dst, "bs=" + DD_BLOCK,
               "oflag=direct", "status=none"]
    if length % (4 * units.Mi) == 0:
        command.append("count=%d" % (length // (4 * units.Mi)))
    else:
        command += ["iflag=count_bytes", "count=%d" % length]
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started, {}


def _data_copy() -> Any:
    """:mod:`powerflex_cache_driver.data_copy`, imported as a driver is.

    Cinder's objects are registered first, as cinder-volume does before
    loading a driver (modules the copy imports subclass them).
    """
    from cinder import objects
    objects.register_all()
    from powerflex_cache_driver import data_copy
    return data_copy


def _ours(src: str, dst: str, length: int, skip_zeros: bool) -> Timing:
    """Copy with the driver's host-assisted copy; return its wall seconds.

    Wall clock around ``_copy_devices``, as dd's is around its process:
    opening both devices, the copy, the final ``fsync`` and the closes.
    """
    data_copy = _data_copy()
    copier = data_copy.HostAssistedCopy(_Driver())
    started = time.monotonic()
    stats = copier._copy_devices(src, dst, length, skip_zeros)
    seconds = time.monotonic() - started
    if not (stats.direct_read and stats.direct_write):
        print("  note: O_DIRECT refused (read %s, write %s)"
              % (stats.direct_read, stats.direct_write), flush=True)
    return seconds, {"read_s": stats.read_seconds,
                     "write_s": stats.write_seconds,
                     "fsync_s": stats.fsync_seconds}


def _block_stat(device: str) -> tuple[int, int, int, int]:
    """Reads, sectors read, writes, sectors written of ``device`` so far.

    Requests as the block layer completed them (``/sys/block/*/stat``);
    zeros where the kernel does not tell.
    """
    path = "/sys/block/%s/stat" % os.path.basename(device)
    try:
        with open(path) as handle:
            fields = [int(field) for field in handle.read().split()]
    except (OSError, ValueError):
        return 0, 0, 0, 0
    return fields[0], fields[2], fields[4], fields[6]


def _requests(src: str, dst: str,
              run: Callable[[], Timing]) -> Callable[[], Timing]:
    """``run``, also counting the requests of the source and destination.

    Adds to the timing's parts the read requests of ``src`` and their
    mean size in KiB, and the same for the writes of ``dst``.
    """
    def counted() -> Timing:
        src_before, dst_before = _block_stat(src), _block_stat(dst)
        seconds, parts = run()
        src_after, dst_after = _block_stat(src), _block_stat(dst)
        reads = src_after[0] - src_before[0]
        writes = dst_after[2] - dst_before[2]
        parts = dict(parts)
        parts["reads"] = reads
        parts["read_kib"] = ((src_after[1] - src_before[1]) * SECTOR /
                             units.Ki / max(reads, 1))
        parts["writes"] = writes
        parts["write_kib"] = ((dst_after[3] - dst_before[3]) * SECTOR /
                              units.Ki / max(writes, 1))
        return seconds, parts
    return counted


def _row(label: str, tool: str, length: int,
         timings: list[Timing]) -> dict[str, Any]:
    """One tool's runs of one case: per-run rates, median and spread."""
    seconds = [wall for wall, _ in timings]
    rates = [length / units.Mi / wall for wall in seconds]
    row = {"case": label, "tool": tool, "bytes": length,
           "seconds": seconds, "mib_s": rates,
           "median_s": statistics.median(seconds),
           "median_mib_s": statistics.median(rates),
           "min_mib_s": min(rates), "max_mib_s": max(rates),
           "ratio_to_dd": None}
    parts = [spent for _, spent in timings if spent]
    for key in sorted(parts[0]) if parts else ():
        row[key] = [spent[key] for spent in parts]
        row["median_" + key] = statistics.median(row[key])
    return row


def _compare(label: str, length: int, runs: int,
             dd: Callable[[], Timing],
             ours: Callable[[], Timing]) -> list[dict[str, Any]]:
    """Run dd and ours ``runs`` times each, alternating; return two rows.

    dd goes first in odd rounds, ours in even ones, so that neither
    always follows the other (a disk's write-back, another job on the
    machine). The ratio is ours' median MiB/s over dd's.
    """
    timings: dict[str, list[Timing]] = {"dd": [], "ours": []}
    tools = {"dd": dd, "ours": ours}
    for number in range(runs):
        order = ("dd", "ours") if number % 2 == 0 else ("ours", "dd")
        for tool in order:
            drop_caches()
            timing = tools[tool]()
            timings[tool].append(timing)
            print("  %-40s %-4s run %d: %6.0f MiB/s (%.2f s)" % (
                label, tool, number + 1, length / units.Mi / timing[0],
                timing[0]), flush=True)
    dd_row = _row(label, "dd", length, timings["dd"])
    ours_row = _row(label, "ours", length, timings["ours"])
    ours_row["ratio_to_dd"] = (ours_row["median_mib_s"] /
                               dd_row["median_mib_s"])
    return [dd_row, ours_row]


def _read_ahead_kb(device: str) -> Optional[int]:
    """The kernel read-ahead of ``device`` (dd reads through it)."""
    path = "/sys/block/%s/queue/read_ahead_kb" % os.path.basename(device)
    try:
        with open(path) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def _sides(data_copy: Any, read_ahead_kb: Optional[int]) -> dict[str, str]:
    """What each side of the comparison does, for copy.md and copy.json."""
    chunk = data_copy.HostAssistedCopy(_Driver())._chunk_bytes()
    depth = data_copy.READ_AHEAD_CHUNKS
    return {
        "dd": "`dd if=SRC of=DST bs=%s oflag=direct` (`count=` the length)"
              ": one process reads %s through the page cache (buffered, "
              "the kernel's read-ahead of the source device: %s KiB), then "
              "writes it with O_DIRECT from its own buffer (small pages), "
              "in turn; no `fsync` (each O_DIRECT "
              "write has reached the device when it returns, but the "
              "device is not flushed); writes every block, zeros included "
              "(no `conv=sparse`). Timed: the process, from start to exit."
              % (DD_BLOCK, DD_BLOCK, "?" if read_ahead_kb is None
                 else read_ahead_kb),
        "ours": "`HostAssistedCopy._copy_devices`: opens both devices with "
                "O_DIRECT; %d MiB chunks through %d buffers allocated "
                "once, on transparent huge pages (where the kernel has "
                "them: a request is then not capped at the device's "
                "`max_segments` small pages), a thread reading (`preadv`) "
                "up to %d "
                "chunks ahead while the caller writes (`pwrite`, in "
                "order), so a read and a write are in flight together; "
                "`fsync` of the destination before it returns; with skip "
                "zeros, the zero MiBs it reads are not written (the "
                "destination reads back zeros). Timed: the call, opens, "
                "`fsync` and closes included."
                % (chunk // units.Mi, depth, depth - 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the devices, run every case, tear down; return the JSON."""
    from powerflex_cache_driver.simulator import loop

    size = args.size_mib * units.Mi
    data = min(args.data_mib, args.size_mib) * units.Mi
    runs = args.copy_runs
    data_copy = _data_copy()
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
        read_ahead_kb = _read_ahead_kb(full)
        rows += _compare(
            "full %d MiB, random data" % args.size_mib, size, runs,
            _requests(full, dst, lambda: _dd(full, dst, size)),
            _requests(full, dst,
                      lambda: _ours(full, dst, size, skip_zeros=False)))
        rows += _compare(
            "first %d MiB (image size), length %d MiB" % (
                data // units.Mi, data // units.Mi), data, runs,
            _requests(partial, dst, lambda: _dd(partial, dst, data)),
            _requests(partial, dst,
                      lambda: _ours(partial, dst, data, skip_zeros=True)))
        rows += _compare(
            "first %d MiB of data, length %d MiB, skip zeros" % (
                data // units.Mi, args.size_mib), size, runs,
            _requests(partial, dst, lambda: _dd(partial, dst, size)),
            _requests(partial, dst,
                      lambda: _ours(partial, dst, size, skip_zeros=True)))
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
            "runs": runs,
            "dd": "dd if=SRC of=DST bs=%s oflag=direct" % DD_BLOCK,
            "read_ahead_kb": read_ahead_kb,
            "sides": _sides(data_copy, read_ahead_kb),
        },
        "rows": rows,
    }


def _spread(row: dict[str, Any]) -> str:
    return "%.0f–%.0f" % (row["min_mib_s"], row["max_mib_s"])


def table(results: dict[str, Any], style: str = "plain") -> str:
    """The results as a table: ``plain`` text or ``markdown``.

    Per case, dd's row then ours: MiB/s of each run in the order run,
    the median, the spread (min-max MiB/s), the median time, and on ours'
    row the ratio of the two medians (ours MiB/s over dd's).
    """
    from tools import texttable
    headers = ["case", "tool", "MiB/s per run", "median MiB/s",
               "min–max MiB/s", "median s", "ours/dd (medians)"]
    rows = []
    for row in results["rows"]:
        ratio = row["ratio_to_dd"]
        rows.append([
            row["case"], row["tool"],
            " ".join("%.0f" % rate for rate in row["mib_s"]),
            "%.0f" % row["median_mib_s"], _spread(row),
            "%.2f" % row["median_s"],
            "" if ratio is None else "%.2f" % ratio])
    if style == "markdown":
        return texttable.markdown(headers, rows)
    return texttable.plain(headers, rows)


def time_table(results: dict[str, Any], style: str = "plain") -> str:
    """How each side ran: block requests per copy, and ours' time split.

    Medians over the runs: read requests on the source and their mean
    size, write requests on the destination and theirs; for ours, the time
    in reads (the read-ahead thread) and in writes (the caller), which
    overlap, and in the final ``fsync``.
    """
    from tools import texttable
    headers = ["case", "tool", "source reads", "KiB each",
               "destination writes", "KiB each", "median s", "reading s",
               "writing s", "fsync s"]
    rows = []
    for row in results["rows"]:
        if "median_reads" not in row:
            continue
        timed = "median_read_s" in row
        rows.append([
            row["case"], row["tool"], "%.0f" % row["median_reads"],
            "%.0f" % row["median_read_kib"], "%.0f" % row["median_writes"],
            "%.0f" % row["median_write_kib"], "%.2f" % row["median_s"],
            "%.2f" % row["median_read_s"] if timed else "",
            "%.2f" % row["median_write_s"] if timed else "",
            "%.3f" % row["median_fsync_s"] if timed else ""])
    if style == "markdown":
        return texttable.markdown(headers, rows)
    return texttable.plain(headers, rows)


def write(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write copy.md and copy.json into ``out_dir``; return their paths.

    Only those two: ``--out-dir doc/bench`` leaves ``latest.*`` alone.
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = results["meta"]
    sides = meta["sides"]
    md = os.path.join(out_dir, "copy.md")
    with open(md, "w", encoding="utf-8") as handle:
        handle.write(
            "# Host-assisted copy vs dd\n\n"
            "`%s` on %s (%d CPUs), %s. Loop devices over sparse files on "
            "the local disk (source and destination share it), direct-io "
            "%s; page cache dropped before every run: %s. Runs per case and "
            "tool: %d, alternating (dd first in odd rounds, ours "
            "first in even ones); medians, spreads (min\u2013max MiB/s of "
            "the runs) and the ratio of the medians (ours MiB/s over "
            "dd's).\n\n"
            "- **dd**: %s\n"
            "- **ours**: %s\n\n%s\n\n"
            "How each side ran (medians per copy): block-layer requests "
            "on the source and destination loop devices "
            "(`/sys/block/*/stat`), and where ours spends its time "
            "(reading and writing overlap):\n\n%s\n" % (
                meta["command"], meta["machine"], meta["cpus"],
                meta["date"], "on" if meta["loop_direct_io"] else "off",
                "yes" if meta["caches_dropped"] else "no", meta["runs"],
                sides["dd"], sides["ours"], table(results, "markdown"),
                time_table(results, "markdown")))
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
        args.size_mib, args.data_mib, args.copy_runs = 256, 64, 1
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        print("%s: needs root and losetup (loop devices)" % COMMAND,
              file=sys.stderr)
        return 2
    print("Copy benchmark: HostAssistedCopy vs dd, %d MiB loop devices, "
          "%d runs of each" % (args.size_mib, args.copy_runs), flush=True)
    results = run(args)
    written = write(results, args.out_dir)
    print()
    print(table(results))
    print()
    print(time_table(results))
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
