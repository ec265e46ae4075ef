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
"""The records of the simulated array and the rules on their names.

Constants of the PowerFlex vocabulary (generations, data layouts, volume
and host types), the dataclasses the :class:`~.array.Array` and its parts
hold (volumes, VTrees, pools, the protection domain, hosts, SDTs and
mappings), the id source and the name rules: at most 31 characters (226),
without spaces or control characters (227).
"""

import dataclasses
import itertools
import secrets
from typing import Any, Mapping, Optional, Union

from powerflex_cache_driver.simulator import errors

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


class Ids:
    """16-hex ids: 8 hex of a per-type base and an 8-hex counter."""

    def __init__(self) -> None:
        self._bases: dict[str, str] = {}
        self._counters: dict[str, "itertools.count[int]"] = {}

    def next(self, kind: str) -> str:
        """Return a new id of ``kind`` (e.g. ``"volume"``)."""
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
