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
"""What a simulated system is made of, volumes aside.

The system id, its protection domain and storage pools, the SDCs and NVMe
hosts volumes are mapped to, and the SDTs (NVMe storage data targets);
looked up by id or name with the array's "not found" errors.

Not thread-safe: the :class:`~.array.Array` calls it under its lock.
"""

from typing import Any, Iterable, Optional

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model


class Inventory:
    """The system, protection domain, pools, hosts and SDTs of an array.

    :param ids: the array's id source.
    :param gen_type: ``"Mirroring"`` or ``"EC"`` (normalized).
    :param protection_domain: protection domain name.
    :param pools: pool names, or mappings with ``name`` and optional
        ``data_layout``, ``zero_padding_enabled`` and ``capacity_gib``. On
        Mirroring systems the first pool defaults to medium and the others
        to fine granularity; on EC systems all are ErasureCoding.
    :param sdc_guids: GUIDs of the SDCs to create.
    :param nvme_host_nqns: NQNs of NVMe hosts to create.
    """

    def __init__(self, ids: model.Ids, gen_type: str,
                 protection_domain: str,
                 pools: Iterable[model.PoolSpec],
                 sdc_guids: Iterable[str],
                 nvme_host_nqns: Iterable[str]) -> None:
        self._ids = ids
        self.gen_type = gen_type
        self.system_id = ids.next("system")
        self.system_nqn = ("nqn.1988-11.com.dell:powerflex:00:%s"
                           % self.system_id)
        self.protection_domain = model.ProtectionDomain(
            ids.next("pd"), protection_domain, gen_type)
        self.pools: dict[str, model.StoragePool] = {}
        for index, spec in enumerate(pools):
            pool = self._make_pool(index, spec)
            self.pools[pool.id] = pool
        self.hosts: dict[str, model.Host] = {}
        for index, guid in enumerate(sdc_guids):
            host_id = ids.next("sdc")
            self.hosts[host_id] = model.Host(
                host_id, model.SDC_HOST, guid=guid,
                ip="192.168.10.%d" % (11 + index))
        for nqn in nvme_host_nqns:
            self._add_nvme_host(nqn, None)
        self.sdts = [model.Sdt(ids.next("sdt"), "Sdt-sim%d" % n,
                               ("192.168.45.%d" % (21 + n),))
                     for n in range(2)]

    def _make_pool(self, index: int,
                   spec: model.PoolSpec) -> model.StoragePool:
        opts: dict[str, Any] = ({"name": spec} if isinstance(spec, str)
                                else dict(spec))
        if self.gen_type == model.EC:
            layout = model.ERASURE
        else:
            layout = model.MEDIUM if index == 0 else model.FINE
        return model.StoragePool(
            id=self._ids.next("pool"), name=opts["name"],
            pd_id=self.protection_domain.id,
            data_layout=opts.get("data_layout", layout),
            zero_padding_enabled=opts.get("zero_padding_enabled", True),
            capacity_gib=opts.get("capacity_gib",
                                  model.DEFAULT_POOL_CAPACITY_GIB))

    def _add_nvme_host(self, nqn: str, name: Optional[str]) -> model.Host:
        host_id = self._ids.next("host")
        host = model.Host(host_id, model.NVME_HOST, name=name, nqn=nqn)
        self.hosts[host_id] = host
        return host

    def pool(self, pool_id: Any) -> model.StoragePool:
        """Return a pool or raise 171."""
        try:
            return self.pools[pool_id]
        except (KeyError, TypeError):
            raise errors.array_error(errors.STORAGE_POOL_NOT_FOUND) from None

    def host(self, host_id: Any) -> model.Host:
        """Return an SDC or NVMe host or raise 80."""
        try:
            return self.hosts[host_id]
        except (KeyError, TypeError):
            raise errors.array_error(errors.INI_NOT_FOUND) from None

    def check_domain(self, pd_id: Optional[str]) -> None:
        """Raise 142 unless ``pd_id`` is None or the protection domain's."""
        if pd_id is not None and pd_id != self.protection_domain.id:
            raise errors.array_error(errors.FD_NOT_FOUND)

    def pool_by_name(self, pd_id: str, name: str) -> model.StoragePool:
        """Return the pool ``name`` of protection domain ``pd_id``."""
        if pd_id != self.protection_domain.id:
            raise errors.array_error(errors.FD_NOT_FOUND)
        for pool in self.pools.values():
            if pool.name == name:
                return pool
        raise errors.array_error(errors.STORAGE_POOL_NOT_FOUND)

    def host_by_guid(self, guid: Any) -> model.Host:
        """Return the SDC with ``guid`` (case-insensitive) or raise 80."""
        for host in self.hosts.values():
            if (host.guid and isinstance(guid, str) and
                    host.guid.lower() == guid.lower()):
                return host
        raise errors.array_error(errors.INI_NOT_FOUND)

    def create_nvme_host(self, nqn: Any, name: Any) -> model.Host:
        """Register an NVMe host; NQNs are unique."""
        if not isinstance(nqn, str) or not nqn:
            raise errors.invalid_request(
                "The following parameter(s) must be part of the request "
                "body: nqn.")
        if name is not None:
            model.validate_name(name)
        for host in self.hosts.values():
            if host.nqn and host.nqn.lower() == nqn.lower():
                raise errors.array_error(
                    errors.ILLEGAL, "A host with this NQN already exists")
            if name is not None and host.name == name:
                raise errors.array_error(
                    errors.ILLEGAL, "A host with this name already exists")
        return self._add_nvme_host(nqn, name)
