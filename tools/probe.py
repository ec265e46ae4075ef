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
"""Measure what one create cost, in an in-process Cinder of the harness.

A :class:`Probe` is attached to an in-process Cinder (see
:mod:`tools.harness`) and
observes, without changing any behaviour:

* the REST requests the simulator received (its request log);
* the array size of a volume before every ``setVolumeSize`` (a wrapper
  around the simulated array's ``set_volume_size``), so an extend can be
  told needed or redundant;
* the bytes this host wrote into array volumes: the growth of a device's
  allocated blocks between os-brick's ``connect_volume`` and
  ``disconnect_volume`` (image copies by ``qemu-img``, host-assisted
  copies of a vtree rotation);
* image downloads (the image service's counter);
* the INFO lines of this package's driver and of Cinder's create-volume
  flow, which tell where a volume came from and why it was (not) extended;
* when the benchmark attached a :class:`tools.bench_profile.Profiler` to
  the in-process Cinder, the database statements and locks (it counts
  inside every :meth:`Probe.window`).

:meth:`Probe.create` creates one volume and returns a :class:`Create`;
:meth:`Probe.window` measures any block of operations (concurrent creates).
"""

import collections
import contextlib
import dataclasses
import logging
import os
import threading
import time
from typing import Any, Iterator, Optional

import fixtures
from oslo_utils import units

from tools import bench_profile
from tools import origin

SDC_CONNECTOR = "tools.beds.simulated_sdc.SimulatedSdcConnector"
WATCHED_LOGGERS = ("powerflex_cache_driver",
                   "cinder.volume.flows.manager.create_volume",
                   "cinder.volume.manager")
FAILURE_PREFIX = "FAILED "


@dataclasses.dataclass(frozen=True)
class Resize:
    """One ``setVolumeSize`` the array executed."""

    array_volume: str
    before_gib: int
    target_gib: int

    @property
    def redundant(self) -> bool:
        """True when the volume already had the target size."""
        return self.target_gib <= self.before_gib


@dataclasses.dataclass
class Totals:
    """What a block of operations cost."""

    seconds: float = 0.0
    calls: collections.Counter = dataclasses.field(
        default_factory=collections.Counter)
    resizes: list = dataclasses.field(default_factory=list)
    downloads: int = 0
    bytes_copied: int = 0
    lines: list = dataclasses.field(default_factory=list)

    @property
    def extend_targets(self) -> list[int]:
        """Targets (GiB) of the ``setVolumeSize`` requests, in order."""
        return [r.target_gib for r in self.resizes]


@dataclasses.dataclass
class Create:
    """One volume created, and what it cost."""

    label: str
    requested_gib: int
    volume: Any
    db_gib: int
    array_gib: int
    totals: Totals
    origin: str
    why: list[str]
    failure: Optional[str] = None
    """Why the volume went to ``error`` (the exception), or None."""


class _LineCollector(logging.Handler):
    """Keep the formatted INFO (and higher) lines of some loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                self.lines.append("%s%s: %s" % (
                    FAILURE_PREFIX, type(exc).__name__, exc))
            elif not record.name.startswith("cinder.volume.manager"):
                self.lines.append(record.getMessage())
        except Exception:  # pragma: no cover - a malformed log call
            self.handleError(record)


class Probe:
    """Observe an in-process Cinder of :func:`tools.harness.run_scenario`."""

    def __init__(self, cinder: Any) -> None:
        self.cinder = cinder
        self.resizes: list[Resize] = []
        self.bytes_copied = 0
        self._errored: set[str] = set()
        self._lock = threading.Lock()
        self._collector = _LineCollector()
        self._watch_logs()
        self._watch_resizes()
        self._watch_copies()

    # -- installation ------------------------------------------------------

    def _watch_logs(self) -> None:
        for name in WATCHED_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self._collector)
            self.cinder.addCleanup(logger.removeHandler, self._collector)

    def _watch_resizes(self) -> None:
        array = self.cinder.sim.array
        original = array.set_volume_size

        def set_volume_size(volume_id: str, size_gib: int) -> Any:
            before = array.volumes[volume_id].size_kb // units.Mi \
                if volume_id in array.volumes else 0
            result = original(volume_id, size_gib)
            with self._lock:
                self.resizes.append(Resize(volume_id, before, size_gib))
            return result

        array.set_volume_size = set_volume_size
        self.cinder.addCleanup(vars(array).pop, "set_volume_size", None)

    def _watch_copies(self) -> None:
        from tools.beds import simulated_sdc
        connector = simulated_sdc.SimulatedSdcConnector
        connect, disconnect = (connector.connect_volume,
                               connector.disconnect_volume)
        allocated: dict[str, int] = {}

        def blocks(path: str) -> int:
            try:
                return os.stat(path).st_blocks * 512
            except OSError:
                return 0

        def connect_volume(conn: Any, properties: dict) -> dict:
            info = connect(conn, properties)
            real = os.path.realpath(info["path"])
            allocated[real] = blocks(real)
            return info

        def disconnect_volume(conn: Any, properties: dict, device_info: dict,
                              *args: Any, **kwargs: Any) -> None:
            path = (device_info or {}).get("path")
            if path:
                real = os.path.realpath(path)
                grown = blocks(real) - allocated.pop(real, blocks(real))
                with self._lock:
                    self.bytes_copied += max(0, grown)
            disconnect(conn, properties, device_info, *args, **kwargs)

        self.cinder.useFixture(fixtures.MonkeyPatch(
            SDC_CONNECTOR + ".connect_volume", connect_volume))
        self.cinder.useFixture(fixtures.MonkeyPatch(
            SDC_CONNECTOR + ".disconnect_volume", disconnect_volume))

    # -- measuring ---------------------------------------------------------

    def _downloads(self) -> int:
        return sum(self.cinder.images.downloads.values())

    @contextlib.contextmanager
    def window(self) -> Iterator[Totals]:
        """Measure the operations run inside the ``with`` block."""
        totals = Totals()
        calls = len(self.cinder.sim.calls)
        resizes = len(self.resizes)
        copied = self.bytes_copied
        downloads = self._downloads()
        lines = len(self._collector.lines)
        start = time.perf_counter()
        try:
            with bench_profile.window(self.cinder):
                yield totals
        finally:
            totals.seconds = time.perf_counter() - start
            totals.calls.update(c.op for c in self.cinder.sim.calls[calls:])
            totals.resizes = self.resizes[resizes:]
            totals.bytes_copied = self.bytes_copied - copied
            totals.downloads = self._downloads() - downloads
            totals.lines = self._collector.lines[lines:]

    def create(self, label: str, size: int, image_id: Optional[str] = None,
               snapshot: Optional[Any] = None,
               source_volume: Optional[Any] = None) -> Create:
        """Create one volume through Cinder's API and measure it."""
        cache_before = self._cache_volume_ids(image_id)
        failure = None
        with self.window() as totals:
            try:
                volume, _recorded = self.cinder.create_volume(
                    size, image_id=image_id, snapshot=snapshot,
                    source_volume=source_volume)
            except AssertionError:
                volume = self._new_error_volume()
                if volume is None:
                    raise
                failure = self._failure_reason()
        new_entry = bool(self._cache_volume_ids(image_id) - cache_before)
        array_gib = 0
        if volume.provider_id in self.cinder.sim.array.volumes:
            array_gib = self.cinder.array_size_gib(volume)
        if failure is not None:
            return Create(
                label=label, requested_gib=size, volume=volume,
                db_gib=volume.size, array_gib=array_gib, totals=totals,
                origin="FAILED: volume in error", failure=failure,
                why=["%s (%s)" % (failure, origin.failure_context(totals))])
        return Create(
            label=label, requested_gib=size, volume=volume,
            db_gib=volume.size, array_gib=array_gib, totals=totals,
            origin=origin.classify(totals, from_image=image_id is not None,
                                   from_snapshot=snapshot is not None,
                                   new_cache_entry=new_entry),
            why=origin.explain_extends(totals, volume, size, array_gib))

    def _new_error_volume(self) -> Optional[Any]:
        """The volume a failed create left in ``error``, if any."""
        from cinder import objects
        errored = objects.VolumeList.get_all(
            self.cinder.admin_ctx, filters={"status": "error"})
        new = [v for v in errored if v.id not in self._errored]
        self._errored.update(v.id for v in new)
        return new[-1] if new else None

    def _failure_reason(self) -> str:
        failures = [line for line in self._collector.lines
                    if line.startswith(FAILURE_PREFIX)]
        return failures[-1][len(FAILURE_PREFIX):] if failures else "unknown"

    def _cache_volume_ids(self, image_id: Optional[str]) -> set[str]:
        if image_id is None:
            return set()
        return {entry["volume_id"]
                for entry in self.cinder.cache_entries(image_id)}
