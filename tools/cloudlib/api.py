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
"""A small OpenStack API client on the standard library.

``tools/cloud`` runs with the system's Python, which has no keystoneauth:
this is just enough of it to log in to Keystone (password, project scope)
and call Cinder's and Glance's APIs with the token.
"""

import json
import threading
import time
from typing import Any, Optional
import urllib.error
import urllib.request

from tools.cloudlib import layout

VOLUME_MICROVERSION = "3.67"
"""Project-less URLs, as the cloud's catalog registers Cinder."""


class ApiError(Exception):
    """An API answered with an error status."""

    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__("%s %s: %d %s" % (method, url, status, body[:500]))
        self.status = status


class Session:
    """A user's token for one project, renewed when it is about to expire."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self._credentials = credentials
        self._token: Optional[str] = None
        self._catalog: list[dict[str, Any]] = []
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        """Return a valid token, logging in when needed."""
        with self._lock:
            if self._token is None or time.monotonic() > self._expires:
                self._token = self._login()
                self._expires = time.monotonic() + 1800
            return self._token

    def catalog(self) -> list[dict[str, Any]]:
        """The service catalog of the token."""
        self.token()
        return self._catalog

    def _login(self) -> str:
        creds = self._credentials
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": creds["username"], "password": creds["password"],
                "domain": {"name": creds["user_domain_name"]}}}},
            "scope": {"project": {
                "name": creds["project_name"],
                "domain": {"name": creds["project_domain_name"]}}}}}
        request = urllib.request.Request(
            layout.url("keystone", "/v3/auth/tokens"),
            data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            self._catalog = json.loads(answer.read())["token"].get(
                "catalog", [])
            return answer.headers["X-Subject-Token"]

    def call(self, method: str, service: str, path: str,
             body: Any = None, raw: Optional[bytes] = None,
             headers: Optional[dict[str, str]] = None,
             timeout: float = 120) -> Any:
        """Call ``service``'s API; return the decoded JSON body (or None).

        :raises ApiError: the answer's status is 400 or above.
        """
        url = layout.url(service, path)
        all_headers = {"X-Auth-Token": self.token(),
                       "OpenStack-API-Version": "volume %s"
                       % VOLUME_MICROVERSION}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = urllib.request.Request(url, data=data, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                content = answer.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, url, exc.code,
                           exc.read().decode(errors="replace")) from None
        if not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            return content

    def get(self, service: str, path: str) -> Any:
        """GET ``path`` of ``service``."""
        return self.call("GET", service, path)

    def upload_image(self, name: str, data: bytes) -> str:
        """Create a public raw image holding ``data``; return its id."""
        image_id = self.call("POST", "glance", "/v2/images", body={
            "name": name, "disk_format": "raw", "container_format": "bare",
            "visibility": "public"})["id"]
        self.call("PUT", "glance", "/v2/images/%s/file" % image_id,
                  raw=data,
                  headers={"Content-Type": "application/octet-stream"})
        return image_id
