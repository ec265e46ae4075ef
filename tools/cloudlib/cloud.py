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
"""Start, describe and stop the one-machine cloud.

``up`` starts, in this order: MariaDB, RabbitMQ and Redis (own data directories
and ports), the PowerFlex gateway simulator (loop devices, links in
``/dev/disk/by-id`` as an SDC host has them), Keystone and Glance under
gunicorn, then Cinder's API, scheduler and two cinder-volume services of one
cluster with tooz coordination on Redis. cinder-volume loads the driver from
this package installed into the services' virtualenv with ``pip install`` (as
the install guide tells operators), and attaches volumes with os-brick's own
``ScaleIOConnector``: an ``LD_PRELOAD`` shim answers the two ioctls os-brick
sends to the SDC's ``/dev/scini`` (there is no SDC kernel module here);
everything else os-brick does is its own.

``down`` stops all of it, in the reverse order, and removes ``.cloud/``.
"""

import configparser
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from typing import Any, Optional

from tools.cloudlib import api
from tools.cloudlib import configs
from tools.cloudlib import infra
from tools.cloudlib import layout
from tools.cloudlib import procs
from tools.cloudlib import sdc

CloudError = procs.CloudError

BY_ID_DIR = "/dev/disk/by-id"
OPENSTACK_SERVICES = ("cinder-volume-2", "cinder-volume-1",
                      "cinder-scheduler", "cinder-api", "glance",
                      "keystone", "gateway")
"""Processes of the cloud other than MariaDB, RabbitMQ and Redis, in the
order ``down`` stops them."""
STOP_TIMEOUT = 20.0
"""Seconds a service gets to stop after SIGTERM before SIGKILL
(cinder-volume can take a minute to stop by itself)."""
PASSWORD_NAMES = ("admin", "demo", "glance", "cinder", "cinder-internal",
                  "db")

SUDO = """#!/bin/sh
# Pass-through sudo for the cloud's services, which run as root already:
# oslo.privsep and rootwrap start their helpers through sudo.
while [ $# -gt 0 ]; do
    case "$1" in
        -E|-n|-H|-S|--preserve-env|--non-interactive) shift ;;
        -u) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
exec "$@"
"""


def _log(message: str) -> None:
    print(message, flush=True)


class Cloud:
    """The cloud of one repository checkout."""

    def __init__(self, lay: Optional[layout.Layout] = None) -> None:
        self.layout = lay or layout.Layout.of_repository()
        self.table = procs.ProcessTable(self.layout.state)

    # ------------------------------------------------------------ helpers

    def _infra(self) -> tuple[infra.MariaDB, infra.RabbitMQ, infra.Redis]:
        state = self.layout.state
        return (infra.MariaDB(state, self.table, layout.PORTS["mariadb"]),
                infra.RabbitMQ(state, self.table, layout.PORTS["rabbitmq"],
                               layout.PORTS["rabbitmq_dist"],
                               layout.PORTS["epmd"],
                               password=self._rabbitmq_password()),
                infra.Redis(state, self.table, layout.PORTS["redis"]))

    def _rabbitmq_password(self) -> str:
        """The RabbitMQ user's password, made at the first ``up``.

        Kept in ``.cloud/`` (mode 0600) for the commands that follow; a
        random one, so that the log scan (``scan-logs``) can tell it from
        any word of the logs.
        """
        path = self.layout.path("rabbitmq.password")
        try:
            with open(path) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            pass
        os.makedirs(self.layout.state, exist_ok=True)
        password = secrets.token_hex(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
        return password

    def _run(self, argv: list[str], what: str,
             stdin: Optional[str] = None,
             env: Optional[dict[str, str]] = None) -> str:
        """Run a one-shot command of the set-up; return its output."""
        environ = dict(os.environ, **(env or {}))
        done = subprocess.run(argv, input=stdin, capture_output=True,
                              text=True, env=environ, check=False,
                              cwd=self.layout.root, timeout=600)
        if done.returncode:
            raise CloudError("%s failed (exit %d): %s" % (
                what, done.returncode,
                (done.stderr or done.stdout).strip()[-2000:]))
        return done.stdout

    def _service_env(self) -> dict[str, str]:
        venv_bin = os.path.join(self.layout.venv, "bin")
        return {"PATH": os.pathsep.join([self.layout.path("bin"), venv_bin,
                                         os.environ.get("PATH", "")]),
                "VIRTUAL_ENV": self.layout.venv}

    # ------------------------------------------------------------ venv

    def ensure_venv(self) -> None:
        """Build the services' virtualenv once; install this package.

        The package is installed as the install guide tells operators to
        (``pip install`` into Cinder's virtualenv, then ``pip check``),
        from this checkout, again on every ``up`` so that the cloud runs
        the code of the checkout.
        """
        venv = self.layout.venv
        marker = os.path.join(venv, ".cloud-packages")
        wanted = "\n".join(layout.SERVICE_PACKAGES)
        have = ""
        if os.path.exists(marker):
            with open(marker) as handle:
                have = handle.read()
        if have != wanted:
            _log("Building the services' virtualenv %s (a few minutes, "
                 "once)" % venv)
            if not os.path.exists(self.layout.venv_bin("python")):
                self._run([sys.executable, "-m", "venv", venv],
                          "python3 -m venv")
            self._run([self.layout.venv_bin("pip"), "install", "-q"]
                      + list(layout.SERVICE_PACKAGES), "pip install")
            with open(marker, "w") as handle:
                handle.write(wanted)
        # Built without isolation, with the virtualenv's setuptools, pbr
        # and wheel: an isolated build downloads them from the index on
        # every up (a truncated download failed an up here).
        self._run([self.layout.venv_bin("pip"), "install", "-q",
                   "--no-deps", "--force-reinstall", "--no-build-isolation",
                   self.layout.root],
                  "pip install powerflex-cache-driver")
        self._run([self.layout.venv_bin("pip"), "check"], "pip check")

    # ------------------------------------------------------------ up

    def up(self, driver: str) -> int:
        """Start the cloud with ``driver`` (ours or stock); 0 on success."""
        running = self.table.running()
        if running:
            _log("The cloud is already up (%s); nothing done. "
                 "`tools/cloud down` stops it." % ", ".join(sorted(running)))
            return 0
        if os.path.exists(self.layout.state):
            _log("Removing what a previous cloud left in %s"
                 % self.layout.state)
            self._remove_state()
        started = time.monotonic()
        self.ensure_venv()
        try:
            description = self._start(driver)
        except BaseException:
            _log("Start failed; stopping what was started (logs kept in "
                 "%s)" % self.layout.path("log"))
            self._stop_processes()
            raise
        description["startup_seconds"] = round(
            time.monotonic() - started, 1)
        self._write_description(description)
        _log("Cloud up in %.0f s (driver: %s). Source %s for the "
             "OpenStack client (`. %s demo` for the non-admin project)."
             % (description["startup_seconds"], driver,
                self.layout.openrc, self.layout.openrc))
        _log(self.layout.openrc)
        return 0

    def _start(self, driver: str) -> dict[str, Any]:
        lay = self.layout
        for sub in ("bin", "etc", "log", "run", "lock"):
            os.makedirs(lay.path(sub), exist_ok=True)
        os.chmod(lay.state, 0o700)
        # Hex: a password handed over on a command line must not start
        # with "-" (keystone-manage took one as an option; token_urlsafe
        # starts with it once in 64), nor hold a character a config file
        # or URL would read otherwise.
        passwords = {name: secrets.token_hex(18)
                     for name in PASSWORD_NAMES}
        sudo = lay.path("bin", "sudo")
        with open(sudo, "w") as handle:
            handle.write(SUDO)
        os.chmod(sudo, 0o755)
        sdc.build_shim(lay.path("sdc"))

        mariadb, rabbitmq, redis = self._infra()
        _log("Starting MariaDB, RabbitMQ, Redis")
        mariadb.start()
        databases = {}
        for name in ("keystone", "glance", "cinder"):
            mariadb.create_database(name, name, passwords["db"])
            databases[name] = mariadb.url(name, name, passwords["db"])
        rabbitmq.start()
        redis.start()

        _log("Starting the PowerFlex gateway simulator")
        backend = self._start_gateway()

        _log("Starting Keystone")
        self._start_keystone(databases["keystone"], passwords["admin"])
        ids = json.loads(self._run(
            [lay.venv_bin("python"), "-m", "tools.cloudlib.identity"],
            "creating projects and users", stdin=json.dumps({
                "keystone_url": layout.url("keystone", "/v3"),
                "admin_password": passwords["admin"],
                "passwords": passwords, "region": layout.REGION,
                "urls": {"image": layout.url("glance"),
                         "block-storage": layout.url("cinder", "/v3"),
                         "volumev3": layout.url("cinder", "/v3")}})))

        _log("Starting Glance")
        self._start_glance(databases["glance"], passwords["glance"])

        _log("Starting Cinder (API, scheduler, 2 volume services, driver "
             "%s)" % driver)
        self._start_cinder(driver, databases["cinder"],
                           rabbitmq.transport_url(), redis.url(),
                           passwords["cinder"], ids, backend)
        description = self._describe(driver, passwords, ids, backend)
        self._wait_for_volume_services(description)
        self._create_volume_type(description)
        return description

    @staticmethod
    def _create_volume_type(description: dict[str, Any]) -> None:
        """The default volume type, bound to the backend by its name."""
        api.Session(description["admin"]).call(
            "POST", "cinder", "/v3/types", body={"volume_type": {
                "name": layout.BACKEND, "os-volume-type-access:is_public":
                True, "extra_specs": {
                    "volume_backend_name": layout.BACKEND}}})

    def _start_gateway(self) -> dict[str, Any]:
        lay = self.layout
        workdir = lay.path("array")
        self.table.start("gateway", [
            lay.venv_bin("python"), "-m", "powerflex_cache_driver.simulator",
            "--host", layout.HOST, "--port", str(layout.PORTS["gateway"]),
            "--workdir", workdir, "--loop-devices",
            "--by-id-dir", BY_ID_DIR, "--sdc-guid", layout.SDC_GUID,
            "--snapshot-limit", str(layout.SNAPSHOT_LIMIT),
            "--removal-seconds", str(layout.REMOVAL_SECONDS),
            # Every request in the gateway's log (method, path, status,
            # operation; never credentials): the array's call log, for
            # scenarios that count what a command sent to the array.
            "--verbose"],
            env=self._service_env())
        fragment = os.path.join(workdir, "cinder-backend.conf")
        procs.wait_until(lambda: os.path.exists(fragment), 60,
                         "backend configuration", self.table, "gateway")
        procs.wait_for_port(layout.HOST, layout.PORTS["gateway"], 30,
                            self.table, "gateway")
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(fragment)
        section = dict(parser[layout.BACKEND])
        for key in ("volume_backend_name", "volume_driver"):
            section.pop(key, None)
        return section

    def _start_keystone(self, database: str, admin_password: str) -> None:
        lay = self.layout
        conf_dir = lay.path("etc", "keystone")
        for sub in ("fernet", "fernet-receipts", "credential"):
            os.makedirs(lay.path("keystone", sub), exist_ok=True)
        configs.write(os.path.join(conf_dir, "keystone.conf"),
                      configs.keystone(lay, database))
        manage = [lay.venv_bin("keystone-manage"), "--config-dir", conf_dir]
        self._run(manage + ["db_sync"], "keystone-manage db_sync")
        owner = ["--keystone-user", "root", "--keystone-group", "root"]
        self._run(manage + ["fernet_setup"] + owner, "fernet_setup")
        self._run(manage + ["credential_setup"] + owner,
                  "credential_setup")
        self._run(manage + [
            "bootstrap", "--bootstrap-password", admin_password,
            "--bootstrap-admin-url", layout.url("keystone", "/v3"),
            "--bootstrap-internal-url", layout.url("keystone", "/v3"),
            "--bootstrap-public-url", layout.url("keystone", "/v3"),
            "--bootstrap-region-id", layout.REGION], "keystone bootstrap")
        self._start_wsgi("keystone", "keystone.wsgi.api",
                         {"OS_KEYSTONE_CONFIG_DIR": conf_dir})

    def _start_wsgi(self, name: str, module: str,
                    env: dict[str, str]) -> None:
        lay = self.layout
        self.table.start(name, [
            lay.venv_bin("gunicorn"), "--chdir", lay.root,
            "--bind", "%s:%d" % (layout.HOST, layout.PORTS[name]),
            "--workers", "1", "--worker-class", "gthread",
            "--threads", "8", "--timeout", "600",
            "--access-logfile", lay.path("log", "%s-access.log" % name),
            "tools.cloudlib.wsgi:application"],
            env=dict(self._service_env(), CLOUD_WSGI_MODULE=module, **env))
        procs.wait_for_http(layout.url(name), 90, self.table, name)

    def _start_glance(self, database: str, password: str) -> None:
        lay = self.layout
        conf_dir = lay.path("etc", "glance")
        for sub in ("images", "staging", "tasks"):
            os.makedirs(lay.path("glance", sub), exist_ok=True)
        configs.write(os.path.join(conf_dir, "glance-api.conf"),
                      configs.glance(lay, database, password))
        shutil.copy(os.path.join(lay.venv, "etc", "glance",
                                 "glance-api-paste.ini"), conf_dir)
        self._run([lay.venv_bin("glance-manage"), "--config-dir", conf_dir,
                   "db_sync"], "glance-manage db_sync")
        self._start_wsgi("glance", "glance.wsgi.api",
                         {"OS_GLANCE_CONFIG_DIR": conf_dir})

    def _start_cinder(self, driver: str, database: str, transport: str,
                      coordination: str, password: str, ids: dict[str, str],
                      backend: dict[str, Any]) -> None:
        lay = self.layout
        conf_dir = lay.path("etc", "cinder")
        filters = os.path.join(conf_dir, "rootwrap.d")
        os.makedirs(filters, exist_ok=True)
        shutil.copy(os.path.join(lay.venv, "etc", "cinder", "rootwrap.d",
                                 "volume.filters"), filters)
        rootwrap, extra_filters = configs.rootwrap(lay)
        configs.write(os.path.join(conf_dir, "rootwrap.conf"), rootwrap)
        with open(os.path.join(filters, "cloud.filters"), "w") as handle:
            handle.write(extra_filters)
        os.makedirs(lay.path("cinder", "conversion"), exist_ok=True)
        main = configs.write(self._cinder_conf(),
                             configs.cinder(
                                 lay, database=database, transport=transport,
                                 coordination=coordination, password=password,
                                 driver=driver,
                                 internal_project=ids["internal_project_id"],
                                 internal_user=ids["internal_user_id"],
                                 backend=backend))
        self._run([lay.venv_bin("cinder-manage"), "--config-file", main,
                   "db", "sync"], "cinder-manage db sync")
        env = self._service_env()
        self.table.start("cinder-api", [lay.venv_bin("cinder-api"),
                                        "--config-file", main], env=env)
        self.table.start("cinder-scheduler", [
            lay.venv_bin("cinder-scheduler"), "--config-file", main],
            env=env)
        for number, host in enumerate(layout.VOLUME_HOSTS, 1):
            configs.write(self._volume_host_conf(host),
                          configs.volume_host(lay, host))
            self.start_volume_service(number)
        procs.wait_for_http(layout.url("cinder"), 90, self.table,
                            "cinder-api")

    def _cinder_conf(self) -> str:
        return self.layout.path("etc", "cinder", "cinder.conf")

    def _volume_host_conf(self, host: str) -> str:
        return self.layout.path("etc", "cinder", "%s.conf" % host)

    def start_volume_service(self, number: int) -> None:
        """Start cinder-volume number ``number`` (1 or 2) as ``up`` does.

        It preloads the /dev/scini shim ``up`` built.
        """
        lay = self.layout
        host = layout.VOLUME_HOSTS[number - 1]
        shim = lay.path("sdc", sdc.SHIM_NAME)
        env = dict(self._service_env(),
                   **sdc.shim_env(shim, layout.SDC_GUID))
        self.table.start("cinder-volume-%d" % number, [
            lay.venv_bin("cinder-volume"), "--config-file",
            self._cinder_conf(), "--config-file",
            self._volume_host_conf(host)], env=env)

    def _wait_for_volume_services(self, description: dict[str, Any]) -> None:
        session = api.Session(description["admin"])
        wanted = {"%s@%s" % (host, layout.BACKEND)
                  for host in layout.VOLUME_HOSTS}

        def volume_services_up() -> bool:
            services = session.get("cinder", "/v3/os-services")["services"]
            up = {s["host"] for s in services
                  if s["binary"] == "cinder-volume" and s["state"] == "up"
                  and s.get("cluster") == "%s@%s" % (layout.CLUSTER,
                                                     layout.BACKEND)}
            return wanted <= up

        for number in (1, 2):
            if not self.table.is_running("cinder-volume-%d" % number):
                name = "cinder-volume-%d" % number
                raise CloudError("%s exited; log %s:\n%s" % (
                    name, self.table.log_path(name), self.table.tail(name)))
        procs.wait_until(volume_services_up, 120,
                         "two cinder-volume services up in cluster %s"
                         % layout.CLUSTER, self.table, "cinder-volume-1")

    def _describe(self, driver: str, passwords: dict[str, str],
                  ids: dict[str, str],
                  backend: dict[str, Any]) -> dict[str, Any]:
        def user(name: str, project: str) -> dict[str, str]:
            return {"username": name, "password": passwords[name],
                    "project_name": project,
                    "user_domain_name": "Default",
                    "project_domain_name": "Default"}

        return {
            "state_dir": self.layout.state, "venv": self.layout.venv,
            "driver": driver, "region": layout.REGION,
            "keystone_url": layout.url("keystone", "/v3"),
            "admin": user("admin", "admin"), "demo": user("demo", "demo"),
            "service": user("cinder", "service"),
            "ids": ids,
            "cinder_url": layout.url("cinder", "/v3"),
            "glance_url": layout.url("glance"),
            "volume_backend_name": layout.BACKEND,
            "storage_protocol": "scaleio", "vendor_name": "Dell EMC",
            "cluster": "%s@%s" % (layout.CLUSTER, layout.BACKEND),
            "volume_hosts": ["%s@%s" % (host, layout.BACKEND)
                             for host in layout.VOLUME_HOSTS],
            "snapshot_limit": layout.SNAPSHOT_LIMIT,
            "granularity_gib": layout.GRANULARITY_GIB,
            "gateway": {
                "url": layout.url("gateway"),
                "ca": backend["driver_ssl_cert_path"],
                "user": backend["san_login"],
                "password": backend["san_password"],
                "workdir": self.layout.path("array")},
        }

    def _write_description(self, description: dict[str, Any]) -> None:
        lay = self.layout
        fd = os.open(lay.description, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(description, handle, indent=2)
        gateway = description["gateway"]
        lines = [
            "# The one-machine cloud: `. %s` (admin) or `. %s demo`."
            % (lay.openrc, lay.openrc),
            'case "${1:-admin}" in',
        ]
        for who in ("admin", "demo"):
            creds = description[who]
            lines += [
                "    %s)" % who,
                "        export OS_USERNAME=%s" % creds["username"],
                "        export OS_PASSWORD='%s'" % creds["password"],
                "        export OS_PROJECT_NAME=%s" % creds["project_name"],
                "        ;;",
            ]
        lines += [
            '    *) echo "usage: . %s [admin|demo]" >&2; return 1 ;;'
            % lay.openrc,
            "esac",
            "export OS_AUTH_URL=%s" % description["keystone_url"],
            "export OS_IDENTITY_API_VERSION=3",
            "export OS_USER_DOMAIN_NAME=Default",
            "export OS_PROJECT_DOMAIN_NAME=Default",
            "export OS_REGION_NAME=%s" % layout.REGION,
            "export OS_INTERFACE=public",
            "export POWERFLEX_GATEWAY_URL=%s" % gateway["url"],
            "export POWERFLEX_GATEWAY_CA=%s" % gateway["ca"],
            "export POWERFLEX_GATEWAY_USER=%s" % gateway["user"],
            "export POWERFLEX_GATEWAY_PASSWORD='%s'" % gateway["password"],
            'export PATH="%s:$PATH"' % os.path.join(lay.venv, "bin"),
        ]
        fd = os.open(lay.openrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    # ------------------------------------------------------------ down

    def down(self) -> int:
        """Stop everything ``up`` started and remove ``.cloud/``."""
        if not os.path.exists(self.layout.state):
            _log("The cloud is not up (no %s); nothing to stop."
                 % self.layout.state)
            return 0
        stopped = self._stop_processes()
        self._remove_state()
        _log("Cloud down: stopped %s; removed %s." % (
            ", ".join(stopped) or "nothing (no process was running)",
            self.layout.state))
        return 0

    def _stop_processes(self) -> list[str]:
        stopped = []
        for name in OPENSTACK_SERVICES:
            if self.table.is_running(name):
                self.table.stop(name, STOP_TIMEOUT)
                stopped.append(name)
        for service in reversed(self._infra()):
            if service.is_running():
                service.stop()
                stopped.append(type(service).__name__)
        stopped += self.table.stop_all(STOP_TIMEOUT)
        return stopped

    def _remove_state(self) -> None:
        """Remove ``.cloud/`` and what the array left outside it.

        The simulator removes its ``/dev/disk/by-id`` links and detaches
        its loop devices when it stops; after a crash this sweeps both.
        """
        array = self.layout.path("array")
        if os.path.isdir(BY_ID_DIR):
            for entry in os.listdir(BY_ID_DIR):
                link = os.path.join(BY_ID_DIR, entry)
                if os.path.islink(link) and os.readlink(link).startswith(
                        (array, "/dev/loop")) and entry.startswith(
                        "emc-vol-"):
                    target = os.path.realpath(link)
                    if not target.startswith("/dev/loop") or \
                            self._loop_backed_by(target, array):
                        os.unlink(link)
        for device in self._loops_of(array):
            subprocess.run(["losetup", "-d", device], check=False,
                           capture_output=True)
        shutil.rmtree(self.layout.state, ignore_errors=True)

    @staticmethod
    def _loops_of(directory: str) -> list[str]:
        done = subprocess.run(["losetup", "-l", "-n", "-O",
                               "NAME,BACK-FILE"], capture_output=True,
                              text=True, check=False)
        found = []
        for line in done.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].strip().startswith(directory):
                found.append(parts[0])
        return found

    def _loop_backed_by(self, device: str, directory: str) -> bool:
        return device in self._loops_of(directory)

    # ------------------------------------------------------------ status

    def status(self) -> int:
        """Print what runs; 0 if the whole cloud is up, 3 if not up."""
        running = self.table.running()
        if not running:
            _log("The cloud is not up.")
            return 3
        try:
            description = self.layout.read_description()
        except FileNotFoundError:
            description = {}
        _log("Cloud in %s (driver: %s)" % (
            self.layout.state, description.get("driver", "?")))
        total = 0
        for name, pid in running.items():
            rss = procs.group_rss_kib(pid)
            total += rss
            _log("  %-18s pid %-7d %7.0f MiB" % (name, pid, rss / 1024))
        _log("  %-18s %19.0f MiB" % ("total", total / 1024))
        expected = set(OPENSTACK_SERVICES)
        missing = sorted(expected - set(running))
        if missing:
            _log("Not running: %s" % ", ".join(missing))
            return 1
        if description:
            _log("openrc: %s" % self.layout.openrc)
        return 0
