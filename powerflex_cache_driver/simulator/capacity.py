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
"""The capacity of the simulated pools: what is used, what fits, statistics.

A full pool refuses what would need space: a thick volume (or a thick
extend) larger than the free capacity (190), a thin volume or extend beyond
the thin allocation limit, or in a pool without free capacity (300).
Volumes in deletion hold their capacity until removed.

Not thread-safe: the :class:`~.array.Array` calls it under its lock.
"""

from typing import Mapping

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import removals
from powerflex_cache_driver.simulator import storage

KIB = model.KIB
GIB_KB = model.GIB_KB


class Capacity:
    """Space accounting and statistics over an array's volumes.

    :param store: the backing files (their allocated bytes are the data
        written).
    :param volumes: the array's volumes by id (read, never changed).
    :param deleting: the array's volumes in deletion.
    """

    def __init__(self, store: storage.SparseStore,
                 volumes: Mapping[str, model.Volume],
                 deleting: removals.Removals) -> None:
        self.store = store
        self.volumes = volumes
        self.deleting = deleting

    def _in_pool(self, pool: model.StoragePool) -> list[model.Volume]:
        return [v for v in self.volumes.values() if v.pool_id == pool.id]

    def used_kb(self, pool: model.StoragePool) -> tuple[int, int]:
        """Return ``(capacity in use, thin KiB provisioned)`` of a pool.

        In use: thick volumes' sizes and the data written to the others;
        volumes in deletion still hold theirs.
        """
        volumes = self._in_pool(pool) + self.deleting.in_pool(pool.id)
        thick = sum(v.size_kb for v in volumes
                    if v.volume_type == model.THICK)
        written = sum(self.store.allocated_bytes(v.backing_path)
                      for v in volumes
                      if v.volume_type != model.THICK) // KIB
        thin = sum(v.size_kb for v in volumes
                   if v.volume_type != model.THICK)
        return thick + written, thin

    def is_full(self, pool: model.StoragePool) -> bool:
        """True when nothing of the pool's capacity is free."""
        return self.used_kb(pool)[0] >= pool.capacity_gib * GIB_KB

    def check_space(self, pool: model.StoragePool, volume_type: str,
                    grow_kb: int) -> None:
        """Refuse ``grow_kb`` more of ``volume_type`` in a full pool.

        Thick: 190 when larger than the free capacity; thin (and
        snapshots): 300 beyond the allocation limit or without free
        capacity.
        """
        capacity = pool.capacity_gib * GIB_KB
        used, thin = self.used_kb(pool)
        free = capacity - used
        if volume_type == model.THICK:
            if grow_kb > free:
                raise errors.array_error(errors.VOL_SIZE_TOO_LARGE)
        elif free <= 0 or (thin + grow_kb >
                           model.THIN_ALLOCATION_FACTOR * capacity):
            raise errors.array_error(errors.TOO_MUCH_THIN_CAPACITY)

    def pool_statistics(self, pool: model.StoragePool) -> dict[str, int]:
        """Return the KiB statistics of a pool (querySelectedStatistics).

        Capacities that PowerFlex counts twice (two copies of each volume)
        are doubled, so Cinder's ``/2`` gives back the provisioned sizes.
        """
        self.deleting.purge()
        volumes = self._in_pool(pool)
        thick = sum(v.size_kb for v in volumes
                    if v.volume_type == model.THICK)
        thin = sum(v.size_kb for v in volumes if v.volume_type == model.THIN)
        snaps = sum(v.size_kb for v in volumes if v.is_snapshot)
        written = sum(self.store.allocated_bytes(v.backing_path)
                      for v in volumes
                      if v.volume_type != model.THICK) // KIB
        # Volumes in deletion hold their capacity until removed.
        in_use = self.used_kb(pool)[0]
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
            "numOfVolumesInDeletion": len(self.deleting.in_pool(pool.id)),
        }

    def pool_metrics(self, pool: model.StoragePool) -> dict[str, int]:
        """Return the byte metrics of a pool (``/dtapi`` metrics query)."""
        volumes = self._in_pool(pool)
        used = sum(self.store.allocated_bytes(v.backing_path)
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

    def vtree_statistics(self, members: list[model.Volume]
                         ) -> dict[str, int]:
        """Return the statistics of a VTree's ``members`` (all of them)."""
        base = [m for m in members if not m.is_snapshot]
        snaps = [m for m in members if m.is_snapshot]

        def used(volumes: list[model.Volume]) -> int:
            return sum(self.store.allocated_bytes(v.backing_path)
                       for v in volumes) // KIB

        return {
            "numOfVolumes": len(members),
            "numOfSnapshots": len(snaps),
            "netCapacityInUseInKb": used(members),
            "baseNetCapacityInUseInKb": used(base),
            "snapNetCapacityInUseInKb": used(snaps),
            "trimmedCapacityInKb": 0,
        }
