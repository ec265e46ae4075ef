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
"""The Block Storage API client of ``powerflex-cache-manage``.

Keystone, Cinder and Glance are answered by requests-mock: credentials
(``OS_*``, ``clouds.yaml``), endpoint discovery, URLs, microversion
headers, error mapping and waiting.
"""

import os

import fixtures
from keystoneauth1 import fixture as ks_fixture
from requests_mock.contrib import fixture as rm_fixture
import testtools

from powerflex_cache_driver.cmd import block_storage

AUTH_URL = "http://keystone.example:5000/v3"
PROJECT_ID = "5c4d3e2f1a0b4c9d8e7f6a5b4c3d2e55"
TOKEN = "gAAAAA-secret-token"
PASSWORD = "s3cret-passw0rd"
CINDER = "http://cinder.example:8776"
GLANCE = "http://glance.example:9292"

ENV = {
    "OS_AUTH_URL": AUTH_URL,
    "OS_USERNAME": "admin",
    "OS_PASSWORD": PASSWORD,
    "OS_PROJECT_NAME": "admin",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
    "OS_REGION_NAME": "RegionOne",
    "OS_INTERFACE": "internal",
}

CLOUDS_YAML = """
clouds:
  lab:
    auth:
      auth_url: %s
      username: admin
      password: %s
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
""" % (AUTH_URL, PASSWORD)


class BlockStorageTestCase(testtools.TestCase):
    """Keystone with a catalog, Cinder and Glance behind requests-mock."""

    VOLUME_ENDPOINT = CINDER + "/v3/" + PROJECT_ID

    def setUp(self) -> None:
        super().setUp()
        self.mocker = self.useFixture(rm_fixture.Fixture())
        self.mocker.get(AUTH_URL, json=ks_fixture.V3Discovery(AUTH_URL))
        token = ks_fixture.V3Token(project_id=PROJECT_ID,
                                   project_name="admin")
        for interface in ("public", "internal"):
            token.add_service("volumev3").add_endpoint(
                interface, self.VOLUME_ENDPOINT.replace(
                    "cinder.", "cinder-%s." % interface),
                region="RegionOne")
            token.add_service("image").add_endpoint(
                interface, GLANCE.replace("glance.",
                                          "glance-%s." % interface),
                region="RegionOne")
        self.auth = self.mocker.post(AUTH_URL + "/auth/tokens", json=token,
                                     headers={"X-Subject-Token": TOKEN})
        self.sleeps: list[float] = []
        self.api = block_storage.BlockStorage(
            block_storage.session_from_env(environ=ENV),
            sleep=self.sleeps.append)

    @property
    def volumes(self) -> str:
        """The volume URL of the internal interface, project included."""
        return "http://cinder-internal.example:8776/v3/%s" % PROJECT_ID


class TestCredentials(BlockStorageTestCase):
    """``OS_*`` variables and clouds.yaml."""

    def test_password_from_environment(self) -> None:
        self.mocker.get(self.volumes + "/volumes/v1",
                        json={"volume": {"id": "v1", "status": "available"}})
        self.assertEqual("available", self.api.get_volume("v1")["status"])
        body = self.auth.last_request.json()["auth"]
        self.assertEqual(
            {"name": "admin", "domain": {"name": "Default"},
             "password": PASSWORD},
            body["identity"]["password"]["user"])
        self.assertEqual({"name": "admin", "domain": {"name": "Default"}},
                         body["scope"]["project"])
        request = self.mocker.request_history[-1]
        self.assertEqual(TOKEN, request.headers["X-Auth-Token"])
        self.assertEqual("volume 3.0",
                         request.headers["OpenStack-API-Version"])

    def test_clouds_yaml_by_name(self) -> None:
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, "clouds.yaml")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(CLOUDS_YAML)
        session = block_storage.session_from_env(
            "lab", environ={}, paths=[os.path.join(folder, "none.yaml"),
                                      path])
        self.assertEqual({"region_name": "RegionOne",
                          "interface": "internal"}, session.cloud)
        api = block_storage.BlockStorage(session)
        self.assertEqual(self.volumes, api.volume_url)
        self.assertEqual("http://glance-internal.example:9292/v2",
                         api.image_url)

    def test_os_cloud_from_environment_and_missing_cloud(self) -> None:
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, "clouds.yaml")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(CLOUDS_YAML)
        error = self.assertRaises(
            block_storage.CredentialsError, block_storage.session_from_env,
            environ={"OS_CLOUD": "prod"}, paths=[path])
        self.assertIn("has no such cloud (it has: lab)", str(error))
        self.assertNotIn(PASSWORD, str(error))

    def test_no_clouds_yaml(self) -> None:
        error = self.assertRaises(
            block_storage.CredentialsError, block_storage.session_from_env,
            "lab", environ={}, paths=["/nonexistent/clouds.yaml"])
        self.assertIn("--os-cloud lab: no clouds.yaml in "
                      "/nonexistent/clouds.yaml", str(error))

    def test_no_auth_url(self) -> None:
        error = self.assertRaises(
            block_storage.CredentialsError, block_storage.session_from_env,
            environ={"OS_PASSWORD": PASSWORD})
        self.assertIn("No Keystone URL: set OS_AUTH_URL", str(error))
        self.assertNotIn(PASSWORD, str(error))

    def test_application_credential(self) -> None:
        session = block_storage.session_from_env(environ={
            "OS_AUTH_URL": AUTH_URL,
            "OS_APPLICATION_CREDENTIAL_ID": "cred",
            "OS_APPLICATION_CREDENTIAL_SECRET": PASSWORD})
        self.assertEqual("ApplicationCredential",
                         type(session.auth).__name__)

    def test_have_credentials(self) -> None:
        self.assertTrue(block_storage.have_credentials(ENV))
        self.assertTrue(block_storage.have_credentials({"OS_CLOUD": "x"}))
        self.assertFalse(block_storage.have_credentials({}))


class TestUrls(testtools.TestCase):
    """Catalog endpoints to API URLs."""

    def test_volume_base_url(self) -> None:
        for endpoint in (CINDER + "/v3/" + PROJECT_ID,
                         CINDER + "/v3/" + PROJECT_ID + "/",
                         CINDER + "/v3", CINDER + "/", CINDER):
            self.assertEqual(CINDER + "/v3/" + PROJECT_ID,
                             block_storage.volume_base_url(endpoint,
                                                           PROJECT_ID),
                             endpoint)

    def test_image_base_url(self) -> None:
        for endpoint in (GLANCE, GLANCE + "/", GLANCE + "/v2"):
            self.assertEqual(GLANCE + "/v2",
                             block_storage.image_base_url(endpoint))


class TestCatalogWithoutProject(BlockStorageTestCase):
    """A ``.../v3`` catalog endpoint gets the project appended."""

    VOLUME_ENDPOINT = CINDER + "/v3"

    def test_project_appended(self) -> None:
        self.assertEqual(self.volumes, self.api.volume_url)


class TestRequests(BlockStorageTestCase):
    """The calls, their bodies and their errors."""

    def test_create_volume(self) -> None:
        created = self.mocker.post(self.volumes + "/volumes", status_code=202,
                                   json={"volume": {"id": "v1",
                                                    "status": "creating"}})
        volume = self.api.create_volume(2, image_ref="img",
                                        volume_type="fast", name="warm")
        self.assertEqual("v1", volume["id"])
        self.assertEqual({"volume": {"size": 2, "imageRef": "img",
                                     "volume_type": "fast", "name": "warm"}},
                         created.last_request.json())

    def test_extend_over_quota(self) -> None:
        extend = self.mocker.post(
            self.volumes + "/volumes/v1/action", status_code=413,
            json={"overLimit": {"code": 413, "message": "Requested volume "
                                "or snapshot exceeds allowed gigabytes "
                                "quota."}})
        error = self.assertRaises(block_storage.OverQuota,
                                  self.api.extend_volume, "v1", 16)
        self.assertEqual({"os-extend": {"new_size": 16}},
                         extend.last_request.json())
        self.assertIn("Extend volume v1: Requested volume or snapshot "
                      "exceeds allowed gigabytes quota.", str(error))
        self.assertEqual(413, error.status_code)

    def test_other_errors(self) -> None:
        self.mocker.delete(self.volumes + "/volumes/v1", status_code=400,
                           json={"badRequest": {"code": 400,
                                                "message": "Invalid volume"}})
        error = self.assertRaises(block_storage.ApiError,
                                  self.api.delete_volume, "v1")
        self.assertEqual("Delete volume v1: Invalid volume", str(error))
        self.assertNotIn(TOKEN, str(error))

    def test_messages_use_microversion_3_3(self) -> None:
        listed = self.mocker.get(
            self.volumes + "/messages?resource_uuid=v1",
            json={"messages": [
                {"user_message": "second", "created_at": "2026-01-02"},
                {"user_message": "first", "created_at": "2026-01-01"}]})
        self.assertEqual(["first", "second"], self.api.list_messages("v1"))
        self.assertEqual("volume 3.3", listed.last_request.headers[
            "OpenStack-API-Version"])

    def test_get_image(self) -> None:
        self.mocker.get("http://glance-internal.example:9292/v2/images/img",
                        json={"id": "img", "virtual_size": 2 ** 31})
        self.assertEqual(2 ** 31, self.api.get_image("img")["virtual_size"])

    def test_image_not_found(self) -> None:
        self.mocker.get("http://glance-internal.example:9292/v2/images/img",
                        status_code=404, text="no such image")
        self.assertRaises(block_storage.NotFound, self.api.get_image, "img")


class TestWaiting(BlockStorageTestCase):
    """Polling a volume's status."""

    def test_wait_for_status(self) -> None:
        self.mocker.get(self.volumes + "/volumes/v1", [
            {"json": {"volume": {"id": "v1", "status": "creating"}}},
            {"json": {"volume": {"id": "v1", "status": "downloading"}}},
            {"json": {"volume": {"id": "v1", "status": "available"}}}])
        volume = self.api.wait_for_status("v1", ("available",))
        self.assertEqual("available", volume["status"])
        self.assertEqual([2.0, 2.0], self.sleeps)

    def test_wait_ends_on_error(self) -> None:
        self.mocker.get(self.volumes + "/volumes/v1",
                        json={"volume": {"id": "v1", "status": "error"}})
        self.assertEqual("error", self.api.wait_for_status(
            "v1", ("available",))["status"])

    def test_wait_times_out(self) -> None:
        now = [0.0]
        api = block_storage.BlockStorage(
            self.api.session, clock=lambda: now[0],
            sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
        self.mocker.get(self.volumes + "/volumes/v1",
                        json={"volume": {"id": "v1", "status": "extending"}})
        error = self.assertRaises(block_storage.WaitTimeout,
                                  api.wait_for_status, "v1", ("available",),
                                  timeout=5)
        self.assertIn("still extending", str(error))

    def test_wait_gone(self) -> None:
        self.mocker.get(self.volumes + "/volumes/v1", [
            {"json": {"volume": {"id": "v1", "status": "deleting"}}},
            {"status_code": 404, "json": {"itemNotFound": {
                "code": 404, "message": "Volume v1 could not be found."}}}])
        self.api.wait_gone("v1")
        self.assertEqual([2.0], self.sleeps)

    def test_wait_gone_fails_on_error_deleting(self) -> None:
        self.mocker.get(self.volumes + "/volumes/v1",
                        json={"volume": {"id": "v1",
                                         "status": "error_deleting"}})
        self.assertRaises(block_storage.ApiError, self.api.wait_gone, "v1")
