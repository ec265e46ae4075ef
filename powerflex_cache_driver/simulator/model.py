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
"""The stateful array behind the simulated gateway.

One :class:`Array` holds a system, one protection domain, its storage pools,
volumes, VTrees, SDCs and NVMe hosts, and SDTs. Every public method takes the
array's single lock, applies its side effects synchronously and raises
:class:`~powerflex_cache_driver.simulator.errors.ApiError` when the real
array would refuse. The invariants are those of the reference (section 6):

* sizes are rounded up to the granularity on create: 8 GiB on Mirroring
  systems, 1 GiB on EC (PowerFlex 5) systems; ``setVolumeSize`` never
  shrinks (133), an equal size is a no-op, and a size that is not a
  multiple of the granularity is refused (225, "Volume size must be in 8 GB
  blocks") unless ``strict_size`` is off, which rounds it up instead;
* a full pool refuses what would need space: a thick volume (or a thick
  extend) larger than the free capacity (190), a thin volume or extend
  beyond the thin allocation limit, or in a pool without free capacity
  (300), a snapshot in a pool without free capacity (191, in
  ``details``);
* in a pool without zero padding, blocks never written read old data, not
  zeros (:func:`~powerflex_cache_driver.simulator.storage.write_stale`);
* with ``removal_seconds``, a removed volume stays "in deletion" that long:
  any request naming it (by id or name) answers 212, its name stays taken
  (99) and pool statistics count it in ``numOfVolumesInDeletion``;
* names are at most 31 characters (226), without spaces or control
  characters (227) and unique system-wide (99);
* a snapshot or clone joins its source's VTree with the source's size; a
  VTree holds at most ``snapshot_limit`` of them (rc 182 in ``details``);
* a mapped volume cannot be removed (104); ``ONLY_ME`` removal re-parents
  the children to the removed volume's ancestor.

While a volume is mapped to at least one host, ``by_id_dir`` holds a symlink
``emc-vol-<systemId>-<volumeId>`` to its backing file, which is what the SDC
kernel module shows under ``/dev/disk/by-id`` on a real host. With
``loop_devices`` the link points at a loop device over the backing file
instead (a real block device, as on a real host), attached on the first
mapping and detached on the last unmapping, on removal and by
:meth:`Array.release_devices`; where the machine refuses loop devices the
link points at the file, and the reason is logged once.

With ``shared_by_id_dir`` the directory is the host's own (say
``/dev/disk/by-id``, where os-brick looks): it is created, parents too,
when a link is published, and :meth:`Array.release_devices` removes the
links the array made and the directories it created (when empty), leaving
everything else there; :meth:`Array.restore_devices` publishes them again.
"""

import dataclasses
import itertools
import logging
import os
import secrets
import threading
import time
from typing import Any, Iterable, Mapping, Optional, Union

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import loop
from powerflex_cache_driver.simulator import storage

LOG = logging.getLogger(__name__)

KIB = 1024
GIB_KB = 1024 * 1024
MIRRORING = "Mirroring"
EC = "EC"
MEDIUM = "MediumGranularity"
FINE = "FineGranularity"
ERASURE = "ErasureCoding"
THIN = "ThinProvisioned"
THICK = "ThickProvisioned"
SNAPSHOT = "Snapshot"
READ_ONLY_SNAPSHOT = "ReadOnlySnapshot"
THIN_CLONE = "ThinClone"
SNAPSHOT_TYPES = (SNAPSHOT, READ_ONLY_SNAPSHOT, THIN_CLONE)
SDC_HOST = "SdcHost"
NVME_HOST = "NVMeHost"
NOT_IN_MIGRATION = "NotInMigration"
REMOVE_MODES = ("ONLY_ME", "INCLUDING_DESCENDANTS", "DESCENDANTS_ONLY",
                "WHOLE_VTREE")
MAX_NAME = 31
DEFAULT_SNAPSHOT_LIMIT = {MIRRORING: 126, EC: 1022}
DEFAULT_POOL_CAPACITY_GIB = 100 * 1024
THIN_ALLOCATION_FACTOR = 10
"""Thin volumes a pool may provision, in multiples of its capacity, before
``TOO_MUCH_THIN_CAPACITY`` (300, "Requested volume size exceeds the volume
allocation limit"). The factor is an assumption (PowerFlex 5 pools report
an ``overProvisioningFactor``; the 3.x/4.x limit is not public)."""
BY_ID_PREFIX = "emc-vol-"

PoolSpec = Union[str, Mapping[str, Any]]


@dataclasses.dataclass
class SdcMapping:
    """One mapping of a volume to an SDC or NVMe host."""

    host_id: str
    access_mode: str = "ReadWrite"
    limit_iops: int = 0
    limit_bw_kbps: int = 0


@dataclasses.dataclass
class Volume:
    """A volume, snapshot or thin clone."""

    id: str
    name: Optional[str]
    size_kb: int
    volume_type: str
    vtree_id: str
    ancestor_id: Optional[str]
    pool_id: str
    backing_path: str
    creation_time: int = 0
    consistency_group_id: Optional[str] = None
    access_mode_limit: str = "ReadWrite"
    compression_method: str = "NotApplicable"
    mappings: dict[str, SdcMapping] = dataclasses.field(default_factory=dict)

    @property
    def mapped_sdc_ids(self) -> list[str]:
        """Ids of the SDCs and NVMe hosts this volume is mapped to."""
        return list(self.mappings)

    @property
    def size_gib(self) -> int:
        """Size in GiB (sizes are always whole GiB)."""
        return self.size_kb // GIB_KB

    @property
    def size_bytes(self) -> int:
        """Size in bytes."""
        return self.size_kb * KIB

    @property
    def is_snapshot(self) -> bool:
        """True for snapshots and thin clones (VTree descendants)."""
        return self.volume_type in SNAPSHOT_TYPES


@dataclasses.dataclass
class VTree:
    """A base volume and all snapshots descended from it."""

    id: str
    pool_id: str
    base_volume_id: Optional[str]
    migration_status: str = NOT_IN_MIGRATION
    migration_pause_reason: Optional[str] = None
    source_pool_id: Optional[str] = None
    destination_pool_id: Optional[str] = None


@dataclasses.dataclass
class StoragePool:
    """A storage pool of the protection domain."""

    id: str
    name: str
    pd_id: str
    data_layout: str
    zero_padding_enabled: bool = True
    capacity_gib: int = DEFAULT_POOL_CAPACITY_GIB


@dataclasses.dataclass
class ProtectionDomain:
    """The protection domain holding the pools."""

    id: str
    name: str
    gen_type: str


@dataclasses.dataclass
class Host:
    """An SDC (``SdcHost``) or an NVMe host (``NVMeHost``)."""

    id: str
    host_type: str
    name: Optional[str] = None
    guid: Optional[str] = None
    ip: Optional[str] = None
    nqn: Optional[str] = None


@dataclasses.dataclass
class Sdt:
    """An NVMe storage data target."""

    id: str
    name: str
    ips: tuple[str, ...]
    nvme_port: int = 4420


def _id_factory() -> "itertools.count[int]":
    return itertools.count(0)


class _Ids:
    """16-hex ids: 8 hex of a per-type base and an 8-hex counter."""

    def __init__(self) -> None:
        self._bases: dict[str, str] = {}
        self._counters: dict[str, "itertools.count[int]"] = {}

    def next(self, kind: str) -> str:
        if kind not in self._bases:
            self._bases[kind] = secrets.token_hex(4)
            self._counters[kind] = _id_factory()
        return "%s%08x" % (self._bases[kind], next(self._counters[kind]))


def validate_name(name: Any) -> str:
    """Return ``name`` or raise the array's name errors (226, 227)."""
    if not isinstance(name, str):
        raise errors.invalid_request("name must be a string")
    if not name or any(not 33 <= ord(c) <= 126 for c in name):
        raise errors.array_error(errors.INVALID_NAME)
    if len(name) > MAX_NAME:
        raise errors.array_error(errors.LONG_NAME)
    return name


class Array:
    """A thread-safe, stateful PowerFlex system.

    :param work_dir: directory for the backing files (``volumes/``).
    :param by_id_dir: directory playing ``/dev/disk/by-id``.
    :param gen_type: ``"Mirroring"`` or ``"EC"``.
    :param version: gateway version string, e.g. ``"4.5"``.
    :param protection_domain: protection domain name.
    :param pools: pool names, or mappings with ``name`` and optional
        ``data_layout``, ``zero_padding_enabled`` and ``capacity_gib``. On
        Mirroring systems the first pool defaults to medium and the others
        to fine granularity; on EC systems all are ErasureCoding.
    :param sdc_guids: GUIDs of the SDCs to create.
    :param nvme_host_nqns: NQNs of NVMe hosts to create.
    :param snapshot_limit: snapshots per VTree; None = 126 (Mirroring) or
        1022 (EC).
    :param strict_size: refuse ``setVolumeSize`` sizes that are not a
        multiple of the granularity (500/225), as the array does (the
        default); False rounds them up instead.
    :param removal_seconds: how long a removed volume stays "in
        deletion" (212 on any request naming it, name still taken,
        ``numOfVolumesInDeletion``); None or 0 removes at once.
    :param loop_devices: publish mapped volumes as loop devices (root);
        falls back to the backing files where the machine refuses.
    :param shared_by_id_dir: ``by_id_dir`` is not the simulator's own but
        shared with the host (e.g. ``/dev/disk/by-id``): created (parents
        too) on the first link rather than here, emptied of this array's
        links and removed where this array created it by
        :meth:`release_devices`.
    """

    def __init__(self, work_dir: str, by_id_dir: str,
                 gen_type: str = MIRRORING, version: str = "4.5",
                 protection_domain: str = "PD1",
                 pools: Iterable[PoolSpec] = ("SP1", "SP2"),
                 sdc_guids: Iterable[str] = (),
                 nvme_host_nqns: Iterable[str] = (),
                 snapshot_limit: Optional[int] = None,
                 strict_size: bool = True,
                 loop_devices: bool = False,
                 shared_by_id_dir: bool = False,
                 removal_seconds: Optional[float] = None) -> None:
        if gen_type.lower() not in ("ec", "mirroring"):
            raise ValueError("gen_type must be 'Mirroring' or 'EC'")
        self.lock = threading.RLock()
        self.gen_type = EC if gen_type.lower() == "ec" else MIRRORING
        self.version = version
        self.strict_size = strict_size
        self.removal_seconds = removal_seconds
        #: Volume id -> (volume, monotonic time its removal completes).
        self.in_deletion: dict[str, tuple[Volume, float]] = {}
        self.loop_devices = loop_devices
        #: Why loop devices are not used (None while they work or are off).
        self.loop_refused: Optional[str] = None
        #: Volume id -> loop device of the mapped volumes.
        self.loops: dict[str, str] = {}
        self.snapshot_limit = (snapshot_limit if snapshot_limit is not None
                               else DEFAULT_SNAPSHOT_LIMIT[self.gen_type])
        self.granularity_gib = 1 if self.is_ec else 8
        #: Set to e.g. "MigrationError" to make the next migrations pause.
        self.migration_pause_reason: Optional[str] = None
        self.storage = storage.SparseStore(os.path.join(work_dir, "volumes"))
        self.by_id_dir = by_id_dir
        self.shared_by_id_dir = shared_by_id_dir
        #: The links this array made in by_id_dir.
        self._links: set[str] = set()
        #: Directories of by_id_dir's path this array created.
        self._made_dirs: list[str] = []
        #: True from release_devices to restore_devices in a shared
        #: by_id_dir: links are neither made nor kept.
        self._withdrawn = False
        if not shared_by_id_dir:
            os.makedirs(by_id_dir, exist_ok=True)
        self._ids = _Ids()
        self.system_id = self._ids.next("system")
        self.system_nqn = ("nqn.1988-11.com.dell:powerflex:00:%s"
                           % self.system_id)
        self.protection_domain = ProtectionDomain(
            self._ids.next("pd"), protection_domain, self.gen_type)
        self.pools: dict[str, StoragePool] = {}
        for index, spec in enumerate(pools):
            pool = self._make_pool(index, spec)
            self.pools[pool.id] = pool
        self.volumes: dict[str, Volume] = {}
        self.vtrees: dict[str, VTree] = {}
        self.hosts: dict[str, Host] = {}
        for index, guid in enumerate(sdc_guids):
            host_id = self._ids.next("sdc")
            self.hosts[host_id] = Host(host_id, SDC_HOST, guid=guid,
                                       ip="192.168.10.%d" % (11 + index))
        for nqn in nvme_host_nqns:
            self._add_nvme_host(nqn, None)
        self.sdts = [Sdt(self._ids.next("sdt"), "Sdt-sim%d" % n,
                         ("192.168.45.%d" % (21 + n),))
                     for n in range(2)]

    # ----------------------------------------------------------- helpers

    @property
    def is_ec(self) -> bool:
        """True on PowerFlex 5 erasure-coded systems."""
        return self.gen_type == EC

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """The gateway version as a tuple of ints."""
        return tuple(int(p) for p in self.version.split(".") if p.isdigit())

    def _make_pool(self, index: int, spec: PoolSpec) -> StoragePool:
        opts: dict[str, Any] = ({"name": spec} if isinstance(spec, str)
                                else dict(spec))
        if self.is_ec:
            layout = ERASURE
        else:
            layout = MEDIUM if index == 0 else FINE
        return StoragePool(
            id=self._ids.next("pool"), name=opts["name"],
            pd_id=self.protection_domain.id,
            data_layout=opts.get("data_layout", layout),
            zero_padding_enabled=opts.get("zero_padding_enabled", True),
            capacity_gib=opts.get("capacity_gib", DEFAULT_POOL_CAPACITY_GIB))

    def _add_nvme_host(self, nqn: str, name: Optional[str]) -> Host:
        host_id = self._ids.next("host")
        host = Host(host_id, NVME_HOST, name=name, nqn=nqn)
        self.hosts[host_id] = host
        return host

    def round_kb(self, size_kb: int) -> int:
        """Round ``size_kb`` up to the array granularity."""
        gran = self.granularity_gib * GIB_KB
        return -(-size_kb // gran) * gran

    def _volume(self, volume_id: str) -> Volume:
        try:
            return self.volumes[volume_id]
        except (KeyError, TypeError):
            self._purge_removals()
            if isinstance(volume_id, str) and volume_id in self.in_deletion:
                raise errors.array_error(
                    errors.VOL_REMOVE_IN_PROGRESS) from None
            raise errors.array_error(errors.VOL_NOT_FOUND) from None

    def _purge_removals(self, everything: bool = False) -> None:
        """Complete the removals whose time is up (or all of them)."""
        now = time.monotonic()
        for volume_id, (volume, done) in list(self.in_deletion.items()):
            if everything or done <= now:
                del self.in_deletion[volume_id]
                self.storage.remove(volume.backing_path)

    def finish_removals(self) -> None:
        """Complete every removal in progress now (as time passing would)."""
        with self.lock:
            self._purge_removals(everything=True)

    def deleting_by_name(self, name: str) -> Optional[Volume]:
        """Return the volume in deletion called ``name``, or None."""
        with self.lock:
            self._purge_removals()
            for volume, _done in self.in_deletion.values():
                if volume.name == name:
                    return volume
            return None

    def _used_kb(self, pool: StoragePool) -> tuple[int, int]:
        """Return ``(capacity in use, thin KiB provisioned)`` of a pool.

        In use: thick volumes' sizes and the data written to the others;
        volumes in deletion still hold theirs.
        """
        volumes = [v for v in self.volumes.values() if v.pool_id == pool.id]
        volumes += [v for v, _done in self.in_deletion.values()
                    if v.pool_id == pool.id]
        thick = sum(v.size_kb for v in volumes if v.volume_type == THICK)
        written = sum(self.storage.allocated_bytes(v.backing_path)
                      for v in volumes if v.volume_type != THICK) // KIB
        thin = sum(v.size_kb for v in volumes if v.volume_type != THICK)
        return thick + written, thin

    def _check_space(self, pool: StoragePool, volume_type: str,
                     grow_kb: int) -> None:
        """Refuse ``grow_kb`` more of ``volume_type`` in a full pool.

        Thick: 190 when larger than the free capacity; thin (and
        snapshots): 300 beyond the allocation limit or without free
        capacity.
        """
        capacity = pool.capacity_gib * GIB_KB
        used, thin = self._used_kb(pool)
        free = capacity - used
        if volume_type == THICK:
            if grow_kb > free:
                raise errors.array_error(errors.VOL_SIZE_TOO_LARGE)
        elif free <= 0 or (thin + grow_kb >
                           THIN_ALLOCATION_FACTOR * capacity):
            raise errors.array_error(errors.TOO_MUCH_THIN_CAPACITY)

    def _pool(self, pool_id: Any) -> StoragePool:
        try:
            return self.pools[pool_id]
        except (KeyError, TypeError):
            raise errors.array_error(errors.STORAGE_POOL_NOT_FOUND) from None

    def _host(self, host_id: Any) -> Host:
        try:
            return self.hosts[host_id]
        except (KeyError, TypeError):
            raise errors.array_error(errors.INI_NOT_FOUND) from None

    def _check_new_name(self, name: Optional[str],
                        taken: Iterable[str] = ()) -> Optional[str]:
        if name is None:
            return None
        validate_name(name)
        if (name in taken or self.volume_by_name(name) is not None or
                self.deleting_by_name(name) is not None):
            raise errors.array_error(errors.VOL_NAME_IN_USE)
        return name

    def _link_path(self, volume_id: str) -> str:
        return os.path.join(self.by_id_dir, "%s%s-%s" % (
            BY_ID_PREFIX, self.system_id, volume_id))

    def _publish_link(self, volume: Volume) -> None:
        link = self._link_path(volume.id)
        if volume.mappings:
            if not os.path.islink(link) and not self._withdrawn:
                target = self._attach_loop(volume) or volume.backing_path
                self._make_by_id_dir()
                try:
                    os.symlink(target, link)
                except FileNotFoundError:
                    # A shared directory another simulator removed between
                    # the two calls, stopping: make it again.
                    self._make_by_id_dir()
                    os.symlink(target, link)
                self._links.add(link)
        else:
            self._remove_link(link)
            self._detach_loop(volume.id)

    def _remove_link(self, link: str) -> None:
        """Remove a link; in a shared directory, only one this array made."""
        if self.shared_by_id_dir and link not in self._links:
            return
        if os.path.lexists(link):
            os.unlink(link)
        self._links.discard(link)

    def _make_by_id_dir(self) -> None:
        """Create by_id_dir and its missing parents; remember which."""
        missing = []
        path = os.path.abspath(self.by_id_dir)
        while not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        if not missing:
            return
        os.makedirs(self.by_id_dir, exist_ok=True)
        if self.shared_by_id_dir:
            self._made_dirs.extend(
                d for d in missing if d not in self._made_dirs)

    def _withdraw_links(self) -> None:
        """Remove this array's links and the directories it created."""
        for link in sorted(self._links):
            self._remove_link(link)
        kept = []
        # Deepest first: a parent's path is shorter than its children's.
        for path in sorted(self._made_dirs, key=len, reverse=True):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                LOG.info("Leaving %s: %s", path, exc)
                kept.append(path)
        self._made_dirs = kept

    def _attach_loop(self, volume: Volume) -> Optional[str]:
        """Return a loop device over ``volume``'s file, or None."""
        if not self.loop_devices or self.loop_refused is not None:
            return None
        try:
            device = loop.attach(volume.backing_path)
        except loop.Unavailable as exc:
            self.loop_refused = str(exc)
            LOG.warning("Loop devices refused, mapped volumes are published "
                        "as their backing files: %s", exc)
            return None
        self.loops[volume.id] = device
        return device

    def _detach_loop(self, volume_id: str) -> None:
        device = self.loops.pop(volume_id, None)
        if device is not None:
            loop.detach(device)

    def release_devices(self) -> None:
        """Detach every loop device; links fall back to the backing files.

        The simulator calls this when it stops, so no loop device outlives
        it; :meth:`restore_devices` attaches them again. In a shared
        ``by_id_dir`` the links go too, and the directories this array
        created (when empty); none is made until :meth:`restore_devices`.
        """
        with self.lock:
            for volume_id in list(self.loops):
                link = self._link_path(volume_id)
                self._remove_link(link)
                self._detach_loop(volume_id)
                volume = self.volumes.get(volume_id)
                if (volume is not None and volume.mappings and
                        not self.shared_by_id_dir):
                    os.symlink(volume.backing_path, link)
                    self._links.add(link)
            if self.shared_by_id_dir:
                self._withdrawn = True
                self._withdraw_links()

    def restore_devices(self) -> None:
        """Publish the mapped volumes as loop devices again (on start).

        In a shared ``by_id_dir``, publish every mapped volume's link again.
        """
        with self.lock:
            if self.shared_by_id_dir:
                self._withdrawn = False
                for volume in self.volumes.values():
                    if volume.mappings:
                        self._publish_link(volume)
                return
            if not self.loop_devices:
                return
            for volume in self.volumes.values():
                link = self._link_path(volume.id)
                if volume.mappings and volume.id not in self.loops:
                    self._remove_link(link)
                    self._publish_link(volume)

    def device_path(self, volume_id: str) -> str:
        """Return the by-id link path of ``volume_id`` (mapped or not)."""
        return self._link_path(volume_id)

    # ----------------------------------------------------------- queries

    def volume_by_name(self, name: str) -> Optional[Volume]:
        """Return the volume called ``name``, or None."""
        with self.lock:
            for volume in self.volumes.values():
                if volume.name == name:
                    return volume
            return None

    def get_volume(self, volume_id: str) -> Volume:
        """Return a volume or raise 79."""
        with self.lock:
            return self._volume(volume_id)

    def vtree_members(self, vtree_id: str) -> list[Volume]:
        """Return the volumes of a VTree, in creation order."""
        with self.lock:
            return [v for v in self.volumes.values()
                    if v.vtree_id == vtree_id]

    def snapshot_count(self, vtree_id: str) -> int:
        """Return how many snapshots and clones a VTree holds."""
        return sum(1 for v in self.vtree_members(vtree_id) if v.is_snapshot)

    def get_vtree(self, vtree_id: str) -> VTree:
        """Return a VTree or raise 500/3 (not found)."""
        with self.lock:
            try:
                return self.vtrees[vtree_id]
            except KeyError:
                raise errors.array_error(errors.NOT_FOUND) from None

    def pool_by_name(self, pd_id: str, name: str) -> StoragePool:
        """Return the pool ``name`` of protection domain ``pd_id``."""
        with self.lock:
            if pd_id != self.protection_domain.id:
                raise errors.array_error(errors.FD_NOT_FOUND)
            for pool in self.pools.values():
                if pool.name == name:
                    return pool
            raise errors.array_error(errors.STORAGE_POOL_NOT_FOUND)

    def get_pool(self, pool_id: str) -> StoragePool:
        """Return a pool or raise 171."""
        with self.lock:
            return self._pool(pool_id)

    def get_host(self, host_id: str) -> Host:
        """Return an SDC or NVMe host or raise 80."""
        with self.lock:
            return self._host(host_id)

    def host_by_guid(self, guid: Any) -> Host:
        """Return the SDC with ``guid`` (case-insensitive) or raise 80."""
        with self.lock:
            for host in self.hosts.values():
                if (host.guid and isinstance(guid, str) and
                        host.guid.lower() == guid.lower()):
                    return host
            raise errors.array_error(errors.INI_NOT_FOUND)

    def host_volumes(self, host_id: str) -> list[Volume]:
        """Return the volumes mapped to a host."""
        with self.lock:
            self._host(host_id)
            return [v for v in self.volumes.values()
                    if host_id in v.mappings]

    def pool_volumes(self, pool_id: str) -> list[Volume]:
        """Return every volume (snapshots included) of a pool."""
        with self.lock:
            self._pool(pool_id)
            return [v for v in self.volumes.values() if v.pool_id == pool_id]

    # ----------------------------------------------------------- volumes

    def create_volume(self, name: Optional[str], pool_id: str,
                      size_kb: int, volume_type: str = THICK,
                      compression: Optional[str] = None,
                      pd_id: Optional[str] = None) -> Volume:
        """Create a base volume in a new VTree; the size is rounded up."""
        with self.lock:
            if pd_id is not None and pd_id != self.protection_domain.id:
                raise errors.array_error(errors.FD_NOT_FOUND)
            pool = self._pool(pool_id)
            if volume_type not in (THIN, THICK):
                raise errors.invalid_request(
                    "volumeType should get one of the following values: "
                    "ThinProvisioned, ThickProvisioned")
            if size_kb <= 0:
                raise errors.array_error(errors.VOL_SIZE_ILLEGAL)
            if pool.data_layout == FINE and volume_type == THICK:
                raise errors.array_error(
                    errors.ILLEGAL, "Thick volumes are not supported in a "
                    "Fine Granularity Storage Pool")
            method = "NotApplicable"
            if compression is not None and pool.data_layout == FINE:
                if compression not in ("None", "Normal"):
                    raise errors.invalid_request(
                        "compressionMethod should get one of the following "
                        "values: None, Normal")
                method = compression
            elif compression == "Normal" and not self.is_ec:
                raise errors.array_error(
                    errors.ILLEGAL, "Compression is only supported in a "
                    "Fine Granularity Storage Pool")
            self._check_new_name(name)
            size_kb = self.round_kb(size_kb)
            self._check_space(pool, volume_type, size_kb)
            volume_id = self._ids.next("volume")
            vtree_id = self._ids.next("vtree")
            path = self.storage.create(volume_id, size_kb * KIB,
                                       stale=not pool.zero_padding_enabled)
            volume = Volume(
                id=volume_id, name=name, size_kb=size_kb,
                volume_type=volume_type, vtree_id=vtree_id,
                ancestor_id=None, pool_id=pool.id, backing_path=path,
                creation_time=int(time.time()), compression_method=method)
            self.volumes[volume_id] = volume
            self.vtrees[vtree_id] = VTree(vtree_id, pool.id, volume_id)
            return volume

    def set_volume_size(self, volume_id: str, size_gib: int) -> Volume:
        """Grow a volume to ``size_gib`` rounded up to the granularity."""
        with self.lock:
            volume = self._volume(volume_id)
            if size_gib <= 0:
                raise errors.array_error(errors.VOL_SIZE_ILLEGAL)
            if self.strict_size and size_gib % self.granularity_gib:
                message = None
                if self.is_ec:
                    message = ("The specified volume size is illegal. Volume "
                               "size must be in 1 GB blocks")
                raise errors.array_error(errors.VOL_SIZE_ILLEGAL, message)
            size_kb = self.round_kb(size_gib * GIB_KB)
            if size_kb < volume.size_kb:
                raise errors.array_error(errors.VOL_DECREASE_NOT_SUPPORTED)
            if size_kb > volume.size_kb:
                pool = self.pools[volume.pool_id]
                self._check_space(pool, volume.volume_type,
                                  size_kb - volume.size_kb)
                self.storage.resize(volume.backing_path, size_kb * KIB,
                                    stale=not pool.zero_padding_enabled)
                volume.size_kb = size_kb
                if volume.id in self.loops:
                    loop.refresh(self.loops[volume.id])
            return volume

    def rename_volume(self, volume_id: str, new_name: Any) -> Volume:
        """Rename a volume (names stay unique)."""
        with self.lock:
            volume = self._volume(volume_id)
            validate_name(new_name)
            if volume.name == new_name:
                return volume
            self._check_new_name(new_name)
            volume.name = new_name
            return volume

    def remove_volume(self, volume_id: str, mode: str = "ONLY_ME") -> None:
        """Remove a volume, and its descendants depending on ``mode``."""
        with self.lock:
            volume = self._volume(volume_id)
            if mode not in REMOVE_MODES:
                raise errors.invalid_request(
                    "removeMode should get one of the following values: "
                    + ", ".join(REMOVE_MODES))
            members = self.vtree_members(volume.vtree_id)
            if mode == "WHOLE_VTREE":
                doomed = members
            else:
                descendants = self._descendants(volume.id, members)
                doomed = {"ONLY_ME": [volume],
                          "INCLUDING_DESCENDANTS": [volume] + descendants,
                          "DESCENDANTS_ONLY": descendants}[mode]
            if any(v.mappings for v in doomed):
                raise errors.array_error(errors.VOL_MAPPED)
            for victim in doomed:
                for child in members:
                    if child.ancestor_id == victim.id:
                        child.ancestor_id = victim.ancestor_id
                del self.volumes[victim.id]
                self._publish_link(victim)
                if self.removal_seconds:
                    self.in_deletion[victim.id] = (
                        victim, time.monotonic() + self.removal_seconds)
                else:
                    self.storage.remove(victim.backing_path)
            vtree = self.vtrees.get(volume.vtree_id)
            if vtree is not None:
                remaining = self.vtree_members(vtree.id)
                if not remaining:
                    del self.vtrees[vtree.id]
                elif vtree.base_volume_id not in self.volumes:
                    vtree.base_volume_id = None

    @staticmethod
    def _descendants(volume_id: str, members: list[Volume]) -> list[Volume]:
        found: list[Volume] = []
        frontier = {volume_id}
        while frontier:
            children = [m for m in members if m.ancestor_id in frontier]
            found.extend(children)
            frontier = {c.id for c in children}
        return found

    def snapshot(self, defs: list[tuple[str, Optional[str]]],
                 volume_type: str = SNAPSHOT) -> tuple[list[str], str]:
        """Snapshot volumes; return the new ids and the snapshot group id.

        :param defs: ``(source volume id, snapshot name or None)`` pairs.
        :param volume_type: ``Snapshot`` (snapshotVolumes),
            ``ReadOnlySnapshot`` (createSnapshot) or ``ThinClone``
            (createThinClone).
        """
        with self.lock:
            sources = [self._volume(vid) for vid, _unused in defs]
            names: list[str] = []
            for _unused, name in defs:
                if self._check_new_name(name, names) is not None:
                    names.append(name)
            pending: dict[str, int] = {}
            for source in sources:
                pool = self.pools[source.pool_id]
                if self._used_kb(pool)[0] >= pool.capacity_gib * GIB_KB:
                    raise errors.with_details(
                        errors.CAPACITY_TOO_LOW_FOR_SNAP)
                vtree = source.vtree_id
                pending[vtree] = pending.get(vtree, 0) + 1
                if (self.snapshot_count(vtree) + pending[vtree] >
                        self.snapshot_limit):
                    raise errors.with_details(errors.TOO_MANY_SNAPS_IN_VTREE)
            group_id = self._ids.next("snapgroup")
            new_ids = []
            now = int(time.time())
            for source, (_unused, name) in zip(sources, defs):
                volume_id = self._ids.next("volume")
                path = self.storage.clone(source.backing_path, volume_id)
                self.volumes[volume_id] = Volume(
                    id=volume_id, name=name, size_kb=source.size_kb,
                    volume_type=volume_type, vtree_id=source.vtree_id,
                    ancestor_id=source.id, pool_id=source.pool_id,
                    backing_path=path, creation_time=now,
                    consistency_group_id=group_id,
                    access_mode_limit=("ReadOnly"
                                       if volume_type == READ_ONLY_SNAPSHOT
                                       else "ReadWrite"),
                    compression_method=source.compression_method)
                new_ids.append(volume_id)
            return new_ids, group_id

    def overwrite_volume_content(self, volume_id: str,
                                 source_id: Any) -> None:
        """Revert ``volume_id`` to the content of ``source_id``."""
        with self.lock:
            volume = self._volume(volume_id)
            source = self._volume(source_id)
            if source.id == volume.id:
                raise errors.array_error(errors.VOLUME_AND_SNAPSHOT_MATCH)
            if source.vtree_id != volume.vtree_id:
                raise errors.array_error(errors.VTREE_ID_MISMATCH)
            if source.size_kb > volume.size_kb:
                raise errors.array_error(
                    errors.ILLEGAL, "The source volume is larger than the "
                    "destination volume")
            self.storage.overwrite(source.backing_path, volume.backing_path)
            if volume.id in self.loops:
                # The device's own cache still holds the old content.
                loop.flush_buffers(self.loops[volume.id])

    # ----------------------------------------------------------- mapping

    def map_volume(self, volume_id: str, host: Host,
                   allow_multiple: bool = False,
                   access_mode: Optional[str] = None) -> Volume:
        """Map a volume to an SDC or NVMe host."""
        with self.lock:
            volume = self._volume(volume_id)
            if host.id in volume.mappings:
                raise errors.array_error(
                    errors.VOL_ALREADY_MAPPED_V4
                    if self.version_tuple >= (4,)
                    else errors.VOL_ALREADY_MAPPED_TO_THIS_INI)
            if volume.mappings and not allow_multiple:
                raise errors.array_error(errors.VOL_ALREADY_MAPPED_TO_AN_INI)
            if volume.access_mode_limit == "ReadOnly":
                access_mode = "ReadOnly"
            volume.mappings[host.id] = SdcMapping(
                host.id, access_mode or "ReadWrite")
            self._publish_link(volume)
            return volume

    def _not_mapped(self) -> errors.ApiError:
        return errors.array_error(
            errors.VOL_NOT_MAPPED_V4 if self.version_tuple >= (4,)
            else errors.VOL_NOT_MAPPED_TO_INI)

    def unmap_volume(self, volume_id: str,
                     host: Optional[Host] = None) -> Volume:
        """Unmap a volume from ``host``, or from every host if None."""
        with self.lock:
            volume = self._volume(volume_id)
            if host is None:
                if not volume.mappings:
                    raise self._not_mapped()
                volume.mappings.clear()
            else:
                if host.id not in volume.mappings:
                    raise self._not_mapped()
                del volume.mappings[host.id]
            self._publish_link(volume)
            return volume

    def set_mapped_limits(self, volume_id: str, host: Host,
                          iops: Optional[int] = None,
                          bandwidth_kbps: Optional[int] = None) -> None:
        """Set the QoS limits of one mapping."""
        with self.lock:
            volume = self._volume(volume_id)
            mapping = volume.mappings.get(host.id)
            if mapping is None:
                raise self._not_mapped()
            if iops is not None:
                if iops < 0 or 0 < iops <= 10:
                    raise errors.invalid_request(
                        "iopsLimit must be 0 (unlimited) or greater than 10")
                mapping.limit_iops = iops
            if bandwidth_kbps is not None:
                if bandwidth_kbps < 0 or bandwidth_kbps % 1024:
                    raise errors.invalid_request(
                        "bandwidthLimitInKbps must be 0 (unlimited) or in "
                        "granularity of 1024")
                mapping.limit_bw_kbps = bandwidth_kbps

    def create_nvme_host(self, nqn: Any, name: Any) -> Host:
        """Register an NVMe host; NQNs are unique."""
        with self.lock:
            if not isinstance(nqn, str) or not nqn:
                raise errors.invalid_request(
                    "The following parameter(s) must be part of the request "
                    "body: nqn.")
            if name is not None:
                validate_name(name)
            for host in self.hosts.values():
                if host.nqn and host.nqn.lower() == nqn.lower():
                    raise errors.array_error(
                        errors.ILLEGAL, "A host with this NQN already exists")
                if name is not None and host.name == name:
                    raise errors.array_error(
                        errors.ILLEGAL, "A host with this name already "
                        "exists")
            return self._add_nvme_host(nqn, name)

    # ----------------------------------------------------------- vtrees

    def migrate_vtree(self, volume_id: str, dest_pool_id: Any,
                      conversion: str = "NoConversion",
                      compression: Optional[str] = None) -> None:
        """Move a whole VTree to ``dest_pool_id``, synchronously."""
        with self.lock:
            volume = self._volume(volume_id)
            vtree = self.vtrees[volume.vtree_id]
            dest = self._pool(dest_pool_id)
            if vtree.migration_status != NOT_IN_MIGRATION:
                raise errors.array_error(errors.VTREE_MIGRATION_IN_PROGRESS)
            if vtree.pool_id == dest.id:
                raise errors.array_error(errors.VTREE_MIGRATE_SAME_SP)
            source = self.pools[vtree.pool_id]
            members = self.vtree_members(vtree.id)
            self._check_migration(source, dest, members, conversion)
            vtree.migration_pause_reason = self.migration_pause_reason
            if vtree.migration_pause_reason:
                vtree.migration_status = "MigrationPaused"
                vtree.source_pool_id = source.id
                vtree.destination_pool_id = dest.id
                return
            for member in members:
                member.pool_id = dest.id
                kind = member.volume_type
                if conversion == "ThickToThin" and kind == THICK:
                    member.volume_type = THIN
                elif conversion == "ThinToThick" and kind == THIN:
                    member.volume_type = THICK
                if dest.data_layout == FINE and compression:
                    member.compression_method = compression
                elif dest.data_layout != FINE:
                    member.compression_method = "NotApplicable"
            vtree.pool_id = dest.id

    @staticmethod
    def _check_migration(source: StoragePool, dest: StoragePool,
                         members: list[Volume], conversion: str) -> None:
        if conversion not in ("NoConversion", "ThickToThin", "ThinToThick"):
            raise errors.invalid_request(
                "volTypeConversion should get one of the following values: "
                "NoConversion, ThickToThin, ThinToThick")
        if source.data_layout != dest.data_layout and len(members) > 1:
            raise errors.array_error(
                errors.ILLEGAL, "V-Trees with multiple volumes, or V-Trees "
                "that are included in a snapshot policy, may not be migrated "
                "between Storage Pools with different data layouts.")
        if (source.data_layout == MEDIUM and dest.data_layout == FINE and
                not source.zero_padding_enabled):
            raise errors.array_error(
                errors.ILLEGAL, "Migration from a Medium Granularity Storage "
                "Pool to a Fine Granularity one requires zero padding.")
        if (source.data_layout == MEDIUM and dest.data_layout == MEDIUM and
                source.zero_padding_enabled != dest.zero_padding_enabled):
            raise errors.array_error(
                errors.ILLEGAL, "You cannot migrate a V-Tree between Storage "
                "Pools with different zero-padding settings.")
        if dest.data_layout == FINE and (
                conversion == "ThinToThick" or
                (conversion == "NoConversion" and
                 any(m.volume_type == THICK for m in members))):
            raise errors.array_error(
                errors.ILLEGAL, "Thick volumes are not supported in a Fine "
                "Granularity Storage Pool")

    # ----------------------------------------------------------- statistics

    def pool_statistics(self, pool_id: str) -> dict[str, int]:
        """Return the KiB statistics of a pool (querySelectedStatistics).

        Capacities that PowerFlex counts twice (two copies of each volume)
        are doubled, so Cinder's ``/2`` gives back the provisioned sizes.
        """
        with self.lock:
            pool = self._pool(pool_id)
            self._purge_removals()
            volumes = [v for v in self.volumes.values()
                       if v.pool_id == pool.id]
            thick = sum(v.size_kb for v in volumes if v.volume_type == THICK)
            thin = sum(v.size_kb for v in volumes if v.volume_type == THIN)
            snaps = sum(v.size_kb for v in volumes if v.is_snapshot)
            written = sum(self.storage.allocated_bytes(v.backing_path)
                          for v in volumes
                          if v.volume_type != THICK) // KIB
            # Volumes in deletion hold their capacity until removed.
            in_use = self._used_kb(pool)[0]
            capacity = pool.capacity_gib * GIB_KB
            unused = max(capacity - in_use, 0)
            return {
                "snapshotCapacityInKb": 2 * snaps,
                "snapCapacityInUseInKb": 2 * snaps,
                "thickCapacityInUseInKb": 2 * thick,
                "thinCapacityAllocatedInKb": 2 * thin,
                "thinCapacityInUseInKb": 2 * written,
                "netCapacityInUseInKb": in_use,
                "netUnusedCapacityInKb": unused,
                "capacityInUseInKb": 2 * in_use,
                "capacityLimitInKb": 2 * capacity,
                "maxCapacityInKb": 2 * capacity,
                "spareCapacityInKb": 0,
                "capacityAvailableForVolumeAllocationInKb":
                    unused - unused % (8 * GIB_KB),
                "numOfVolumes": len(volumes),
                "numOfVtrees": len({v.vtree_id for v in volumes}),
                "numOfVolumesInDeletion": sum(
                    1 for v, _done in self.in_deletion.values()
                    if v.pool_id == pool.id),
            }

    def pool_metrics(self, pool_id: str) -> dict[str, int]:
        """Return the byte metrics of a pool (``/dtapi`` metrics query)."""
        with self.lock:
            pool = self._pool(pool_id)
            volumes = [v for v in self.volumes.values()
                       if v.pool_id == pool.id]
            used = sum(self.storage.allocated_bytes(v.backing_path)
                       for v in volumes)
            total = pool.capacity_gib * GIB_KB * KIB
            provisioned = sum(v.size_bytes for v in volumes)
            return {
                "physical_total": total,
                "physical_free": max(total - used, 0),
                "physical_used": used,
                "logical_provisioned": provisioned,
                "logical_used": used,
            }

    def vtree_statistics(self, vtree_id: str) -> dict[str, int]:
        """Return the statistics of a VTree (numOfVolumes = all members)."""
        with self.lock:
            self.get_vtree(vtree_id)
            members = self.vtree_members(vtree_id)
            base = [m for m in members if not m.is_snapshot]
            snaps = [m for m in members if m.is_snapshot]

            def used(volumes: list[Volume]) -> int:
                return sum(self.storage.allocated_bytes(v.backing_path)
                           for v in volumes) // KIB

            return {
                "numOfVolumes": len(members),
                "numOfSnapshots": len(snaps),
                "netCapacityInUseInKb": used(members),
                "baseNetCapacityInUseInKb": used(base),
                "snapNetCapacityInUseInKb": used(snaps),
                "trimmedCapacityInKb": 0,
            }
