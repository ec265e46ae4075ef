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
"""Concurrent creates from one new image over both cinder-volume services.

``tools/cloud active-active`` uploads a new image, asks for
:data:`VOLUMES` volumes from it at once (as the non-admin project, one
thread each), waits for all of them and checks, from the outside:

* every volume is ``available`` at the granularity-rounded size, and its
  array volume holds the image's bytes (read from the simulated array's
  backing file of the volume's ``provider_id``);
* the creates were spread over both services of the cluster;
* Glance served the image's data once (its access log);
* one image-volume cache entry is left for the image;
* no cache entry was rotated twice although the run crosses the vtree
  limit several times (cinder-volume's logs).

Then it deletes the volumes and the image and prints the figures; exit 0
only if every check held.
"""

import collections
import concurrent.futures
import glob
import hashlib
import os
import random
import re
import time
from typing import Any

from tools.cloudlib import api
from tools.cloudlib import infra
from tools.cloudlib import layout
from tools.cloudlib import observe
from tools.cloudlib import procs

VOLUMES = 50
IMAGE_BYTES = 48 * 1024 * 1024
WAIT_SECONDS = 300
ROTATED = re.compile(r"Image (\S+): cache entry (\S+) replaced by (\S+)\.")


def _image_data() -> bytes:
    """A new image's bytes: random, so no two runs upload the same."""
    return random.randbytes(IMAGE_BYTES)


def _wait_settled(session: api.Session, ids: list[str]) -> dict[str, dict]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listed = session.get(
            "cinder", "/v3/volumes/detail?all_tenants=1&limit=1000")
        volumes = {v["id"]: v for v in listed["volumes"] if v["id"] in ids}
        pending = [v for v in volumes.values()
                   if v["status"] not in ("available", "error")]
        if not pending and len(volumes) == len(ids):
            return volumes
        if time.monotonic() > deadline:
            raise procs.CloudError("%d volumes still not settled after %d s"
                                   % (len(pending), WAIT_SECONDS))
        time.sleep(2)


def _rotations(state: str, image_id: str) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in glob.glob(os.path.join(state, "log", "cloud-vol*.log")):
        with open(path, errors="replace") as handle:
            for line in handle:
                found = ROTATED.search(line)
                if found and found.group(1) == image_id:
                    counts[found.group(2)] += 1
    return counts


def run(description: dict[str, Any]) -> dict[str, Any]:
    """Run the scenario; return its figures and the failed checks."""
    state = description["state_dir"]
    admin = api.Session(description["admin"])
    demo = api.Session(description["demo"])
    database = infra.MariaDB(state, procs.ProcessTable(state),
                             layout.PORTS["mariadb"])
    data = _image_data()
    image_digest = hashlib.sha256(data).hexdigest()
    image_id = admin.upload_image("active-active-%d" % time.time(), data)
    size = 10
    started = time.monotonic()

    def create(number: int) -> str:
        return demo.call("POST", "cinder", "/v3/volumes", body={"volume": {
            "name": "aa-%02d" % number, "size": size,
            "imageRef": image_id}})["volume"]["id"]

    with concurrent.futures.ThreadPoolExecutor(VOLUMES) as pool:
        ids = list(pool.map(create, range(VOLUMES)))
    volumes = _wait_settled(admin, ids)
    elapsed = time.monotonic() - started

    rows = database.query(
        "SELECT id, provider_id, host FROM cinder.volumes WHERE id IN (%s);"
        % ",".join("'%s'" % i for i in ids)).splitlines()
    provider = {}
    hosts: collections.Counter = collections.Counter()
    for row in rows:
        volume_id, provider_id, host = row.split("\t")
        provider[volume_id] = provider_id
        hosts[host.split("#")[0]] += 1
    entries = int(database.query(
        "SELECT COUNT(*) FROM cinder.image_volume_cache_entries "
        "WHERE image_id = '%s';" % image_id).strip())
    rounded = -(-size // layout.GRANULARITY_GIB) * layout.GRANULARITY_GIB
    statuses = collections.Counter(v["status"] for v in volumes.values())
    sizes = collections.Counter(v["size"] for v in volumes.values())
    wrong_bytes = [i for i in ids if volumes[i]["status"] == "available"
                   and observe.array_digest(state, provider[i], len(data))
                   != image_digest]
    rotations = _rotations(state, image_id)
    downloads = observe.glance_downloads(state, image_id)
    figures = {
        "volumes": VOLUMES, "seconds": round(elapsed, 1),
        "statuses": dict(statuses), "sizes": dict(sizes),
        "per_service": dict(hosts), "glance_downloads": downloads,
        "cache_entries": entries, "rotations": sum(rotations.values()),
        "entries_rotated_twice": sorted(k for k, n in rotations.items()
                                        if n > 1),
        "wrong_bytes": len(wrong_bytes),
    }
    failed = []
    if statuses != {"available": VOLUMES}:
        failed.append("not every volume is available: %s" % dict(statuses))
    if sizes != {rounded: VOLUMES}:
        failed.append("sizes %s, expected %d GiB each"
                      % (dict(sizes), rounded))
    if len(hosts) != len(layout.VOLUME_HOSTS):
        failed.append("creates ran on %s only" % dict(hosts))
    if downloads != 1:
        failed.append("Glance served the image %d times" % downloads)
    if entries != 1:
        failed.append("%d cache entries for the image" % entries)
    if figures["entries_rotated_twice"]:
        failed.append("entries rotated twice: %s"
                      % figures["entries_rotated_twice"])
    if VOLUMES > description["snapshot_limit"] and not rotations:
        failed.append("the run crossed the vtree limit but no entry was "
                      "rotated")
    if wrong_bytes:
        failed.append("%d volumes do not hold the image's bytes"
                      % len(wrong_bytes))
    figures["failed"] = failed
    for volume_id in ids:
        demo.call("DELETE", "cinder", "/v3/volumes/%s" % volume_id)
    admin.call("DELETE", "glance", "/v2/images/%s" % image_id)
    return figures


def main(description: dict[str, Any]) -> int:
    """Run the scenario, print its figures; 0 if every check held."""
    figures = run(description)
    for key, value in figures.items():
        if key != "failed":
            print("%-22s %s" % (key, value))
    for failure in figures["failed"]:
        print("FAILED: %s" % failure)
    print("%d passed, %d failed" % (1 if not figures["failed"] else 0,
                                    1 if figures["failed"] else 0))
    return 1 if figures["failed"] else 0
