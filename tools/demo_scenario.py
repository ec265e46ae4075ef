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
"""The demo's scenario: the seed flow, a 62 GiB volume and a snapshot.

Run once per driver in a fresh in-process Cinder
(:func:`tools.harness.run_scenario`):

1. a 32 GiB empty volume, so the project's quota usage can be watched
   going down as well as up;
2. the seed image (60 GiB virtual, sparse, the functional seed test's
   disk, :mod:`tools.beds.scenario_images`) as raw: a 60 GiB volume
   (cache miss), two more 60 GiB volumes and a 62 GiB one (cache hits);
3. the same disk as qcow2: 60 GiB (miss), 60 and 62 GiB (hits);
4. a 62 GiB volume from an image whose location is ``cinder://`` the
   first 60 GiB volume (direct clone);
5. a 1 GiB image into a 10 GiB volume, a snapshot of it and a 12 GiB
   volume from the snapshot (16 GiB with this driver, which records the
   10 GiB volume at the 16 GiB the array holds);
6. one more 10 GiB volume from the 1 GiB image once its cache entry's
   vtree is full (the array refuses the snapshot: rc 182);
7. every volume, the snapshot and the cache entries deleted, then the
   baseline; the array must then be empty.

Every volume made from an image is compared byte for byte with the image.
"""

import dataclasses
from typing import Any

from oslo_utils import units

from tools.beds import disk_images
from tools.beds import scenario_images
from tools import probe as probe_mod

BASELINE_GIB = 32
SMALL_SOURCE_GIB = 10
FROM_SNAPSHOT_GIB = 12
DIRECT_CLONE_GIB = 62


@dataclasses.dataclass(frozen=True)
class Step:
    """One create from an image."""

    image: str
    size: int
    expect: str


SEED_STEPS = (
    Step("seed-raw", 60, "cache miss"),
    Step("seed-raw", 60, "cache hit"),
    Step("seed-raw", 60, "cache hit"),
    Step("seed-raw", 62, "cache hit"),
    Step("seed-qcow2", 60, "cache miss"),
    Step("seed-qcow2", 60, "cache hit"),
    Step("seed-qcow2", 62, "cache hit"),
)


@dataclasses.dataclass
class DemoRun:
    """What one driver did in the demo."""

    driver: str
    gateway: str
    images: list[str]
    creates: list[probe_mod.Create]
    create_totals: probe_mod.Totals
    all_totals: probe_mod.Totals
    quota: dict[str, int]
    content_checked: int


def _images(cinder: Any) -> dict[str, tuple[dict, Any]]:
    seed = (scenario_images.SEED_VIRTUAL_SIZE, scenario_images.SEED_PIECES,
            "seed")
    small = (scenario_images.SMALL_VIRTUAL_SIZE, scenario_images.SMALL_PIECES,
             "small")
    return {
        "seed-raw": cinder.make_image("seed-raw", *seed, disk_format="raw"),
        "seed-qcow2": cinder.make_image("seed-qcow2", *seed,
                                        disk_format="qcow2"),
        "small-raw": cinder.make_image("small-raw", *small,
                                       disk_format="raw"),
        # Published as an image whose data lives in a Cinder volume; its
        # cinder:// location is added once that volume exists.
        "seed-volume": cinder.make_image("seed-volume", *seed,
                                         disk_format="raw"),
    }


def _describe(name: str, meta: dict, disk: Any) -> str:
    data = sum(length for _offset, length in
               disk_images.data_extents(disk.path))
    return "%s: %s, %d GiB virtual, %.2f MiB of data in the file" % (
        name, meta["disk_format"], disk.virtual_size // units.Gi,
        data / units.Mi)


def run(cinder: Any) -> DemoRun:
    """Run the demo's scenario in ``cinder``; return what it cost."""
    probe = probe_mod.Probe(cinder)
    images = _images(cinder)
    cinder.require_conversion_space(images["seed-raw"][1])
    creates: list[probe_mod.Create] = []
    with probe.window() as all_totals:
        baseline = cinder.create_volume(BASELINE_GIB)[0]
        start = cinder.quota_usage()
        with probe.window() as create_totals:
            for step in SEED_STEPS:
                creates.append(_from_image(
                    cinder, probe, images, step.image, step.size,
                    "%s expected" % step.expect))
            creates.append(_direct_clone(cinder, probe, images,
                                         creates[0].volume))
            creates.append(_from_image(cinder, probe, images, "small-raw",
                                       SMALL_SOURCE_GIB, "cache miss "
                                       "expected, then snapshotted"))
            snapshot = cinder.create_snapshot(creates[-1].volume)[0]
            creates.append(_from_snapshot(cinder, probe, images, snapshot))
            from_snapshot = creates[-1]
            creates.append(_vtree_full(cinder, probe, images))
        after = cinder.quota_usage()
        records = cinder.db_usage()
        cinder.delete_volume(from_snapshot.volume)
        cinder.delete_snapshot(snapshot)
        for created in creates:
            if created is not from_snapshot:
                cinder.delete_volume(created.volume)
        cinder.delete_cache_entries()
        end = cinder.quota_usage()
        cinder.delete_volume(baseline)
        cinder.assert_array_matches_db()
    quota = {
        "start": start["gigabytes"],
        "requested": (sum(c.requested_gib for c in creates) +
                      snapshot.volume_size),
        "after_creates": after["gigabytes"],
        "records_after_creates": records["gigabytes"],
        "after_deletes": end["gigabytes"],
    }
    return DemoRun(
        driver=cinder.DRIVER_LABEL, gateway=repr(cinder.sim),
        images=[_describe(name, meta, disk)
                for name, (meta, disk) in images.items()],
        creates=creates, create_totals=create_totals,
        all_totals=all_totals, quota=quota,
        content_checked=sum(1 for c in creates if c.failure is None))


def _check(cinder: Any, created: probe_mod.Create, disk: Any) -> None:
    """Compare a volume with its image byte for byte (unless it failed)."""
    if created.failure is None:
        cinder.assert_volume_content(created.volume, disk)


def _from_image(cinder: Any, probe: probe_mod.Probe, images: dict,
                name: str, size: int, note: str) -> probe_mod.Create:
    meta, disk = images[name]
    created = probe.create("%d GiB from image %s (%s)" % (size, name, note),
                           size, image_id=meta["id"])
    _check(cinder, created, disk)
    return created


def _direct_clone(cinder: Any, probe: probe_mod.Probe, images: dict,
                  source: Any) -> probe_mod.Create:
    """An image whose location is ``cinder://<the first seed volume>``."""
    meta, disk = images["seed-volume"]
    cinder.images.add_location(cinder.admin_ctx, meta["id"],
                               "cinder://%s" % source.id, {})
    # What an operator storing images in Cinder (Glance's cinder store)
    # sets so that Cinder itself clones such images; stock Cinder does
    # not look at cinder:// locations without it.
    cinder.override_config("allowed_direct_url_schemes", ["cinder"])
    created = probe.create(
        "%d GiB from image seed-volume (raw; location cinder://<volume 1>, "
        "a 60 GiB volume; allowed_direct_url_schemes = cinder)"
        % DIRECT_CLONE_GIB, DIRECT_CLONE_GIB, image_id=meta["id"])
    _check(cinder, created, disk)
    return created


def _from_snapshot(cinder: Any, probe: probe_mod.Probe, images: dict,
                   snapshot: Any) -> probe_mod.Create:
    # Cinder's API refuses a volume smaller than the snapshot's recorded
    # size: 10 GiB for Cinder's driver (it keeps the requested size of a
    # volume made from an image), 16 GiB (the array size) for ours.
    size = max(FROM_SNAPSHOT_GIB, snapshot.volume_size)
    created = probe.create(
        "%d GiB from a snapshot of the %d GiB volume (recorded %d GiB)"
        % (size, SMALL_SOURCE_GIB, snapshot.volume_size), size,
        snapshot=snapshot)
    _check(cinder, created, images["small-raw"][1])
    return created


def _vtree_full(cinder: Any, probe: probe_mod.Probe,
                images: dict) -> probe_mod.Create:
    """A cache hit whose entry's vtree is full (array rc 182).

    A real array refuses the 127th snapshot of a vtree; here the
    simulator's limit is lowered to the snapshots the small image's entry
    vtree holds, so the next clone meets the same refusal without 120 more
    creates (``tools.bench`` does it at 126). The small image keeps the
    host-assisted copy of the entry short (8 GiB).
    """
    meta, disk = images["small-raw"]
    entry = cinder.cache_volume(meta["id"])
    vtree = cinder.array_volume(entry.provider_id).vtree_id
    cinder.sim.array.snapshot_limit = cinder.sim.array.snapshot_count(vtree)
    created = probe.create(
        "%d GiB from image small-raw, its cache entry's vtree full (array "
        "limit lowered to the %d snapshots it holds)"
        % (SMALL_SOURCE_GIB, cinder.sim.array.snapshot_limit),
        SMALL_SOURCE_GIB, image_id=meta["id"])
    _check(cinder, created, disk)
    return created
