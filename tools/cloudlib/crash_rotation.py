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
"""A cinder-volume service killed in the middle of a cache-entry rotation.

``tools/cloud crash-rotation`` runs, against the running cloud:

1. a new image; volumes from it until its cache entry's vtree is full
   (the first create makes the entry, each one adds a snapshot);
2. one more create, which must copy the full entry into a new cache
   volume; the simulator holds the copy's first unmap (its fault-control
   endpoint), so the service is caught with the copy made, the new cache
   volume ``creating`` and both volumes mapped to the SDC;
3. ``kill -9`` of the service doing it (its whole process group), then
   the service started again as ``tools/cloud up`` starts it; Cinder's
   start-up clean-up must move the user's volume and the half-made cache
   volume from ``creating`` to ``error``;
4. then: the cache entry is still the full volume, available; every
   array volume has its row and the half-made one keeps its array volume
   (nothing the array holds is forgotten);
5. the user deletes the volume in error; the next create from the image
   rotates the entry, gets the image's bytes without a second download
   from Glance, and deletes the half-made cache volume (array volume,
   mapping, quota and row);
6. everything deleted: quota usage equals the records (the project's and
   the internal tenant's), the array holds only what Cinder knows, nothing
   is mapped to the SDC, and each pool's ``allocated_capacity_gb`` the
   scheduler reports equals the sizes Cinder records in it.

Exit 0 only if every check held; the figures are printed.
"""

import hashlib
import os
import random
import signal
import time
from typing import Any, Optional

from tools.cloudlib import api
from tools.cloudlib import cloud
from tools.cloudlib import infra
from tools.cloudlib import layout
from tools.cloudlib import observe
from tools.cloudlib import procs

IMAGE_BYTES = 24 * 1024 * 1024
SIZE_GIB = 1
HOLD_SECONDS = 120
"""How long the simulator holds the unmap before dropping it unanswered;
Cinder's REST client gives up after 30 s, the kill comes within seconds."""
WAIT_SECONDS = 240
STATS_SECONDS = 90
"""A stats report of each service (every 60 s) reaches the scheduler."""
ROTATING = "vtree of image-volume cache entry"
LOCK_TIMEOUT_SECONDS = 30
"""tooz's Redis ``lock_timeout`` (its default; the cloud's ``backend_url``
sets none): how long Redis keeps a lock its holder no longer renews."""


class Scenario:
    """One run of the scenario.

    ``failed`` lists the checks that did not hold, ``figures`` what was
    measured.
    """

    def __init__(self, description: dict[str, Any]) -> None:
        self.description = description
        self.state = description["state_dir"]
        self.admin = api.Session(description["admin"])
        self.demo = api.Session(description["demo"])
        self.gateway = observe.Gateway(description["gateway"])
        self.database = infra.MariaDB(self.state,
                                      procs.ProcessTable(self.state),
                                      layout.PORTS["mariadb"])
        self.redis = infra.Redis(self.state, procs.ProcessTable(self.state),
                                 layout.PORTS["redis"])
        self.internal = description["ids"]["internal_project_id"]
        self.failed: list[str] = []
        self.figures: dict[str, Any] = {}

    # -- helpers -------------------------------------------------------------

    def check(self, held: bool, failure: str) -> None:
        """Record ``failure`` unless ``held``."""
        if not held:
            self.failed.append(failure)

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query on Cinder's database."""
        return [line.split("\t") for line in
                self.database.query(query).splitlines() if line]

    def volume_row(self, volume_id: str) -> dict[str, str]:
        """Status and provider_id of a volume row (deleted or not)."""
        rows = self.sql("SELECT status, provider_id, deleted FROM "
                        "cinder.volumes WHERE id = '%s';" % volume_id)
        if not rows:
            return {}
        status, provider_id, deleted = rows[0]
        return {"status": status, "provider_id": provider_id,
                "deleted": deleted}

    def cache_entry(self, image_id: str) -> Optional[str]:
        """The volume of the image's cache entry, if there is one."""
        rows = self.sql("SELECT volume_id FROM cinder.image_volume_cache_"
                        "entries WHERE image_id = '%s';" % image_id)
        return rows[0][0] if rows else None

    def create(self, image_id: str, name: str) -> str:
        """Ask for a volume from the image as the non-admin project."""
        return self.demo.call("POST", "cinder", "/v3/volumes", body={
            "volume": {"name": name, "size": SIZE_GIB,
                       "imageRef": image_id}})["volume"]["id"]

    def settled(self, volume_id: str) -> str:
        """Wait until the volume is no longer creating; its status."""
        def status() -> Optional[str]:
            current = self.volume_row(volume_id).get("status")
            return None if current in (None, "creating") else current
        return procs.wait_until(status, WAIT_SECONDS,
                                "volume %s out of creating" % volume_id)

    def delete(self, session: api.Session, volume_id: str) -> None:
        """Delete a volume and wait until its row is deleted."""
        session.call("DELETE", "cinder", "/v3/volumes/%s" % volume_id)
        self.wait_deleted(volume_id)

    def wait_deleted(self, volume_id: str) -> None:
        """Wait until the volume's row is deleted."""
        procs.wait_until(
            lambda: self.volume_row(volume_id).get("deleted") == "1",
            WAIT_SECONDS, "volume %s deleted" % volume_id)

    # -- the scenario --------------------------------------------------------

    def run(self) -> None:
        """Run every step; checks that fail are recorded, not raised."""
        data = random.randbytes(IMAGE_BYTES)
        image_digest = hashlib.sha256(data).hexdigest()
        image_id = self.admin.upload_image(
            "crash-rotation-%d" % time.time(), data)
        limit = self.description["snapshot_limit"]
        filled = []
        for number in range(limit):
            volume_id = self.create(image_id, "crash-fill-%02d" % number)
            filled.append(volume_id)
            status = self.settled(volume_id)
            if status != "available":
                raise procs.CloudError("filling the vtree: volume %s is %s"
                                       % (volume_id, status))
        full_entry = self.cache_entry(image_id)
        if full_entry is None:
            raise procs.CloudError("no cache entry for image %s" % image_id)

        victim = self.create_caught_at_unmap(image_id, "crash-victim")
        service = self.logging_service(victim, ROTATING)
        half_made = self.half_made(image_id)
        killed_at = self.kill(service)
        self.wait_for_the_dead_services_locks(killed_at)
        new_volume = self.caught(victim, half_made)
        if new_volume is None:
            return

        self.restart(service, killed_at, victim, new_volume)
        self.check(self.cache_entry(image_id) == full_entry,
                   "the cache entry changed although the rotation died")
        self.check(self.volume_row(full_entry)["status"] == "available",
                   "the full cache entry is not available")
        self.check_array_matches_db("after the restart")

        # The user deletes the volume in error; the next create from the
        # image rotates the entry and deletes the half-made cache volume.
        after = self.retry(image_id, victim, new_volume, "crash-after",
                           image_digest, full_entry, downloads=1)
        for volume_id in filled + [after]:
            self.delete(self.demo, volume_id)
        self.admin.call("DELETE", "glance", "/v2/images/%s" % image_id)
        self.check_the_end()

    # -- steps the crash scenarios share -------------------------------------

    def caught(self, victim: str, half_made: list[str]) -> Optional[str]:
        """The half-made cache volume the kill caught, or None.

        Checks that there is exactly one and that the user's volume was
        still ``creating``; counts the volumes mapped at the kill.
        """
        self.check(len(half_made) == 1, "expected one half-made cache "
                   "volume in creating, found %d" % len(half_made))
        self.check(self.volume_row(victim)["status"] == "creating",
                   "the user's volume was not creating at the kill")
        self.figures["mapped_at_kill"] = len(self.mapped())
        return half_made[0] if len(half_made) == 1 else None

    def retry(self, image_id: str, victim: str, new_volume: str, name: str,
              image_digest: str, old_entry: Optional[str],
              downloads: int) -> str:
        """The user deletes the volume in error and asks again; its id.

        The new volume must be available with the image's bytes, in place
        of ``old_entry`` a new cache entry, and the half-made cache volume
        ``new_volume`` deleted with its array volume; Glance must have
        served the image ``downloads`` times in all.
        """
        new_provider = self.volume_row(new_volume)["provider_id"]
        self.check(new_provider in self.gateway.volumes(),
                   "the half-made cache volume's array volume is gone or "
                   "unrecorded (provider_id %s)" % new_provider)
        self.delete(self.demo, victim)
        retried = self.create(image_id, name)
        status = self.settled(retried)
        self.check(status == "available",
                   "the user's new volume from the image is %s" % status)
        self.wait_deleted(new_volume)
        self.check(new_provider not in self.gateway.volumes(),
                   "the half-made cache volume's array volume is left")
        self.check(self.cache_entry(image_id) not in (None, old_entry,
                                                      new_volume),
                   "no new cache entry replaced %s" % old_entry)
        if status == "available":
            provider = self.volume_row(retried)["provider_id"]
            self.check(observe.array_digest(self.state, provider,
                                            IMAGE_BYTES) == image_digest,
                       "the new volume does not hold the image's bytes")
        served = observe.glance_downloads(self.state, image_id)
        self.figures["glance_downloads"] = served
        self.check(served == downloads, "Glance served the image %d times, "
                   "not %d" % (served, downloads))
        return retried

    def create_caught_at_unmap(self, image_id: str, name: str) -> str:
        """Ask for a volume; return once its copy's first unmap is held.

        The simulator holds the first ``removeMappedSdc`` for
        :data:`HOLD_SECONDS`, then drops it unanswered.
        """
        self.gateway.control("POST", [
            {"op": "removeMappedSdc", "kind": "delay",
             "seconds": HOLD_SECONDS},
            {"op": "removeMappedSdc", "kind": "drop"}])
        try:
            volume_id = self.create(image_id, name)
            procs.wait_until(lambda: not self.gateway.control("GET")["armed"],
                             180, "the copy's unmap to reach the array")
        finally:
            self.gateway.control("DELETE")
        return volume_id

    def logging_service(self, volume_id: str, text: str) -> int:
        """The number of the service whose log shows ``text`` for it.

        :raises CloudError: no service's log does.
        """
        for number, host in enumerate(layout.VOLUME_HOSTS, 1):
            path = os.path.join(self.state, "log", "%s.log" % host)
            with open(path, errors="replace") as handle:
                if any(volume_id in line and text in line
                       for line in handle):
                    return number
        raise procs.CloudError("no service logged %r for %s"
                               % (text, volume_id))

    def half_made(self, image_id: str) -> list[str]:
        """The image's cache volumes being made (``creating``)."""
        return [row[0] for row in self.sql(
            "SELECT id FROM cinder.volumes WHERE deleted = 0 AND "
            "status = 'creating' AND project_id = '%s' AND display_name = "
            "'image-%s';" % (self.internal, image_id))]

    def mapped(self) -> list[str]:
        """The array volumes mapped to an SDC."""
        return sorted(v for v, record in self.gateway.volumes().items()
                      if record.get("mappedSdcInfo"))

    def kill(self, service: int, first_signal: int = signal.SIGKILL
             ) -> float:
        """Stop cinder-volume ``service``; when it was gone (monotonic).

        :param first_signal: SIGKILL (a crash) or SIGTERM (an operator's
            restart: SIGKILL follows after 10 s if it still runs).
        """
        name = "cinder-volume-%d" % service
        asked = time.monotonic()
        cloud.Cloud().table.stop(name, timeout=10,
                                 first_signal=first_signal)
        killed_at = time.monotonic()
        self.figures["killed"] = "%s (%s) with %s, gone after %.1f s" % (
            name, layout.VOLUME_HOSTS[service - 1],
            signal.Signals(first_signal).name, killed_at - asked)
        return killed_at

    def restart(self, service: int, killed_at: float, victim: str,
                new_volume: str) -> None:
        """Start the service again; check its start-up clean-up.

        The user's volume and the half-made cache volume must leave
        ``creating`` for ``error``, with no ``workers`` row left.
        """
        cloud.Cloud().start_volume_service(service)
        victim_status = self.settled(victim)
        new_status = self.settled(new_volume)
        self.figures["cleanup_seconds"] = round(
            time.monotonic() - killed_at, 1)
        self.figures["after_restart"] = {"user volume": victim_status,
                                         "half-made cache volume":
                                         new_status}
        self.check(victim_status == "error",
                   "the user's volume is %s after the restart, not error"
                   % victim_status)
        self.check(new_status == "error", "the half-made cache volume is "
                   "%s after the restart, not error" % new_status)
        workers = self.sql("SELECT COUNT(*) FROM cinder.workers WHERE "
                           "deleted = 0 AND resource_id IN ('%s', '%s');"
                           % (victim, new_volume))[0][0]
        self.check(workers == "0", "%s workers rows left" % workers)

    def check_the_end(self) -> None:
        """Everything deleted: nothing left, leaked or mapped."""
        self.check_array_matches_db("at the end")
        self.check_quota(self.description["ids"]["demo_project_id"],
                         "demo project")
        self.check_quota(self.internal, "internal tenant")
        mapped = self.mapped()
        self.figures["mapped_at_end"] = len(mapped)
        self.check(not mapped, "array volumes still mapped: %s" % mapped)
        self.check_allocated_capacity()

    def wait_for_the_dead_services_locks(self, killed_at: float) -> None:
        """Measure how long the killed service's rotation lock outlives it.

        The rotation holds the entry's coordination lock in Redis; the
        killed service no longer renews it, so Redis drops it when its
        time to live (tooz's ``lock_timeout``, 30 s by default) runs out.
        Until then a rotation of the entry by any service waits.
        """
        held = self.redis.locks("cinder-powerflex-cache-rotate-*")
        self.figures["rotation_lock_ttl_at_kill_s"] = sorted(
            round(ttl / 1000.0, 1) for ttl in held.values())
        self.check(len(held) == 1, "expected the killed rotation's lock "
                   "in Redis, found %s" % sorted(held))
        procs.wait_until(
            lambda: not self.redis.locks("cinder-powerflex-cache-rotate-*"),
            LOCK_TIMEOUT_SECONDS + 10, "the killed service's rotation lock "
            "to expire")
        waited = time.monotonic() - killed_at
        self.figures["rotation_lock_released_after_s"] = round(waited, 1)
        self.check(waited <= LOCK_TIMEOUT_SECONDS + 2,
                   "the killed service's rotation lock was held %.1f s "
                   "after the kill" % waited)

    def check_array_matches_db(self, when: str) -> None:
        """Array volumes and Cinder's rows name each other."""
        known = {row[0] for row in self.sql(
            "SELECT provider_id FROM cinder.volumes WHERE deleted = 0 AND "
            "provider_id IS NOT NULL UNION SELECT provider_id FROM "
            "cinder.snapshots WHERE deleted = 0 AND provider_id IS NOT "
            "NULL;")}
        array = set(self.gateway.volumes())
        self.check(array <= known, "%s: array volumes without a row: %s"
                   % (when, sorted(array - known)))
        settled = {row[0] for row in self.sql(
            "SELECT provider_id FROM cinder.volumes WHERE deleted = 0 AND "
            "provider_id IS NOT NULL AND status NOT IN ('error', "
            "'error_deleting');")}
        self.check(settled <= array, "%s: rows whose array volume is "
                   "missing: %s" % (when, sorted(settled - array)))

    def check_allocated_capacity(self) -> None:
        """Each pool's allocated_capacity_gb equals its recorded sizes.

        What the scheduler reports (``cinder get-pools --detail``) against
        the sum of the sizes of the pool's volumes in the database; waits
        for the services' stats to reach the scheduler.
        """
        def pools() -> tuple[dict[str, int], dict[str, int]]:
            answer = self.admin.get(
                "cinder", "/v3/scheduler-stats/get_pools?detail=True")
            reported = {pool["name"].rpartition("#")[2]:
                        int(pool["capabilities"]["allocated_capacity_gb"])
                        for pool in answer["pools"]}
            recorded = {name: 0 for name in reported}
            recorded.update({name: int(size) for name, size in self.sql(
                "SELECT SUBSTRING_INDEX(host, '#', -1), SUM(size) FROM "
                "cinder.volumes WHERE deleted = 0 GROUP BY 1;")})
            return reported, recorded

        deadline = time.monotonic() + STATS_SECONDS
        reported, recorded = pools()
        while reported != recorded and time.monotonic() < deadline:
            time.sleep(5)
            reported, recorded = pools()
        self.figures["allocated_capacity_gb"] = reported
        self.check(reported == recorded, "allocated_capacity_gb reported "
                   "%s, the volumes record %s" % (reported, recorded))

    def check_quota(self, project_id: str, who: str) -> None:
        """The project's usage of volumes and gigabytes equals its rows."""
        usage = {resource: (int(in_use), int(reserved)) for
                 resource, in_use, reserved in self.sql(
                     "SELECT resource, in_use, reserved FROM "
                     "cinder.quota_usages WHERE deleted = 0 AND "
                     "project_id = '%s' AND resource IN ('volumes', "
                     "'gigabytes');" % project_id)}
        volumes, volume_gb = self.sql(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cinder.volumes "
            "WHERE deleted = 0 AND project_id = '%s';" % project_id)[0]
        snapshot_gb = self.sql(
            "SELECT COALESCE(SUM(volume_size), 0) FROM cinder.snapshots "
            "WHERE deleted = 0 AND project_id = '%s';" % project_id)[0][0]
        records = {"volumes": int(volumes),
                   "gigabytes": int(volume_gb) + int(snapshot_gb)}
        for resource, count in records.items():
            in_use, reserved = usage.get(resource, (0, 0))
            self.check(in_use == count and reserved == 0,
                       "%s %s: usage %d (reserved %d), records %d"
                       % (who, resource, in_use, reserved, count))
        self.figures["%s usage" % who] = records


def report(scenario: Scenario) -> int:
    """Run a crash scenario, print its figures; 0 if every check held."""
    started = time.monotonic()
    scenario.run()
    scenario.figures["seconds"] = round(time.monotonic() - started, 1)
    for key, value in scenario.figures.items():
        print("%-24s %s" % (key, value))
    for failure in scenario.failed:
        print("FAILED: %s" % failure)
    print("%d passed, %d failed" % (0 if scenario.failed else 1,
                                    1 if scenario.failed else 0))
    return 1 if scenario.failed else 0


def main(description: dict[str, Any]) -> int:
    """Run the scenario, print its figures; 0 if every check held."""
    return report(Scenario(description))
