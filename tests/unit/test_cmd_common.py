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
"""The operator commands read each backend as cinder-volume does.

Run in a child process: the commands parse the global CONF from files.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import testtools

READ_BACKENDS = textwrap.dedent("""
    import json, sys
    from powerflex_cache_driver.cmd import common
    common.CONF.register_cli_opts(common.common_cli_opts)
    conf = common.load_config(sys.argv[1:])
    try:
        backends = common.select_backends(conf, conf.backend)
    except common.CommandError as error:
        sys.exit(str(error))
    print(json.dumps([
        {"name": b.name, "host": b.host, "cluster": b.cluster,
         "backend_name": b.configuration.safe_get("volume_backend_name"),
         "cache": b.configuration.safe_get("image_volume_cache_enabled")}
        for b in backends]))
""")

CINDER_CONF = textwrap.dedent("""
    [DEFAULT]
    host = node1
    cluster = az1
    enabled_backends = fast,other

    [fast]
    volume_driver = powerflex_cache_driver.driver.PowerFlexCacheDriver
    volume_backend_name = powerflex-fast
    image_volume_cache_enabled = True
    backend_host = shared

    [other]
    volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
    volume_backend_name = lvm
""")


class ReadBackends(testtools.TestCase):
    """``select_backends`` on a real cinder.conf."""

    def read(self, *args: str) -> tuple[int, str, str]:
        with tempfile.TemporaryDirectory() as workdir:
            path = os.path.join(workdir, "cinder.conf")
            with open(path, "w", encoding="utf-8") as conf:
                conf.write(CINDER_CONF)
            env = dict(os.environ, PYTHONWARNINGS="ignore")
            done = subprocess.run(
                [sys.executable, "-c", READ_BACKENDS, "--config-file", path,
                 *args], capture_output=True, text=True, env=env,
                timeout=120, check=False)
        return done.returncode, done.stdout, done.stderr

    def test_backend_options_read_from_the_file(self) -> None:
        status, out, err = self.read()
        self.assertEqual(0, status, err)
        # volume_backend_name decides which volume types a backend
        # serves (cache warm); backend_host and cluster its volumes' host.
        self.assertEqual([{"name": "fast", "host": "shared@fast",
                           "cluster": "az1@fast",
                           "backend_name": "powerflex-fast",
                           "cache": True}], json.loads(out))

    def test_backend_of_another_driver_refused(self) -> None:
        status, _out, err = self.read("--backend", "other")
        self.assertEqual(1, status)
        self.assertIn("--backend other: its volume_driver is "
                      "cinder.volume.drivers.lvm.LVMVolumeDriver", err)
