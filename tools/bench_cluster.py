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
"""Concurrent creates against two cinder-volume services of one cluster.

All creates are requested through Cinder's API first, then delivered at
once, each in its own green thread, alternately to the two services
(:mod:`tools.cluster`). The cache is cold: the image is new. Each sample's
time is its ``create_volume`` on the service; array requests, downloads
and copies are those of the whole window, shared by the creates.
"""

from typing import Any
import uuid

from cinder import objects

from tools import bench_scenarios
from tools import cluster as cluster_mod
from tools import origin
from tools import probe as probe_mod
from tools import samples as samples_mod

SIZES = (60, 62, 64)
"""Requested sizes, in turn."""


def run(cinder: Any, settings: bench_scenarios.Settings
        ) -> samples_mod.Measured:
    """Run the concurrent creates; return their times and shared costs."""
    probe = probe_mod.Probe(cinder)
    meta = bench_scenarios.seed_image(cinder)
    cluster = cluster_mod.start(cinder, count=2)
    volumes = []
    with probe.window() as totals:
        for index in range(settings.concurrent):
            volumes.append(cluster.api.create(
                cinder.user_ctx, SIZES[index % len(SIZES)],
                "vol-%s" % uuid.uuid4().hex[:8], None, image_id=meta["id"]))
        cluster.casts.drain()
        # Deletes our driver asks for through its own volume API (a
        # replaced cache entry) go to the harness's queue.
        cinder.casts.drain()
    samples = []
    for index, volume in enumerate(volumes):
        volume = objects.Volume.get_by_id(cinder.admin_ctx, volume.id)
        lines = [line for line in totals.lines if volume.id in line]
        samples.append(samples_mod.Sample(
            index=index, requested_gib=volume.size,
            seconds=round(cluster.casts.seconds.get(volume.id, 0.0), 6),
            calls={}, extends=[], redundant_extends=0, downloads=0,
            bytes_copied=0, failed=volume.status != "available",
            origin=_origin(lines, volume.status)))
    shared = {"calls": dict(totals.calls), "extends": totals.extend_targets,
              "redundant_extends": sum(1 for r in totals.resizes
                                       if r.redundant),
              "downloads": totals.downloads,
              "bytes_copied": totals.bytes_copied}
    return samples_mod.Measured(samples, shared)


def _origin(lines: list[str], status: str) -> str:
    if status != "available":
        return "FAILED: volume %s" % status
    if any("from image-volume cache entry" in line for line in lines):
        return origin.CLONE_IMAGE_CACHE
    return "Cinder's cache or download path"


def scenario(settings: bench_scenarios.Settings) -> bench_scenarios.Scenario:
    """Describe the cluster scenario."""
    return bench_scenarios.Scenario(
        "cluster, concurrent",
        "%d concurrent creates (60/62/64 GiB) from the 60 GiB raw seed "
        "image, cold cache, spread over two cinder-volume services of the "
        "cluster %s" % (settings.concurrent, cluster_mod.CLUSTER), run)
