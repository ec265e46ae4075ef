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

The array keeps the volumes and VTrees and their lifecycle itself, and
composes the parts that hold the other jobs, none of them thread-safe on
its own:

* :mod:`.inventory`: the system, protection domain, pools, hosts and SDTs;
* :mod:`.capacity`: space accounting and the pool and VTree statistics;
* :mod:`.removals`: the volumes in deletion;
* :mod:`.mappings`: volume mappings and their QoS limits;
* :mod:`.devices`: the by-id links and loop devices of mapped volumes;
* :mod:`.migration`: VTree migration between pools.
"""

import os
import threading
import time
from typing import Any, Iterable, Optional

from powerflex_cache_driver.simulator import capacity
from powerflex_cache_driver.simulator import devices
from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import inventory
from powerflex_cache_driver.simulator import mappings
from powerflex_cache_driver.simulator import migration
from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import removals
from powerflex_cache_driver.simulator import storage

KIB = model.KIB
GIB_KB = model.GIB_KB


class Array:
    """A thread-safe, stateful PowerFlex system.

    :param work_dir: directory for the backing files (``volumes/``).
    :param by_id_dir: directory playing ``/dev/disk/by-id``.
    :param gen_type: ``"Mirroring"`` or ``"EC"``.
    :param version: gateway version string, e.g. ``"4.5"``.
    :param protection_domain, pools, sdc_guids, nvme_host_nqns: the
        array's inventory, as :class:`~.inventory.Inventory` takes them.
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
                 gen_type: str = model.MIRRORING, version: str = "4.5",
                 protection_domain: str = "PD1",
                 pools: Iterable[model.PoolSpec] = ("SP1", "SP2"),
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
        self.gen_type = (model.EC if gen_type.lower() == "ec"
                         else model.MIRRORING)
        self.version = version
        self.strict_size = strict_size
        self.snapshot_limit = (
            snapshot_limit if snapshot_limit is not None
            else model.DEFAULT_SNAPSHOT_LIMIT[self.gen_type])
        self.granularity_gib = 1 if self.is_ec else 8
        #: Set to e.g. "MigrationError" to make the next migrations pause.
        self.migration_pause_reason: Optional[str] = None
        self.storage = storage.SparseStore(os.path.join(work_dir, "volumes"))
        self._ids = model.Ids()
        self.inventory = inventory.Inventory(
            self._ids, self.gen_type, protection_domain, pools, sdc_guids,
            nvme_host_nqns)
        self.devices = devices.DevicePublisher(
            by_id_dir, self.inventory.system_id, loop_devices=loop_devices,
            shared=shared_by_id_dir)
        self.volumes: dict[str, model.Volume] = {}
        self.vtrees: dict[str, model.VTree] = {}
        self.removals = removals.Removals(self.storage, removal_seconds)
        self.capacity = capacity.Capacity(self.storage, self.volumes,
                                          self.removals)
        self.mapper = mappings.Mappings(self.devices, self.version_tuple)

    # ----------------------------------------------------------- parts' state

    @property
    def system_id(self) -> str:
        """The 16-hex system id."""
        return self.inventory.system_id

    @property
    def system_nqn(self) -> str:
        """The NVMe qualified name of the system."""
        return self.inventory.system_nqn

    @property
    def protection_domain(self) -> model.ProtectionDomain:
        """The protection domain holding the pools."""
        return self.inventory.protection_domain

    @property
    def pools(self) -> dict[str, model.StoragePool]:
        """Pool id -> storage pool."""
        return self.inventory.pools

    @property
    def hosts(self) -> dict[str, model.Host]:
        """Host id -> SDC or NVMe host."""
        return self.inventory.hosts

    @property
    def sdts(self) -> list[model.Sdt]:
        """The NVMe storage data targets."""
        return self.inventory.sdts

    @property
    def removal_seconds(self) -> Optional[float]:
        """How long a removed volume stays in deletion (None: not at all)."""
        return self.removals.seconds

    @property
    def in_deletion(self) -> dict[str, tuple[model.Volume, float]]:
        """Volume id -> (volume, monotonic time its removal completes)."""
        return self.removals.pending

    @property
    def by_id_dir(self) -> str:
        """The directory playing ``/dev/disk/by-id``."""
        return self.devices.by_id_dir

    @property
    def shared_by_id_dir(self) -> bool:
        """True when ``by_id_dir`` is the host's, not the simulator's."""
        return self.devices.shared

    @property
    def loop_devices(self) -> bool:
        """True when mapped volumes are published as loop devices."""
        return self.devices.loop_devices

    @property
    def loop_refused(self) -> Optional[str]:
        """Why loop devices are not used (None: they work, or are off)."""
        return self.devices.loop_refused

    @property
    def loops(self) -> dict[str, str]:
        """Volume id -> loop device of the mapped volumes."""
        return self.devices.loops

    # ----------------------------------------------------------- helpers

    @property
    def is_ec(self) -> bool:
        """True on PowerFlex 5 erasure-coded systems."""
        return self.gen_type == model.EC

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """The gateway version as a tuple of ints."""
        return tuple(int(p) for p in self.version.split(".") if p.isdigit())

    def round_kb(self, size_kb: int) -> int:
        """Round ``size_kb`` up to the array granularity."""
        gran = self.granularity_gib * GIB_KB
        return -(-size_kb // gran) * gran

    def _volume(self, volume_id: str) -> model.Volume:
        try:
            return self.volumes[volume_id]
        except (KeyError, TypeError):
            if self.removals.in_progress(volume_id):
                raise errors.array_error(
                    errors.VOL_REMOVE_IN_PROGRESS) from None
            raise errors.array_error(errors.VOL_NOT_FOUND) from None

    def finish_removals(self) -> None:
        """Complete every removal in progress now (as time passing would)."""
        with self.lock:
            self.removals.purge(everything=True)

    def deleting_by_name(self, name: str) -> Optional[model.Volume]:
        """Return the volume in deletion called ``name``, or None."""
        with self.lock:
            return self.removals.by_name(name)

    def _check_new_name(self, name: Optional[str],
                        taken: Iterable[str] = ()) -> Optional[str]:
        if name is None:
            return None
        model.validate_name(name)
        if (name in taken or self.volume_by_name(name) is not None or
                self.deleting_by_name(name) is not None):
            raise errors.array_error(errors.VOL_NAME_IN_USE)
        return name

    # ----------------------------------------------------------- devices

    def release_devices(self) -> None:
        """Detach every loop device; links fall back to the backing files.

        The simulator calls this when it stops, so no loop device outlives
        it; :meth:`restore_devices` attaches them again. In a shared
        ``by_id_dir`` the links go too, and the directories this array
        created (when empty); none is made until :meth:`restore_devices`.
        """
        with self.lock:
            self.devices.release(self.volumes)

    def restore_devices(self) -> None:
        """Publish the mapped volumes as loop devices again (on start).

        In a shared ``by_id_dir``, publish every mapped volume's link again.
        """
        with self.lock:
            self.devices.restore(self.volumes.values())

    def device_path(self, volume_id: str) -> str:
        """Return the by-id link path of ``volume_id`` (mapped or not)."""
        return self.devices.link_path(volume_id)

    # ----------------------------------------------------------- queries

    def volume_by_name(self, name: str) -> Optional[model.Volume]:
        """Return the volume called ``name``, or None."""
        with self.lock:
            for volume in self.volumes.values():
                if volume.name == name:
                    return volume
            return None

    def get_volume(self, volume_id: str) -> model.Volume:
        """Return a volume or raise 79."""
        with self.lock:
            return self._volume(volume_id)

    def vtree_members(self, vtree_id: str) -> list[model.Volume]:
        """Return the volumes of a VTree, in creation order."""
        with self.lock:
            return [v for v in self.volumes.values()
                    if v.vtree_id == vtree_id]

    def snapshot_count(self, vtree_id: str) -> int:
        """Return how many snapshots and clones a VTree holds."""
        return sum(1 for v in self.vtree_members(vtree_id) if v.is_snapshot)

    def get_vtree(self, vtree_id: str) -> model.VTree:
        """Return a VTree or raise 500/3 (not found)."""
        with self.lock:
            try:
                return self.vtrees[vtree_id]
            except KeyError:
                raise errors.array_error(errors.NOT_FOUND) from None

    def pool_by_name(self, pd_id: str, name: str) -> model.StoragePool:
        """Return the pool ``name`` of protection domain ``pd_id``."""
        with self.lock:
            return self.inventory.pool_by_name(pd_id, name)

    def get_pool(self, pool_id: str) -> model.StoragePool:
        """Return a pool or raise 171."""
        with self.lock:
            return self.inventory.pool(pool_id)

    def get_host(self, host_id: str) -> model.Host:
        """Return an SDC or NVMe host or raise 80."""
        with self.lock:
            return self.inventory.host(host_id)

    def host_by_guid(self, guid: Any) -> model.Host:
        """Return the SDC with ``guid`` (case-insensitive) or raise 80."""
        with self.lock:
            return self.inventory.host_by_guid(guid)

    def host_volumes(self, host_id: str) -> list[model.Volume]:
        """Return the volumes mapped to a host."""
        with self.lock:
            self.inventory.host(host_id)
            return [v for v in self.volumes.values()
                    if host_id in v.mappings]

    def pool_volumes(self, pool_id: str) -> list[model.Volume]:
        """Return every volume (snapshots included) of a pool."""
        with self.lock:
            self.inventory.pool(pool_id)
            return [v for v in self.volumes.values() if v.pool_id == pool_id]

    # ----------------------------------------------------------- volumes

    def create_volume(self, name: Optional[str], pool_id: str,
                      size_kb: int, volume_type: str = model.THICK,
                      compression: Optional[str] = None,
                      pd_id: Optional[str] = None) -> model.Volume:
        """Create a base volume in a new VTree; the size is rounded up."""
        with self.lock:
            self.inventory.check_domain(pd_id)
            pool = self.inventory.pool(pool_id)
            if volume_type not in (model.THIN, model.THICK):
                raise errors.invalid_request(
                    "volumeType should get one of the following values: "
                    "ThinProvisioned, ThickProvisioned")
            if size_kb <= 0:
                raise errors.array_error(errors.VOL_SIZE_ILLEGAL)
            if pool.data_layout == model.FINE and volume_type == model.THICK:
                raise errors.array_error(
                    errors.ILLEGAL, "Thick volumes are not supported in a "
                    "Fine Granularity Storage Pool")
            method = "NotApplicable"
            if compression is not None and pool.data_layout == model.FINE:
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
            self.capacity.check_space(pool, volume_type, size_kb)
            volume_id = self._ids.next("volume")
            vtree_id = self._ids.next("vtree")
            path = self.storage.create(volume_id, size_kb * KIB,
                                       stale=not pool.zero_padding_enabled)
            volume = model.Volume(
                id=volume_id, name=name, size_kb=size_kb,
                volume_type=volume_type, vtree_id=vtree_id,
                ancestor_id=None, pool_id=pool.id, backing_path=path,
                creation_time=int(time.time()), compression_method=method)
            self.volumes[volume_id] = volume
            self.vtrees[vtree_id] = model.VTree(vtree_id, pool.id, volume_id)
            return volume

    def set_volume_size(self, volume_id: str,
                        size_gib: int) -> model.Volume:
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
                self.capacity.check_space(pool, volume.volume_type,
                                          size_kb - volume.size_kb)
                self.storage.resize(volume.backing_path, size_kb * KIB,
                                    stale=not pool.zero_padding_enabled)
                volume.size_kb = size_kb
                self.devices.refresh(volume.id)
            return volume

    def rename_volume(self, volume_id: str, new_name: Any) -> model.Volume:
        """Rename a volume (names stay unique)."""
        with self.lock:
            volume = self._volume(volume_id)
            model.validate_name(new_name)
            if volume.name == new_name:
                return volume
            self._check_new_name(new_name)
            volume.name = new_name
            return volume

    def remove_volume(self, volume_id: str, mode: str = "ONLY_ME") -> None:
        """Remove a volume, and its descendants depending on ``mode``."""
        with self.lock:
            volume = self._volume(volume_id)
            if mode not in model.REMOVE_MODES:
                raise errors.invalid_request(
                    "removeMode should get one of the following values: "
                    + ", ".join(model.REMOVE_MODES))
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
                self.devices.publish(victim)
                self.removals.remove(victim)
            vtree = self.vtrees.get(volume.vtree_id)
            if vtree is not None:
                remaining = self.vtree_members(vtree.id)
                if not remaining:
                    del self.vtrees[vtree.id]
                elif vtree.base_volume_id not in self.volumes:
                    vtree.base_volume_id = None

    @staticmethod
    def _descendants(volume_id: str,
                     members: list[model.Volume]) -> list[model.Volume]:
        found: list[model.Volume] = []
        frontier = {volume_id}
        while frontier:
            children = [m for m in members if m.ancestor_id in frontier]
            found.extend(children)
            frontier = {c.id for c in children}
        return found

    def snapshot(self, defs: list[tuple[str, Optional[str]]],
                 volume_type: str = model.SNAPSHOT) -> tuple[list[str], str]:
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
                if self.capacity.is_full(pool):
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
                self.volumes[volume_id] = model.Volume(
                    id=volume_id, name=name, size_kb=source.size_kb,
                    volume_type=volume_type, vtree_id=source.vtree_id,
                    ancestor_id=source.id, pool_id=source.pool_id,
                    backing_path=path, creation_time=now,
                    consistency_group_id=group_id,
                    access_mode_limit=("ReadOnly"
                                       if volume_type ==
                                       model.READ_ONLY_SNAPSHOT
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
            # The device's own cache still holds the old content.
            self.devices.flush(volume.id)

    # ----------------------------------------------------------- mapping

    def map_volume(self, volume_id: str, host: model.Host,
                   allow_multiple: bool = False,
                   access_mode: Optional[str] = None) -> model.Volume:
        """Map a volume to an SDC or NVMe host."""
        with self.lock:
            volume = self._volume(volume_id)
            self.mapper.map(volume, host, allow_multiple, access_mode)
            return volume

    def unmap_volume(self, volume_id: str,
                     host: Optional[model.Host] = None) -> model.Volume:
        """Unmap a volume from ``host``, or from every host if None."""
        with self.lock:
            volume = self._volume(volume_id)
            self.mapper.unmap(volume, host)
            return volume

    def set_mapped_limits(self, volume_id: str, host: model.Host,
                          iops: Optional[int] = None,
                          bandwidth_kbps: Optional[int] = None) -> None:
        """Set the QoS limits of one mapping."""
        with self.lock:
            volume = self._volume(volume_id)
            self.mapper.set_limits(volume, host, iops, bandwidth_kbps)

    def create_nvme_host(self, nqn: Any, name: Any) -> model.Host:
        """Register an NVMe host; NQNs are unique."""
        with self.lock:
            return self.inventory.create_nvme_host(nqn, name)

    # ----------------------------------------------------------- vtrees

    def migrate_vtree(self, volume_id: str, dest_pool_id: Any,
                      conversion: str = "NoConversion",
                      compression: Optional[str] = None) -> None:
        """Move a whole VTree to ``dest_pool_id``, synchronously."""
        with self.lock:
            volume = self._volume(volume_id)
            vtree = self.vtrees[volume.vtree_id]
            dest = self.inventory.pool(dest_pool_id)
            if vtree.migration_status != model.NOT_IN_MIGRATION:
                raise errors.array_error(errors.VTREE_MIGRATION_IN_PROGRESS)
            if vtree.pool_id == dest.id:
                raise errors.array_error(errors.VTREE_MIGRATE_SAME_SP)
            source = self.pools[vtree.pool_id]
            members = self.vtree_members(vtree.id)
            migration.check(source, dest, members, conversion)
            vtree.migration_pause_reason = self.migration_pause_reason
            if vtree.migration_pause_reason:
                vtree.migration_status = "MigrationPaused"
                vtree.source_pool_id = source.id
                vtree.destination_pool_id = dest.id
                return
            migration.move(vtree, members, dest, conversion, compression)

    # ----------------------------------------------------------- statistics

    def pool_statistics(self, pool_id: str) -> dict[str, int]:
        """Return the KiB statistics of a pool (querySelectedStatistics).

        Capacities that PowerFlex counts twice (two copies of each volume)
        are doubled, so Cinder's ``/2`` gives back the provisioned sizes.
        """
        with self.lock:
            return self.capacity.pool_statistics(
                self.inventory.pool(pool_id))

    def pool_metrics(self, pool_id: str) -> dict[str, int]:
        """Return the byte metrics of a pool (``/dtapi`` metrics query)."""
        with self.lock:
            return self.capacity.pool_metrics(self.inventory.pool(pool_id))

    def vtree_statistics(self, vtree_id: str) -> dict[str, int]:
        """Return the statistics of a VTree (numOfVolumes = all members)."""
        with self.lock:
            self.get_vtree(vtree_id)
            return self.capacity.vtree_statistics(
                self.vtree_members(vtree_id))
