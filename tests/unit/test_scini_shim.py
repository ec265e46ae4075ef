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
"""The ``/dev/scini`` shim seen through os-brick's own ScaleIOConnector.

Each check runs os-brick in a child process started with (or without) the
shim preloaded; the privsep entrypoints run in that process
(``set_client_mode(False)``), which is where the privsep daemon runs them
in the cloud.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Optional

import fixtures
import testtools

from tools.cloudlib import sdc

GUID = "01234567-89AB-CDEF-0123-456789ABCDEF"
CHILD_TIMEOUT_S = 60

# For each GUID of argv[1] (None: unset), what os-brick gets. Then, on a
# /dev/scini descriptor, an unknown request; and an ioctl on an ordinary
# pipe, which must reach the kernel.
CHILD = r"""
import errno, fcntl, json, os, struct, sys, termios, warnings
warnings.simplefilter("ignore")
from os_brick import privileged
privileged.default.set_client_mode(False)
from os_brick.initiator.connectors import scaleio
from os_brick.privileged import scaleio as priv_scaleio

Connector = scaleio.ScaleIOConnector
report = {"runs": []}
for guid in json.loads(sys.argv[1]):
    if guid is None:
        os.environ.pop("POWERFLEX_SDC_GUID", None)
    else:
        os.environ["POWERFLEX_SDC_GUID"] = guid
    run = {"props": Connector.get_connector_properties("sudo")}
    try:
        run["guid"] = priv_scaleio.get_guid(Connector.GET_GUID_OP_CODE)
    except OSError as exc:
        run["guid_errno"] = exc.errno
    try:
        Connector("sudo")._rescan_vols()
        run["rescan"] = "ok"
    except Exception as exc:
        run["rescan"] = type(exc).__name__
    report["runs"].append(run)
try:
    fd = os.open("/dev/scini", os.O_RDWR)
except OSError as exc:
    report["open_errno"] = exc.errno
else:
    try:
        fcntl.ioctl(fd, Connector.GET_GUID_OP_CODE + 1, struct.pack("Q", 0))
    except OSError as exc:
        report["other_errno"] = exc.errno
    os.close(fd)
r, w = os.pipe()
os.write(w, b"abc")
pending = fcntl.ioctl(r, termios.FIONREAD, struct.pack("i", 0))
report["pipe_fionread"] = struct.unpack("i", pending)[0]
print(json.dumps(report))
"""


class TestSciniShim(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        if shutil.which("gcc") is None:
            self.skipTest("gcc is needed to build the shim")
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.lib = sdc.build_shim(self.tmp)

    def run_child(self, guids: list[Optional[str]],
                  extra_env: dict[str, str]) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("LD_PRELOAD", sdc.GUID_ENV)}
        env.update(extra_env)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(guids)],
            capture_output=True, text=True, env=env, cwd=self.tmp,
            timeout=CHILD_TIMEOUT_S, check=False)
        self.assertEqual(0, done.returncode, done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def test_build_shim(self) -> None:
        self.assertEqual(os.path.join(self.tmp, sdc.SHIM_NAME), self.lib)
        self.assertEqual([sdc.SHIM_NAME], os.listdir(self.tmp))

    def test_os_brick_gets_the_guid_and_rescans(self) -> None:
        env = sdc.shim_env(self.lib, GUID)
        report = self.run_child([env[sdc.GUID_ENV], "not-a-guid", None],
                                env)
        good, bad, missing = report["runs"]
        self.assertEqual({"props": {"sdc_guid": GUID.lower()},
                          "guid": GUID.lower(), "rescan": "ok"}, good)
        for run in (bad, missing):
            self.assertEqual({"props": {}, "guid_errno": errno.ENODEV,
                              "rescan": "ok"}, run)
        self.assertEqual(errno.ENOTTY, report["other_errno"])
        self.assertNotIn("open_errno", report)
        self.assertEqual(3, report["pipe_fionread"])

    def test_without_the_shim_there_is_no_sdc(self) -> None:
        if os.path.exists("/dev/scini"):
            self.skipTest("this machine has a real /dev/scini")
        report = self.run_child([GUID], {sdc.GUID_ENV: GUID})
        self.assertEqual([{"props": {}, "guid_errno": errno.ENOENT,
                           "rescan": "BrickException"}], report["runs"])
        self.assertEqual(errno.ENOENT, report["open_errno"])
        self.assertEqual(3, report["pipe_fionread"])


class TestHelpers(testtools.TestCase):

    def test_shim_env(self) -> None:
        self.assertEqual(
            {"LD_PRELOAD": os.path.abspath("lib.so"),
             "POWERFLEX_SDC_GUID": GUID.lower()},
            sdc.shim_env("lib.so", GUID.replace("-", "")))
        self.assertRaises(ValueError, sdc.shim_env, "/lib.so", "nope")

    def test_build_without_gcc(self) -> None:
        self.useFixture(fixtures.MonkeyPatch(
            "shutil.which", lambda name: None))
        tmp = self.useFixture(fixtures.TempDir()).path
        exc = self.assertRaises(sdc.ShimBuildError, sdc.build_shim, tmp)
        self.assertIn("gcc not found", str(exc))
        self.assertEqual([], os.listdir(tmp))

    def test_build_failure_says_why(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        bad = os.path.join(tmp, "bad.c")
        with open(bad, "w") as handle:
            handle.write("this is not C\n")
        self.useFixture(fixtures.MonkeyPatch(
            "tools.cloudlib.sdc.SHIM_SOURCE", bad))
        if shutil.which("gcc") is None:
            self.skipTest("gcc is needed to fail compiling")
        exc = self.assertRaises(sdc.ShimBuildError, sdc.build_shim, tmp)
        self.assertIn("bad.c", str(exc))
        self.assertEqual(["bad.c"], os.listdir(tmp))
