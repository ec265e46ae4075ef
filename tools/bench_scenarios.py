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
"""The benchmark's sequential scenarios, one in-process Cinder per run.

Every scenario is a function of an in-process Cinder (:mod:`tools.harness`)
and the run's :class:`Settings`, returning one :class:`tools.samples.Sample`
per measured create. Only creates are timed; set-up creates (the miss that
fills the cache before a sweep) and deletes are not.

The images are the seed disk (:mod:`tools.beds.scenario_images`, the
functional seed test's): 60 GiB virtual, about 1 MiB of data, as raw or
qcow2.
"""

import dataclasses
from typing import Any, Callable

from tools.beds import scenario_images
from tools import probe as probe_mod
from tools import samples as samples_mod

SEED_REQUEST_GIB = 60


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of the scenarios (the CLI sets them)."""

    misses: int = 5
    sweep: tuple[int, ...] = (60, 62, 64, 65, 70, 72, 80)
    sweep_repeats: int = 3
    format_hits: int = 9
    vtree_creates: int = 300
    concurrent: int = 20


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A named scenario and what it does, for the report."""

    name: str
    description: str
    run: Callable[[Any, Settings], list[samples_mod.Sample]]


def seed_image(cinder: Any, disk_format: str = "raw") -> dict:
    meta, disk = cinder.make_image(
        "seed-%s" % disk_format, scenario_images.SEED_VIRTUAL_SIZE,
        scenario_images.SEED_PIECES, "seed", disk_format=disk_format)
    cinder.require_conversion_space(disk)
    return meta


def _sample(samples: list, created: Any) -> None:
    samples.append(samples_mod.Sample.from_create(len(samples), created))


def cache_miss(cinder: Any, settings: Settings) -> list[samples_mod.Sample]:
    """60 GiB volumes from the seed image, the cache emptied each time."""
    probe = probe_mod.Probe(cinder)
    meta = seed_image(cinder)
    samples: list[samples_mod.Sample] = []
    for _unused in range(settings.misses):
        created = probe.create("miss", SEED_REQUEST_GIB, image_id=meta["id"])
        _sample(samples, created)
        cinder.delete_volume(created.volume)
        cinder.delete_cache_entries()
    return samples


def hit_sweep(cinder: Any, settings: Settings) -> list[samples_mod.Sample]:
    """Cache hits of every requested size, from a 60 GiB entry."""
    probe = probe_mod.Probe(cinder)
    meta = seed_image(cinder)
    first = cinder.create_volume(SEED_REQUEST_GIB, image_id=meta["id"])[0]
    samples: list[samples_mod.Sample] = []
    for _unused in range(settings.sweep_repeats):
        for size in settings.sweep:
            created = probe.create("hit", size, image_id=meta["id"])
            _sample(samples, created)
            cinder.delete_volume(created.volume)
    cinder.delete_volume(first)
    return samples


def _format(disk_format: str) -> Callable[[Any, Settings],
                                          list[samples_mod.Sample]]:
    def run(cinder: Any, settings: Settings) -> list[samples_mod.Sample]:
        probe = probe_mod.Probe(cinder)
        meta = seed_image(cinder, disk_format)
        samples: list[samples_mod.Sample] = []
        for _unused in range(1 + settings.format_hits):
            _sample(samples, probe.create(disk_format, SEED_REQUEST_GIB,
                                          image_id=meta["id"]))
        return samples
    return run


def vtree_limit(cinder: Any, settings: Settings) -> list[samples_mod.Sample]:
    """Many 60 GiB volumes from one image, all kept: past the vtree limit.

    The volumes are not deleted (the in-process Cinder's teardown removes
    the array): the vtree of the cache entry has to fill up.
    """
    probe = probe_mod.Probe(cinder)
    meta = seed_image(cinder)
    samples: list[samples_mod.Sample] = []
    for _unused in range(settings.vtree_creates):
        _sample(samples, probe.create("vtree", SEED_REQUEST_GIB,
                                      image_id=meta["id"]))
    return samples


def sequential(settings: Settings) -> list[Scenario]:
    """The sequential scenarios, in report order."""
    return [
        Scenario("cache miss",
                 "%d x a 60 GiB volume from the 60 GiB raw seed image, "
                 "volume and cache entry deleted after each"
                 % settings.misses, cache_miss),
        Scenario("cache hits, size sweep",
                 "hits of %s GiB (x%d) from a 60 GiB cache entry, each "
                 "volume deleted after its create"
                 % ("/".join(map(str, settings.sweep)),
                    settings.sweep_repeats), hit_sweep),
        Scenario("raw image",
                 "1 miss + %d hits, 60 GiB volumes, raw 60 GiB image"
                 % settings.format_hits, _format("raw")),
        Scenario("qcow2 image",
                 "1 miss + %d hits, 60 GiB volumes, qcow2 of the same disk"
                 % settings.format_hits, _format("qcow2")),
        Scenario("vtree limit",
                 "%d x 60 GiB from one image, all kept (array limit: 126 "
                 "snapshots per vtree)" % settings.vtree_creates,
                 vtree_limit),
    ]
