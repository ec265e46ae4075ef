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
"""Supervision of the cloud's long-running processes, through files.

Every process that ``tools/cloud`` runs is started by :class:`ProcessTable`
in a session (and so a process group) of its own, with its output appended
to ``<state>/log/<name>.log`` and its pid written to
``<state>/run/<name>.pid``. The table keeps no state in memory that a later
command would need: ``tools/cloud down`` run from another shell finds the
processes through those files and stops each whole process group, in the
reverse of the order they were started in (``<state>/run/start-order``).

A pid file holds the pid and the process's start time (in clock ticks
since boot, from ``/proc/<pid>/stat``), so a pid reused by another process
after a reboot or a crash is not taken for ours.
"""

from collections.abc import Callable
from collections.abc import Container
from collections.abc import Mapping
from collections.abc import Sequence
import datetime
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from typing import Any
import urllib.error
import urllib.request

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
ORDER_FILE = "start-order"
POLL = 0.1


class CloudError(Exception):
    """An error that ``tools/cloud`` prints as it is, without a traceback."""


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """``(state, pgrp, session, start time)`` of ``pid``, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3]), int(fields[19])


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat is not None and stat[1] == pgid and stat[0] != "Z":
            members.append(int(entry))
    return members


def group_rss_kib(pgid: int) -> int:
    """Resident memory of process group ``pgid``, in KiB (summed)."""
    total = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class ProcessTable:
    """The cloud's processes, known by name, recorded under ``state_dir``."""

    def __init__(self, state_dir: str) -> None:
        """Use ``state_dir`` (created if missing) for logs and pid files."""
        self.state_dir = os.path.abspath(state_dir)
        self.log_dir = os.path.join(self.state_dir, "log")
        self.run_dir = os.path.join(self.state_dir, "run")
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- files -------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if not _NAME.match(name) or name == ORDER_FILE:
            raise CloudError(f"invalid process name {name!r}")

    def log_path(self, name: str) -> str:
        """The file the output of process ``name`` is appended to."""
        self._check_name(name)
        return os.path.join(self.log_dir, f"{name}.log")

    def pid_path(self, name: str) -> str:
        """The file that records the pid of process ``name``."""
        self._check_name(name)
        return os.path.join(self.run_dir, f"{name}.pid")

    def _order_path(self) -> str:
        return os.path.join(self.run_dir, ORDER_FILE)

    def _read_pid_file(self, name: str) -> tuple[int, int | None] | None:
        """``(pid, start time)`` recorded for ``name``, or None."""
        try:
            with open(self.pid_path(name)) as pid_file:
                fields = pid_file.read().split()
            return int(fields[0]), (int(fields[1]) if len(fields) > 1
                                    else None)
        except (OSError, ValueError, IndexError):
            return None

    def _read_order(self) -> list[str]:
        try:
            with open(self._order_path()) as order:
                return [line.strip() for line in order if line.strip()]
        except FileNotFoundError:
            return []

    def _write_order(self, names: Sequence[str]) -> None:
        path = self._order_path()
        with open(path + ".tmp", "w") as order:
            order.writelines(f"{name}\n" for name in names)
        os.replace(path + ".tmp", path)

    # -- liveness ------------------------------------------------------------

    def _reap(self, pid: int) -> None:
        """Collect ``pid``'s exit status if this process is its parent."""
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is not None:
                del self._children[pid]
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def _leader_alive(self, pid: int, start: int | None) -> bool:
        """Whether ``pid`` runs and is the process recorded (same start)."""
        self._reap(pid)
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return False
        return start is None or stat[3] == start

    def pid(self, name: str) -> int | None:
        """The pid of process ``name`` if it is running, else None."""
        recorded = self._read_pid_file(name)
        if recorded is None or not self._leader_alive(*recorded):
            return None
        return recorded[0]

    def is_running(self, name: str) -> bool:
        """Whether process ``name`` is running (a stale pid file is not)."""
        return self.pid(name) is not None

    def running(self) -> dict[str, int]:
        """Name to pid of every registered process that is running."""
        try:
            entries = sorted(os.listdir(self.run_dir))
        except FileNotFoundError:
            return {}
        result = {}
        for entry in entries:
            if entry.endswith(".pid") and _NAME.match(entry[:-4]):
                pid = self.pid(entry[:-4])
                if pid is not None:
                    result[entry[:-4]] = pid
        return result

    # -- start and stop ------------------------------------------------------

    def start(self, name: str, argv: Sequence[str],
              env: Mapping[str, str] | None = None,
              cwd: str | None = None) -> int:
        """Start ``argv`` as process ``name``; return its pid.

        The process runs in a new session, so in a process group of its
        own whose id is its pid, with standard input from /dev/null and
        standard output and error appended to :meth:`log_path`. ``env``
        holds variables set on top of this process's environment.

        :raises CloudError: a process of that name is running, or
            ``argv[0]`` cannot be executed.
        """
        self._check_name(name)
        current = self.pid(name)
        if current is not None:
            raise CloudError(
                f"{name} is already running (pid {current}, "
                f"{self.pid_path(name)}); stop it first")
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        environ = dict(os.environ)
        if env:
            environ.update(env)
        log_path = self.log_path(name)
        stamp = datetime.datetime.now().isoformat(sep=" ",
                                                  timespec="seconds")
        with open(log_path, "ab") as log:
            log.write(f"==== {stamp} start {name}: {' '.join(argv)}\n"
                      .encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    list(argv), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, env=environ, cwd=cwd,
                    close_fds=True, start_new_session=True)
            except OSError as exc:
                raise CloudError(
                    f"cannot start {name}: {argv[0]}: {exc.strerror}"
                ) from exc
        self._children[child.pid] = child
        stat = _proc_stat(child.pid)
        start_time = f" {stat[3]}" if stat is not None else ""
        pid_path = self.pid_path(name)
        with open(pid_path + ".tmp", "w") as pid_file:
            pid_file.write(f"{child.pid}{start_time}\n")
        os.replace(pid_path + ".tmp", pid_path)
        self._write_order(
            [n for n in self._read_order() if n != name] + [name])
        return child.pid

    def _wait_group(self, pgid: int, timeout: float) -> bool:
        """Wait until process group ``pgid`` is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._reap(pgid)
            if not group_members(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self, name: str, timeout: float = 60.0,
             first_signal: int = signal.SIGTERM) -> bool:
        """Stop process ``name`` and its process group.

        ``first_signal`` (SIGTERM; SIGKILL to kill it as a crash would)
        goes to the whole group; what is left of it after ``timeout``
        seconds gets SIGKILL. The pid file is removed. Nothing happens
        (but removing a stale pid file) if the process is not running.
        Return whether something was running.

        :raises CloudError: the group survived SIGKILL.
        """
        recorded = self._read_pid_file(name)
        if recorded is None:
            return False
        pid, start = recorded
        stat = _proc_stat(pid)
        # A pid now used by another process: ours is long gone, and so is
        # its group (the new process may lead a group of that number).
        reused = (stat is not None and start is not None
                  and stat[3] != start)
        stopped = False
        if not reused and group_members(pid):
            stopped = True
            self._signal_group(pid, first_signal)
            if not self._wait_group(pid, timeout):
                self._signal_group(pid, signal.SIGKILL)
                if not self._wait_group(pid, 10.0):
                    raise CloudError(
                        f"{name}: processes {group_members(pid)} of process "
                        f"group {pid} survived SIGKILL")
        self._reap(pid)
        try:
            os.unlink(self.pid_path(name))
        except FileNotFoundError:
            pass
        self._write_order([n for n in self._read_order() if n != name])
        return stopped

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    def stop_all(self, timeout: float = 60.0) -> list[str]:
        """Stop every registered process, the last started first.

        Return the names of the processes that were running.
        """
        names = list(reversed(self._read_order()))
        try:
            entries = sorted(os.listdir(self.run_dir))
        except FileNotFoundError:
            entries = []
        names += [entry[:-4] for entry in entries
                  if entry.endswith(".pid") and entry[:-4] not in names
                  and _NAME.match(entry[:-4])]
        return [name for name in names if self.stop(name, timeout)]

    # -- logs ----------------------------------------------------------------

    def tail(self, name: str, lines: int = 20) -> str:
        """The last ``lines`` lines of the log of process ``name``."""
        try:
            with open(self.log_path(name), "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                chunk = min(size, max(8192, lines * 400))
                while True:
                    log.seek(size - chunk)
                    data = log.read(chunk)
                    if data.count(b"\n") > lines or chunk == size:
                        break
                    chunk = min(size, chunk * 4)
        except FileNotFoundError:
            return ""
        text = data.decode("utf-8", "replace")
        return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def _log_hint(table: ProcessTable | None, name: str | None) -> str:
    if table is None or name is None:
        return ""
    tail = table.tail(name)
    indented = "\n".join("    " + line for line in tail.splitlines())
    return (f"\n  log: {table.log_path(name)}"
            + (f"\n  last lines:\n{indented}" if indented else ""))


def wait_until(check: Callable[[], Any], timeout: float, what: str,
               table: ProcessTable | None = None,
               name: str | None = None, interval: float = POLL) -> Any:
    """Call ``check`` until it returns something true; return that.

    ``check`` may raise OSError (taken as "not yet"). If ``table`` and
    ``name`` are given and that process is not running any more, give up
    at once.

    :raises CloudError: the process died, or ``timeout`` seconds passed;
        the message names ``what`` and shows the end of the process's log.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        if table is not None and name is not None \
                and not table.is_running(name):
            raise CloudError(f"{name} exited while waiting for {what}"
                             + _log_hint(table, name))
        try:
            result = check()
        except OSError as exc:
            result = None
            last_error = f" (last error: {exc})"
        if result:
            return result
        if time.monotonic() >= deadline:
            who = f"{name}: " if name else ""
            raise CloudError(f"{who}no {what} after {timeout:g} s"
                             f"{last_error}" + _log_hint(table, name))
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host``:``port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float,
                  table: ProcessTable | None = None,
                  name: str | None = None) -> None:
    """Wait until ``host``:``port`` accepts TCP connections.

    :raises CloudError: see :func:`wait_until`.
    """
    wait_until(lambda: port_open(host, port), timeout,
               f"listener on {host}:{port}", table, name)


def wait_for_http(url: str, timeout: float,
                  table: ProcessTable | None = None,
                  name: str | None = None,
                  ok: Container[int] = range(200, 500),
                  verify: bool | str = True) -> int:
    """Wait until a GET of ``url`` answers with a status in ``ok``.

    ``verify`` is as in requests: False skips the TLS certificate check, a
    string is the path of a CA bundle. Return the status.

    :raises CloudError: see :func:`wait_until`.
    """
    context = None
    if url.startswith("https:"):
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        else:
            context = ssl.create_default_context()

    def check() -> int:
        try:
            with urllib.request.urlopen(url, timeout=5.0,
                                        context=context) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, OSError):
                raise reason
            raise OSError(str(reason)) from exc
        except http.client.HTTPException as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        if status not in ok:
            raise OSError(f"HTTP status {status}")
        return status

    return wait_until(check, timeout, f"answer from {url}", table, name)
