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
"""Fixtures and a raw HTTPS client for the gateway simulator tests."""

import json
import ssl
import sys
from typing import Any, Optional

import fixtures
import requests
import testtools

from powerflex_cache_driver.simulator import DEFAULT_SDC_GUID
from powerflex_cache_driver.simulator import GatewaySimulator

GIB_KB = 1024 * 1024
SDC_GUID = DEFAULT_SDC_GUID
PASSWORD = "Simulat0r!"


def _green_process() -> bool:
    """True once eventlet has monkey-patched this process.

    Importing ``cinder.tests.unit`` (as Cinder-based test modules of this
    repository do) patches the whole test process, in the middle of test
    discovery.
    """
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher and patcher.is_monkey_patched("socket"))


class GreenSSLFixture(fixtures.Fixture):
    """Let urllib3 use eventlet's ``ssl.SSLContext`` in a patched process.

    urllib3 keeps the ``SSLContext`` class it imported. When ``requests``
    was imported before eventlet patched ``ssl``, that is the original
    class, whose ``minimum_version`` setter recurses once eventlet has
    replaced ``ssl.SSLContext`` (RecursionError on the first HTTPS
    request). Outside a patched process this fixture does nothing.
    """

    def _setUp(self) -> None:
        if not _green_process():
            return
        from urllib3.util import ssl_ as urllib3_ssl
        if urllib3_ssl.SSLContext is not ssl.SSLContext:
            self.useFixture(fixtures.MonkeyPatch(
                "urllib3.util.ssl_.SSLContext", ssl.SSLContext))


class SimulatorFixture(fixtures.Fixture):
    """A started GatewaySimulator in a temporary work directory."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.sim: Optional[GatewaySimulator] = None

    def _setUp(self) -> None:
        self.useFixture(GreenSSLFixture())
        workdir = self.useFixture(fixtures.TempDir()).path
        self.sim = GatewaySimulator(workdir, **self.kwargs).start()
        self.addCleanup(self.sim.stop)


class Client:
    """A minimal gateway client: requests, Basic token auth, CA verify."""

    def __init__(self, sim: GatewaySimulator, timeout: float = 10.0) -> None:
        self.sim = sim
        self.timeout = timeout
        # verify goes with every request: a Session's verify loses against
        # REQUESTS_CA_BUNDLE from the environment.
        self.session = requests.Session()
        self.token: Optional[str] = None

    def close(self) -> None:
        self.session.close()

    def login(self, user: str = "admin",
              password: str = PASSWORD) -> requests.Response:
        r = self.session.get(self.sim.url + "/api/login",
                             auth=(user, password), timeout=self.timeout,
                             verify=self.sim.ca_cert_path)
        if r.status_code == 200:
            self.token = r.json()
        return r

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.sim.ca_cert_path)
        return self.session.get(self.sim.url + path,
                                auth=("admin", self.token or ""), **kwargs)

    def post(self, path: str, body: Any = None,
             raw: Optional[bytes] = None, **kwargs: Any
             ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.sim.ca_cert_path)
        data = raw if raw is not None else json.dumps(
            {} if body is None else body)
        return self.session.post(
            self.sim.url + path, data=data,
            headers={"content-type": "application/json"},
            auth=("admin", self.token or ""), **kwargs)

    # -- conveniences -----------------------------------------------------

    def pool_id(self, name: str = "SP1") -> str:
        return self.sim.pool_ids[name]

    def create_volume(self, name: Optional[str], size_gib: int,
                      pool: str = "SP1",
                      volume_type: str = "ThinProvisioned"
                      ) -> requests.Response:
        body = {"protectionDomainId": self.sim.protection_domain_id,
                "storagePoolId": self.pool_id(pool),
                "volumeType": volume_type,
                "volumeSizeInKb": str(size_gib * GIB_KB)}
        if name is not None:
            body["name"] = name
        return self.post("/api/types/Volume/instances", body)

    def new_volume(self, name: Optional[str] = None, size_gib: int = 8,
                   pool: str = "SP1") -> str:
        r = self.create_volume(name, size_gib, pool)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def volume(self, volume_id: str) -> dict[str, Any]:
        r = self.get("/api/instances/Volume::" + volume_id)
        assert r.status_code == 200, r.text
        return r.json()

    def action(self, volume_id: str, action: str,
               body: Any = None) -> requests.Response:
        return self.post("/api/instances/Volume::%s/action/%s"
                         % (volume_id, action), body)

    def snapshot(self, volume_id: str, name: Optional[str] = None,
                 action: str = "snapshotVolumes") -> requests.Response:
        definition = {"volumeId": volume_id}
        if name is not None:
            definition["snapshotName"] = name
        return self.post("/api/instances/System/action/" + action,
                         {"snapshotDefs": [definition]})

    def new_snapshot(self, volume_id: str, name: Optional[str] = None,
                     action: str = "snapshotVolumes") -> str:
        r = self.snapshot(volume_id, name, action)
        assert r.status_code == 200, r.text
        return r.json()["volumeIdList"][0]

    def map(self, volume_id: str, sdc_id: str,
            multiple: bool = True) -> requests.Response:
        body = {"sdcId": sdc_id}
        if multiple:
            body["allowMultipleMappings"] = "True"
        return self.action(volume_id, "addMappedSdc", body)


class SimulatorTestCase(testtools.TestCase):
    """A test with a started simulator and a logged-in client.

    ``self.sim`` is started with the class's ``sim_kwargs``.
    """

    sim_kwargs: dict[str, Any] = {}

    def setUp(self) -> None:
        super().setUp()
        self.sim = self.start_sim(**self.sim_kwargs)
        self.client = self.make_client(self.sim)

    def start_sim(self, **kwargs: Any) -> GatewaySimulator:
        sim = self.useFixture(SimulatorFixture(**kwargs)).sim
        assert sim is not None
        return sim

    def make_client(self, sim: GatewaySimulator,
                    login: bool = True) -> Client:
        client = Client(sim)
        self.addCleanup(client.close)
        if login:
            r = client.login()
            self.assertEqual(200, r.status_code, r.text)
        return client

    def assertError(self, response: requests.Response, http_status: int,
                    error_code: int) -> dict[str, Any]:
        """Assert a JSON error envelope; return it."""
        self.assertEqual(http_status, response.status_code, response.text)
        body = response.json()
        self.assertEqual(http_status, body["httpStatusCode"])
        self.assertIsInstance(body["errorCode"], int)
        self.assertEqual(error_code, body["errorCode"], body)
        self.assertIn("message", body)
        return body
