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
"""tools/cloudlib/log_scan.py: passwords and tokens found in the logs."""

import io
import os

import fixtures
import testtools

from powerflex_cache_driver.simulator import auth
from tools.cloudlib import log_scan

GATEWAY_PASSWORD = "a0c1e2g3i4k5m6o7q8s9"
DB_PASSWORD = "9f8e7d6c5b4a39281706"
RABBIT_PASSWORD = "0123456789abcdef0123"
FERNET = "gAAAAABnXyZ" + "q" * 120


class LogScanTest(testtools.TestCase):
    """A cloud directory with secrets in its logs, and without."""

    def setUp(self) -> None:
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.state, "etc", "cinder"))
        os.makedirs(os.path.join(self.state, "log"))
        with open(os.path.join(self.state, "etc", "cinder",
                               "cinder.conf"), "w") as conf:
            conf.write("[DEFAULT]\ntransport_url = rabbit://cinder:%s@"
                       "127.0.0.1:21672/\n[database]\nconnection = "
                       "mysql+pymysql://cinder:%s@127.0.0.1:21306/cinder\n"
                       % (RABBIT_PASSWORD, DB_PASSWORD))
        self.description = {
            "state_dir": self.state,
            "gateway": {"user": "admin", "password": GATEWAY_PASSWORD},
            "admin": {"password": "adminpass0123456789"},
            "demo": {"password": "demopass0123456789"}}
        self.token = auth.TokenStore("admin", GATEWAY_PASSWORD).issue()

    def _log(self, *lines: str) -> None:
        with open(os.path.join(self.state, "log", "cinder-volume-1.log"),
                  "a") as log:
            log.write("\n".join(lines) + "\n")

    def _scan(self) -> tuple[int, str]:
        out = io.StringIO()
        return log_scan.scan(self.description, out), out.getvalue()

    def test_clean_logs(self) -> None:
        self._log("DEBUG cinder.volume Volume created: 8 GiB",
                  "DEBUG urllib3 GET /api/types/Volume/instances 200")
        hits, out = self._scan()
        self.assertEqual(0, hits)
        self.assertIn("Scanned 1 log files", out)

    def test_each_secret_found_never_printed(self) -> None:
        self._log("clean line",
                  "DEBUG connection mysql+pymysql://cinder:%s@db"
                  % DB_PASSWORD,
                  "DEBUG token %s" % self.token,
                  "DEBUG X-Auth-Token: %s" % FERNET,
                  "DEBUG login with %s" % GATEWAY_PASSWORD,
                  "DEBUG rabbit %s" % RABBIT_PASSWORD)
        hits, out = self._scan()
        self.assertEqual(5, hits)
        for where in (":2: password of cinder.conf [database] connection",
                      ":3: gateway token", ":4: Keystone token",
                      ":5: gateway password",
                      ":6: password of cinder.conf [DEFAULT] transport_url"):
            self.assertIn(where, out)
        for secret in (DB_PASSWORD, self.token, FERNET, GATEWAY_PASSWORD,
                       RABBIT_PASSWORD):
            self.assertNotIn(secret, out)
        self.assertEqual(1, log_scan.main(self.description))
