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
"""A PowerFlex gateway mocked with requests-mock, for unit tests.

Only the calls the size policy touches are answered, with just enough state
(volume sizes, replication pairs) to tell a needed extend from a redundant
one. Anything else answers 500, so an unexpected call fails the test.
"""

import dataclasses
import itertools
import json
import re
from typing import Any, Optional
import urllib.parse

from oslo_utils import units
import requests_mock

GIB_KB = units.Mi
PD_ID = "898f75c900000003"
POOL_ID = "fa85edfd00000000"
SDC_ID = "d6a8e2c300000001"


@dataclasses.dataclass
class Call:
    """One request seen by the fake gateway."""

    host: str
    method: str
    op: str
    volume_id: Optional[str]
    body: Any


class FakeGateway:
    """requests-mock handlers for one primary and one secondary gateway."""

    def __init__(self, mocker: requests_mock.Mocker,
                 gen_type: str = "Mirroring",
                 hosts: tuple[str, ...] = ("127.0.0.1", "127.0.0.2")) -> None:
        self.gen_type = gen_type
        self.gran = 1 if gen_type == "EC" else 8
        self.sizes_kb: dict[str, int] = {}
        self.names: dict[str, str] = {}
        """Array name -> volume id, for ``getByName`` (set by tests)."""
        self.ancestors: dict[str, str] = {}
        self.mapped: set[str] = set()
        """Volume ids the array reports mapped to an SDC (set by tests)."""
        self.pairs: list[dict[str, str]] = []
        self.calls: list[Call] = []
        self.failures: dict[str, list[tuple[int, dict]]] = {}
        self.vtree_volumes = 2
        self._ids = itertools.count(1)
        mocker.register_uri(requests_mock.ANY, re.compile("https://"),
                            json=self._answer)

    # -- state helpers -------------------------------------------------------

    def add_volume(self, physical_gib: int, host: str = "127.0.0.1") -> str:
        """Put a volume of ``physical_gib`` on the array; return its id."""
        vol_id = "%s%08x" % ("aa" if host.endswith(".1") else "bb",
                             next(self._ids))
        vol_id = vol_id.rjust(16, "0")
        self.sizes_kb[vol_id] = physical_gib * GIB_KB
        return vol_id

    def pair(self, primary_id: str, secondary_id: str) -> None:
        """Record a replication pair between two volumes."""
        self.pairs.append({"id": "pair%012d" % len(self.pairs),
                           "remoteId": "rpair%011d" % len(self.pairs),
                           "localVolumeId": primary_id,
                           "remoteVolumeId": secondary_id})

    def size_gib(self, vol_id: str) -> int:
        """Array size of a volume in GiB."""
        return self.sizes_kb[vol_id] // GIB_KB

    def fail(self, op: str, status: int, error: dict,
             times: int = 1) -> None:
        """Answer the next ``times`` calls of ``op`` with an error."""
        self.failures.setdefault(op, []).extend([(status, error)] * times)

    def reset_calls(self) -> None:
        """Forget the requests seen so far."""
        self.calls.clear()

    def ops(self) -> list[str]:
        """The operations seen, in order."""
        return [call.op for call in self.calls]

    def extends(self) -> list[tuple[str, int]]:
        """(volume id, target GiB) of every setVolumeSize seen."""
        return [(c.volume_id, int(c.body["sizeInGB"])) for c in self.calls
                if c.op == "setVolumeSize"]

    # -- request handling ----------------------------------------------------

    _ROUTES = [
        ("GET", r"/api/login$", "login"),
        ("GET", r"/api/version$", "version"),
        ("GET", r"/api/types/Domain/instances/getByName::", "getDomainByName"),
        ("GET", r"/api/instances/ProtectionDomain::", "getProtectionDomain"),
        ("POST", r"/ProtectionDomain/instances/action/queryBySelectedIds",
         "queryProtectionDomains"),
        ("GET", r"/api/types/Pool/instances/getByName::", "getPoolByName"),
        ("GET", r"/api/instances/StoragePool::", "getStoragePool"),
        ("GET", r"/api/instances/Volume::(\w+)$", "getVolume"),
        ("GET", r"/api/types/Volume/instances/getByName::([^/]+)$",
         "getVolumeByName"),
        ("POST", r"/api/instances/Volume::(\w+)/action/setVolumeSize",
         "setVolumeSize"),
        ("POST", r"/api/instances/Volume::(\w+)/action/removeVolume",
         "removeVolume"),
        ("POST", r"/api/types/Volume/instances$", "createVolume"),
        ("POST", r"/api/instances/System/action/(snapshotVolumes|"
         r"createThinClone|createSnapshot)", "clone"),
        ("GET", r"/api/types/ReplicationPair/instances$", "getPairs"),
        ("POST", r"/api/instances/ReplicationPair::(\w+)/action/"
         r"removeReplicationPair", "removePair"),
        ("GET", r"/api/instances/VTree::(\w+)/relationships/Statistics",
         "getVTreeStatistics"),
    ]

    def _route(self, method: str, path: str) -> tuple[str, Optional[str]]:
        for route_method, pattern, op in self._ROUTES:
            match = re.search(pattern, path)
            if route_method == method and match:
                if op == "clone":
                    return match.group(1), None
                return op, match.group(1) if match.groups() else None
        return "unknown", None

    def _answer(self, request: Any, context: Any) -> Any:
        op, vol_id = self._route(request.method, request.path)
        body = json.loads(request.body) if request.body else None
        self.calls.append(Call(request.hostname, request.method, op, vol_id,
                               body))
        if self.failures.get(op):
            context.status_code, error = self.failures[op].pop(0)
            return error
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            context.status_code = 500
            return {"message": "not answered by the fake: %s %s"
                    % (request.method, request.path), "errorCode": 0}
        context.status_code = 200
        return handler(context, vol_id, body)

    def _op_login(self, context, vol_id, body):
        return "fake-token"

    def _op_version(self, context, vol_id, body):
        return "5.0" if self.gen_type == "EC" else "4.5"

    def _op_getDomainByName(self, context, vol_id, body):
        return PD_ID

    def _op_getProtectionDomain(self, context, vol_id, body):
        return {"id": PD_ID, "name": "PD1"}

    def _op_queryProtectionDomains(self, context, vol_id, body):
        return [{"id": PD_ID, "genType": self.gen_type}]

    def _op_getPoolByName(self, context, vol_id, body):
        return POOL_ID

    def _op_getStoragePool(self, context, vol_id, body):
        return {"id": POOL_ID, "zeroPaddingEnabled": True,
                "dataLayout": "MediumGranularity"}

    def _op_getVolume(self, context, vol_id, body):
        if vol_id not in self.sizes_kb:
            context.status_code = 500
            return {"message": "Could not find the volume", "errorCode": 79}
        return {"id": vol_id, "sizeInKb": self.sizes_kb[vol_id],
                "vtreeId": "vtree" + vol_id[5:],
                "mappedSdcInfo": ([{"sdcId": SDC_ID, "sdcIp": "127.0.0.9"}]
                                  if vol_id in self.mapped else None),
                "storagePoolId": POOL_ID,
                "ancestorVolumeId": self.ancestors.get(vol_id)}

    def _op_getVolumeByName(self, context, name, body):
        vol_id = self.names.get(urllib.parse.unquote(name))
        if vol_id not in self.sizes_kb:
            context.status_code = 500
            return {"message": "Could not find the volume", "errorCode": 79}
        return vol_id

    def _op_setVolumeSize(self, context, vol_id, body):
        new_kb = int(body["sizeInGB"]) * GIB_KB
        if new_kb < self.sizes_kb[vol_id]:
            context.status_code = 500
            return {"message": "Volume capacity can only be increased",
                    "errorCode": 133}
        gran_kb = self.gran * GIB_KB
        self.sizes_kb[vol_id] = -(-new_kb // gran_kb) * gran_kb
        return {}

    def _op_removeVolume(self, context, vol_id, body):
        self.sizes_kb.pop(vol_id, None)
        return {}

    def _op_createVolume(self, context, vol_id, body):
        gran_kb = self.gran * GIB_KB
        size_kb = -(-int(body["volumeSizeInKb"]) // gran_kb) * gran_kb
        new_id = self.add_volume(size_kb // GIB_KB)
        if body.get("name"):
            self.names[body["name"]] = new_id
        return {"id": new_id}

    def _clone(self, body):
        source = body["snapshotDefs"][0]["volumeId"]
        new_id = self.add_volume(self.size_gib(source))
        self.ancestors[new_id] = source
        return {"volumeIdList": [new_id], "snapshotGroupId": "g" * 16}

    _op_snapshotVolumes = _op_createThinClone = _op_createSnapshot = (
        lambda self, context, vol_id, body: self._clone(body))

    def _op_getVTreeStatistics(self, context, vol_id, body):
        return {"numOfVolumes": self.vtree_volumes}

    def _op_getPairs(self, context, vol_id, body):
        return self.pairs

    def _op_removePair(self, context, pair_id, body):
        self.pairs = [p for p in self.pairs if p["id"] != pair_id]
        return {}
