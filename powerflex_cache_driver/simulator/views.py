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
"""JSON views of the model objects, shaped like the gateway's answers.

The field sets are realistic supersets of what Cinder and os-brick read
(reference section 3). Call these with the array lock held.
"""

from typing import Any, Optional

from powerflex_cache_driver.simulator import array as sim_array
from powerflex_cache_driver.simulator import model


def _link(rel: str, href: str) -> dict[str, str]:
    return {"rel": rel, "href": href}


def volume(array: sim_array.Array, vol: model.Volume) -> dict[str, Any]:
    """Return the ``GET /api/instances/Volume::{id}`` object."""
    mapped: Optional[list[dict[str, Any]]] = None
    if vol.mappings:
        mapped = []
        for mapping in vol.mappings.values():
            host = array.hosts.get(mapping.host_id)
            mapped.append({
                "limitIops": mapping.limit_iops,
                "limitBwInMbps": mapping.limit_bw_kbps // 1024,
                "isDirectBufferMapping": False,
                "sdcId": mapping.host_id,
                "sdcIp": host.ip if host else None,
                "sdcName": host.name if host else None,
                "accessMode": mapping.access_mode,
                "nqn": host.nqn if host else None,
                "hostType": host.host_type if host else model.SDC_HOST,
            })
    pool = array.pools.get(vol.pool_id)
    href = "/api/instances/Volume::%s" % vol.id
    links = [
        _link("self", href),
        _link("/api/Volume/relationship/Statistics",
              href + "/relationships/Statistics"),
        _link("/api/parent/relationship/vtreeId",
              "/api/instances/VTree::%s" % vol.vtree_id),
        _link("/api/parent/relationship/storagePoolId",
              "/api/instances/StoragePool::%s" % vol.pool_id),
    ]
    if vol.ancestor_id:
        links.append(_link("/api/parent/relationship/ancestorVolumeId",
                           "/api/instances/Volume::%s" % vol.ancestor_id))
    result: dict[str, Any] = {
        "id": vol.id,
        "name": vol.name,
        "sizeInKb": vol.size_kb,
        "volumeType": vol.volume_type,
        "vtreeId": vol.vtree_id,
        "ancestorVolumeId": vol.ancestor_id,
        "storagePoolId": vol.pool_id,
        "consistencyGroupId": vol.consistency_group_id,
        "mappedSdcInfo": mapped,
        "mappingToAllSdcsEnabled": False,
        "creationTime": vol.creation_time,
        "dataLayout": pool.data_layout if pool else None,
        "compressionMethod": vol.compression_method,
        "accessModeLimit": vol.access_mode_limit,
        "useRmcache": False,
        "isObfuscated": False,
        "notGenuineSnapshot": False,
        "secureSnapshotExpTime": 0,
        "managedBy": "ScaleIO",
        "volumeReplicationState": "UnmarkedForReplication",
        "replicationJournalVolume": False,
        "replicationTimeStamp": 0,
        "lockedAutoSnapshot": False,
        "lockedAutoSnapshotMarkedForRemoval": False,
        "originalExpiryTime": 0,
        "timeStampIsAccurate": False,
        "volumeClass": "defaultclass",
        "pairIds": None,
        "links": links,
    }
    if array.is_ec:
        result["genType"] = model.EC
    return result


def vtree(array: sim_array.Array, tree: model.VTree) -> dict[str, Any]:
    """Return the ``GET /api/instances/VTree::{id}`` object."""
    members = array.vtree_members(tree.id)
    member_ids = {m.id for m in members}
    roots = [m.id for m in members if m.ancestor_id not in member_ids]
    pool = array.pools.get(tree.pool_id)
    base = array.volumes.get(tree.base_volume_id or "")
    return {
        "id": tree.id,
        "name": None,
        "storagePoolId": tree.pool_id,
        "baseVolumeId": tree.base_volume_id,
        "rootVolumes": roots,
        "dataLayout": pool.data_layout if pool else None,
        "compressionMethod": (base.compression_method if base
                              else "NotApplicable"),
        "inDeletion": False,
        "vtreeMigrationInfo": {
            "sourceStoragePoolId": tree.source_pool_id,
            "destinationStoragePoolId": tree.destination_pool_id,
            "migrationStatus": tree.migration_status,
            "migrationPauseReason": tree.migration_pause_reason,
            "migrationQueuePosition": 0,
            "thicknessConversionType": None,
        },
        "links": [
            _link("self", "/api/instances/VTree::%s" % tree.id),
            _link("/api/VTree/relationship/Statistics",
                  "/api/instances/VTree::%s/relationships/Statistics"
                  % tree.id),
        ],
    }


def pool(array: sim_array.Array, sp: model.StoragePool) -> dict[str, Any]:
    """Return the ``GET /api/instances/StoragePool::{id}`` object."""
    result: dict[str, Any] = {
        "id": sp.id,
        "name": sp.name,
        "protectionDomainId": sp.pd_id,
        "zeroPaddingEnabled": sp.zero_padding_enabled,
        "dataLayout": sp.data_layout,
        "compressionMethod": ("Normal" if sp.data_layout != model.MEDIUM
                              else "Invalid"),
        "mediaType": "SSD",
        "sparePercentage": 10,
        "useRmcache": False,
        "capacityAlertHighThreshold": 80,
        "capacityAlertCriticalThreshold": 90,
        "links": [
            _link("self", "/api/instances/StoragePool::%s" % sp.id),
            _link("/api/StoragePool/relationship/Volume",
                  "/api/instances/StoragePool::%s/relationships/Volume"
                  % sp.id),
            _link("/api/parent/relationship/protectionDomainId",
                  "/api/instances/ProtectionDomain::%s" % sp.pd_id),
        ],
    }
    if array.is_ec:
        result.update({
            "genType": model.EC,
            "protectionScheme": "TwoPlusTwo",
            "overProvisioningFactor": 100,
            "physicalSizeGB": sp.capacity_gib,
            "spHealthState": "Protected",
        })
    return result


def protection_domain(array: sim_array.Array) -> dict[str, Any]:
    """Return the ``GET /api/instances/ProtectionDomain::{id}`` object."""
    pd = array.protection_domain
    return {
        "id": pd.id,
        "name": pd.name,
        "systemId": array.system_id,
        "protectionDomainState": "Active",
        "genType": pd.gen_type,
        "links": [
            _link("self", "/api/instances/ProtectionDomain::%s" % pd.id),
            _link("/api/parent/relationship/systemId",
                  "/api/instances/System::%s" % array.system_id),
        ],
    }


def host(array: sim_array.Array, item: model.Host) -> dict[str, Any]:
    """Return an SDC or NVMe host as listed by ``Sdc`` and ``Host``."""
    sdc = item.host_type == model.SDC_HOST
    kind = "Sdc" if sdc else "Host"
    href = "/api/instances/%s::%s" % (kind, item.id)
    version = "R%s_%s.0" % (array.version.split(".")[0], array.version)
    return {
        "id": item.id,
        "name": item.name,
        "systemId": array.system_id,
        "hostType": item.host_type,
        "sdcGuid": item.guid,
        "sdcIp": item.ip,
        "sdcIps": [item.ip] if item.ip else None,
        "sdcApproved": True if sdc else None,
        "mdmConnectionState": "Connected" if sdc else None,
        "osType": "Linux" if sdc else None,
        "sdcType": "AppSdc" if sdc else None,
        "perfProfile": "HighPerformance" if sdc else None,
        "versionInfo": version if sdc else None,
        "softwareVersionInfo": version if sdc else None,
        "nqn": item.nqn,
        "maxNumPaths": None if sdc else 4,
        "maxNumSysPorts": None if sdc else 10,
        "hostOsFullType": None if sdc else "Generic",
        "links": [
            _link("self", href),
            _link("/api/%s/relationship/Volume" % kind,
                  href + "/relationships/Volume"),
            _link("/api/parent/relationship/systemId",
                  "/api/instances/System::%s" % array.system_id),
        ],
    }


def sdt(array: sim_array.Array, item: model.Sdt) -> dict[str, Any]:
    """Return an NVMe target as listed by ``GET /api/types/Sdt/instances``."""
    return {
        "id": item.id,
        "name": item.name,
        "sdtState": "Normal",
        "ipList": [{"role": "StorageAndHost", "ip": ip} for ip in item.ips],
        "systemId": array.system_id,
        "protectionDomainId": array.protection_domain.id,
        "storagePort": 12200,
        "nvmePort": item.nvme_port,
        "discoveryPort": 8009,
        "mdmConnectionState": "Connected",
        "membershipState": "Joined",
        "maintenanceState": "NoMaintenance",
        "links": [_link("self", "/api/instances/Sdt::%s" % item.id)],
    }


def system(array: sim_array.Array) -> dict[str, Any]:
    """Return the ``System`` object."""
    return {
        "id": array.system_id,
        "name": "powerflex-simulator",
        "systemVersionName": "DellEMC PowerFlex Version: R%s" % (
            array.version.replace(".", "_")),
        "systemNqn": array.system_nqn,
        "mdmCluster": {"clusterMode": "ThreeNodes",
                       "clusterState": "ClusteredNormal"},
        "restrictedSdcModeEnabled": False,
        "enterpriseFeaturesEnabled": True,
        "maxCapacityInGb": "307200",
        "tlsVersion": "TLSv1.2",
        "links": [_link("self",
                        "/api/instances/System::%s" % array.system_id)],
    }
