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
"""The cloud's own MariaDB, RabbitMQ and Redis, on loopback only.

Each service keeps its data and configuration under ``<state>/<service>``
and runs in the foreground under a :class:`~tools.cloudlib.procs.
ProcessTable`, which logs its output to ``<state>/log/<service>.log``.
Nothing here reads the system-wide configuration of these packages or
touches their system data directories; the Debian packages only provide
the programs (``tools/setup-dev.sh`` installs them without starting their
system services).

``python -m tools.cloudlib.infra selftest DIR`` starts the three in DIR
(twice: on empty data directories, then again on the data they left),
talks to each, stops them and checks that none of their processes is
left; it prints the start times and memory use.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

from tools.cloudlib import procs
from tools.cloudlib.procs import CloudError

HOST = "127.0.0.1"
_IDENT = re.compile(r"^[A-Za-z0-9_]+$")
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/lib/rabbitmq/bin")


def find_program(*names: str) -> str:
    """The path of the first of ``names`` found on PATH or in sbin.

    :raises CloudError: none is installed.
    """
    search = os.pathsep.join(
        [os.environ.get("PATH", "/usr/bin:/bin"), *_EXTRA_PATH])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    raise CloudError(f"{' or '.join(names)} not found; run "
                     f"tools/setup-dev.sh to install it")


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host``:``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _write(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` if it differs from what is there."""
    try:
        with open(path) as current:
            if current.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w") as new:
        new.write(text)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


def _sql_string(value: str) -> str:
    """``value`` as a quoted SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_ident(kind: str, value: str) -> None:
    if not _IDENT.match(value):
        raise CloudError(f"invalid {kind} {value!r}: use letters, digits "
                         f"and underscores only")


class Service:
    """What the three services share: a name, a home, a log, ports."""

    name = "service"

    def __init__(self, state_dir: str, table: procs.ProcessTable) -> None:
        """Run under ``table``, keeping files in ``<state_dir>/<name>``."""
        self.state_dir = os.path.abspath(state_dir)
        self.table = table
        self.home = os.path.join(self.state_dir, self.name)

    def ports(self) -> dict[str, int]:
        """What each of the service's ports is for."""
        return {}

    @property
    def log_path(self) -> str:
        """The service's log file."""
        return self.table.log_path(self.name)

    def is_running(self) -> bool:
        """Whether the service's main process is running."""
        return self.table.is_running(self.name)

    def error(self, message: str, log: bool = True) -> CloudError:
        """A :class:`CloudError` naming the service and its log."""
        text = f"{self.name}: {message}"
        if log:
            text += f"\n  log: {self.log_path}"
            tail = self.table.tail(self.name, 15)
            if tail:
                text += "\n  last lines:\n" + "\n".join(
                    "    " + line for line in tail.splitlines())
        return CloudError(text)

    def _check_ports(self, ports: Mapping[str, int] | None = None) -> None:
        """Refuse to start when one of the service's ports is taken."""
        for what, port in (ports or self.ports()).items():
            if not port_free(port):
                raise self.error(
                    f"cannot start: {HOST}:{port} ({what}) is in use by "
                    f"another process (see `ss -ltnp 'sport = {port}'`)",
                    log=False)

    def _run(self, argv: Sequence[str], what: str, timeout: float = 120.0,
             env: Mapping[str, str] | None = None,
             stdin: str | None = None, log: bool = True) -> str:
        """Run a helper command to its end; return its output.

        Its output is also appended to the service's log when ``log``.

        :raises CloudError: it failed or did not end within ``timeout``.
        """
        environ = dict(os.environ)
        environ.update(env or {})
        os.makedirs(self.home, exist_ok=True)
        try:
            done = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True,
                env=environ, cwd=self.home, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise self.error(f"{what}: no end after {timeout:g} s") from exc
        except OSError as exc:
            raise self.error(f"{what}: {argv[0]}: {exc.strerror}") from exc
        output = done.stdout + done.stderr
        if log:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            with open(self.log_path, "a") as log_file:
                log_file.write(f"==== {what}: {' '.join(argv)}\n{output}")
        if done.returncode != 0:
            tail = "\n".join("    " + line
                             for line in output.strip().splitlines()[-15:])
            where = f"\n  log: {self.log_path}" if log else ""
            raise CloudError(f"{self.name}: {what} failed (exit status "
                             f"{done.returncode}):\n{tail}{where}")
        return done.stdout

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the service (nothing happens if it is not running)."""
        self.table.stop(self.name, timeout)


class MariaDB(Service):
    """A MariaDB server of the cloud's own, on ``127.0.0.1:port``."""

    name = "mariadb"

    def __init__(self, state_dir: str, table: procs.ProcessTable,
                 port: int, buffer_pool_mb: int = 128) -> None:
        """Keep the server's files in ``<state_dir>/mariadb``."""
        super().__init__(state_dir, table)
        self.port = port
        self.buffer_pool_mb = buffer_pool_mb
        self.config = os.path.join(self.home, "my.cnf")
        self.datadir = os.path.join(self.home, "data")
        self.socket = os.path.join(self.home, "mariadbd.sock")

    def ports(self) -> dict[str, int]:
        """The SQL port."""
        return {"SQL": self.port}

    def _write_config(self) -> None:
        # Unix socket paths are limited to 107 bytes.
        if len(self.socket.encode()) > 100:
            raise self.error(f"state directory path too long for a Unix "
                             f"socket: {self.socket}", log=False)
        user = "user = root\n" if os.geteuid() == 0 else ""
        _write(self.config, f"""\
# Written by tools/cloudlib/infra.py; rewritten at every start.
[client]
host = {HOST}
port = {self.port}
socket = {self.socket}
user = root

[mysqld]
{user}bind-address = {HOST}
port = {self.port}
skip-networking = 0
skip-name-resolve
socket = {self.socket}
datadir = {self.datadir}
pid-file = {os.path.join(self.home, "mariadbd.pid")}
tmpdir = {os.path.join(self.home, "tmp")}
character-set-server = utf8mb3
collation-server = utf8mb3_general_ci
max_connections = 1000
performance_schema = OFF
skip-external-locking
innodb_buffer_pool_size = {self.buffer_pool_mb}M
innodb_log_file_size = 48M
innodb_log_buffer_size = 8M
innodb_flush_log_at_trx_commit = 2
innodb_read_io_threads = 2
innodb_write_io_threads = 2
innodb_purge_threads = 1
thread_cache_size = 16
table_open_cache = 1000
""")

    def _install(self) -> None:
        """Create the system tables in a fresh data directory."""
        staging = self.datadir + ".new"
        shutil.rmtree(staging, ignore_errors=True)
        argv = [find_program("mariadb-install-db", "mysql_install_db"),
                f"--defaults-file={self.config}", f"--datadir={staging}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        self._run(argv, "mariadb-install-db")
        os.rename(staging, self.datadir)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (creating its data the first time); wait.

        Return at once if it is running already.

        :raises CloudError: it did not start or answer within ``timeout``.
        """
        if self.is_running():
            self._wait_ready(timeout)
            return
        self._check_ports()
        os.makedirs(os.path.join(self.home, "tmp"), exist_ok=True)
        self._write_config()
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            self._install()
        self.table.start(self.name, [
            find_program("mariadbd", "mysqld"),
            f"--defaults-file={self.config}"], cwd=self.home)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        client = find_program("mariadb", "mysql")

        def answers() -> bool:
            try:
                done = subprocess.run(
                    [client, f"--defaults-file={self.config}",
                     "--protocol=tcp", "--connect-timeout=2", "-N", "-B",
                     "-e", "SELECT 1"],
                    capture_output=True, text=True, check=False, timeout=20)
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0 and done.stdout.strip() == "1"

        procs.wait_until(answers, timeout, f"answer on {HOST}:{self.port}",
                         self.table, self.name, interval=0.2)

    def query(self, sql: str, user: str = "root",
              password: str | None = None) -> str:
        """Run ``sql`` (on standard input) with the command-line client.

        Return its tab-separated output, without column names.
        """
        env = {"MYSQL_PWD": password} if password is not None else {}
        return self._run(
            [find_program("mariadb", "mysql"),
             f"--defaults-file={self.config}", "--protocol=tcp",
             f"--user={user}", "-N", "-B"],
            "query", timeout=60, env=env, stdin=sql, log=False)

    def create_database(self, name: str, user: str, password: str) -> None:
        """Create database ``name`` and a user owning it, if missing.

        The user (from 127.0.0.1 and localhost) gets ``password``, also
        when it existed with another one.
        """
        _check_ident("database name", name)
        _check_ident("user name", user)
        statements = [f"CREATE DATABASE IF NOT EXISTS `{name}` "
                      f"CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci;"]
        for host in (HOST, "localhost"):
            account = f"'{user}'@'{host}'"
            secret = _sql_string(password)
            statements += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret};",
                f"ALTER USER {account} IDENTIFIED BY {secret};",
                f"GRANT ALL PRIVILEGES ON `{name}`.* TO {account};"]
        self.query("\n".join(statements) + "\n")

    def url(self, db: str, user: str, password: str) -> str:
        """The SQLAlchemy URL of database ``db`` for oslo.db."""
        return (f"mysql+pymysql://{urllib.parse.quote(user, safe='')}:"
                f"{urllib.parse.quote(password, safe='')}@{HOST}:"
                f"{self.port}/{db}?charset=utf8")


class AmqpRefused(CloudError):
    """The broker refused the login or the virtual host."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed by the broker")
        data += chunk
    return data


def _amqp_method(sock: socket.socket) -> tuple[int, int, bytes]:
    """Read frames until a method frame: ``(class, method, arguments)``."""
    while True:
        kind, _channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
        payload = _recv_exact(sock, size)
        if _recv_exact(sock, 1) != b"\xce":
            raise OSError("bad AMQP frame end")
        if kind == 1:
            class_id, method_id = struct.unpack(">HH", payload[:4])
            return class_id, method_id, payload[4:]


def _amqp_send(sock: socket.socket, class_id: int, method_id: int,
               arguments: bytes) -> None:
    payload = struct.pack(">HH", class_id, method_id) + arguments
    sock.sendall(struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")


def _shortstr(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">B", len(data)) + data


def _close_reason(arguments: bytes) -> str:
    code, length = struct.unpack(">HB", arguments[:3])
    return f"{code} {arguments[3:3 + length].decode(errors='replace')}"


def amqp_login(port: int, user: str, password: str, vhost: str = "/",
               host: str = HOST, timeout: float = 5.0) -> None:
    """Open and close an AMQP 0-9-1 connection to ``vhost``.

    A plain-socket client, so that no AMQP library is needed to check the
    broker: it logs in (PLAIN), opens the virtual host and closes.

    :raises OSError: the broker does not answer (yet).
    :raises AmqpRefused: it refused the credentials or the virtual host.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        try:
            if _amqp_method(sock)[:2] != (10, 10):
                raise OSError("no Connection.Start from the broker")
        except EOFError as exc:
            raise OSError(str(exc)) from exc
        response = f"\0{user}\0{password}".encode()
        # Ask for a Connection.Close on a refused login rather than a
        # connection dropped after a delay.
        capability = (_shortstr("authentication_failure_close") + b"t\1")
        capabilities = (_shortstr("capabilities") + b"F"
                        + struct.pack(">I", len(capability)) + capability)
        _amqp_send(sock, 10, 11,
                   struct.pack(">I", len(capabilities)) + capabilities
                   + _shortstr("PLAIN")
                   + struct.pack(">I", len(response)) + response
                   + _shortstr("en_US"))
        try:
            class_id, method_id, arguments = _amqp_method(sock)
        except (EOFError, ConnectionResetError) as exc:
            raise AmqpRefused(f"login as {user!r} refused") from exc
        if (class_id, method_id) == (10, 50):
            raise AmqpRefused(f"login as {user!r} refused: "
                              f"{_close_reason(arguments)}")
        if (class_id, method_id) != (10, 30):
            raise OSError(f"unexpected AMQP method {class_id}.{method_id}")
        channel_max, frame_max, _heartbeat = struct.unpack(
            ">HIH", arguments[:8])
        _amqp_send(sock, 10, 31,
                   struct.pack(">HIH", channel_max, frame_max, 0))
        _amqp_send(sock, 10, 40, _shortstr(vhost) + _shortstr("") + b"\0")
        try:
            class_id, method_id, arguments = _amqp_method(sock)
        except EOFError as exc:
            raise AmqpRefused(f"virtual host {vhost!r} refused") from exc
        if (class_id, method_id) == (10, 50):
            raise AmqpRefused(f"virtual host {vhost!r} refused to "
                              f"{user!r}: {_close_reason(arguments)}")
        _amqp_send(sock, 10, 50, struct.pack(">H", 200) + _shortstr("")
                   + struct.pack(">HH", 0, 0))
        try:
            _amqp_method(sock)
        except EOFError:
            pass


class RabbitMQ(Service):
    """A RabbitMQ node of the cloud's own, with its own epmd.

    The node (``node``, default ``cloud@localhost``) listens for AMQP on
    ``127.0.0.1:port`` and for Erlang distribution on
    ``127.0.0.1:dist_port``; the Erlang port mapper it registers with is
    a process of ours (``rabbitmq-epmd``) on ``epmd_port``, never the
    system's on 4369. No plugin is enabled.
    """

    name = "rabbitmq"
    epmd_name = "rabbitmq-epmd"

    def __init__(self, state_dir: str, table: procs.ProcessTable,
                 port: int, dist_port: int, epmd_port: int,
                 user: str = "openstack",
                 password: str = "openstack",
                 node: str = "cloud@localhost") -> None:
        """Keep the node's files in ``<state_dir>/rabbitmq``."""
        super().__init__(state_dir, table)
        self.port = port
        self.dist_port = dist_port
        self.epmd_port = epmd_port
        self.user = user
        self.password = password
        self.node = node
        self.lib = "/usr/lib/rabbitmq/bin"

    def ports(self) -> dict[str, int]:
        """The AMQP, Erlang distribution and epmd ports."""
        return {"AMQP": self.port, "Erlang distribution": self.dist_port,
                "epmd": self.epmd_port}

    def env(self) -> dict[str, str]:
        """Variables for the node, its epmd and its CLI tools."""
        home = self.home
        return {
            "HOME": os.path.join(home, "home"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(home, "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": os.path.join(home, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(
                home, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(
                home, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(home, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(home, "log"),
            "RABBITMQ_PID_FILE": os.path.join(home, "rabbitmq.pid"),
            # Two schedulers that sleep when idle: the box has 2 cores,
            # shared with a whole OpenStack.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "+S 2:2 +sbwt none +sbwtdcpu none +sbwtdio none "
                "-kernel inet_dist_use_interface {127,0,0,1}"),
        }

    def _write_config(self) -> None:
        for folder in ("home", "mnesia", "log"):
            os.makedirs(os.path.join(self.home, folder), exist_ok=True)
        cookie = os.path.join(self.home, "home", ".erlang.cookie")
        if not os.path.exists(cookie):
            _write(cookie, secrets.token_hex(16).upper(), 0o400)
        _write(os.path.join(self.home, "rabbitmq-env.conf"),
               "# Empty: tools/cloud sets RABBITMQ_* in the environment.\n")
        _write(os.path.join(self.home, "enabled_plugins"), "[].\n")
        # default_user* only act when the node creates its database.
        _write(os.path.join(self.home, "rabbitmq.conf"), f"""\
# Written by tools/cloudlib/infra.py; rewritten at every start.
listeners.tcp.1 = {HOST}:{self.port}
default_user = {self.user}
default_pass = {self.password}
default_vhost = /
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
default_user_tags.administrator = true
log.file = false
log.console = true
log.console.level = info
log.console.use_colors = off
""", 0o600)

    def start(self, timeout: float = 90.0) -> None:
        """Start epmd and the node; wait until the OpenStack user logs in.

        Return at once if both run and the login works.

        :raises CloudError: either did not start within ``timeout``.
        """
        if not self.table.is_running(self.epmd_name):
            if self.is_running():
                # A node without its epmd cannot be reached: restart it.
                self.table.stop(self.name)
            self._check_ports()
            self._write_config()
            self.table.start(self.epmd_name, [
                find_program("epmd"), "-port", str(self.epmd_port),
                "-address", HOST], env=self.env(), cwd=self.home)
            procs.wait_for_port(HOST, self.epmd_port, 15, self.table,
                                self.epmd_name)
        if not self.is_running():
            self._check_ports({"AMQP": self.port,
                               "Erlang distribution": self.dist_port})
            self._write_config()
            self.table.start(
                self.name, [os.path.join(self.lib, "rabbitmq-server")],
                env=self.env(), cwd=self.home)
        deadline = time.monotonic() + timeout
        try:
            self._wait_login(timeout)
        except AmqpRefused:
            # The database predates this user or password: set them.
            self.ensure_user(max(10.0, deadline - time.monotonic()))
            self._wait_login(max(10.0, deadline - time.monotonic()))

    def _wait_login(self, timeout: float) -> None:
        def login() -> bool:
            amqp_login(self.port, self.user, self.password)
            return True

        try:
            procs.wait_until(login, timeout,
                             f"AMQP login on {HOST}:{self.port}",
                             self.table, self.name, interval=0.2)
        except AmqpRefused:
            raise
        except CloudError as exc:
            errors = self._boot_errors()
            if errors:
                raise CloudError(f"{exc}\n  first errors of this start:\n"
                                 + errors) from exc
            raise

    def _boot_errors(self, count: int = 6) -> str:
        """The first ``[error]`` lines the node logged since its start."""
        try:
            with open(self.log_path, errors="replace") as log:
                lines = log.read().splitlines()
        except OSError:
            return ""
        starts = [i for i, line in enumerate(lines)
                  if line.startswith("==== ") and " start " in line]
        since = lines[starts[-1]:] if starts else lines
        errors = [line for line in since if "[error]" in line]
        return "\n".join("    " + line for line in errors[:count])

    def ctl(self, *args: str, timeout: float = 60.0,
            log: bool = True) -> str:
        """Run ``rabbitmqctl -n node ARGS`` against the node; its output.

        :raises CloudError: the command failed, or epmd is not running
            (the CLI would then start an epmd of its own, which nobody
            would stop).
        """
        if not self.table.is_running(self.epmd_name):
            raise self.error("epmd is not running", log=False)
        return self._run(
            [os.path.join(self.lib, "rabbitmqctl"), "-n", self.node, *args],
            f"rabbitmqctl {args[0] if args else ''}", timeout=timeout,
            env=self.env(), log=log)

    def ensure_user(self, timeout: float = 60.0) -> None:
        """Create or update the OpenStack user, with all rights on ``/``."""
        self.ctl("await_startup", "--timeout", str(int(timeout)),
                 timeout=timeout + 15)
        users = self.ctl("list_users", "--quiet", "--no-table-headers")
        if self.user in [line.split("\t")[0] for line in users.splitlines()]:
            self.ctl("change_password", self.user, self.password, log=False)
        else:
            self.ctl("add_user", self.user, self.password, log=False)
        self.ctl("set_permissions", "-p", "/", self.user, ".*", ".*", ".*")

    def transport_url(self) -> str:
        """The oslo.messaging transport URL of the node."""
        return (f"rabbit://{urllib.parse.quote(self.user, safe='')}:"
                f"{urllib.parse.quote(self.password, safe='')}@{HOST}:"
                f"{self.port}/")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node, then its epmd; nothing of either is left."""
        self.table.stop(self.name, timeout)
        self.table.stop(self.epmd_name, 10.0)
        if procs.port_open(HOST, self.epmd_port):
            # An epmd that an Erlang program started as a daemon while
            # ours was down (it left our process group): kill it too.
            subprocess.run(
                [find_program("epmd"), "-port", str(self.epmd_port),
                 "-kill"], capture_output=True, check=False, timeout=15,
                env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)})


def redis_ping(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """Whether Redis on ``host``:``port`` answers PING with PONG."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


class Redis(Service):
    """A Redis server of the cloud's own, without persistence."""

    name = "redis"

    def __init__(self, state_dir: str, table: procs.ProcessTable,
                 port: int) -> None:
        """Run in ``<state_dir>/redis``."""
        super().__init__(state_dir, table)
        self.port = port

    def ports(self) -> dict[str, int]:
        """The Redis port."""
        return {"Redis": self.port}

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers PING.

        Return at once if it is running already.
        """
        if not self.is_running():
            self._check_ports()
            os.makedirs(self.home, exist_ok=True)
            self.table.start(self.name, [
                find_program("redis-server"), "--port", str(self.port),
                "--bind", HOST, "--protected-mode", "yes",
                "--dir", self.home, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--supervised", "no", "--logfile", ""],
                cwd=self.home)
        procs.wait_until(lambda: redis_ping(self.port), timeout,
                         f"PONG on {HOST}:{self.port}", self.table,
                         self.name)

    def url(self) -> str:
        """The URL of the server (for oslo.cache, tooz, ...)."""
        return f"redis://{HOST}:{self.port}"

    def _cli(self, *args: str) -> list[str]:
        """The lines ``redis-cli`` answers to one command."""
        answer = subprocess.run(
            [find_program("redis-cli"), "-h", HOST, "-p", str(self.port),
             "--raw", *args], capture_output=True, text=True, timeout=30,
            check=True)
        return answer.stdout.splitlines()

    def locks(self, pattern: str) -> dict[str, int]:
        """tooz locks held whose name matches ``pattern``, and their TTL.

        :returns: each lock's Redis key and the milliseconds it has left
            before Redis drops it (tooz's ``lock_timeout``, renewed by the
            holder's heartbeat).
        """
        keys = self._cli("--scan", "--pattern", f"_tooz_{pattern}_lock")
        held = {}
        for key in keys:
            ttl = int(self._cli("PTTL", key)[0])
            if ttl != -2:
                held[key] = ttl
        return held


# -- selftest ----------------------------------------------------------------

def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback right now."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind((HOST, 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def _listeners(pids: Sequence[int]) -> list[str]:
    """``address:port`` of the TCP sockets that ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            with open(table) as lines:
                rows = [line.split() for line in lines][1:]
        except OSError:
            continue
        for row in rows:
            if row[3] != "0A" or row[9] not in inodes:
                continue
            address, port = row[1].split(":")
            raw = bytes.fromhex(address)
            if family == 4:
                host = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                host = "[" + socket.inet_ntop(
                    socket.AF_INET6, b"".join(words)) + "]"
            found.append(f"{host}:{int(port, 16)}")
    return sorted(set(found))


def _leftovers(state_dir: str, markers: Sequence[str],
               groups: Sequence[int]) -> list[str]:
    """``ps`` lines of processes that look like ours (zombies aside)."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True,
        text=True, check=True).stdout
    left = []
    for line in listing.splitlines():
        fields = line.split(None, 3)
        if len(fields) < 4 or fields[2].startswith("Z") \
                or int(fields[0]) == os.getpid():
            continue
        if int(fields[1]) in groups or state_dir in fields[3] \
                or any(marker in fields[3] for marker in markers):
            left.append(line.strip())
    return left


def _check_sql(db: MariaDB) -> str:
    password = "s3cret'\"\\%@:/"
    db.create_database("selftest", "selftest", password)
    db.create_database("selftest", "selftest", password)
    try:
        import pymysql
    except ImportError:
        answer = db.query("SELECT 1;", user="selftest",
                          password=password).strip()
        how = "mariadb client as selftest"
    else:
        connection = pymysql.connect(host=HOST, port=db.port,
                                     user="selftest", password=password,
                                     database="selftest")
        with connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                answer = str(cursor.fetchone()[0])
        how = "PyMySQL as selftest"
    if answer != "1":
        raise CloudError(f"mariadb: SELECT 1 answered {answer!r}")
    return f"SELECT 1 -> 1 ({how})"


def _check_amqp(mq: RabbitMQ, cli: bool) -> str:
    try:
        import kombu
    except ImportError:
        amqp_login(mq.port, mq.user, mq.password)
        how = "AMQP 0-9-1 login + open vhost / (socket client)"
    else:
        url = "amqp" + mq.transport_url()[len("rabbit"):]
        with kombu.Connection(url, connect_timeout=5) as conn:
            conn.connect()
        how = "kombu connection"
    if cli:
        users = mq.ctl("list_users", "--quiet", "--no-table-headers")
        if mq.user not in users:
            raise CloudError(f"rabbitmq: {mq.user} missing from list_users")
        how += f"; rabbitmqctl list_users: {mq.user}"
    return how


def _check_redis(cache: Redis) -> str:
    answer = subprocess.run(
        [find_program("redis-cli"), "-h", HOST, "-p", str(cache.port),
         "PING"], capture_output=True, text=True, check=False, timeout=10)
    if answer.stdout.strip() != "PONG":
        raise CloudError(f"redis: PING answered {answer.stdout!r} "
                         f"{answer.stderr!r}")
    return "redis-cli PING -> PONG"


def selftest(state_dir: str) -> int:
    """Start, use and stop the three services twice; 0 if all went well."""
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, exist_ok=True)
    table = procs.ProcessTable(state_dir)
    ports = _free_ports(5)
    db = MariaDB(state_dir, table, port=ports[0])
    mq = RabbitMQ(state_dir, table, port=ports[1], dist_port=ports[2],
                  epmd_port=ports[3], node=f"selftest{ports[1]}@localhost")
    cache = Redis(state_dir, table, port=ports[4])
    services: list[Service] = [db, mq, cache]
    checks = {"mariadb": _check_sql, "redis": _check_redis}
    print(f"state {state_dir}; ports: mariadb {db.port}, rabbitmq "
          f"{mq.port} (dist {mq.dist_port}, epmd {mq.epmd_port}), redis "
          f"{cache.port}")
    markers = [f"-port {mq.epmd_port}", f"{HOST}:{cache.port}", mq.node]
    groups: set[int] = set()
    failures = 0
    try:
        for phase in ("cold", "warm"):
            print(f"-- {phase} start")
            for service in services:
                began = time.monotonic()
                service.start()
                took = time.monotonic() - began
                names = [service.name] + (
                    [RabbitMQ.epmd_name] if service is mq else [])
                running = table.running()
                pids = [running[name] for name in names]
                groups.update(pids)
                rss = sum(procs.group_rss_kib(pid) for pid in pids)
                members = [m for pid in pids
                           for m in procs.group_members(pid)]
                listen = _listeners(members)
                if service is mq:
                    result = _check_amqp(mq, cli=phase == "cold")
                else:
                    result = checks[service.name](service)
                public = [address for address in listen
                          if not address.startswith(("127.", "[::1]"))]
                if public:
                    failures += 1
                print(f"{service.name:9} start {took:6.2f} s  "
                      f"RSS {rss / 1024:6.1f} MiB  listens "
                      f"{', '.join(listen)}"
                      + (f"  NOT LOOPBACK: {public}" if public else ""))
                print(f"{'':9} {result}")
            print(f"-- stop ({phase})")
            for service in reversed(services):
                began = time.monotonic()
                service.stop()
                print(f"{service.name:9} stop  "
                      f"{time.monotonic() - began:6.2f} s")
            left = _leftovers(state_dir, markers, sorted(groups))
            if left:
                failures += 1
                print("LEFT RUNNING:\n  " + "\n  ".join(left))
            else:
                print("no process left")
    except CloudError as exc:
        failures += 1
        print(f"FAILED: {exc}")
    except Exception:  # report anything, then clean up
        failures += 1
        traceback.print_exc(file=sys.stdout)
    finally:
        table.stop_all(timeout=30)
        mq.stop(timeout=30)
    left = _leftovers(state_dir, markers, sorted(groups))
    if left:
        failures += 1
        print("LEFT RUNNING at the end:\n  " + "\n  ".join(left))
    print("selftest " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


def main(argv: Sequence[str]) -> int:
    """``selftest [DIR]``: see the module's documentation."""
    if len(argv) not in (1, 2) or argv[0] != "selftest":
        print("usage: python -m tools.cloudlib.infra selftest [STATE_DIR]",
              file=sys.stderr)
        return 2
    if len(argv) == 2:
        return selftest(argv[1])
    with tempfile.TemporaryDirectory(prefix="cloud-selftest-") as tmp:
        return selftest(tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
