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
"""Restart the cloud's two cinder-volume services with the other driver.

``tools/cloud switch-driver ours|stock`` rewrites, in the cloud's shared
``cinder.conf``, the backend's ``volume_driver`` and ``[DEFAULT]
volume_manager`` (nothing else: the options only this package knows stay,
Cinder's driver ignores them), stops both cinder-volume services (SIGTERM
to each whole process group, both at once, then a wait), starts them again
as ``tools/cloud up`` does (same ``host``, same ``cluster``, same
database, array and images) and waits until each has loaded the driver,
heartbeats again and has sent the scheduler its pool's stats. It records
the driver in ``.cloud/cloud.json`` (what ``tools/cloud status`` shows).

``--reinstall`` first reinstalls this package from the checkout into the
services' virtualenv as ``up`` does (``pip install --no-deps
--force-reinstall``, then ``pip check``), so the restarted services and
the console scripts run the checkout's code.
"""

import datetime
import json
import os
import re
import signal
import time
from typing import Any, Optional

from tools.cloudlib import api
from tools.cloudlib import cloud
from tools.cloudlib import layout
from tools.cloudlib import procs

STOP_TIMEOUT = 90.0
"""Seconds a cinder-volume gets to stop after SIGTERM before SIGKILL (it
can take a minute to finish its requests and say goodbye)."""
READY_TIMEOUT = 180.0
DRIVER_READY = "Driver post RPC initialization completed successfully."
DRIVER_FAILED = ("Failed to initialize driver.",
                 "Error encountered during initialization of driver")
PROBLEM = re.compile(r"^\S+ \S+ \d+ (ERROR|CRITICAL) ")
"""An ERROR or CRITICAL line of a Cinder service log."""
WARNING = re.compile(r"^\S+ \S+ \d+ WARNING ")

# ------------------------------------------------------------------ pure


def driver_options(driver: str) -> dict[tuple[str, str], str]:
    """``{(section, option): value}`` that select ``driver``."""
    if driver not in layout.DRIVERS:
        raise ValueError("unknown driver %r (known: %s)"
                         % (driver, ", ".join(sorted(layout.DRIVERS))))
    return {(layout.BACKEND, "volume_driver"): layout.DRIVERS[driver],
            ("DEFAULT", "volume_manager"): layout.MANAGERS[driver]}


_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^([A-Za-z0-9_.-]+)(\s*=\s*)(.*?)\s*$")


def rewrite_conf(text: str, wanted: dict[tuple[str, str], str]
                 ) -> tuple[str, list[tuple[str, str, Optional[str], str]]]:
    """Set the options of ``wanted`` in ini ``text``, changing nothing else.

    Each ``(section, option)`` line is rewritten in place (every
    occurrence, as oslo.config takes the last); an option missing from
    its section is added at the section's end, a missing section at the
    end of the file. Comments, order and every other line are kept.

    :returns: the new text, and ``(section, option, old value or None,
        new value)`` for each option whose value changed (empty when
        ``text`` already says so: the rewrite is idempotent).
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    changes: list[tuple[str, str, Optional[str], str]] = []
    seen: set[tuple[str, str]] = set()
    out: list[str] = []
    section: Optional[str] = None
    # Where the last non-blank line of each section ends in ``out``.
    section_end: dict[str, int] = {}
    for line in lines:
        found = _SECTION.match(line)
        if found:
            section = found.group(1).strip()
            out.append(line)
            section_end[section] = len(out)
            continue
        option = _OPTION.match(line)
        if section is not None and option:
            key = (section, option.group(1))
            if key in wanted:
                seen.add(key)
                old = option.group(3)
                if old != wanted[key]:
                    changes.append((section, key[1], old, wanted[key]))
                    line = "%s%s%s\n" % (option.group(1), option.group(2),
                                         wanted[key])
        out.append(line)
        if section is not None and line.strip():
            section_end[section] = len(out)
    missing = [key for key in wanted if key not in seen]
    # Insert from the bottom up so that earlier positions stay valid.
    inserts: dict[str, list[tuple[str, str]]] = {}
    for section_name, option_name in missing:
        inserts.setdefault(section_name, []).append(
            (option_name, wanted[(section_name, option_name)]))
    for section_name in sorted(
            (s for s in inserts if s in section_end),
            key=lambda s: section_end[s], reverse=True):
        position = section_end[section_name]
        added = ["%s = %s\n" % item for item in inserts[section_name]]
        out[position:position] = added
    for section_name, items in inserts.items():
        if section_name not in section_end:
            if out and out[-1].strip():
                out.append("\n")
            out.append("[%s]\n" % section_name)
            out.extend("%s = %s\n" % item for item in items)
    for section_name, items in inserts.items():
        for option_name, value in items:
            changes.append((section_name, option_name, None, value))
    return "".join(out), changes


def new_log_lines(path: str, offset: int) -> list[str]:
    """Lines of a log file from byte ``offset`` on (none if it is gone)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def problems(lines: list[str]) -> list[str]:
    """The ERROR and CRITICAL lines of a Cinder log excerpt."""
    return [line for line in lines if PROBLEM.match(line)]


def warnings(lines: list[str]) -> list[str]:
    """The WARNING lines of a Cinder log excerpt."""
    return [line for line in lines if WARNING.match(line)]


def parse_api_time(value: Optional[str]) -> Optional[datetime.datetime]:
    """A Cinder API timestamp (UTC, naive, optional fraction) or None."""
    if not value:
        return None
    value = value.rstrip("Z").split("+")[0]
    for form in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(value, form)
        except ValueError:
            continue
    return None


# ------------------------------------------------------------------ cloud


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _log(message: str) -> None:
    print(message, flush=True)


def write_description(lay: layout.Layout, description: dict[str, Any]
                      ) -> None:
    """Rewrite ``cloud.json`` (mode 0600, replaced whole)."""
    tmp = lay.description + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(description, handle, indent=2)
    os.replace(tmp, lay.description)


def write_conf(path: str, text: str) -> None:
    """Replace a configuration file whole, readable by its owner only."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Switch:
    """One switch of the running cloud's volume services to a driver."""

    def __init__(self, the_cloud: Optional[cloud.Cloud] = None) -> None:
        self.cloud = the_cloud or cloud.Cloud()
        self.layout = self.cloud.layout
        self.table = self.cloud.table
        self.names = ["cinder-volume-%d" % number
                      for number in range(1, len(layout.VOLUME_HOSTS) + 1)]

    def conf_path(self) -> str:
        """The cinder.conf every Cinder service of the cloud reads."""
        return self.layout.path("etc", "cinder", "cinder.conf")

    def host_log(self, number: int) -> str:
        """The log file of cinder-volume ``number`` (its ``log_file``)."""
        return self.layout.path(
            "log", "%s.log" % layout.VOLUME_HOSTS[number - 1])

    def reinstall(self) -> float:
        """Reinstall this package into the services' virtualenv; seconds."""
        started = time.monotonic()
        _log("Reinstalling powerflex-cache-driver from %s into %s"
             % (self.layout.root, self.layout.venv))
        self.cloud._run([self.layout.venv_bin("pip"), "install", "-q",
                         "--no-deps", "--force-reinstall",
                         "--no-build-isolation", self.layout.root],
                        "pip install powerflex-cache-driver")
        self.cloud._run([self.layout.venv_bin("pip"), "check"], "pip check")
        return time.monotonic() - started

    def run(self, driver: str, reinstall: bool = False,
            options: Optional[dict[tuple[str, str], str]] = None
            ) -> dict[str, Any]:
        """Switch both volume services to ``driver``; return the figures.

        ``options`` (``{(section, option): value}``) are set in the same
        rewrite of ``cinder.conf``, for scenarios that restart the
        services with an option of their own.

        :raises CloudError: the cloud is not up, a service does not come
            back, or its log shows the driver failed.
        """
        started = time.monotonic()
        description = self.layout.read_description()
        missing = [name for name in self.names
                   if not self.table.is_running(name)]
        if missing or not self.table.is_running("cinder-api"):
            raise procs.CloudError(
                "the cloud is not fully up (%s not running); `tools/cloud "
                "status` says what runs" % ", ".join(
                    missing or ["cinder-api"]))
        figures: dict[str, Any] = {"from": description.get("driver", "?"),
                                   "to": driver}
        if reinstall:
            figures["reinstall_seconds"] = round(self.reinstall(), 1)

        path = self.conf_path()
        with open(path) as handle:
            text = handle.read()
        new_text, changes = rewrite_conf(
            text, {**driver_options(driver), **(options or {})})
        figures["changes"] = changes
        for section, option, old, new in changes:
            _log("%s: [%s] %s: %s -> %s" % (path, section, option, old, new))
        if not changes:
            _log("%s already selects the %s driver; restarting the volume "
                 "services anyway" % (path, driver))

        # SIGTERM to both groups at once, then wait for each: the two
        # services stop side by side, not one minute after the other.
        stop_started = time.monotonic()
        for name in self.names:
            pid = self.table.pid(name)
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name in self.names:
            self.table.stop(name, STOP_TIMEOUT)
        figures["stop_seconds"] = round(time.monotonic() - stop_started, 1)
        _log("Stopped %s in %.1f s" % (", ".join(self.names),
                                       figures["stop_seconds"]))

        write_conf(path, new_text)
        offsets = {}
        for number in range(1, len(self.names) + 1):
            try:
                offsets[number] = os.path.getsize(self.host_log(number))
            except FileNotFoundError:
                offsets[number] = 0
        start_time = _utcnow()
        start_clock = time.monotonic()
        for number in range(1, len(self.names) + 1):
            self.cloud.start_volume_service(number)
        figures["services"] = self.wait_ready(description, offsets,
                                              start_time)
        figures["start_seconds"] = round(time.monotonic() - start_clock, 1)

        description["driver"] = driver
        write_description(self.layout, description)
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures

    def wait_ready(self, description: dict[str, Any],
                   offsets: dict[int, int],
                   since: datetime.datetime) -> list[dict[str, Any]]:
        """Wait until each restarted service runs its driver and reports.

        Ready means: its log says the driver initialised (after RPC), the
        API lists it ``up`` in the cluster with a heartbeat newer than its
        start, and the scheduler holds stats newer than its start.
        """
        session = api.Session(description["admin"])
        cluster = "%s@%s" % (layout.CLUSTER, layout.BACKEND)
        result = []
        for number in range(1, len(self.names) + 1):
            name = self.names[number - 1]
            host = "%s@%s" % (layout.VOLUME_HOSTS[number - 1],
                              layout.BACKEND)
            log_path = self.host_log(number)

            def initialised(number: int = number,
                            log_path: str = log_path) -> bool:
                lines = new_log_lines(log_path, offsets[number])
                for line in lines:
                    if any(failed in line for failed in DRIVER_FAILED):
                        raise procs.CloudError(
                            "%s: the driver failed to initialise; log %s:"
                            "\n%s" % (host, log_path,
                                      "\n".join(problems(lines)[-10:])))
                return any(DRIVER_READY in line for line in lines)

            procs.wait_until(initialised, READY_TIMEOUT,
                             "driver initialised (%s)" % DRIVER_READY,
                             self.table, name, interval=0.5)

            def heartbeat(host: str = host) -> Optional[dict[str, Any]]:
                for service in session.get(
                        "cinder", "/v3/os-services?binary=cinder-volume"
                        )["services"]:
                    updated = parse_api_time(service.get("updated_at"))
                    if (service["host"] == host and service["state"] == "up"
                            and service.get("cluster") == cluster
                            and updated is not None and updated > since):
                        return service
                return None

            service = procs.wait_until(heartbeat, READY_TIMEOUT,
                                       "heartbeat of %s after its start"
                                       % host, self.table, name,
                                       interval=1.0)
            lines = new_log_lines(log_path, offsets[number])
            result.append({"name": name, "host": host,
                           "cluster": service.get("cluster"),
                           "pid": self.table.pid(name),
                           "errors": problems(lines),
                           "warnings": warnings(lines)})

        def stats() -> Optional[dict[str, Any]]:
            pools = session.get(
                "cinder", "/v3/scheduler-stats/get_pools?detail=True"
            )["pools"]
            for pool in pools:
                capabilities = pool.get("capabilities", {})
                stamp = parse_api_time(capabilities.get("timestamp"))
                if stamp is not None and stamp > since:
                    return capabilities
            return None

        capabilities = procs.wait_until(stats, READY_TIMEOUT,
                                        "pool stats newer than the restart",
                                        interval=1.0)
        for entry in result:
            entry["driver_version"] = capabilities.get("driver_version")
        return result


def main(driver: str, reinstall: bool = False) -> int:
    """``tools/cloud switch-driver``: switch, print what was done."""
    figures = Switch().run(driver, reinstall=reinstall)
    report(figures)
    errors = [e for service in figures["services"]
              for e in service["errors"]]
    return 1 if errors else 0


def report(figures: dict[str, Any]) -> None:
    """Print a switch's figures."""
    _log("Switched the volume services from %s to %s in %.1f s (stop "
         "%.1f s, start until both report %.1f s%s)." % (
             figures["from"], figures["to"], figures["seconds"],
             figures["stop_seconds"], figures["start_seconds"],
             ", reinstall %.1f s" % figures["reinstall_seconds"]
             if "reinstall_seconds" in figures else ""))
    for service in figures["services"]:
        _log("  %-16s %-22s cluster %s, pid %s, up; driver version %s; "
             "%d ERROR, %d WARNING lines since its start" % (
                 service["name"], service["host"], service["cluster"],
                 service["pid"], service["driver_version"],
                 len(service["errors"]), len(service["warnings"])))
        for line in (service["errors"] + service["warnings"])[:5]:
            _log("    " + line[:300])
