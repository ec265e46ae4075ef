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
"""Transport, TLS, login, tokens, and the 401 that is not JSON."""

import base64
import time

import requests

from powerflex_cache_driver.simulator import auth
from tests.unit.simulator import base

UNAUTHORIZED = {"message": "Unauthorized", "httpStatusCode": 401,
                "errorCode": 0}


def assert_html_401(test, response):
    """A real gateway's 401: its web container's page, not JSON."""
    test.assertEqual(401, response.status_code)
    test.assertIn("text/html", response.headers["Content-Type"])
    test.assertIn("401", response.text)
    test.assertRaises(requests.exceptions.JSONDecodeError, response.json)
    test.assertIn("Basic", response.headers["WWW-Authenticate"])


class TestTLS(base.SimulatorTestCase):

    def test_certificate_verifies_against_the_ca(self):
        self.assertTrue(self.sim.url.startswith("https://127.0.0.1:"))
        r = requests.get(self.sim.url + "/api/version",
                         verify=self.sim.ca_cert_path, timeout=5)
        self.assertEqual(401, r.status_code)

    def test_localhost_name_is_in_the_certificate(self):
        url = "https://localhost:%d/api/version" % self.sim.port
        r = requests.get(url, verify=self.sim.ca_cert_path, timeout=5)
        self.assertEqual(401, r.status_code)

    def test_unknown_ca_is_refused(self):
        self.assertRaises(requests.exceptions.SSLError, requests.get,
                          self.sim.url + "/api/version", verify=True,
                          timeout=5)


class TestLogin(base.SimulatorTestCase):

    def test_login_returns_a_json_string_token(self):
        client = self.make_client(self.sim, login=False)
        r = client.login()
        self.assertEqual(200, r.status_code)
        self.assertTrue(r.text.startswith('"') and r.text.endswith('"'))
        token = r.json()
        self.assertIsInstance(token, str)
        token.encode("ascii")
        padded = token + "=" * (-len(token) % 4)
        user, millis, nonce = base64.b64decode(padded).decode().split(":")
        self.assertEqual("admin", user)
        self.assertTrue(millis.isdigit())
        self.assertEqual(32, len(nonce))

    def test_token_is_the_basic_password_and_user_is_ignored(self):
        r = requests.get(self.sim.url + "/api/version",
                         auth=("", self.client.token),
                         verify=self.sim.ca_cert_path, timeout=5)
        self.assertEqual(200, r.status_code)
        self.assertEqual('"4.5"', r.text)

    def test_bad_password_gets_a_non_json_401(self):
        client = self.make_client(self.sim, login=False)
        assert_html_401(self, client.login(password="wrong"))

    def test_bad_user_gets_a_non_json_401(self):
        client = self.make_client(self.sim, login=False)
        assert_html_401(self, client.login(user="root"))

    def test_no_token_gets_a_non_json_401(self):
        r = requests.get(self.sim.url + "/api/version",
                         verify=self.sim.ca_cert_path, timeout=5)
        assert_html_401(self, r)
        r = requests.post(self.sim.url + "/api/types/Volume/instances",
                          data="{}", auth=("admin", "None"),
                          verify=self.sim.ca_cert_path, timeout=5)
        assert_html_401(self, r)
        # Refused before the request is served: nothing was made.
        self.assertEqual({}, self.sim.array.volumes)

    def test_json_401_option_answers_the_envelope(self):
        sim = self.start_sim(json_401=True)
        client = self.make_client(sim, login=False)
        r = client.login(password="wrong")
        self.assertEqual(401, r.status_code)
        self.assertEqual(UNAUTHORIZED, r.json())
        self.assertIn("application/json", r.headers["Content-Type"])
        r = requests.get(sim.url + "/api/version", verify=sim.ca_cert_path,
                         timeout=5)
        self.assertEqual(UNAUTHORIZED, r.json())

    def test_password_is_not_a_token(self):
        r = requests.get(self.sim.url + "/api/version",
                         auth=("admin", base.PASSWORD),
                         verify=self.sim.ca_cert_path, timeout=5)
        self.assertEqual(401, r.status_code)

    def test_old_token_stays_valid_after_relogin(self):
        old = self.client.token
        self.assertEqual(200, self.client.login().status_code)
        self.assertNotEqual(old, self.client.token)
        for token in (old, self.client.token):
            r = requests.get(self.sim.url + "/api/version",
                             auth=("admin", token),
                             verify=self.sim.ca_cert_path, timeout=5)
            self.assertEqual(200, r.status_code)

    def test_invalidate_tokens_gives_401_until_relogin(self):
        self.sim.faults.invalidate_tokens()
        assert_html_401(self, self.client.get("/api/version"))
        self.client.login()
        self.assertEqual(200, self.client.get("/api/version").status_code)

    def test_logout_revokes_only_that_token(self):
        other = self.make_client(self.sim)
        self.assertEqual(200, self.client.get("/api/logout").status_code)
        self.assertEqual(401, self.client.get("/api/version").status_code)
        self.assertEqual(200, other.get("/api/version").status_code)

    def test_tokens_never_expire_by_default(self):
        self.assertIsNone(self.sim.tokens.ttl)

    def test_token_expiry_is_configurable(self):
        sim = self.start_sim(token_ttl=0.2)
        client = self.make_client(sim)
        self.assertEqual(200, client.get("/api/version").status_code)
        time.sleep(0.3)
        self.assertEqual(401, client.get("/api/version").status_code)


class TestJsonEverywhere(base.SimulatorTestCase):

    def test_unknown_path_is_json_404(self):
        r = self.client.get("/api/types/Nothing/instances")
        self.assertError(r, 404, 0)

    def test_wrong_method_is_json_405(self):
        r = self.client.post("/api/version")
        self.assertError(r, 405, 0)

    def test_malformed_json_body_is_400(self):
        r = self.client.post("/api/types/Volume/instances", raw=b"{nope")
        body = self.assertError(r, 400, 0)
        self.assertIn("Request message is not valid", body["message"])

    def test_missing_parameter_is_400(self):
        r = self.client.post("/api/types/Volume/instances",
                             {"volumeSizeInKb": "8388608"})
        body = self.assertError(r, 400, 0)
        self.assertIn("storagePoolId", body["message"])

    def test_version_is_a_json_string(self):
        self.assertEqual("4.5", self.client.get("/api/version").json())
        sim = self.start_sim(gen_type="EC")
        self.assertEqual("5.0", self.make_client(sim).get(
            "/api/version").json())
        sim = self.start_sim(version="3.6")
        self.assertEqual("3.6", self.make_client(sim).get(
            "/api/version").json())

    def test_trailing_slash_and_query_string_are_tolerated(self):
        self.assertEqual(200, self.client.get("/api/version/").status_code)
        self.assertEqual(200,
                         self.client.get("/api/version?x=1").status_code)


class TestBasicAuthParsing(base.testtools.TestCase):

    def test_parse_basic(self):
        header = "Basic " + base64.b64encode(b"u:p:q").decode()
        self.assertEqual(("u", "p:q"), auth.parse_basic(header))
        self.assertIsNone(auth.parse_basic(None))
        self.assertIsNone(auth.parse_basic("Bearer abc"))
        self.assertIsNone(auth.parse_basic("Basic !!!"))
        self.assertIsNone(auth.parse_basic(
            "Basic " + base64.b64encode(b"nocolon").decode()))


class TestOperationNames(base.testtools.TestCase):

    def test_operation_names_are_the_published_ones(self):
        from powerflex_cache_driver.simulator import handlers
        published = {
            "login", "logout", "version", "getDomainByName",
            "getProtectionDomain", "queryProtectionDomains",
            "getPoolByName", "getStoragePool", "queryPoolStatistics",
            "metricsQuery", "getPoolVolumes", "createVolume", "getVolumes",
            "getVolume", "getVolumeByName", "setVolumeSize", "removeVolume",
            "setVolumeName", "addMappedSdc", "removeMappedSdc",
            "setMappedSdcLimits", "overwriteVolumeContent", "migrateVTree",
            "snapshotVolumes", "createSnapshot", "createThinClone",
            "getVTree", "getVTreeStatistics", "getSdcs", "getSdc",
            "getSdcVolumes", "getHosts", "createHost", "getSdts",
            "getSystems"}
        self.assertEqual(published, {r.op for r in handlers.ROUTES})
