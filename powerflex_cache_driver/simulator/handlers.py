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
"""Routes of the gateway REST API and their handlers.

Routing works on the **raw** request path, so a ``%2F`` inside a name is
never a path separator. Name arguments (``getByName::``) are then
percent-decoded with :func:`urllib.parse.unquote` (never ``unquote_plus``:
a ``+`` in a base64 name stays a ``+``) once, and a second time when the
once-decoded form names nothing: Cinder encodes names once, os-brick twice.

A handler takes a :class:`Request` and returns the JSON value of a 200
answer, or raises :class:`~powerflex_cache_driver.simulator.errors.ApiError`.
"""

import dataclasses
import re
from typing import Any, Callable, Optional
from urllib.parse import unquote

from powerflex_cache_driver.simulator import array as sim_array
from powerflex_cache_driver.simulator import auth
from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import views

_ID = r"(?P<id>[^/]+)"
_VOL = r"(?P<volume_id>[^/]+)"


@dataclasses.dataclass
class Request:
    """What a handler needs to answer one request."""

    array: sim_array.Array
    tokens: auth.TokenStore
    params: dict[str, str]
    body: Any
    token: Optional[str] = None

    def arg(self, name: str) -> str:
        """Return a once-decoded URL argument (an id)."""
        return unquote(self.params[name])


Handler = Callable[[Request], Any]


@dataclasses.dataclass(frozen=True)
class Route:
    """One endpoint: method, raw-path pattern, operation name, handler."""

    method: str
    pattern: "re.Pattern[str]"
    op: str
    handler: Handler


def name_candidates(raw: str) -> list[str]:
    """Return the once- and twice-decoded forms of a name argument."""
    once = unquote(raw)
    twice = unquote(once)
    return [once] if twice == once else [once, twice]


# ------------------------------------------------------------ body helpers

def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.invalid_request("the request body must be an object")
    return body


def _require(body: Any, *keys: str) -> dict[str, Any]:
    data = _obj(body)
    missing = [k for k in keys if data.get(k) is None]
    if missing:
        raise errors.invalid_request(
            "The following parameter(s) must be part of the request body: "
            "%s." % ", ".join(missing))
    return data


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise errors.invalid_request("%s must be a number" % field)
    try:
        return int(str(value).strip())
    except ValueError:
        raise errors.invalid_request(
            "%s must be a number" % field) from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _ids(body: Any) -> list[str]:
    data = _require(body, "ids")
    ids = data["ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise errors.invalid_request("ids must be a list of strings")
    return ids


def _target_host(array: sim_array.Array, data: dict[str, Any]) -> model.Host:
    if data.get("sdcId") is not None:
        return array.get_host(data["sdcId"])
    if data.get("hostId") is not None:
        return array.get_host(data["hostId"])
    if data.get("guid") is not None:
        return array.host_by_guid(data["guid"])
    raise errors.invalid_request(
        "The following parameter(s) must be part of the request body: "
        "sdcId or guid.")


# ------------------------------------------------------------ session

def login(req: Request) -> Any:
    """``GET /api/login``: handled by the server (needs credentials)."""
    raise AssertionError("login is answered by the server")


def logout(req: Request) -> Any:
    """``GET /api/logout``: revoke the caller's token."""
    if req.token:
        req.tokens.revoke(req.token)
    return {}


def version(req: Request) -> Any:
    """``GET /api/version``: the version as a JSON string."""
    return req.array.version


def get_systems(req: Request) -> Any:
    """``GET /api/types/System/instances``."""
    with req.array.lock:
        return [views.system(req.array)]


# ------------------------------------------------------------ PD and pools

def get_domain_by_name(req: Request) -> Any:
    """``GET /api/types/Domain/instances/getByName::{name}``."""
    pd = req.array.protection_domain
    if pd.name in name_candidates(req.params["name"]):
        return pd.id
    raise errors.array_error(errors.FD_NOT_FOUND)


def get_protection_domain(req: Request) -> Any:
    """``GET /api/instances/ProtectionDomain::{id}``."""
    if req.arg("id") != req.array.protection_domain.id:
        raise errors.array_error(errors.FD_NOT_FOUND)
    with req.array.lock:
        return views.protection_domain(req.array)


def query_protection_domains(req: Request) -> Any:
    """``POST .../ProtectionDomain/instances/action/queryBySelectedIds``."""
    ids = _ids(req.body)
    with req.array.lock:
        if req.array.protection_domain.id in ids:
            return [views.protection_domain(req.array)]
        return []


def get_pool_by_name(req: Request) -> Any:
    """``GET /api/types/Pool/instances/getByName::{pdId},{name}``."""
    pd_raw, sep, name_raw = req.params["args"].partition(",")
    if not sep:
        raise errors.invalid_request(
            "getByName expects <protection domain id>,<pool name>")
    pd_id = unquote(pd_raw)
    last: Optional[errors.ApiError] = None
    for name in name_candidates(name_raw):
        try:
            return req.array.pool_by_name(pd_id, name).id
        except errors.ApiError as exc:
            last = exc
    assert last is not None
    raise last


def get_storage_pool(req: Request) -> Any:
    """``GET /api/instances/StoragePool::{id}``."""
    with req.array.lock:
        return views.pool(req.array, req.array.get_pool(req.arg("id")))


def get_pool_volumes(req: Request) -> Any:
    """``GET /api/instances/StoragePool::{id}/relationships/Volume``."""
    with req.array.lock:
        return [views.volume(req.array, v)
                for v in req.array.pool_volumes(req.arg("id"))]


def query_pool_statistics(req: Request) -> Any:
    """``POST .../StoragePool/instances/action/querySelectedStatistics``.

    The answer is keyed by pool id; Cinder sends one id and unpacks exactly
    one value.
    """
    ids = _ids(req.body)
    props = _obj(req.body).get("properties")
    if props is not None and not isinstance(props, list):
        raise errors.invalid_request("properties must be a list")
    result = {}
    for pool_id in ids:
        stats = req.array.pool_statistics(pool_id)
        if props is None:
            result[pool_id] = stats
            continue
        unknown = [p for p in props if p not in stats]
        if unknown:
            raise errors.invalid_request(
                "unknown statistics properties: %s" % ", ".join(
                    str(p) for p in unknown))
        result[pool_id] = {p: stats[p] for p in props}
    return result


def metrics_query(req: Request) -> Any:
    """``POST /dtapi/rest/v1/metrics/query`` (PowerFlex 5 pool metrics)."""
    data = _require(req.body, "resource_type", "ids")
    if data["resource_type"] != "storage_pool":
        raise errors.invalid_request(
            "unsupported resource_type %r" % data["resource_type"])
    ids = _ids(req.body)
    wanted = data.get("metrics")
    resources = []
    for pool_id in ids:
        metrics = req.array.pool_metrics(pool_id)
        names = wanted if wanted is not None else list(metrics)
        unknown = [m for m in names if m not in metrics]
        if unknown:
            raise errors.invalid_request(
                "unknown metrics: %s" % ", ".join(str(m) for m in unknown))
        resources.append({
            "id": pool_id,
            "resource_type": "storage_pool",
            "metrics": [{"name": n, "values": [metrics[n]]} for n in names],
        })
    return {"metadata": {}, "links": [], "fields": [],
            "resources": resources}


# ------------------------------------------------------------ volumes

def create_volume(req: Request) -> Any:
    """``POST /api/types/Volume/instances``."""
    data = _require(req.body, "storagePoolId", "volumeSizeInKb")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise errors.invalid_request("name must be a string")
    volume = req.array.create_volume(
        name=name, pool_id=data["storagePoolId"],
        size_kb=_int(data["volumeSizeInKb"], "volumeSizeInKb"),
        volume_type=data.get("volumeType", model.THICK),
        compression=data.get("compressionMethod"),
        pd_id=data.get("protectionDomainId"))
    return {"id": volume.id}


def get_volumes(req: Request) -> Any:
    """``GET /api/types/Volume/instances``."""
    with req.array.lock:
        return [views.volume(req.array, v)
                for v in list(req.array.volumes.values())]


def get_volume(req: Request) -> Any:
    """``GET /api/instances/Volume::{id}``."""
    with req.array.lock:
        return views.volume(req.array,
                            req.array.get_volume(req.arg("volume_id")))


def get_volume_by_name(req: Request) -> Any:
    """``GET /api/types/Volume/instances/getByName::{name}``."""
    for name in name_candidates(req.params["name"]):
        volume = req.array.volume_by_name(name)
        if volume is not None:
            return volume.id
    for name in name_candidates(req.params["name"]):
        # The name stays taken while the volume is removed (assumption:
        # the lookup answers as a lookup by id does, 212).
        if req.array.deleting_by_name(name) is not None:
            raise errors.array_error(errors.VOL_REMOVE_IN_PROGRESS)
    raise errors.array_error(errors.VOL_NOT_FOUND)


def set_volume_size(req: Request) -> Any:
    """``POST Volume::{id}/action/setVolumeSize`` ``{"sizeInGB": "n"}``."""
    data = _require(req.body, "sizeInGB")
    req.array.set_volume_size(req.arg("volume_id"),
                              _int(data["sizeInGB"], "sizeInGB"))
    return {}


def remove_volume(req: Request) -> Any:
    """``POST Volume::{id}/action/removeVolume`` ``{"removeMode": ...}``."""
    data = _require(req.body, "removeMode")
    req.array.remove_volume(req.arg("volume_id"), data["removeMode"])
    return {}


def set_volume_name(req: Request) -> Any:
    """``POST Volume::{id}/action/setVolumeName`` ``{"newName": ...}``."""
    data = _require(req.body, "newName")
    req.array.rename_volume(req.arg("volume_id"), data["newName"])
    return {}


def add_mapped_sdc(req: Request) -> Any:
    """``POST Volume::{id}/action/addMappedSdc`` (sdcId or guid)."""
    data = _obj(req.body)
    volume_id = req.arg("volume_id")
    req.array.get_volume(volume_id)
    host = _target_host(req.array, data)
    req.array.map_volume(
        volume_id, host,
        allow_multiple=_bool(data.get("allowMultipleMappings", False)),
        access_mode=data.get("accessMode"))
    return {}


def remove_mapped_sdc(req: Request) -> Any:
    """``POST Volume::{id}/action/removeMappedSdc``.

    The presence of ``allSdcs`` (Cinder sends ``""``) unmaps every host.
    """
    data = _obj(req.body)
    volume_id = req.arg("volume_id")
    req.array.get_volume(volume_id)
    if "allSdcs" in data:
        req.array.unmap_volume(volume_id)
    else:
        req.array.unmap_volume(volume_id, _target_host(req.array, data))
    return {}


def set_mapped_sdc_limits(req: Request) -> Any:
    """``POST Volume::{id}/action/setMappedSdcLimits``."""
    data = _obj(req.body)
    volume_id = req.arg("volume_id")
    req.array.get_volume(volume_id)
    host = _target_host(req.array, data)
    iops = data.get("iopsLimit")
    bandwidth = data.get("bandwidthLimitInKbps")
    req.array.set_mapped_limits(
        volume_id, host,
        iops=None if iops is None else _int(iops, "iopsLimit"),
        bandwidth_kbps=(None if bandwidth is None
                        else _int(bandwidth, "bandwidthLimitInKbps")))
    return {}


def overwrite_volume_content(req: Request) -> Any:
    """``POST Volume::{id}/action/overwriteVolumeContent``."""
    data = _require(req.body, "srcVolumeId")
    req.array.overwrite_volume_content(req.arg("volume_id"),
                                       data["srcVolumeId"])
    return {}


def migrate_vtree(req: Request) -> Any:
    """``POST Volume::{id}/action/migrateVTree`` (completes at once)."""
    data = _require(req.body, "destSPId")
    req.array.migrate_vtree(
        req.arg("volume_id"), data["destSPId"],
        conversion=data.get("volTypeConversion", "NoConversion"),
        compression=data.get("compressionMethod"))
    return {}


# ------------------------------------------------------------ snapshots

def _snapshot(req: Request, volume_type: str, action: str,
              generation: str) -> Any:
    system_id = req.params.get("system_id")
    if system_id is not None and unquote(system_id) != req.array.system_id:
        raise errors.array_error(errors.NOT_FOUND)
    if req.array.gen_type != generation:
        raise errors.invalid_request(
            "%s is not supported on a PowerFlex %s system" % (
                action, req.array.gen_type))
    data = _require(req.body, "snapshotDefs")
    defs = data["snapshotDefs"]
    if not isinstance(defs, list) or not defs:
        raise errors.invalid_request("snapshotDefs must be a non-empty list")
    pairs = []
    for item in defs:
        entry = _require(item, "volumeId")
        name = entry.get("snapshotName")
        if name is not None and not isinstance(name, str):
            raise errors.invalid_request("snapshotName must be a string")
        pairs.append((entry["volumeId"], name))
    ids, group_id = req.array.snapshot(pairs, volume_type)
    return {"volumeIdList": ids, "snapshotGroupId": group_id}


def snapshot_volumes(req: Request) -> Any:
    """``POST /api/instances/System[::{id}]/action/snapshotVolumes``."""
    return _snapshot(req, model.SNAPSHOT, "snapshotVolumes", model.MIRRORING)


def create_snapshot(req: Request) -> Any:
    """``POST /api/instances/System[::{id}]/action/createSnapshot`` (EC)."""
    return _snapshot(req, model.READ_ONLY_SNAPSHOT, "createSnapshot",
                     model.EC)


def create_thin_clone(req: Request) -> Any:
    """``POST /api/instances/System[::{id}]/action/createThinClone`` (EC)."""
    return _snapshot(req, model.THIN_CLONE, "createThinClone", model.EC)


def get_vtree(req: Request) -> Any:
    """``GET /api/instances/VTree::{id}``."""
    with req.array.lock:
        return views.vtree(req.array, req.array.get_vtree(req.arg("id")))


def get_vtree_statistics(req: Request) -> Any:
    """``GET /api/instances/VTree::{id}/relationships/Statistics``.

    A PowerFlex 5 (EC) system has no VTree statistics: its snapshots
    belong to a "volume family" (formerly vTree, LXD's PowerFlex
    documentation) and Dell's gen2 clients (PyPowerFlex ``objects/gen2``,
    the Ansible v2 mocks) know no VTree object or statistics. The
    gateway answers as for any unknown resource, 404 (the status is an
    assumption).
    """
    if req.array.is_ec:
        raise errors.not_found(
            "Not found: /api/instances/VTree::%s/relationships/Statistics"
            % req.params["id"])
    return req.array.vtree_statistics(req.arg("id"))


# ------------------------------------------------------------ hosts

def get_sdcs(req: Request) -> Any:
    """``GET /api/types/Sdc/instances`` (SDCs and NVMe hosts)."""
    with req.array.lock:
        return [views.host(req.array, h) for h in req.array.hosts.values()]


def get_sdc(req: Request) -> Any:
    """``GET /api/instances/Sdc::{id}``."""
    with req.array.lock:
        return views.host(req.array, req.array.get_host(req.arg("id")))


def get_sdc_volumes(req: Request) -> Any:
    """``GET /api/instances/Sdc::{id}/relationships/Volume``."""
    with req.array.lock:
        return [views.volume(req.array, v)
                for v in req.array.host_volumes(req.arg("id"))]


def create_host(req: Request) -> Any:
    """``POST /api/types/Host/instances`` ``{"nqn", "name"}``."""
    data = _require(req.body, "nqn")
    return {"id": req.array.create_nvme_host(data["nqn"],
                                             data.get("name")).id}


def get_sdts(req: Request) -> Any:
    """``GET /api/types/Sdt/instances``."""
    with req.array.lock:
        return [views.sdt(req.array, s) for s in req.array.sdts]


# ------------------------------------------------------------ route table

_VOLUME_ACTIONS = {
    "setVolumeSize": set_volume_size,
    "removeVolume": remove_volume,
    "setVolumeName": set_volume_name,
    "addMappedSdc": add_mapped_sdc,
    "removeMappedSdc": remove_mapped_sdc,
    "setMappedSdcLimits": set_mapped_sdc_limits,
    "overwriteVolumeContent": overwrite_volume_content,
    "migrateVTree": migrate_vtree,
}
_SYSTEM_ACTIONS = {
    "snapshotVolumes": snapshot_volumes,
    "createSnapshot": create_snapshot,
    "createThinClone": create_thin_clone,
}


def _route(method: str, pattern: str, op: str, handler: Handler) -> Route:
    return Route(method, re.compile("^" + pattern + "$"), op, handler)


ROUTES: list[Route] = [
    _route("GET", "/api/login", "login", login),
    _route("GET", "/api/logout", "logout", logout),
    _route("GET", "/api/version", "version", version),
    _route("GET", "/api/types/System/instances", "getSystems", get_systems),
    _route("GET", r"/api/types/(?:Domain|ProtectionDomain)/instances/"
           r"getByName::(?P<name>[^/]+)", "getDomainByName",
           get_domain_by_name),
    _route("GET", "/api/instances/ProtectionDomain::" + _ID,
           "getProtectionDomain", get_protection_domain),
    _route("POST", "/api/types/ProtectionDomain/instances/action/"
           "queryBySelectedIds", "queryProtectionDomains",
           query_protection_domains),
    _route("GET", r"/api/types/(?:Pool|StoragePool)/instances/"
           r"getByName::(?P<args>[^/]+)", "getPoolByName", get_pool_by_name),
    _route("GET", "/api/instances/StoragePool::" + _ID, "getStoragePool",
           get_storage_pool),
    _route("GET", "/api/instances/StoragePool::" + _ID +
           "/relationships/Volume", "getPoolVolumes", get_pool_volumes),
    _route("POST", "/api/types/StoragePool/instances/action/"
           "querySelectedStatistics", "queryPoolStatistics",
           query_pool_statistics),
    _route("POST", "/dtapi/rest/v1/metrics/query", "metricsQuery",
           metrics_query),
    _route("POST", "/api/types/Volume/instances", "createVolume",
           create_volume),
    _route("GET", "/api/types/Volume/instances", "getVolumes", get_volumes),
    _route("GET", "/api/instances/Volume::" + _VOL, "getVolume", get_volume),
    _route("GET", r"/api/types/Volume/instances/getByName::(?P<name>[^/]+)",
           "getVolumeByName", get_volume_by_name),
    _route("GET", "/api/instances/VTree::" + _ID, "getVTree", get_vtree),
    _route("GET", "/api/instances/VTree::" + _ID +
           "/relationships/Statistics", "getVTreeStatistics",
           get_vtree_statistics),
    _route("GET", "/api/types/Sdc/instances", "getSdcs", get_sdcs),
    _route("GET", "/api/instances/Sdc::" + _ID, "getSdc", get_sdc),
    _route("GET", "/api/instances/(?:Sdc|Host)::" + _ID +
           "/relationships/Volume", "getSdcVolumes", get_sdc_volumes),
    _route("GET", "/api/types/Host/instances", "getHosts", get_sdcs),
    _route("POST", "/api/types/Host/instances", "createHost", create_host),
    _route("GET", "/api/types/Sdt/instances", "getSdts", get_sdts),
]
ROUTES += [
    _route("POST", "/api/instances/Volume::" + _VOL + "/action/" + action,
           action, handler)
    for action, handler in _VOLUME_ACTIONS.items()
]
ROUTES += [
    _route("POST", r"/api/instances/System(?:::(?P<system_id>[^/]+))?"
           "/action/" + action, action, handler)
    for action, handler in _SYSTEM_ACTIONS.items()
]


def resolve(method: str, raw_path: str
            ) -> tuple[Optional[Route], dict[str, str], bool]:
    """Find the route of a raw path.

    :returns: ``(route, url arguments, path_known)``; ``route`` is None when
        nothing matches, and ``path_known`` then tells whether the path
        exists for another method (405 rather than 404).
    """
    path = raw_path.split("?", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    path_known = False
    for route in ROUTES:
        match = route.pattern.match(path)
        if match is None:
            continue
        if route.method == method:
            args = {k: v for k, v in match.groupdict().items()
                    if v is not None}
            return route, args, True
        path_known = True
    return None, {}, path_known
