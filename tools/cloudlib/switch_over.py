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
"""Adoption: volumes made by Cinder's driver, then this package's driver.

``tools/cloud switch-over`` runs, against the running cloud:

1. ``switch-driver stock``; as the non-admin project: blank volumes of 1
   and 10 GiB, two volumes from a new small image (a cache miss, then a
   hit), a clone of the 1 GiB volume, a 1 GiB volume extended to 10 and
   a snapshot of it. Cinder 29's driver records the rounded size of a
   blank volume or a clone but charges the quota for the size asked for,
   and records the size asked for on a cache miss and an extend (1 GiB on
   8, 10 on 16). A known pattern goes into the last MiB of the extended
   volume's array volume (its backing file: 6 GiB past what Cinder
   records, where a guest writes its GPT backup header);
2. ``switch-driver ours``; every old volume is cloned and snapshotted
   (each clone records its array size), a volume is made from the old
   snapshot and one more from the image (a hit on the entry Cinder's
   driver made);
3. ``powerflex-cache-manage volumes reconcile --format json`` (the
   cloud's virtualenv, a volume service's configuration files, admin
   ``OS_*``): it must report the old volumes recorded below their array
   size; then ``--fix`` (which extends, then syncs each project's usage
   with Cinder's own quota sync): every old volume's record equals its
   array size, every project's ``gigabytes`` usage equals the sum of its
   records, and
   the array's call log (the simulator's request log) shows no
   ``setVolumeSize`` sent during the fix; ``--fix`` again: nothing to do;
4. a clone of the volume with the pattern holds it in its last MiB; every
   old volume extends (by 1 GiB: the array grows by 8, the record follows);
5. ``switch-driver stock``: every volume is still listed and available, a
   clone and a delete work;
6. ``switch-driver ours`` (the driver the cloud had, if that was another,
   at the very end) and everything the scenario made is deleted: old
   volumes, snapshots, clones, the image and its cache entry.

It prints a table per old volume: what Cinder recorded, what the array
holds, the project's usage before and after ``--fix`` and the array calls
the fix sent for it. Exit 0 only if every check held.
"""

import base64
import hashlib
import json
import os
import random
import re
import subprocess
import time
from typing import Any, Optional
import urllib.error
import urllib.parse
import uuid

from tools.cloudlib import api
from tools.cloudlib import layout
from tools.cloudlib import observe
from tools.cloudlib import procs
from tools.cloudlib import switch

IMAGE_BYTES = 16 * 1024 * 1024
MIB = 1024 * 1024
GIB = 1024 * MIB
WAIT_SECONDS = 300
MANAGE_TIMEOUT = 900
SETTLED = ("available", "error", "error_extending", "error_deleting",
           "in-use")
GATEWAY_REQUEST = re.compile(
    r" DEBUG powerflex_cache_driver\.simulator\.server "
    r"(?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\S+) "
    r"\((?P<op>[A-Za-z0-9_]+)\)$")
"""A request line of the simulator's log (``--verbose``)."""
TAIL_VOLUME = "extended-10"
"""The old volume whose array volume gets a pattern in its last MiB."""
ARRAY_VOLUME = re.compile(r"Volume::([0-9A-Za-z]+)")
READ_ONLY_OPS = ("login", "queryPoolStatistics", "querySelectedStatistics",
                 "unknown")
"""Operations that change nothing on the array, besides every GET."""

# ------------------------------------------------------------------ pure


def pattern(seed: str, length: int = MIB) -> bytes:
    """``length`` bytes that name ``seed`` (SHA-256 chained blocks)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < length:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:length])


def array_calls(lines: list[str]) -> list[dict[str, str]]:
    """The requests that change the array, from simulator log lines.

    Every GET and the statistics queries the services poll are left out.
    """
    calls = []
    for line in lines:
        found = GATEWAY_REQUEST.search(line)
        if not found or found.group("method") == "GET" or \
                found.group("op") in READ_ONLY_OPS:
            continue
        volume = ARRAY_VOLUME.search(found.group("path"))
        calls.append({"op": found.group("op"),
                      "status": found.group("status"),
                      "volume": volume.group(1) if volume else ""})
    return calls


def requests_logged(lines: list[str]) -> int:
    """How many requests (reads included) the simulator's log lines hold."""
    return sum(1 for line in lines if GATEWAY_REQUEST.search(line))


def calls_per_volume(calls: list[dict[str, str]]) -> dict[str, list[str]]:
    """``{array volume id: [op, ...]}`` of :func:`array_calls`' output."""
    per: dict[str, list[str]] = {}
    for call in calls:
        per.setdefault(call["volume"], []).append(call["op"])
    return per


def reconcile_entries(report: Optional[dict[str, Any]]
                      ) -> dict[str, dict[str, Any]]:
    """The ``volumes`` of a reconcile JSON report, by volume id."""
    if not report:
        return {}
    return {entry["volume_id"]: entry
            for entry in report.get("volumes", [])}


def pending(report: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries of a reconcile report that were or are to be changed."""
    return [entry for entry in (report or {}).get("volumes", [])
            if entry.get("action") in ("extended", "to fix")]


def summary(report: Optional[dict[str, Any]]) -> str:
    """One line on a reconcile report: volumes by action, projects off."""
    if report is None:
        return "no JSON report"
    if not isinstance(report, dict):
        return "%d rows" % len(report)
    if "volumes" not in report:
        return "; ".join("%s: %s" % (key, [row.get("result") for row in rows]
                                     if key != "entries" else len(rows))
                         for key, rows in sorted(report.items()))
    actions: dict[str, int] = {}
    for entry in report.get("volumes", []):
        actions[entry.get("action")] = actions.get(entry.get("action"),
                                                   0) + 1
    off = [p for p in report.get("projects", [])
           if p.get("difference_gib")]
    return "volumes: %s; projects whose usage differs from the records: " \
        "%s" % (", ".join("%d %s" % (n, a) for a, n in sorted(
            actions.items())) or "none",
            ", ".join("%s (%+d GiB)" % (p["project_id"],
                                        p["difference_gib"])
                      for p in off) or "none")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]
          ) -> str:
    """A reStructuredText simple table of ``rows`` (dicts) by ``columns``.

    ``columns`` holds ``(key, heading)``; a missing value prints ``-``.
    """
    cells = [[heading for _key, heading in columns]]
    for row in rows:
        cells.append(["-" if row.get(key) is None else str(row[key])
                      for key, _heading in columns])
    widths = [max(len(line[i]) for line in cells)
              for i in range(len(columns))]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule, "  ".join(cell.ljust(width) for cell, width
                             in zip(cells[0], widths)).rstrip(), rule]
    for line in cells[1:]:
        lines.append("  ".join(cell.ljust(width) for cell, width
                               in zip(line, widths)).rstrip())
    lines.append(rule)
    return "\n".join(lines)


def _or_unknown(value: Any) -> str:
    return "?" if value is None else str(value)


def old_volume_rows(old: list[dict[str, Any]],
                    before: dict[str, dict[str, Any]],
                    usage_before: dict[str, int],
                    usage_after: dict[str, int],
                    calls: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One table row per old volume (or snapshot).

    ``old`` holds ``{"name", "made", "kind", "id", "project",
    "array_id", "recorded", "array", "recorded_after"}``; ``before`` the
    first reconcile report's entries by volume id; the usages are the
    ``gigabytes`` in use of each project before and after ``--fix``;
    ``calls`` the array calls of the fix by array volume id.
    """
    rows = []
    for item in old:
        entry = before.get(item["id"], {})
        rows.append({
            "name": item["name"], "made": item["made"],
            "recorded": item["recorded"], "array": item["array"],
            "action": entry.get("action", "n/a" if item["kind"] ==
                                "snapshot" else "not listed"),
            "after": item.get("recorded_after"),
            "usage": "%s -> %s" % (
                _or_unknown(usage_before.get(item["project"])),
                _or_unknown(usage_after.get(item["project"]))),
            "calls": ", ".join(calls.get(item.get("array_id") or "", []))
            or "none"})
    return rows


ROW_COLUMNS = [("name", "old volume"), ("made", "made by Cinder's driver"),
               ("recorded", "recorded"), ("array", "array"),
               ("action", "reconcile"), ("after", "recorded after --fix"),
               ("usage", "project usage before -> after --fix"),
               ("calls", "array calls of the fix")]

# ------------------------------------------------------------------ cloud


def _log(message: str) -> None:
    print(message, flush=True)


def array_name(object_id: str) -> str:
    """The name Cinder's PowerFlex driver gives an object's array volume."""
    return base64.b64encode(uuid.UUID(object_id).bytes).decode()


class Scenario:
    """One run of the scenario; ``failed`` lists the checks that failed."""

    def __init__(self, description: dict[str, Any],
                 reinstall: bool = False) -> None:
        self.description = description
        self.state = description["state_dir"]
        self.admin = api.Session(description["admin"])
        self.demo = api.Session(description["demo"])
        self.gateway = observe.Gateway(description["gateway"])
        self.switch = switch.Switch()
        self.reinstall = reinstall
        self.original = description.get("driver", "ours")
        self.failed: list[str] = []
        self.phases: list[tuple[str, float]] = []
        self.made_volumes: list[tuple[api.Session, str]] = []
        self.made_snapshots: list[tuple[api.Session, str]] = []
        self.image_id: Optional[str] = None
        self.warm_image_id: Optional[str] = None
        self.old: list[dict[str, Any]] = []
        self.switches: list[dict[str, Any]] = []
        self.reports: dict[str, Any] = {}
        self.projects: list[dict[str, Any]] = []
        self.calls: list[dict[str, str]] = []
        self.demo_project = description["ids"].get("demo_project_id", "")
        self.internal = description["ids"]["internal_project_id"]
        self.tail = b""
        self.tail_kept = False

    # -- helpers -------------------------------------------------------------

    def check(self, held: bool, failure: str) -> bool:
        """Record ``failure`` unless ``held``; return ``held``."""
        if not held:
            self.failed.append(failure)
            _log("FAILED: %s" % failure)
        return held

    def phase(self, name: str, started: float) -> None:
        """Note how long a phase took."""
        seconds = time.monotonic() - started
        self.phases.append((name, seconds))
        _log("-- %s: %.1f s" % (name, seconds))

    def to(self, driver: str, reinstall: bool = False) -> None:
        """Switch the volume services to ``driver`` and say so."""
        _log("== switch-driver %s" % driver)
        figures = self.switch.run(driver, reinstall=reinstall)
        switch.report(figures)
        self.switches.append(figures)
        for service in figures["services"]:
            self.check(not service["errors"], "%s logged %d ERROR lines "
                       "after the switch to %s: %s" % (
                           service["host"], len(service["errors"]), driver,
                           service["errors"][:1]))
        self.description["driver"] = driver

    def volume(self, volume_id: str,
               session: Optional[api.Session] = None) -> dict[str, Any]:
        """A volume as the API shows it."""
        return (session or self.admin).get(
            "cinder", "/v3/volumes/%s" % volume_id)["volume"]

    def wait_volume(self, volume_id: str, what: str,
                    session: Optional[api.Session] = None) -> dict[str, Any]:
        """Wait until a volume settles; fail unless it is available."""
        def settled() -> Optional[dict[str, Any]]:
            shown = self.volume(volume_id, session)
            return shown if shown["status"] in SETTLED else None
        shown = procs.wait_until(settled, WAIT_SECONDS,
                                 "%s (%s) settled" % (what, volume_id),
                                 interval=1.0)
        if shown["status"] != "available":
            raise procs.CloudError("%s (%s) is %s" % (what, volume_id,
                                                      shown["status"]))
        return shown

    def wait_snapshot(self, snapshot_id: str, what: str) -> dict[str, Any]:
        """Wait until a snapshot is available."""
        def settled() -> Optional[dict[str, Any]]:
            shown = self.admin.get("cinder", "/v3/snapshots/%s"
                                   % snapshot_id)["snapshot"]
            return shown if shown["status"] in ("available", "error") \
                else None
        shown = procs.wait_until(settled, WAIT_SECONDS, "%s settled" % what,
                                 interval=1.0)
        if shown["status"] != "available":
            raise procs.CloudError("%s (%s) is %s" % (what, snapshot_id,
                                                      shown["status"]))
        return shown

    def create_volume(self, what: str, **fields: Any) -> dict[str, Any]:
        """Create a volume as the project; wait until it is available."""
        fields.setdefault("name", "switch-over-%s" % what.split()[0])
        volume_id = self.demo.call("POST", "cinder", "/v3/volumes", body={
            "volume": fields})["volume"]["id"]
        self.made_volumes.append((self.demo, volume_id))
        return self.wait_volume(volume_id, what, self.demo)

    def create_snapshot(self, what: str, volume_id: str) -> dict[str, Any]:
        """Snapshot a volume as the project; wait until it is available."""
        snapshot_id = self.demo.call("POST", "cinder", "/v3/snapshots",
                                     body={"snapshot": {
                                         "volume_id": volume_id,
                                         "name": "switch-over-%s"
                                         % what.split()[0]}}
                                     )["snapshot"]["id"]
        self.made_snapshots.append((self.demo, snapshot_id))
        return self.wait_snapshot(snapshot_id, what)

    def delete_volume(self, volume_id: str,
                      session: Optional[api.Session] = None) -> None:
        """Delete a volume; wait until the API no longer knows it."""
        self._delete("/v3/volumes/%s" % volume_id, volume_id, session)
        self.made_volumes = [(s, v) for s, v in self.made_volumes
                             if v != volume_id]

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; wait until the API no longer knows it."""
        self._delete("/v3/snapshots/%s" % snapshot_id, snapshot_id)
        self.made_snapshots = [(s, v) for s, v in self.made_snapshots
                               if v != snapshot_id]

    def _delete(self, path: str, object_id: str,
                session: Optional[api.Session] = None) -> None:
        """DELETE ``path`` (gone already is fine); wait until it is gone."""
        try:
            (session or self.demo).call("DELETE", "cinder", path)
        except api.ApiError as exc:
            if exc.status != 404:
                raise
        self._wait_gone(path, object_id)

    def _wait_gone(self, path: str, object_id: str) -> None:
        def gone() -> bool:
            try:
                shown = self.admin.get("cinder", path)
            except api.ApiError as exc:
                if exc.status == 404:
                    return True
                raise
            status = next(iter(shown.values()))["status"]
            if status == "error_deleting":
                raise procs.CloudError("%s is %s" % (object_id, status))
            return False
        procs.wait_until(gone, WAIT_SECONDS, "%s deleted" % object_id,
                         interval=1.0)

    def array(self, object_id: str) -> tuple[Optional[str], Optional[int]]:
        """The array volume id and size (GiB) of a volume or snapshot."""
        try:
            array_id = self.gateway.get(
                "/api/types/Volume/instances/getByName::%s"
                % urllib.parse.quote(array_name(object_id), safe=""))
            volume = self.gateway.get("/api/instances/Volume::%s"
                                      % array_id)
        except urllib.error.HTTPError:
            return None, None
        return array_id, volume["sizeInKb"] // (1024 * 1024)

    def backing_file(self, array_id: str) -> str:
        """The simulator's backing file of an array volume."""
        return os.path.join(self.state, "array", "volumes",
                            "vol-%s.img" % array_id)

    def usage(self, project_id: str) -> int:
        """The project's ``gigabytes`` in use (reserved is checked 0)."""
        quota = self.admin.get("cinder", "/v3/os-quota-sets/%s?usage=True"
                               % project_id)["quota_set"]["gigabytes"]
        self.check(quota.get("reserved", 0) == 0, "project %s has %s GiB "
                   "reserved" % (project_id, quota.get("reserved")))
        return int(quota["in_use"])

    def records(self) -> dict[str, int]:
        """The sum of the sizes Cinder records, per project.

        Volumes and snapshots, as Cinder's ``gigabytes`` quota counts
        them.
        """
        totals: dict[str, int] = {}
        volumes = self.admin.get(
            "cinder", "/v3/volumes/detail?all_tenants=1&limit=1000"
        )["volumes"]
        for volume in volumes:
            project = volume["os-vol-tenant-attr:tenant_id"]
            totals[project] = totals.get(project, 0) + int(volume["size"])
        snapshots = self.admin.get(
            "cinder", "/v3/snapshots/detail?all_tenants=1&limit=1000"
        )["snapshots"]
        for snapshot in snapshots:
            project = snapshot["os-extended-snapshot-attributes:project_id"]
            totals[project] = totals.get(project, 0) + int(snapshot["size"])
        return totals

    def manage(self, *args: str) -> tuple[int, Any, str]:
        """Run ``powerflex-cache-manage`` (see :meth:`operator_command`)."""
        return self.operator_command("powerflex-cache-manage", *args)

    def operator_command(self, program: str, *args: str
                         ) -> tuple[int, Any, str]:
        """Run one of this package's commands as an operator would.

        The cloud's virtualenv, the configuration files of cinder-volume
        ``cloud-vol1``, the admin's ``OS_*``. Return the exit status, the
        JSON output (None if there is none) and standard error.
        """
        creds = self.description["admin"]
        env = dict(
            os.environ, OS_AUTH_URL=self.description["keystone_url"],
            OS_IDENTITY_API_VERSION="3", OS_USERNAME=creds["username"],
            OS_PASSWORD=creds["password"],
            OS_PROJECT_NAME=creds["project_name"],
            OS_USER_DOMAIN_NAME=creds["user_domain_name"],
            OS_PROJECT_DOMAIN_NAME=creds["project_domain_name"],
            OS_REGION_NAME=self.description["region"],
            OS_INTERFACE="public")
        conf_dir = os.path.join(self.state, "etc", "cinder")
        argv = [os.path.join(self.description["venv"], "bin", program),
                "--config-file", os.path.join(conf_dir, "cinder.conf"),
                "--config-file", os.path.join(
                    conf_dir, "%s.conf" % layout.VOLUME_HOSTS[0]),
                *args]
        _log("$ %s" % " ".join(
            [os.path.basename(argv[0])] + argv[1:]).replace(
                self.state, ".cloud"))
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  env=env, check=False,
                                  timeout=MANAGE_TIMEOUT)
        except FileNotFoundError:
            return 127, None, "%s: not installed" % argv[0]
        report = None
        try:
            report = json.loads(done.stdout)
        except ValueError:
            pass
        if done.stderr.strip() and (report is None or
                                    done.returncode not in (0, 1)):
            _log("  stderr: %s" % done.stderr.strip()[-1500:])
        _log("  exit %d; %s" % (done.returncode, summary(report)))
        return done.returncode, report, done.stderr

    def gateway_log_size(self) -> int:
        """Where the simulator's request log ends now."""
        return os.path.getsize(os.path.join(self.state, "log",
                                            "gateway.log"))

    def gateway_calls(self, offset: int) -> list[dict[str, str]]:
        """The array-changing requests logged since ``offset``."""
        return array_calls(switch.new_log_lines(
            os.path.join(self.state, "log", "gateway.log"), offset))

    # -- the scenario --------------------------------------------------------

    def run(self) -> None:
        """Run every step; checks that fail are recorded."""
        steps = [
            ("switch to stock",
             lambda: self.to("stock", reinstall=self.reinstall)),
            ("old volumes made by Cinder's driver", self.make_old_volumes),
            ("switch to ours", lambda: self.to("ours")),
            ("old volumes cloned and snapshotted with ours",
             self.use_old_volumes),
            ("reconcile, --fix, --fix again", self.reconcile),
            ("status check; cache warm, list, evict",
             self.operator_commands),
            ("clone keeps the tail; old volumes extend",
             self.tail_and_extend),
            ("back on stock", lambda: (self.to("stock"),
                                       self.back_on_stock())),
            ("switch to ours, delete everything",
             lambda: (self.to("ours"), self.cleanup())),
        ]
        for name, step in steps:
            started = time.monotonic()
            step()
            self.phase(name, started)

    def make_old_volumes(self) -> None:
        """Step 1: what Cinder's driver makes, and a tail pattern."""
        data = random.randbytes(IMAGE_BYTES)
        self.image_id = self.admin.upload_image(
            "switch-over-%d" % time.time(), data)
        blank1 = self.create_volume("blank-1 (blank, 1 GiB)", size=1)
        blank10 = self.create_volume("blank-10 (blank, 10 GiB)", size=10)
        miss = self.create_volume("image-miss (from the image, cache miss)",
                                  size=1, imageRef=self.image_id)
        hit = self.create_volume("image-hit (from the image, cache hit)",
                                 size=1, imageRef=self.image_id)
        clone = self.create_volume("clone-1 (clone of blank-1)",
                                   source_volid=blank1["id"])
        grown = self.create_volume("extended-10 (blank, 1 GiB)", size=1)
        self.demo.call("POST", "cinder", "/v3/volumes/%s/action"
                       % grown["id"], body={"os-extend": {"new_size": 10}})
        grown = self.wait_volume(grown["id"], "extended-10 (extended to "
                                 "10 GiB)", self.demo)
        snap = self.create_snapshot("snap-10 (snapshot of extended-10)",
                                    grown["id"])
        made = [("blank-1", "blank, 1 GiB", "volume", blank1),
                ("blank-10", "blank, 10 GiB", "volume", blank10),
                ("image-miss", "1 GiB from the image (miss)", "volume",
                 miss),
                ("image-hit", "1 GiB from the image (hit)", "volume", hit),
                ("clone-1", "clone of blank-1", "volume", clone),
                ("extended-10", "1 GiB, extended to 10", "volume", grown),
                ("snap-10", "snapshot of extended-10", "snapshot", snap)]
        entry = self.cache_entry()
        if entry is not None:
            made.append(("cache entry", "image-volume cache entry "
                         "(internal tenant)", "volume", entry))
        for name, how, kind, shown in made:
            array_id, size = self.array(shown["id"])
            self.old.append({
                "name": name, "made": how, "kind": kind, "id": shown["id"],
                "project": (shown.get("os-vol-tenant-attr:tenant_id")
                            or shown.get(
                                "os-extended-snapshot-attributes:"
                                "project_id") or self.demo_project),
                "array_id": array_id, "recorded": int(shown["size"]),
                "array": size})
        # A guest writes up to the end of its disk (GPT backup header):
        # the last MiB of extended-10's 16 GiB array volume, 6 GiB past
        # what Cinder's driver records.
        target = self.old_named(TAIL_VOLUME)
        self.tail = pattern("switch-over %s" % target["id"])
        path = self.backing_file(target["array_id"])
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, self.tail, target["array"] * GIB - MIB)
            os.fsync(fd)
        finally:
            os.close(fd)
        _log(table(self.old, [("name", "old volume"), ("made", "made as"),
                              ("recorded", "recorded GiB"),
                              ("array", "array GiB")]))
        _log("wrote a 1 MiB pattern at %d GiB - 1 MiB of %s's array "
             "volume (%s), past the %d GiB Cinder records" % (
                 target["array"], TAIL_VOLUME, path, target["recorded"]))
        for item in self.old:
            if item["kind"] == "volume" and item["name"] != "cache entry":
                self.check(item["recorded"] <= item["array"],
                           "%s records %s GiB, more than the array's %s"
                           % (item["name"], item["recorded"],
                              item["array"]))
        self.check(any(item["recorded"] < (item["array"] or 0)
                       for item in self.old),
                   "Cinder's driver recorded no volume below its array "
                   "size: nothing to adopt")

    def cache_entry(self) -> Optional[dict[str, Any]]:
        """The image's cache entry volume (internal tenant), if any."""
        volumes = self.admin.get(
            "cinder", "/v3/volumes/detail?all_tenants=1&limit=1000"
        )["volumes"]
        for volume in volumes:
            if volume.get("name") == "image-%s" % self.image_id:
                return volume
        return None

    def old_named(self, name: str) -> dict[str, Any]:
        """The old volume called ``name``."""
        return next(item for item in self.old if item["name"] == name)

    def use_old_volumes(self) -> None:
        """Step 2: every old volume clones and snapshots with ours."""
        for item in self.old:
            if item["kind"] != "volume" or item["name"] == "cache entry":
                continue
            clone = self.create_volume("clone of old %s" % item["name"],
                                       name="switch-over-clone-of-%s"
                                       % item["name"],
                                       source_volid=item["id"])
            array_id, size = self.array(clone["id"])
            self.check(clone["size"] == size, "the clone of %s records %s "
                       "GiB, its array volume holds %s" % (
                           item["name"], clone["size"], size))
            snap = self.create_snapshot("snapshot of old %s"
                                        % item["name"], item["id"])
            _log("ours: %-10s -> clone %s GiB (array %s), snapshot %s GiB"
                 % (item["name"], clone["size"], size, snap["size"]))
            self.delete_snapshot(snap["id"])
            self.delete_volume(clone["id"])
        old_snap = self.old_named("snap-10")
        from_snap = self.create_volume("from-snap (from old snap-10)",
                                       snapshot_id=old_snap["id"])
        _, size = self.array(from_snap["id"])
        self.check(from_snap["size"] == size, "the volume from the old "
                   "snapshot records %s GiB, its array volume holds %s"
                   % (from_snap["size"], size))
        _log("ours: volume from old snap-10: %s GiB (array %s)"
             % (from_snap["size"], size))
        self.delete_volume(from_snap["id"])
        hit = self.create_volume("from-image (hit on the stock entry)",
                                 size=1, imageRef=self.image_id)
        _, size = self.array(hit["id"])
        self.check(hit["size"] == size, "a volume from the image's old "
                   "cache entry records %s GiB, its array volume holds %s"
                   % (hit["size"], size))
        _log("ours: volume from the image (old entry): %s GiB (array %s)"
             % (hit["size"], size))
        self.delete_volume(hit["id"])

    def reconcile(self) -> None:
        """Step 3: powerflex-cache-manage volumes reconcile, --fix twice."""
        projects = sorted({item["project"] for item in self.old})
        usage_before = {p: self.usage(p) for p in projects}
        records_before = self.records()
        self.projects = [{"project": p, "usage_before": usage_before[p],
                          "records_before": records_before.get(p, 0)}
                         for p in projects]
        code, report, _ = self.manage("volumes", "reconcile",
                                      "--format", "json")
        self.reports["before"] = report
        if not self.check(report is not None, "powerflex-cache-manage "
                          "volumes reconcile gave no JSON report (exit %d)"
                          % code):
            return
        self.check(code == 1, "reconcile exited %d with volumes to fix, "
                   "expected 1" % code)
        entries = reconcile_entries(report)
        for item in self.old:
            if item["kind"] != "volume" or \
                    item["recorded"] >= (item["array"] or 0):
                continue
            entry = entries.get(item["id"])
            if not self.check(entry is not None, "reconcile does not list "
                              "%s (recorded %s GiB, array %s)" % (
                                  item["name"], item["recorded"],
                                  item["array"])):
                continue
            self.check(entry.get("recorded_gib") == item["recorded"] and
                       entry.get("array_gib") == item["array"] and
                       entry.get("action") == "to fix",
                       "reconcile reports %s as recorded %s, array %s, "
                       "action %s; expected %s, %s, to fix" % (
                           item["name"], entry.get("recorded_gib"),
                           entry.get("array_gib"), entry.get("action"),
                           item["recorded"], item["array"]))

        offset = self.gateway_log_size()
        code, fixed, _ = self.manage("volumes", "reconcile", "--fix",
                                     "--format", "json")
        self.reports["fix"] = fixed
        self.check(code == 0, "reconcile --fix exited %d" % code)
        for item in self.old:
            if item["kind"] == "volume":
                shown = self.wait_volume(item["id"], item["name"])
                item["recorded_after"] = int(shown["size"])
            else:
                item["recorded_after"] = int(self.admin.get(
                    "cinder", "/v3/snapshots/%s" % item["id"]
                )["snapshot"]["size"])
        time.sleep(2)
        self.calls = self.gateway_calls(offset)
        # The reconcile reads every array volume: an empty window means
        # the simulator logs no requests (not started with --verbose), and
        # "no setVolumeSize" would prove nothing.
        self.check(requests_logged(switch.new_log_lines(
            os.path.join(self.state, "log", "gateway.log"), offset)) > 0,
            "the simulator's log holds no request of the fix: the array's "
            "call log is off (start the cloud with this checkout's "
            "`tools/cloud up`, which runs the simulator with --verbose)")
        set_size = [c for c in self.calls if c["op"] == "setVolumeSize"]
        self.check(not set_size, "the fix sent setVolumeSize to the "
                   "array: %s" % set_size)
        for item in self.old:
            if item["kind"] == "volume":
                self.check(item["recorded_after"] == item["array"],
                           "after --fix %s records %s GiB, its array "
                           "volume holds %s" % (item["name"],
                                                item["recorded_after"],
                                                item["array"]))
        records_after = self.records()
        listed = {p["project_id"] for p in (fixed or {}).get("projects", [])}
        self.projects = []
        for project in sorted(set(projects) | listed):
            after = self.usage(project)
            self.projects.append({
                "project": project, "usage_before": usage_before.get(
                    project), "records_before": records_before.get(
                    project, 0), "usage_after": after,
                "records_after": records_after.get(project, 0)})
            said = next((p for p in (fixed or {}).get("projects", [])
                         if p.get("project_id") == project), {})
            self.check(after == records_after.get(project, 0),
                       "after --fix project %s uses %d GiB, its records "
                       "add up to %d (reconcile says: difference %s, %s)"
                       % (project, after, records_after.get(project, 0),
                          said.get("difference_gib"),
                          said.get("command") or "no command"))
            if said.get("synced_from_gib") is not None:
                _log("project %s: --fix synced its usage from %d GiB to "
                     "its records (%d GiB); usage before the fix %s GiB"
                     % (project, said["synced_from_gib"],
                        said.get("records_gib"), usage_before.get(project)))

        code, again, _ = self.manage("volumes", "reconcile", "--fix",
                                     "--format", "json")
        self.reports["again"] = again
        self.check(code == 0 and again is not None and not pending(again),
                   "reconcile --fix again: exit %d, still to do: %s"
                   % (code, [e.get("volume_id") for e in pending(again)]))

    def operator_commands(self) -> None:
        """The preflight, and the cache commands over the real APIs."""
        code, rows, _ = self.operator_command(
            "powerflex-cache-status", "--format", "json", "check")
        problems = [row for row in rows or []
                    if row.get("result") != "Success"]
        self.check(code == 0 and rows and not problems,
                   "powerflex-cache-status check exited %d: %s"
                   % (code, problems or "no JSON"))
        self.warm_image_id = self.admin.upload_image(
            "switch-over-warm-%d" % time.time(),
            random.randbytes(IMAGE_BYTES))
        for expected in ("warmed", "fresh"):
            code, report, _ = self.manage("cache", "warm",
                                          self.warm_image_id, "--format",
                                          "json")
            results = [(row.get("result"), row.get("downloaded"))
                       for row in (report or {}).get("warm", [])]
            self.check(code == 0 and results == [
                (expected, expected == "warmed")],
                "cache warm exited %d with %s, expected one %s entry"
                % (code, results, expected))
        code, report, _ = self.manage("cache", "list", "--format", "json")
        entries = [entry for entry in (report or {}).get("entries", [])
                   if entry.get("image_id") == self.warm_image_id]
        self.check(len(entries) == 1 and not entries[0]["flags"] and
                   entries[0]["array_gib"] == entries[0]["recorded_gib"],
                   "cache list shows the warmed image as %s" % entries)
        code, report, _ = self.manage("cache", "evict", self.warm_image_id,
                                      "--format", "json")
        results = [row.get("result")
                   for row in (report or {}).get("evicted", [])]
        self.check(code == 0 and results == ["evicted"],
                   "cache evict exited %d with %s" % (code, results))
        self.admin.call("DELETE", "glance", "/v2/images/%s"
                        % self.warm_image_id)
        self.warm_image_id = None

    def tail_and_extend(self) -> None:
        """Step 4: a clone keeps the tail; every old volume extends."""
        target = self.old_named(TAIL_VOLUME)
        clone = self.create_volume("clone-tail (clone of %s)" % TAIL_VOLUME,
                                   source_volid=target["id"])
        array_id, size = self.array(clone["id"])
        held = b""
        if array_id is not None and size:
            with open(self.backing_file(array_id), "rb") as handle:
                handle.seek(size * GIB - MIB)
                held = handle.read(MIB)
        self.tail_kept = held == self.tail
        _log("ours: clone of %s records %s GiB (array %s); its last MiB "
             "%s the pattern" % (TAIL_VOLUME, clone["size"], size,
                                 "holds" if self.tail_kept
                                 else "does NOT hold"))
        self.check(self.tail_kept, "the clone of %s lost the pattern in "
                   "the last MiB of its array volume" % TAIL_VOLUME)
        self.check(clone["size"] == size, "the clone of %s records %s GiB, "
                   "its array volume holds %s" % (TAIL_VOLUME,
                                                  clone["size"], size))
        self.delete_volume(clone["id"])
        for item in self.old:
            if item["kind"] != "volume" or item["name"] == "cache entry":
                continue
            current = int(self.volume(item["id"])["size"])
            self.demo.call("POST", "cinder", "/v3/volumes/%s/action"
                           % item["id"], body={"os-extend": {
                               "new_size": current + 1}})
            shown = self.wait_volume(item["id"], "extend of %s"
                                     % item["name"], self.demo)
            _, size = self.array(item["id"])
            _log("ours: %-10s extended %d -> %d GiB requested: records %s, "
                 "array %s" % (item["name"], current, current + 1,
                               shown["size"], size))
            self.check(size is not None and shown["size"] >= current + 1
                       and size >= shown["size"],
                       "extend of %s: records %s GiB, array %s" % (
                           item["name"], shown["size"], size))
            item["extended"] = (int(shown["size"]), size)

    def back_on_stock(self) -> None:
        """Step 5: with Cinder's driver again nothing is lost."""
        listed = {v["id"]: v for v in self.demo.get(
            "cinder", "/v3/volumes/detail?limit=1000")["volumes"]}
        for item in self.old:
            if item["kind"] != "volume" or item["name"] == "cache entry":
                continue
            shown = listed.get(item["id"])
            self.check(shown is not None and shown["status"] == "available",
                       "on stock again %s is %s" % (
                           item["name"], shown and shown["status"]))
        clone = self.create_volume("stock-clone (stock clone of blank-1)",
                                   source_volid=self.old_named(
                                       "blank-1")["id"])
        _, size = self.array(clone["id"])
        _log("stock: clone of blank-1: %s GiB (array %s); %d old volumes "
             "listed" % (clone["size"], size, len(listed)))
        self.delete_volume(clone["id"])

    def cleanup(self) -> None:
        """Delete everything the scenario made (old volumes included)."""
        array_ids = [item["array_id"] for item in self.old
                     if item.get("array_id")]
        for session, snapshot_id in list(self.made_snapshots):
            self.delete_snapshot(snapshot_id)
        for session, volume_id in reversed(list(self.made_volumes)):
            self.delete_volume(volume_id, session)
        if self.warm_image_id:
            self.manage("cache", "evict", self.warm_image_id)
            self.admin.call("DELETE", "glance", "/v2/images/%s"
                            % self.warm_image_id)
            self.warm_image_id = None
        entry = self.cache_entry() if self.image_id else None
        if entry is not None:
            self.delete_volume(entry["id"], self.admin)
        if self.image_id:
            try:
                self.admin.call("DELETE", "glance", "/v2/images/%s"
                                % self.image_id)
            except api.ApiError as exc:
                if exc.status != 404:
                    raise
            self.image_id = None
        left = sorted(set(array_ids) & set(self.gateway.volumes()))
        self.check(not left, "array volumes left after the deletes: %s"
                   % left)

    def emergency_cleanup(self) -> None:
        """After a failure: ours back on, what was made deleted.

        Best effort: a failure here is printed, not raised.
        """
        try:
            if self.description.get("driver") != "ours":
                self.to("ours")
            self.cleanup()
        except Exception as exc:  # noqa: BLE001 (report, go on)
            _log("clean-up after the failure failed too: %s" % exc)

    def print_report(self) -> None:
        """The tables and the durations."""
        before = reconcile_entries(self.reports.get("before"))
        usage_before = {p["project"]: p["usage_before"]
                        for p in self.projects}
        usage_after = {p["project"]: p.get("usage_after")
                       for p in self.projects}
        per_volume = calls_per_volume(self.calls)
        _log("")
        _log(table(old_volume_rows(self.old, before, usage_before,
                                   usage_after, per_volume), ROW_COLUMNS))
        names = {self.demo_project: "demo", self.internal:
                 "internal tenant"}
        for row in self.projects:
            row["name"] = names.get(row["project"], row["project"])
        if self.projects:
            _log(table(self.projects, [
                ("name", "project"), ("usage_before", "usage before"),
                ("records_before", "records before"),
                ("usage_after", "usage after --fix"),
                ("records_after", "records after --fix")]))
        ops: dict[str, int] = {}
        for call in self.calls:
            ops[call["op"]] = ops.get(call["op"], 0) + 1
        _log("array calls (other than reads) while --fix ran: %s"
             % (ops or "none"))
        for name, seconds in self.phases:
            _log("%-50s %6.1f s" % (name, seconds))


def main(description: dict[str, Any], reinstall: bool = False) -> int:
    """Run the scenario, print its table; 0 if every check held."""
    scenario = Scenario(description, reinstall=reinstall)
    started = time.monotonic()
    try:
        scenario.run()
    except Exception as exc:  # noqa: BLE001 (clean up, then report)
        scenario.failed.append("the scenario stopped: %s: %s"
                               % (type(exc).__name__, exc))
        _log("FAILED: the scenario stopped: %s" % exc)
        scenario.emergency_cleanup()
    finally:
        if scenario.original != "ours" and \
                scenario.description.get("driver") != scenario.original:
            scenario.to(scenario.original)
    scenario.print_report()
    _log("switch-over: %.1f s" % (time.monotonic() - started))
    for failure in scenario.failed:
        _log("FAILED: %s" % failure)
    _log("%d passed, %d failed" % (0 if scenario.failed else 1,
                                   1 if scenario.failed else 0))
    return 1 if scenario.failed else 0
