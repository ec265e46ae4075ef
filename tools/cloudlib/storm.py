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
"""A storm of concurrent volume creates from one new image.

``tools/cloud storm [--count N] [--image-size GIB] [--json PATH]`` runs,
against the running cloud, whichever driver its ``cinder.conf`` selects
(``tools/cloud up --driver``, ``tools/cloud switch-driver``):

1. a new raw image of ``--image-size`` GiB (default 1): sparse, with a
   random first and last MiB and a distinct 4 KiB block every 4 MiB (at
   a shifting offset), so that a wrong byte anywhere in it is caught; its
   content is new on every run, so no cache entry of it exists. It is
   uploaded to the cloud's Glance from a sparse file.
2. ``--count`` creates (default 100) from it at once, one thread each,
   through the Block Storage API as the non-admin ``demo`` project, with
   the cloud's default volume type. That type names the backend
   (``volume_backend_name``), which both cinder-volume services serve as
   one cluster (``cluster = cloud`` in the cloud's cinder.conf, so
   ``cloud@powerflex``): the scheduler casts each create to the cluster's
   topic queue (``Volume.service_topic_queue`` is the cluster name when
   the volume is clustered), RabbitMQ hands each message to one of the
   two services consuming that queue, and the service that takes it
   records its own host on the volume (``VolumeManager.
   _set_resource_host``), which the admin's ``os-vol-host-attr:host``
   shows. ``--count`` is meant to be above the simulated array's
   snapshots per vtree (10 here), so that cache entries fill up: this
   package's driver rotates them, Cinder's fails a create at the limit
   and re-downloads. The project's ``volumes`` and ``gigabytes`` quotas
   (and the volume type's) are made unlimited for the storm and restored
   afterwards (rows the project had are put back, rows it had not are
   removed), so that quota is never what stops a create.
3. It reports: time to the first and to the last ``available`` volume,
   p50/p95/max per create (API call to ``available``, polled every
   0.5 s), the creates that failed and the user messages Cinder recorded
   for them (``/v3/messages``), the image's downloads (Glance's access
   log: ``GET /v2/images/<id>/file``), the cache-entry rotations (this
   package's driver logs "Image <id>: cache entry <old> replaced by
   <new>." in the cinder-volume logs) and the cache volumes made for the
   image (Cinder's database, deleted rows included), the array requests
   by operation during the storm (the simulator's ``--verbose`` request
   log, between two marks), the bytes the hosts wrote, the peak resident
   memory of each cinder-volume service (its whole process group:
   privsep daemon, rootwrap and qemu-img or dd children included;
   sampled every 0.2 s) and where each volume landed.

   Bytes written through the hosts are ``write_bytes`` of
   ``/proc/<pid>/io`` summed over each cinder-volume process group,
   between the two marks: the kernel counts there what a process sends
   towards storage (page cache pages it dirties, ``O_DIRECT`` writes to
   the mapped ``/dev/loop`` devices), and a child's counts move into its
   parent when the parent reaps it, so the ``qemu-img`` and ``dd`` that
   rootwrap runs, and this package's own ``O_DIRECT`` copy, are all
   there. It includes the image file Cinder downloads into its
   conversion directory before ``qemu-img convert`` (a download costs
   twice the image) and the services' own log lines (their growth is
   shown and taken off). The growth of the simulator's sparse backing
   files would not do: the simulated array's own snapshot copies grow
   them too, and telling those from host writes needs the per-attach
   bookkeeping ``tools/probe.py`` does inside one process. The
   simulator's own ``write_bytes`` (the array's internal copies) is
   shown beside it.
4. Every available volume's array volume (the simulator's backing file of
   its ``provider_id``) is checked against the image: its first bytes,
   64 KiB at a time, by SHA-256 against the image's (holes, found with
   ``SEEK_DATA``/``SEEK_HOLE``, are zeros without being read), and
   everything after the image must read as zeros.
5. Every volume it made is deleted (and waited for), the image's cache
   entries are evicted (their internal-tenant volumes deleted through the
   API as admin, as ``powerflex-cache-manage cache evict`` does), the
   image is deleted and the quotas restored: in a ``finally``, so also
   after a failure or Ctrl-C. Creates still at work then (after a Ctrl-C
   or a timeout) are waited for first: a volume force-deleted while its
   create runs gets its array volume made after its row is gone, and
   nothing would remove it. Ctrl-C twice during the clean-up abandons it.
   Then nothing the run made may be left: no volume of it, no cache
   volume of the image, no array volume that was not there before, not
   the image.
6. It prints its tables and, with ``--json PATH``, writes the figures.

Exit status 1 when any volume's bytes differ from the image, when
anything it made is left (a volume, a cache volume, an array volume, the
image), when the scenario itself broke, or, with this package's driver,
when any create failed or Glance served the image more than once. With
Cinder's driver failed creates and extra downloads are reported, not
fatal (it is expected to fail creates at the vtree limit).
"""

import collections
import concurrent.futures
import configparser
import errno
import hashlib
import json
import os
import random
import re
import signal
import threading
import time
from types import FrameType
from typing import Any, Iterator, Optional, cast

from tools.cloudlib import active_active
from tools.cloudlib import api
from tools.cloudlib import infra
from tools.cloudlib import layout
from tools.cloudlib import observe
from tools.cloudlib import procs
from tools.cloudlib import switch
from tools.cloudlib import switch_over

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PATTERN_EVERY = 4 * MIB
"""A distinct 4 KiB block of the image in every stretch of this size."""
PATTERN_BYTES = 4 * KIB
CHECK_CHUNK = 64 * KIB
"""Unit of the byte check: one SHA-256 per 64 KiB of the image."""
ZERO_CHUNK = bytes(CHECK_CHUNK)
SAMPLE_SECONDS = 0.2
POLL_SECONDS = 0.5
DELETE_TIMEOUT = 600.0
SETTLED = ("available", "error")
QUOTA_RESOURCES = ("volumes", "gigabytes", "volumes_%s" % layout.BACKEND,
                   "gigabytes_%s" % layout.BACKEND)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}")
REQUEST_ID = re.compile(r"\breq-[0-9a-f-]{36}")
PERIODIC_OPS = ("queryPoolStatistics", "querySelectedStatistics")
"""Array requests the services send on their own every minute (stats)."""


def _log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------ pure


def pattern_block(seed: bytes, number: int,
                  length: int = PATTERN_BYTES) -> bytes:
    """``length`` bytes that only block ``number`` of run ``seed`` has."""
    out = bytearray()
    block = hashlib.sha256(seed + number.to_bytes(8, "big")).digest()
    while len(out) < length:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:length])


def image_regions(size: int, seed: bytes, head: bytes, tail: bytes
                  ) -> list[tuple[int, bytes]]:
    """``(offset, data)`` of every non-zero region of a new image.

    ``head`` at offset 0, ``tail`` at the end, and a 4 KiB
    :func:`pattern_block` in every :data:`PATTERN_EVERY` between them, at
    an offset inside the stretch that shifts from one to the next (so
    that a copy that is off by a page or a MiB is caught). Everything
    else is zeros.
    """
    if size < len(head) + len(tail):
        raise ValueError("an image of %d bytes cannot hold its first and "
                         "last MiB" % size)
    regions = [(0, head)]
    pages = PATTERN_EVERY // PATTERN_BYTES
    number = 1
    base = PATTERN_EVERY
    while True:
        offset = base + (number * 37 % pages) * PATTERN_BYTES
        if offset + PATTERN_BYTES > size - len(tail):
            break
        regions.append((offset, pattern_block(seed, number)))
        number += 1
        base += PATTERN_EVERY
    regions.append((size - len(tail), tail))
    return regions


def chunk_digests(size: int, regions: list[tuple[int, bytes]],
                  chunk: int = CHECK_CHUNK) -> dict[int, str]:
    """SHA-256 of each ``chunk`` of the image that is not all zeros.

    ``regions`` must not overlap (:func:`image_regions`). A chunk not in
    the result is zeros.
    """
    touched: dict[int, list[tuple[int, bytes]]] = {}
    for offset, data in regions:
        first = offset // chunk
        last = (offset + len(data) - 1) // chunk
        for index in range(first, last + 1):
            touched.setdefault(index, []).append((offset, data))
    digests = {}
    for index, parts in touched.items():
        start = index * chunk
        length = min(chunk, size - start)
        content = bytearray(length)
        for offset, data in parts:
            lo = max(offset, start)
            hi = min(offset + len(data), start + length)
            content[lo - start:hi - start] = data[lo - offset:hi - offset]
        if any(content):
            digests[index] = hashlib.sha256(content).hexdigest()
    return digests


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of the data regions of ``fd``'s first bytes.

    ``SEEK_DATA``/``SEEK_HOLE``; where the file system has no holes to
    tell, the whole file is one extent (read, and checked, in full).
    """
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield offset, size - offset
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        offset = end


def check_bytes(path: str, image_size: int, digests: dict[int, str],
                chunk: int = CHECK_CHUNK) -> Optional[str]:
    """Compare an array volume's backing file with the image.

    Its first ``image_size`` bytes must have the image's chunk
    ``digests`` (:func:`chunk_digests`; a chunk that only holes cover is
    zeros without being read), and every byte after them must be zero.
    Return None when they match, else what differs first.
    """
    zero_digest = hashlib.sha256(bytes(chunk)).hexdigest()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < image_size:
            return "the array volume holds %d bytes, less than the " \
                   "image's %d" % (size, image_size)
        extents = list(data_extents(fd, size))
        holding = set()
        for start, length in extents:
            if start >= image_size:
                continue
            end = min(start + length, image_size)
            holding.update(range(start // chunk, (end - 1) // chunk + 1))
        missing = sorted(set(digests) - holding)
        if missing:
            return "zeros (a hole) at byte %d where the image has data" \
                   % (missing[0] * chunk)
        for index in sorted(holding):
            start = index * chunk
            length = min(chunk, image_size - start)
            data = os.pread(fd, length, start)
            wanted = digests.get(index)
            if wanted is None:
                wanted = zero_digest if length == chunk else \
                    hashlib.sha256(bytes(length)).hexdigest()
            if hashlib.sha256(data).hexdigest() != wanted:
                return "bytes %d-%d differ from the image" % (
                    start, start + length - 1)
        for start, length in extents:
            offset = max(start, image_size)
            end = start + length
            while offset < end:
                data = os.pread(fd, min(chunk, end - offset), offset)
                if not data:
                    break
                if data != ZERO_CHUNK[:len(data)]:
                    return "non-zero bytes at %d, past the image's end" \
                           % offset
                offset += len(data)
    finally:
        os.close(fd)
    return None


def percentile(values: list[float], share: float) -> Optional[float]:
    """The nearest-rank ``share`` percentile of ``values`` (None: empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-share * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def array_requests(lines: list[str]) -> collections.Counter:
    """``{(method, operation, status): count}`` of simulator log lines."""
    counts: collections.Counter = collections.Counter()
    for line in lines:
        found = switch_over.GATEWAY_REQUEST.search(line)
        if found:
            counts[(found.group("method"), found.group("op"),
                    found.group("status"))] += 1
    return counts


def rotations(lines: list[str], image_id: str) -> list[tuple[str, str]]:
    """``(old, new)`` cache volumes of the image's rotations in log lines."""
    found = []
    for line in lines:
        match = active_active.ROTATED.search(line)
        if match and match.group(1) == image_id:
            found.append((match.group(2), match.group(3)))
    return found


def failure_reasons(lines: list[str], ids: set[str]
                    ) -> dict[str, list[str]]:
    """What the services' ERROR lines say about each volume of ``ids``.

    A volume's lines carry the request id of its create (``req-...``);
    the first line of each ERROR record of that request (``Exception
    during message handling: <exception>``, the driver's own errors...)
    is what went wrong, whichever service (retries included) logged it.
    """
    requests: dict[str, set[str]] = {}
    errors: dict[str, list[str]] = {}
    for line in lines:
        request = REQUEST_ID.search(line)
        if request is None:
            continue
        if switch.PROBLEM.match(line) and "] " in line:
            text = line.split("] ", 1)[1].strip()
            known = errors.setdefault(request.group(0), [])
            if text and text[:400] not in known:
                known.append(text[:400])
        for volume_id in set(UUID.findall(line)) & ids:
            requests.setdefault(volume_id, set()).add(request.group(0))
    return {volume_id: [text for request in sorted(found)
                        for text in errors.get(request, [])]
            for volume_id, found in requests.items()}


def human_bytes(count: Optional[float]) -> str:
    """``count`` bytes as B, KiB, MiB or GiB."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return "%.0f %s" % (value, unit) if unit == "B" else \
                "%.1f %s" % (value, unit)
        value /= 1024
    return "%.2f GiB" % value


def seconds(value: Optional[float]) -> str:
    """Seconds with one decimal, or ``-``."""
    return "-" if value is None else "%.1f s" % value


def volume_driver(conf_path: str) -> str:
    """``ours`` or ``stock``: the backend's ``volume_driver`` in cinder.conf.

    Anything else is returned as it is written.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf_path)
    driver = parser.get(layout.BACKEND, "volume_driver", fallback="")
    for name, path in layout.DRIVERS.items():
        if driver == path:
            return name
    return driver or "unknown"


def process_io(pgid: int) -> dict[str, int]:
    """``read_bytes``, ``write_bytes``, ``cancelled_write_bytes`` of a group.

    Summed over the live members of process group ``pgid``
    (``/proc/<pid>/io``; the children they reaped are in their counts).
    """
    totals = {"read_bytes": 0, "write_bytes": 0, "cancelled_write_bytes": 0}
    for pid in procs.group_members(pgid):
        try:
            with open("/proc/%d/io" % pid) as handle:
                for line in handle:
                    key, _sep, value = line.partition(":")
                    if key in totals:
                        totals[key] += int(value)
        except OSError:
            continue
    return totals


# ------------------------------------------------------------------ cloud


class Sampler(threading.Thread):
    """Samples the resident memory of process groups every 0.2 s."""

    def __init__(self, table: procs.ProcessTable, names: list[str]) -> None:
        super().__init__(name="storm-rss", daemon=True)
        self.table = table
        self.names = names
        self.peak_kib = {name: 0 for name in names}
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> dict[str, int]:
        """The resident KiB of each group now (0 if it does not run)."""
        now = {}
        for name in self.names:
            pid = self.table.pid(name)
            now[name] = procs.group_rss_kib(pid) if pid else 0
        return now

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._stop_event.is_set():
            for name, kib in self.sample().items():
                self.peak_kib[name] = max(self.peak_kib[name], kib)
            self.samples += 1
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join(10)


class Storm:
    """One run; ``failed`` lists what makes it fail, ``figures`` the rest."""

    def __init__(self, description: dict[str, Any], count: int,
                 image_gib: int, timeout: float) -> None:
        self.description = description
        self.state = description["state_dir"]
        self.count = count
        self.image_gib = image_gib
        self.image_size = image_gib * GIB
        self.timeout = timeout
        self.admin = api.Session(description["admin"])
        self.demo = api.Session(description["demo"])
        self.gateway = observe.Gateway(description["gateway"])
        self.table = procs.ProcessTable(self.state)
        self.database = infra.MariaDB(self.state, self.table,
                                      layout.PORTS["mariadb"])
        self.demo_project = description["ids"]["demo_project_id"]
        self.internal = description["ids"]["internal_project_id"]
        self.driver = volume_driver(os.path.join(
            self.state, "etc", "cinder", "cinder.conf"))
        self.names = ["cinder-volume-%d" % number for number in
                      range(1, len(layout.VOLUME_HOSTS) + 1)]
        self.failed: list[str] = []
        self.figures: dict[str, Any] = {"driver": self.driver,
                                        "count": count,
                                        "image_gib": image_gib}
        self.phases: dict[str, float] = {}
        self.image_id: Optional[str] = None
        self.image_path = os.path.join(self.state, "storm-image-%d.raw"
                                       % os.getpid())
        self.digests: dict[int, str] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.post_failures: list[str] = []
        self.lock = threading.Lock()
        self.pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self.quota_explicit: Optional[dict[str, int]] = None
        self.quota_changed: list[str] = []
        self.quota_before: dict[str, int] = {}
        self.array_before: set[str] = set()

    # -- helpers -------------------------------------------------------------

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query on Cinder's database."""
        return [line.split("\t") for line in
                self.database.query(query).splitlines() if line]

    def log_path(self, name: str) -> str:
        """A file under the cloud's log directory."""
        return os.path.join(self.state, "log", name)

    def host_logs(self) -> list[str]:
        """The cinder-volume services' own logs (``log_file``)."""
        return [self.log_path("%s.log" % host)
                for host in layout.VOLUME_HOSTS]

    def service_logs(self, number: int) -> list[str]:
        """Every log file cinder-volume ``number``'s group writes."""
        return [self.log_path("%s.log" % layout.VOLUME_HOSTS[number - 1]),
                self.log_path("cinder-volume-%d.log" % number)]

    @staticmethod
    def size_of(path: str) -> int:
        """A file's size, 0 if it is missing."""
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return 0

    def marks(self) -> dict[str, Any]:
        """Where the logs end and what the processes wrote so far."""
        paths = self.host_logs() + [self.log_path("gateway.log")]
        for number in range(1, len(self.names) + 1):
            paths += self.service_logs(number)
        io = {}
        for name in self.names + ["gateway"]:
            pid = self.table.pid(name)
            io[name] = process_io(pid) if pid else {}
        return {"logs": {path: self.size_of(path) for path in paths},
                "io": io, "clock": time.monotonic()}

    @staticmethod
    def new_lines(path: str, start: dict[str, Any],
                  end: Optional[dict[str, Any]] = None) -> list[str]:
        """Lines of a log written between two :meth:`marks` (or since one)."""
        if end is None:
            return switch.new_log_lines(path, start["logs"].get(path, 0))
        offset = start["logs"].get(path, 0)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(max(0, end["logs"].get(path, 0) - offset))
        except FileNotFoundError:
            return []
        return data.decode("utf-8", "replace").splitlines()

    def list_volumes(self, project: Optional[str] = None
                     ) -> list[dict[str, Any]]:
        """Every volume the admin sees (of ``project`` if given)."""
        path = "/v3/volumes/detail?all_tenants=1&limit=1000"
        if project:
            path += "&project_id=%s" % project
        return self.admin.get("cinder", path)["volumes"]

    # -- the run -------------------------------------------------------------

    def run(self) -> None:
        """Every step up to the byte check; clean-up is :meth:`cleanup`."""
        _log("storm: %d creates of %d GiB from a new %d GiB image, driver "
             "%s" % (self.count, self.image_gib, self.image_gib,
                     self.driver))
        started = time.monotonic()
        self.make_image()
        self.phases["image written and uploaded"] = \
            time.monotonic() - started
        self.raise_quotas()
        self.array_before = set(self.gateway.volumes())
        started = time.monotonic()
        self.storm()
        self.phases["storm (first create to last settled)"] = \
            time.monotonic() - started
        started = time.monotonic()
        self.check_volumes()
        self.phases["byte check"] = time.monotonic() - started

    def make_image(self) -> None:
        """Write the new image as a sparse file and upload it."""
        seed = os.urandom(16)
        regions = image_regions(self.image_size, seed,
                                random.randbytes(MIB), random.randbytes(MIB))
        fd = os.open(self.image_path,
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, self.image_size)
            for offset, data in regions:
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        self.digests = chunk_digests(self.image_size, regions)
        self.figures["image_data_bytes"] = sum(len(d) for _o, d in regions)
        name = "storm-%s" % seed.hex()[:12]
        self.image_id = self.admin.call(
            "POST", "glance", "/v2/images", body={
                "name": name, "disk_format": "raw",
                "container_format": "bare",
                "visibility": "public"})["id"]
        self.figures["image_id"] = self.image_id
        with open(self.image_path, "rb") as handle:
            # urllib streams a file object in blocks; the length makes it
            # a plain (not chunked) upload.
            self.admin.call(
                "PUT", "glance", "/v2/images/%s/file" % self.image_id,
                raw=cast(bytes, handle),
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(self.image_size)},
                timeout=600)
        status = self.admin.get("glance", "/v2/images/%s"
                                % self.image_id)["status"]
        if status != "active":
            raise procs.CloudError("image %s is %s after the upload"
                                   % (self.image_id, status))
        _log("image %s (%s): %d GiB, %s of data" % (
            self.image_id, name, self.image_gib,
            human_bytes(self.figures["image_data_bytes"])))

    def raise_quotas(self) -> None:
        """Make the project's volume quotas unlimited for the storm."""
        shown = self.admin.get("cinder", "/v3/os-quota-sets/%s?usage=True"
                               % self.demo_project)["quota_set"]
        self.quota_before = {key: int(value["limit"])
                             for key, value in shown.items()
                             if isinstance(value, dict)}
        wanted = {key: -1 for key in QUOTA_RESOURCES
                  if self.quota_before.get(key, -1) != -1}
        if not wanted:
            self.figures["quotas"] = "already unlimited"
            return
        self.quota_explicit = {resource: int(limit) for resource, limit in
                               self.sql(
                                   "SELECT resource, hard_limit FROM "
                                   "cinder.quotas WHERE deleted = 0 AND "
                                   "project_id = '%s';" % self.demo_project)}
        self.admin.call("PUT", "cinder", "/v3/os-quota-sets/%s"
                        % self.demo_project, body={"quota_set": wanted})
        self.quota_changed = sorted(wanted)
        self.figures["quotas"] = "unlimited for the storm: %s (were %s)" % (
            ", ".join(self.quota_changed),
            ", ".join(str(self.quota_before[k]) for k in self.quota_changed))

    def restore_quotas(self) -> None:
        """Put the project's quotas back as :meth:`raise_quotas` found them."""
        if self.quota_explicit is None:
            return
        explicit = self.quota_explicit
        path = "/v3/os-quota-sets/%s" % self.demo_project
        if all(key in explicit for key in self.quota_changed):
            self.admin.call("PUT", "cinder", path, body={"quota_set": {
                key: explicit[key] for key in self.quota_changed}})
        else:
            # No per-resource delete: drop the project's rows (its usage
            # stays), then put back the ones it had.
            self.admin.call("DELETE", "cinder", path)
            if explicit:
                self.admin.call("PUT", "cinder", path,
                                body={"quota_set": explicit})
        self.quota_explicit = None
        shown = self.admin.get("cinder", path)["quota_set"]
        after = {key: int(value) for key, value in shown.items()
                 if key in self.quota_before and not isinstance(value, dict)}
        differ = {key: (self.quota_before[key], after.get(key))
                  for key in self.quota_before
                  if after.get(key) != self.quota_before[key]}
        self.figures["quotas_restored"] = not differ
        if differ:
            self.failed.append("quotas not restored: %s" % differ)

    def create(self, number: int) -> None:
        """One create (a thread of the storm)."""
        name = "storm-%s-%03d" % ((self.image_id or "")[:8], number)
        began = time.monotonic()
        try:
            volume_id = self.demo.call("POST", "cinder", "/v3/volumes",
                                       body={"volume": {
                                           "name": name,
                                           "size": self.image_gib,
                                           "imageRef": self.image_id}}
                                       )["volume"]["id"]
        except api.ApiError as exc:
            with self.lock:
                self.post_failures.append(str(exc))
            return
        with self.lock:
            self.volumes[volume_id] = {
                "id": volume_id, "name": name, "began": began,
                "accepted": time.monotonic(), "available": None,
                "status": "creating"}

    def storm(self) -> None:
        """Fire the creates at once, wait until every volume settled."""
        sampler = Sampler(self.table, self.names)
        self.figures["rss_before_kib"] = sampler.sample()
        start = self.marks()
        sampler.start()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            self.count, thread_name_prefix="storm-create")
        futures = [self.pool.submit(self.create, number)
                   for number in range(self.count)]
        origin = start["clock"]
        deadline = origin + self.timeout
        try:
            while True:
                time.sleep(POLL_SECONDS)
                self.poll()
                posting = not all(f.done() for f in futures)
                with self.lock:
                    pending = [v for v in self.volumes.values()
                               if v["status"] not in SETTLED]
                if not posting and not pending:
                    break
                if time.monotonic() > deadline:
                    self.failed.append(
                        "%d volumes not settled after %.0f s: %s" % (
                            len(pending), self.timeout,
                            collections.Counter(v["status"]
                                                for v in pending)))
                    break
        finally:
            end = self.marks()
            sampler.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.figures["rss_peak_kib"] = sampler.peak_kib
        self.figures["rss_samples"] = sampler.samples
        self.figures["rss_after_storm_kib"] = sampler.sample()
        self.measure(start, end)

    def poll(self) -> None:
        """Note the volumes that settled since the last poll."""
        now = time.monotonic()
        listed = {v["id"]: v for v in self.list_volumes(self.demo_project)}
        with self.lock:
            for volume_id, record in self.volumes.items():
                shown = listed.get(volume_id)
                if shown is None or record["status"] in SETTLED:
                    continue
                record["status"] = shown["status"]
                if shown["status"] == "available":
                    record["available"] = now

    def measure(self, start: dict[str, Any], end: dict[str, Any]) -> None:
        """Every figure of the storm window (start and end marks)."""
        origin = start["clock"]
        listed = {v["id"]: v for v in self.list_volumes(self.demo_project)}
        records = list(self.volumes.values())
        for record in records:
            shown = listed.get(record["id"], {})
            record["host"] = (shown.get("os-vol-host-attr:host") or
                              "").split("#")[0] or None
            record["provider_id"] = shown.get("provider_id")
            record["size"] = shown.get("size")
            if record["status"] not in SETTLED and shown:
                record["status"] = shown["status"]
        available = [r for r in records if r["available"] is not None]
        per_create = [r["available"] - r["began"] for r in available]
        accepted = [r["accepted"] - r["began"] for r in records]
        figures = self.figures
        figures["storm_seconds"] = round(end["clock"] - origin, 1)
        figures["statuses"] = dict(collections.Counter(
            r["status"] for r in records))
        figures["available"] = len(available)
        figures["failed_creates"] = self.count - len(available)
        figures["api_refusals"] = list(self.post_failures)
        figures["first_available_s"] = round(min(
            r["available"] for r in available) - origin, 1) \
            if available else None
        figures["last_available_s"] = round(max(
            r["available"] for r in available) - origin, 1) \
            if available else None
        for share in (50, 95, 100):
            value = percentile(per_create, share)
            figures["create_p%d_s" % share] = None if value is None \
                else round(value, 1)
        value = percentile(accepted, 95)
        figures["api_accept_p95_s"] = None if value is None \
            else round(value, 2)
        figures["sizes_gib"] = dict(collections.Counter(
            r["size"] for r in available))
        figures["per_host"] = dict(collections.Counter(
            r["host"] or "none" for r in records))

        # Cinder's user messages and the services' ERROR lines, for what
        # failed.
        failed_ids = {r["id"] for r in records if r["status"] != "available"}
        cache = [v for v in self.list_volumes(self.internal)
                 if v.get("name") == "image-%s" % self.image_id]
        watched = failed_ids | {v["id"] for v in cache
                                if v["status"] != "available"}
        messages = self.admin.get("cinder", "/v3/messages?limit=1000"
                                  ).get("messages", [])
        ours = [m for m in messages if m.get("resource_uuid") in watched]
        figures["user_messages"] = dict(collections.Counter(
            "%s (%s)" % (m.get("user_message"), m.get("event_id"))
            for m in ours))
        lines = []
        for path in self.host_logs():
            lines += self.new_lines(path, start)
        reasons = failure_reasons(lines, watched) if watched else {}
        figures["failure_log_lines"] = dict(collections.Counter(
            UUID.sub("<id>", text) for texts in reasons.values()
            for text in texts))
        for record in records:
            record["error_log"] = reasons.get(record["id"])

        # Downloads, rotations, cache volumes.
        figures["glance_downloads"] = observe.glance_downloads(
            self.state, self.image_id or "")
        per_service: dict[str, int] = {}
        all_rotations = []
        for host, path in zip(layout.VOLUME_HOSTS, self.host_logs()):
            found = rotations(self.new_lines(path, start, end),
                              self.image_id or "")
            per_service[host] = len(found)
            all_rotations += found
        figures["rotations"] = len(all_rotations)
        figures["rotations_per_host"] = per_service
        twice = [old for old, n in collections.Counter(
            old for old, _new in all_rotations).items() if n > 1]
        figures["entries_rotated_twice"] = twice
        made = self.sql(
            "SELECT status, deleted FROM cinder.volumes WHERE project_id = "
            "'%s' AND display_name = 'image-%s';"
            % (self.internal, self.image_id))
        figures["cache_volumes_made"] = len(made)
        figures["cache_volumes_now"] = dict(collections.Counter(
            status for status, deleted in made if deleted == "0"))
        figures["cache_entries_now"] = int(self.sql(
            "SELECT COUNT(*) FROM cinder.image_volume_cache_entries WHERE "
            "image_id = '%s';" % self.image_id)[0][0])

        # Array requests between the marks.
        calls = array_requests(self.new_lines(
            self.log_path("gateway.log"), start, end))
        figures["array_calls"] = {"%s %s -> %s" % key: n
                                  for key, n in calls.most_common()}
        figures["array_calls_total"] = sum(calls.values())
        figures["array_calls_not_periodic"] = sum(
            n for (_method, op, _status), n in calls.items()
            if op not in PERIODIC_OPS)
        figures["array_errors"] = sum(
            n for (_method, _op, status), n in calls.items()
            if not status.startswith("2"))

        # Bytes written by the hosts (and by the array itself).
        writes = {}
        for number, name in enumerate(self.names, 1):
            before = start["io"].get(name) or {}
            after = end["io"].get(name) or {}
            delta = {key: after.get(key, 0) - before.get(key, 0)
                     for key in ("read_bytes", "write_bytes",
                                 "cancelled_write_bytes")}
            logged = sum(end["logs"].get(p, 0) - start["logs"].get(p, 0)
                         for p in self.service_logs(number))
            delta["log_bytes"] = logged
            delta["data_written"] = (delta["write_bytes"] -
                                     delta["cancelled_write_bytes"] -
                                     logged)
            writes[layout.VOLUME_HOSTS[number - 1]] = delta
        figures["host_writes"] = writes
        figures["host_data_written"] = sum(w["data_written"]
                                           for w in writes.values())
        array_io = {key: (end["io"].get("gateway") or {}).get(key, 0) -
                    (start["io"].get("gateway") or {}).get(key, 0)
                    for key in ("read_bytes", "write_bytes")}
        figures["array_internal_writes"] = array_io["write_bytes"]

    def check_volumes(self) -> None:
        """Each available volume's array volume holds the image."""
        wrong = {}
        checked = 0
        for record in self.volumes.values():
            if record["status"] != "available":
                continue
            provider = record.get("provider_id")
            if not provider:
                wrong[record["id"]] = "no provider_id shown"
                continue
            path = os.path.join(self.state, "array", "volumes",
                                "vol-%s.img" % provider)
            try:
                problem = check_bytes(path, self.image_size, self.digests)
            except FileNotFoundError:
                problem = "no backing file %s" % path
            checked += 1
            record["bytes"] = problem or "match"
            if problem:
                wrong[record["id"]] = problem
        self.figures["bytes_checked"] = checked
        self.figures["bytes_wrong"] = wrong
        if wrong:
            self.failed.append("%d volumes do not hold the image's bytes: "
                               "%s" % (len(wrong), sorted(wrong.items())[:3]))

    def judge(self) -> None:
        """The failures that depend on the driver."""
        figures = self.figures
        if self.driver == "stock":
            return
        if figures.get("failed_creates"):
            self.failed.append("%d of %d creates failed with this "
                               "package's driver" % (
                                   figures["failed_creates"], self.count))
        if figures.get("glance_downloads", 0) > 1:
            self.failed.append("Glance served the image %d times"
                               % figures["glance_downloads"])
        if figures.get("entries_rotated_twice"):
            self.failed.append("cache entries rotated twice: %s"
                               % figures["entries_rotated_twice"])

    # -- clean-up ------------------------------------------------------------

    def cleanup(self) -> None:
        """Delete what the run made, evict, restore quotas; check."""
        started = time.monotonic()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        problems: list[str] = []
        try:
            self.wait_settled(problems)
            self.delete_volumes(self.demo, list(self.volumes), problems)
            if self.image_id:
                cache = [v["id"] for v in self.list_volumes(self.internal)
                         if v.get("name") == "image-%s" % self.image_id]
                self.figures["cache_volumes_evicted"] = len(cache)
                self.delete_volumes(self.admin, cache, problems)
                try:
                    self.admin.call("DELETE", "glance", "/v2/images/%s"
                                    % self.image_id)
                except api.ApiError as exc:
                    if exc.status != 404:
                        problems.append("image %s: %s" % (self.image_id,
                                                          exc))
        finally:
            try:
                self.restore_quotas()
            finally:
                try:
                    os.unlink(self.image_path)
                except FileNotFoundError:
                    pass
        self.figures["rss_after_cleanup_kib"] = Sampler(
            self.table, self.names).sample()
        left = self.left_behind()
        self.figures["left_behind"] = left + problems
        if left or problems:
            self.failed.append("left behind: %s" % (left + problems))
        self.phases["clean-up"] = time.monotonic() - started

    def wait_settled(self, problems: list[str]) -> None:
        """Wait until no create of the run is at work any more.

        A volume deleted (forced) while its create runs gets its array
        volume made after its row is gone, and nothing removes it then:
        after a Ctrl-C or a timeout the creates still at work are waited
        for (up to the storm's timeout) before anything is deleted.
        """
        def busy() -> list[str]:
            return [v["id"] for v in self.list_volumes(self.demo_project)
                    if v["id"] in self.volumes
                    and v["status"] not in SETTLED]

        if not self.volumes or not busy():
            return
        _log("storm: waiting for %d creates still at work before deleting "
             "(Ctrl-C twice abandons the clean-up)" % len(busy()))
        try:
            procs.wait_until(lambda: not busy(), self.timeout,
                             "the run's creates settled", interval=2.0)
        except procs.CloudError:
            problems.append("creates still at work after %.0f s: %s"
                            % (self.timeout, busy()))

    def delete_volumes(self, session: api.Session, ids: list[str],
                       problems: list[str]) -> None:
        """Delete volumes (force those stuck in creating); wait until gone."""
        if not ids:
            return
        shown = {v["id"]: v for v in self.list_volumes()}
        for volume_id in ids:
            if volume_id not in shown:
                continue
            status = shown[volume_id]["status"]
            try:
                if status in ("available", "error", "error_extending",
                              "error_restoring", "error_managing"):
                    session.call("DELETE", "cinder",
                                 "/v3/volumes/%s" % volume_id)
                else:
                    # Still creating after the storm gave up on it (or a
                    # Ctrl-C): only a force delete takes it.
                    self.admin.call("POST", "cinder", "/v3/volumes/%s/"
                                    "action" % volume_id,
                                    body={"os-force_delete": {}})
            except api.ApiError as exc:
                if exc.status != 404:
                    problems.append("delete %s (%s): %s"
                                    % (volume_id, status, exc))
        wanted = set(ids)

        def gone() -> bool:
            current = {v["id"]: v["status"] for v in self.list_volumes()
                       if v["id"] in wanted}
            stuck = [i for i, s in current.items() if s == "error_deleting"]
            if stuck:
                raise procs.CloudError("volumes in error_deleting: %s"
                                       % stuck)
            return not current

        try:
            procs.wait_until(gone, DELETE_TIMEOUT, "%d volumes deleted"
                             % len(ids), interval=1.0)
        except procs.CloudError as exc:
            problems.append(str(exc).splitlines()[0])

    def left_behind(self) -> list[str]:
        """What the run made that is still there."""
        left = []
        listed = self.list_volumes()
        ours = [v["id"] for v in listed if v["id"] in self.volumes]
        if ours:
            left.append("%d volumes: %s" % (len(ours), ours[:5]))
        if self.image_id:
            cache = [v["id"] for v in listed
                     if v.get("name") == "image-%s" % self.image_id]
            if cache:
                left.append("cache volumes %s" % cache)
            try:
                image = self.admin.get("glance", "/v2/images/%s"
                                       % self.image_id)
                left.append("image %s (%s)" % (self.image_id,
                                               image.get("status")))
            except api.ApiError as exc:
                if exc.status != 404:
                    raise
        array = set(self.gateway.volumes())
        if self.array_before:
            extra = sorted(array - self.array_before)
            if extra:
                left.append("array volumes %s" % extra)
        return left

    # -- report --------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """The main table's rows."""
        f = self.figures
        mark = "" if self.driver == "ours" else " (not fatal: stock)"
        rows = [
            ("driver", "%s (volume_driver in cinder.conf)" % self.driver),
            ("image", "%s, %d GiB raw, %s of data" % (
                f.get("image_id"), self.image_gib,
                human_bytes(f.get("image_data_bytes")))),
            ("creates", "%d at once, %d GiB each, as project demo"
             % (self.count, self.image_gib)),
            ("quotas", f.get("quotas", "-")),
            ("storm wall time", seconds(f.get("storm_seconds"))),
            ("first available", seconds(f.get("first_available_s"))),
            ("last available", seconds(f.get("last_available_s"))),
            ("per create p50 / p95 / max", "%s / %s / %s" % (
                seconds(f.get("create_p50_s")),
                seconds(f.get("create_p95_s")),
                seconds(f.get("create_p100_s")))),
            ("API accepted a create, p95", seconds(f.get(
                "api_accept_p95_s"))),
            ("statuses", f.get("statuses")),
            ("failed creates", "%s%s" % (f.get("failed_creates"), mark
                                         if f.get("failed_creates")
                                         else "")),
            ("recorded sizes (GiB: volumes)", f.get("sizes_gib")),
            ("per host", f.get("per_host")),
            ("Glance downloads (access log)", f.get("glance_downloads")),
            ("rotations (logs: replaced by)", "%s %s" % (
                f.get("rotations"), f.get("rotations_per_host"))),
            ("cache volumes made / entries now", "%s / %s" % (
                f.get("cache_volumes_made"), f.get("cache_entries_now"))),
            ("array requests (periodic stats excl.)", "%s (%s), %s "
             "answered with an error" % (
                 f.get("array_calls_total"),
                 f.get("array_calls_not_periodic"),
                 f.get("array_errors"))),
            ("host data written", human_bytes(f.get("host_data_written"))),
            ("array internal writes (simulator)",
             human_bytes(f.get("array_internal_writes"))),
            ("bytes checked / wrong", "%s / %s" % (
                f.get("bytes_checked"), len(f.get("bytes_wrong") or {}))),
            ("quotas restored", f.get("quotas_restored", "n/a")),
            ("left behind", f.get("left_behind") or "nothing"),
        ]
        return [{"what": k, "value": v} for k, v in rows]

    def report(self) -> None:
        """Print the tables."""
        f = self.figures
        _log("")
        _log(switch_over.table(self.rows(), [("what", "storm"),
                                             ("value", "")]))
        services = []
        for number, host in enumerate(layout.VOLUME_HOSTS, 1):
            name = "cinder-volume-%d" % number
            writes = (f.get("host_writes") or {}).get(host, {})
            services.append({
                "host": host,
                "creates": (f.get("per_host") or {}).get(
                    "%s@%s" % (host, layout.BACKEND), 0),
                "rotations": (f.get("rotations_per_host") or {}).get(host),
                "rss": " / ".join(
                    "%.0f" % ((f.get(key) or {}).get(name, 0) / 1024)
                    if f.get(key) else "-"
                    for key in ("rss_before_kib", "rss_peak_kib",
                                "rss_after_storm_kib",
                                "rss_after_cleanup_kib")),
                "written": human_bytes(writes.get("write_bytes")),
                "logs": human_bytes(writes.get("log_bytes")),
                "data": human_bytes(writes.get("data_written")),
                "read": human_bytes(writes.get("read_bytes"))})
        _log(switch_over.table(services, [
            ("host", "service"), ("creates", "creates"),
            ("rotations", "rotations"),
            ("rss", "RSS MiB: before / peak / end / cleaned"),
            ("written", "write_bytes"), ("logs", "of it logs"),
            ("data", "data written"), ("read", "read_bytes")]))
        calls = [{"call": k, "n": n}
                 for k, n in (f.get("array_calls") or {}).items()]
        if calls:
            _log(switch_over.table(calls, [("call", "array request"),
                                           ("n", "count")]))
        for text, n in (f.get("user_messages") or {}).items():
            _log("user message x%d: %s" % (n, text))
        for text, n in (f.get("failure_log_lines") or {}).items():
            _log("cinder-volume ERROR x%d: %s" % (n, text))
        for text in f.get("api_refusals") or []:
            _log("API refused a create: %s" % text)
        for name, value in self.phases.items():
            _log("%-40s %7.1f s" % (name, value))

    def document(self) -> dict[str, Any]:
        """Everything, for ``--json``."""
        volumes = []
        for record in self.volumes.values():
            entry = {key: record.get(key) for key in (
                "id", "name", "status", "host", "provider_id", "size",
                "bytes", "error_log")}
            entry["create_seconds"] = None if record["available"] is None \
                else round(record["available"] - record["began"], 2)
            volumes.append(entry)
        return {"figures": self.figures, "failed": self.failed,
                "phases": {k: round(v, 1) for k, v in self.phases.items()},
                "volumes": volumes}


def _cleanup_interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """SIGINT during the clean-up: say so; a second one abandons it."""
    _log("storm: cleaning up (volumes, cache entries, image, quotas); "
         "Ctrl-C again abandons the clean-up and leaves them")
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(description: dict[str, Any], count: int = 100,
         image_gib: int = 1, json_path: Optional[str] = None,
         timeout: Optional[float] = None) -> int:
    """Run the storm, print its tables; 0 unless a check failed."""
    if count < 1 or image_gib < 1:
        raise procs.CloudError("--count and --image-size must be 1 or more")
    storm = Storm(description, count, image_gib,
                  timeout if timeout else 600.0 + 6.0 * count)
    started = time.monotonic()
    try:
        storm.run()
        storm.judge()
    except KeyboardInterrupt:
        storm.failed.append("interrupted (Ctrl-C)")
        _log("storm: interrupted")
    except Exception as exc:  # noqa: BLE001 (clean up, then report)
        storm.failed.append("the storm stopped: %s: %s"
                            % (type(exc).__name__, exc))
        _log("storm: FAILED: %s" % exc)
    finally:
        previous = signal.signal(signal.SIGINT, _cleanup_interrupt)
        try:
            storm.cleanup()
        except KeyboardInterrupt:
            storm.failed.append("clean-up abandoned (Ctrl-C): what the run "
                                "made may be left")
        except Exception as exc:  # noqa: BLE001 (report it)
            storm.failed.append("the clean-up failed: %s: %s"
                                % (type(exc).__name__, exc))
        finally:
            signal.signal(signal.SIGINT, previous)
    storm.figures["wall_seconds"] = round(time.monotonic() - started, 1)
    storm.report()
    _log("storm: %.1f s in all" % storm.figures["wall_seconds"])
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(storm.document(), handle, indent=2, sort_keys=True,
                      default=str)
        _log("storm: figures written to %s" % json_path)
    for failure in storm.failed:
        _log("FAILED: %s" % failure)
    _log("%d passed, %d failed" % (0 if storm.failed else 1,
                                   1 if storm.failed else 0))
    return 1 if storm.failed else 0
