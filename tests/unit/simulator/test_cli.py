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
"""``python -m powerflex_cache_driver.simulator`` runs until SIGTERM."""

import configparser
import os
import signal
import stat
import subprocess
import sys

import fixtures
import requests
import testtools

import powerflex_cache_driver
from powerflex_cache_driver.simulator import cli
from tests.unit.simulator import base

ROOT = os.path.dirname(os.path.dirname(powerflex_cache_driver.__file__))


class TestCommandLine(testtools.TestCase):

    def _start(self, *args: str) -> tuple[subprocess.Popen, dict]:
        """Start the simulator on a free port; return it and its banner."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "powerflex_cache_driver.simulator",
             "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT))
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.stdout.close)
        lines = {}
        for line in proc.stdout:
            key, _sep, value = line.partition(":")
            lines[key.strip()] = value.strip()
            if line.startswith("Stop with"):
                break
        return proc, lines

    def test_parser(self):
        args = cli.build_parser().parse_args(
            ["--port", "0", "--gen-type", "EC", "--pool", "A", "--pool",
             "B"])
        self.assertEqual((0, "EC", ["A", "B"]),
                         (args.port, args.gen_type, args.pools))

    def test_parser_by_id_dir(self):
        parser = cli.build_parser()
        self.assertIsNone(parser.parse_args([]).by_id_dir)
        self.assertEqual("/dev/disk/by-id", parser.parse_args(
            ["--by-id-dir", "/dev/disk/by-id"]).by_id_dir)

    def test_by_id_dir_links_go_on_sigterm(self):
        self.useFixture(base.GreenSSLFixture())
        workdir = self.useFixture(fixtures.TempDir()).path
        root = self.useFixture(fixtures.TempDir()).path
        by_id = os.path.join(root, "disk", "by-id")
        proc, lines = self._start(
            "--workdir", workdir, "--by-id-dir", by_id)
        try:
            self.assertEqual(by_id, lines["by-id dir"])
            url, ca = lines["URL"], lines["CA cert"]
            sdc_id = lines["SDCs"].split("=")[1]
            token = requests.get(url + "/login", verify=ca, timeout=5,
                                 auth=("admin", base.PASSWORD)).json()

            def call(method, path, body=None):
                r = requests.request(method, url + path, json=body,
                                     verify=ca, timeout=5,
                                     auth=("admin", token))
                self.assertEqual(200, r.status_code, r.text)
                return r.json()

            pd_id = call("GET", "/types/Domain/instances/getByName::PD1")
            vid = call("POST", "/types/Volume/instances", {
                "protectionDomainId": pd_id,
                "storagePoolId": call(
                    "GET", "/types/Pool/instances/getByName::%s,SP1" % pd_id),
                "volumeType": "ThinProvisioned",
                "volumeSizeInKb": str(8 * base.GIB_KB)})["id"]
            call("POST", "/instances/Volume::%s/action/addMappedSdc" % vid,
                 {"sdcId": sdc_id})
            self.assertEqual(["emc-vol-%s-%s" % (lines["System id"], vid)],
                             os.listdir(by_id))
        finally:
            proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(10))
        self.assertEqual([], os.listdir(root))

    def test_serves_until_sigterm(self):
        self.useFixture(base.GreenSSLFixture())
        workdir = self.useFixture(fixtures.TempDir()).path
        proc, lines = self._start("--workdir", workdir, "--gen-type", "EC")
        try:
            url = lines["URL"]
            ca = lines["CA cert"]
            self.assertTrue(url.startswith("https://127.0.0.1:"))
            self.assertTrue(ca.startswith(workdir))
            config_path = os.path.join(workdir, "cinder-backend.conf")
            self.assertIn(config_path, lines["Credentials"])
            self.assertEqual(0o600,
                             stat.S_IMODE(os.stat(config_path).st_mode))
            parser = configparser.ConfigParser()
            parser.read(config_path)
            section = parser["powerflex"]
            self.assertNotIn(section["san_password"], "".join(lines.values()))
            r = requests.get(url + "/login", verify=ca, timeout=5,
                             auth=(section["san_login"],
                                   section["san_password"]))
            self.assertEqual(200, r.status_code)
            r = requests.get(url + "/version", verify=ca, timeout=5,
                             auth=("admin", r.json()))
            self.assertEqual("5.0", r.json())
        finally:
            proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(10))
