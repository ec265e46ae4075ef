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
"""``powerflex-cache-status check`` run as an operator runs it.

Each test writes a cinder.conf into a temporary directory, points it at a
gateway simulator and runs ``python -m powerflex_cache_driver.cmd.status``
as a subprocess, then reads its JSON (or table) output and exit status.
Every run also asserts that no configured password reaches the output.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from typing import Any, Optional
from unittest import mock

from cinder.volume.drivers.dell_emc.powerflex import options as pf_options
from cinder.volume.drivers.dell_emc.powerflex import rest_client
import fixtures
import requests
import testtools

from powerflex_cache_driver.cmd import status
from powerflex_cache_driver import host_mappings
from powerflex_cache_driver.simulator import gateway as sim_gateway
from tools.beds import gateway_simulator

OURS = "powerflex_cache_driver.driver.PowerFlexCacheDriver"
OUR_MANAGER = "powerflex_cache_driver.manager.VolumeManager"
BACKEND = "pf"
WRONG_PASSWORD = "N0t-The-Gateway-Passw0rd"
KEYSTONE_PASSWORD = "Keyst0ne-Secret-77"
REDIS_PASSWORD = "Red1s-Secret-55"
EC_SUPPORTED = hasattr(rest_client.RestClient, "check_powerflex_ec_version")
"""Whether this Cinder release knows PowerFlex 5 erasure-coded systems."""
VTREE_OPTION_KNOWN = any(opt.name == status.VTREE_SIZE
                         for opt in pf_options.actual_opts)
"""Whether this Cinder release has powerflex_max_image_cache_vtree_size."""


def _run(cmd: list[str], env: dict[str, str]
         ) -> "subprocess.CompletedProcess[str]":
    """Run ``cmd``; in an eventlet-patched process, off the hub."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher and patcher.is_monkey_patched("thread"):
        from eventlet import tpool
        return tpool.execute(subprocess.run, cmd, env=env,
                             capture_output=True, text=True, timeout=60)
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=60)


class StatusCheckTestCase(testtools.TestCase):
    """The preflight against a gateway simulator, one case per check."""

    def setUp(self) -> None:
        super().setUp()
        self.workdir = self.useFixture(fixtures.TempDir()).path
        self.secrets = {sim_gateway.DEFAULT_PASSWORD}

    # -- helpers ------------------------------------------------------------

    def start_sim(self, **kwargs: Any) -> Any:
        workdir = os.path.join(self.workdir, "sim")
        return self.useFixture(gateway_simulator.SimulatorFixture(
            workdir, **kwargs)).sim

    def write_conf(self, sim: Any, backend: Optional[dict] = None,
                   default: Optional[dict] = None,
                   extra: str = "", lock_path: Optional[str] = "") -> str:
        """Write a passing cinder.conf, changed by ``backend``/``default``.

        A value of None removes the option. ``lock_path`` defaults to a
        directory of the test's.
        """
        if lock_path == "":
            lock_path = os.path.join(self.workdir, "lock")
            os.makedirs(lock_path, exist_ok=True)
        defaults = {
            "enabled_backends": BACKEND,
            "volume_manager": OUR_MANAGER,
            "cinder_internal_tenant_project_id": "cache-project",
            "cinder_internal_tenant_user_id": "cache-user",
            "state_path": self.workdir,
        }
        defaults.update(default or {})
        section = {"volume_driver": OURS,
                   "volume_backend_name": BACKEND,
                   "image_volume_cache_enabled": True}
        section.update(sim.backend_options())
        section.update(backend or {})
        self.secrets.add(str(section.get("san_password")))
        lines = ["[DEFAULT]"]
        lines += ["%s = %s" % kv for kv in defaults.items()
                  if kv[1] is not None]
        if lock_path is not None:
            lines += ["", "[oslo_concurrency]", "lock_path = %s" % lock_path]
        lines += ["", "[%s]" % BACKEND]
        lines += ["%s = %s" % kv for kv in section.items()
                  if kv[1] is not None]
        path = os.path.join(self.workdir, "cinder.conf")
        with open(path, "w") as conf:
            conf.write("\n".join(lines) + "\n" + extra)
        return path

    def run_status(self, *args: str, env: Optional[dict] = None
                   ) -> tuple[int, str, str]:
        """Run the command; return its exit status, stdout and stderr."""
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith("OS_") and
                   not key.lower().endswith("_proxy") and
                   key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        # Eventlet's deprecation banner is not the command's output.
        environ["PYTHONWARNINGS"] = "ignore"
        environ.update(env or {})
        done = _run([sys.executable, "-m", "powerflex_cache_driver.cmd.status",
                     *args], environ)
        for secret in self.secrets:
            self.assertNotIn(secret, done.stdout)
            self.assertNotIn(secret, done.stderr)
        return done.returncode, done.stdout, done.stderr

    def check(self, conf: str, *args: str, env: Optional[dict] = None
              ) -> tuple[int, dict]:
        """Run ``check`` in JSON; return the exit status and the rows.

        Rows are keyed by (check, backend).
        """
        code, out, err = self.run_status("--config-file", conf,
                                         "--format", "json", *args,
                                         "check", env=env)
        rows = json.loads(out)
        for row in rows:
            self.assertEqual({"check", "backend", "result", "details"},
                             set(row))
        return code, {(row["check"], row["backend"]): row for row in rows}

    def assertRow(self, rows: dict, check: str, result: str,
                  *words: str, backend: Optional[str] = BACKEND) -> dict:
        row = rows[(check, backend)]
        self.assertEqual(result, row["result"], row)
        for word in words:
            self.assertIn(word, row["details"])
        return row

    def assertOnly(self, rows: dict, results: dict) -> None:
        """Every row is a Success but those in ``results``."""
        for (check, _backend), row in rows.items():
            self.assertEqual(results.get(check, "Success"), row["result"],
                             row)

    @staticmethod
    def closed_port() -> socket.socket:
        """A bound socket that does not listen: its port refuses."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        return sock

    # -- every check passes ---------------------------------------------------

    def test_all_checks_pass(self) -> None:
        sim = self.start_sim()
        self.secrets.add(REDIS_PASSWORD)
        conf = self.write_conf(
            sim, {"image_volume_cache_max_count": 50},
            {"cluster": "cluster1"},
            extra="\n[coordination]\nbackend_url = redis://:%s@127.0.0.1"
                  ":6379\n" % REDIS_PASSWORD)
        code, rows = self.check(conf)
        self.assertOnly(rows, {})
        self.assertEqual(0, code)
        self.assertEqual(11, len(rows))
        self.assertRow(rows, "Granularity", "Success", "PowerFlex 4.5",
                       "medium granularity", "8 GiB steps")
        self.assertRow(rows, "Cache vtree limit", "Success", "126 clones",
                       "at most 50 entries")
        self.assertRow(rows, "Coordination", "Success", "cluster1",
                       "redis://", backend=None)
        code, out, err = self.run_status("--config-file", conf, "check")
        self.assertEqual(0, code, out)
        self.assertIn("| Check: Gateway TLS (pf) ", out)
        self.assertEqual(11, out.count("Result: Success"))
        self.assertEqual("", err)

    # -- 10. lock path --------------------------------------------------------

    def test_lock_path_missing(self) -> None:
        sim = self.start_sim()
        code, rows = self.check(self.write_conf(sim, lock_path=None))
        self.assertEqual(2, code)
        self.assertRow(rows, "Lock path", "Failure", "lock_path",
                       "[oslo_concurrency]", backend=None)
        self.assertOnly(rows, {"Lock path": "Failure"})

    def test_lock_path_lists_mappings_left_by_killed_copies(self) -> None:
        sim = self.start_sim()
        lock_path = os.path.join(self.workdir, "lock")
        records = os.path.join(lock_path, host_mappings.DIRECTORY)
        os.makedirs(records)
        ended = dict(host_mappings.this_process(), boot="an-earlier-boot")
        for key, ours in (("6f24f28a00000000-aa2d8bf200000000", True),
                          ("6f24f28a00000000-bb2d8bf200000000", False)):
            with open(os.path.join(records, key + ".json"), "w") as record:
                json.dump({"volume_id": "v", "ours": ours,
                           "holders": {"copy": ended}}, record)
        code, rows = self.check(self.write_conf(sim, lock_path=lock_path))
        self.assertEqual(1, code)
        row = self.assertRow(rows, "Lock path", "Warning", lock_path,
                             "1 array volumes", "aa2d8bf200000000",
                             backend=None)
        self.assertNotIn("bb2d8bf200000000", row["details"])

    # -- 1. gateway TLS -------------------------------------------------------

    def test_wrong_ca_file(self) -> None:
        sim = self.start_sim()
        # Public CAs, none of which signed the simulator's certificate.
        wrong_ca = os.path.join(self.workdir, "publicca.pem")
        shutil.copy(requests.certs.where(), wrong_ca)
        conf = self.write_conf(sim, {"driver_ssl_cert_path": wrong_ca})
        code, out, err = self.run_status("--config-file", conf, "check")
        self.assertEqual(2, code)
        self.assertEqual("", err)
        cells = [" ".join(cell.replace("|", " ").split())
                 for cell in re.split(r"^\+-+\+$", out, flags=re.M)]
        tls = [cell for cell in cells
               if cell.startswith("Check: Gateway TLS (pf)")]
        self.assertEqual(1, len(tls), out)
        self.assertIn("Result: Failure", tls[0])
        self.assertIn("does not verify against driver_ssl_cert_path = %s "
                      "in [pf]" % wrong_ca, tls[0])
        login = [cell for cell in cells
                 if cell.startswith("Check: Gateway login (pf)")]
        self.assertIn("Result: Warning Details: Not checked: the gateway "
                      "did not answer", login[0])

    def test_verification_off_warns(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, {"driver_ssl_cert_verify": False,
                                     "driver_ssl_cert_path": None})
        code, rows = self.check(conf)
        self.assertEqual(1, code)
        self.assertRow(rows, "Gateway TLS", "Warning",
                       "driver_ssl_cert_verify is False in [pf]")
        self.assertOnly(rows, {"Gateway TLS": "Warning"})

    def test_unreachable_port(self) -> None:
        sim = self.start_sim()
        sock = self.closed_port()
        self.addCleanup(sock.close)
        conf = self.write_conf(sim, {
            "powerflex_rest_server_port": sock.getsockname()[1]})
        code, rows = self.check(conf)
        self.assertEqual(2, code)
        self.assertRow(rows, "Gateway TLS", "Failure", "unreachable",
                       "san_ip", "powerflex_rest_server_port", "[pf]")
        for check in ("Gateway login", "Storage pools", "Zero padding",
                      "Granularity"):
            self.assertRow(rows, check, "Warning", "Not checked",
                           "the gateway did not answer",
                           "'Gateway TLS (pf)'")

    def test_gateway_does_not_answer(self) -> None:
        sim = self.start_sim()
        sock = self.closed_port()
        self.addCleanup(sock.close)
        sock.listen(8)  # and never accepts: the TLS handshake hangs
        conf = self.write_conf(sim, {
            "powerflex_rest_server_port": sock.getsockname()[1],
            "rest_api_connect_timeout": 1, "rest_api_read_timeout": 1})
        code, rows = self.check(conf)
        self.assertEqual(2, code)
        self.assertRow(rows, "Gateway TLS", "Failure",
                       "did not answer within 1 s", "san_ip",
                       "powerflex_rest_server_port")

    # -- 2. login -------------------------------------------------------------

    def test_wrong_password(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, {"san_password": WRONG_PASSWORD})
        code, rows = self.check(conf)
        self.assertEqual(2, code)
        self.assertRow(rows, "Gateway TLS", "Success")
        self.assertRow(rows, "Gateway login", "Failure",
                       "refused san_login = admin", "san_password of [pf]",
                       "HTTP 401")
        self.assertRow(rows, "Storage pools", "Warning", "Not checked",
                       "refused the login")

    # -- 3. pools -------------------------------------------------------------

    def test_unknown_pool(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, {
            "powerflex_storage_pools": "PD1:SP1,PD1:NOPE"})
        code, rows = self.check(conf)
        self.assertEqual(2, code)
        row = self.assertRow(rows, "Storage pools", "Failure",
                             "powerflex_storage_pools in [pf]", "PD1:NOPE")
        self.assertNotIn("PD1:SP1", row["details"])

    # -- 4. zero padding --------------------------------------------------

    def test_pool_without_zero_padding(self) -> None:
        sim = self.start_sim(pools=[
            "SP1", {"name": "SP2", "zero_padding_enabled": False}])
        conf = self.write_conf(sim)
        code, rows = self.check(conf)
        self.assertEqual(1, code)
        self.assertRow(rows, "Zero padding", "Warning", "PD1:SP2",
                       "zero padding off", "every block",
                       "data of deleted volumes", "[pf]")
        self.assertOnly(rows, {"Zero padding": "Warning"})

    # -- 5. generation and granularity -------------------------------------

    def test_erasure_coded_granularity(self) -> None:
        sim = self.start_sim(gen_type="EC")
        conf = self.write_conf(sim)
        code, rows = self.check(conf)
        if EC_SUPPORTED:
            self.assertEqual(0, code)
            self.assertRow(rows, "Granularity", "Success", "PowerFlex 5.0",
                           "erasure-coded", "1 GiB steps")
        else:
            self.assertEqual(2, code)
            self.assertRow(rows, "Granularity", "Failure", "erasure-coded",
                           "does not support", "Cinder 29")

    # -- 6. the image-volume cache ----------------------------------------

    def test_cache_off(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, {"image_volume_cache_enabled": False})
        code, rows = self.check(conf)
        self.assertEqual(1, code)
        self.assertRow(rows, "Image-volume cache", "Warning",
                       "image_volume_cache_enabled is False in [pf]")
        self.assertOnly(rows, {"Image-volume cache": "Warning"})

    def test_internal_tenant_missing(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, default={
            "cinder_internal_tenant_project_id": None})
        code, rows = self.check(conf)
        self.assertEqual(1, code)
        self.assertRow(rows, "Image-volume cache", "Warning",
                       "cinder_internal_tenant_project_id is not set in "
                       "[DEFAULT]")

    def test_keystone_cannot_be_asked(self) -> None:
        sim = self.start_sim()
        sock = self.closed_port()
        self.addCleanup(sock.close)
        self.secrets.add(KEYSTONE_PASSWORD)
        conf = self.write_conf(sim)
        code, rows = self.check(conf, env={
            "OS_AUTH_URL": "http://127.0.0.1:%d/v3" % sock.getsockname()[1],
            "OS_USERNAME": "admin", "OS_PASSWORD": KEYSTONE_PASSWORD,
            "OS_PROJECT_NAME": "admin"})
        self.assertEqual(1, code)
        self.assertRow(rows, "Image-volume cache", "Warning",
                       "Keystone could not be asked", "cache-project")

    # -- 7. vtree limit -----------------------------------------------------

    def test_vtree_size_over_limit(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, {
            "powerflex_max_image_cache_vtree_size": 200,
            "image_volume_cache_max_count": 50})
        code, rows = self.check(conf)
        if VTREE_OPTION_KNOWN:
            self.assertEqual(2, code)
            self.assertRow(rows, "Cache vtree limit", "Failure",
                           "powerflex_max_image_cache_vtree_size in [pf]",
                           "126")
        else:
            self.assertEqual(1, code)
            self.assertRow(rows, "Cache vtree limit", "Warning",
                           "powerflex_max_image_cache_vtree_size is set in "
                           "[pf]", "ignores it")

    # -- 8.-10. the service ---------------------------------------------------

    def test_volume_manager_not_ours(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, default={
            "volume_manager": "cinder.volume.manager.VolumeManager"})
        code, rows = self.check(conf)
        self.assertEqual(1, code)
        self.assertRow(rows, "Volume manager", "Warning",
                       "allocated_capacity_gb", OUR_MANAGER, "[DEFAULT]",
                       backend=None)
        self.assertOnly(rows, {"Volume manager": "Warning"})

    def test_cluster_without_coordination(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim, default={"cluster": "cluster1"})
        code, rows = self.check(conf)
        self.assertEqual(2, code)
        self.assertRow(rows, "Coordination", "Failure", "cluster1",
                       "[coordination] backend_url", backend=None)

    def test_unsupported_cinder_release(self) -> None:
        for version, expected in (("24.2.0", "Failure"),
                                  ("30.0.0", "Failure"),
                                  ("25.3.1", "Success"),
                                  ("29.0.0", "Success")):
            with mock.patch("importlib.metadata.version",
                            return_value=version):
                result = status.check_cinder_release()
            self.assertEqual(expected, status.RESULT_NAMES[result.code],
                             result.details)
            self.assertIn("Cinder %s" % version, result.details)
        self.assertIn("25.x to 29.x", result.details)

    # -- the command cannot run -----------------------------------------

    def test_bad_backend(self) -> None:
        sim = self.start_sim()
        conf = self.write_conf(sim)
        code, out, err = self.run_status("--config-file", conf,
                                         "--backend", "nope", "check")
        self.assertEqual(2, code)
        self.assertEqual("", out)
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertIn("--backend nope", err)

    def test_missing_config_file(self) -> None:
        missing = os.path.join(self.workdir, "missing.conf")
        code, out, err = self.run_status("--config-file", missing, "check")
        self.assertEqual(2, code)
        self.assertEqual("", out)
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertIn("Cannot read the configuration file(s) %s" % missing,
                      err)
