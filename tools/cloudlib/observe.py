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
"""What the cloud's scenarios look at besides the OpenStack APIs.

The simulated array, through its REST API (and fault control) and its
backing files, and Glance's access log, for ``tools/cloud seed``,
``active-active`` and ``crash-rotation``.
"""

import base64
import hashlib
import json
import os
import ssl
from typing import Any, Optional
import urllib.parse
import urllib.request
import uuid


class Gateway:
    """The simulated gateway's REST API, as the cloud's gateway user."""

    def __init__(self, gateway: dict[str, str]) -> None:
        """Use the ``gateway`` entry of the cloud's description."""
        self._url = gateway["url"]
        self._user = gateway["user"]
        self._password = gateway["password"]
        self._tls = ssl.create_default_context(cafile=gateway["ca"])
        self._token: Optional[str] = None

    def _request(self, method: str, path: str, secret: str,
                 body: Any = None) -> Any:
        basic = base64.b64encode(
            ("%s:%s" % (self._user, secret)).encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._url + path, data=data, method=method,
            headers={"Authorization": "Basic " + basic,
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30,
                                    context=self._tls) as answer:
            return json.loads(answer.read() or b"null")

    def get(self, path: str) -> Any:
        """GET a gateway API path with a session token."""
        if self._token is None:
            self._token = self._request("GET", "/api/login", self._password)
        return self._request("GET", path, self._token)

    def control(self, method: str, body: Any = None) -> dict[str, Any]:
        """Call the simulator's fault-control endpoint."""
        return self._request(method, "/simulator/faults", self._password,
                             body)

    def volumes(self) -> dict[str, dict[str, Any]]:
        """Every array volume (snapshots included) by id."""
        return {v["id"]: v for v in self.get("/api/types/Volume/instances")}

    def array_id(self, object_id: str) -> str:
        """Id of the array volume Cinder named after ``object_id``.

        :raises urllib.error.HTTPError: there is none.
        """
        name = base64.b64encode(uuid.UUID(object_id).bytes).decode()
        return self.get("/api/types/Volume/instances/getByName::%s"
                        % urllib.parse.quote(name, safe=""))

    def size_gib(self, object_id: str) -> int:
        """Size of the array volume Cinder named after ``object_id``."""
        volume = self.get("/api/instances/Volume::%s"
                          % self.array_id(object_id))
        return volume["sizeInKb"] // (1024 * 1024)


def array_digest(state: str, provider_id: str, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of an array volume."""
    path = os.path.join(state, "array", "volumes", "vol-%s.img" % provider_id)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(length))
    return digest.hexdigest()


def glance_downloads(state: str, image_id: str) -> int:
    """How many times Glance served the image's data (its access log)."""
    path = os.path.join(state, "log", "glance-access.log")
    with open(path) as handle:
        return sum(1 for line in handle
                   if '"GET /v2/images/%s/file' % image_id in line)
