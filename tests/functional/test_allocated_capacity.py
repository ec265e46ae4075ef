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
"""The pools' ``allocated_capacity_gb``: what the scheduler is told.

Every step of the scenario publishes the service's capabilities the way
the manager does after a delete and every stats interval, and compares
each pool's ``allocated_capacity_gb`` with the sum of the sizes Cinder
records for the pool's volumes. The steps: a blank 10 GiB volume (16 on
the array and in the database), a cache miss (the driver makes the 8 GiB
entry itself), clones from the entry until its vtree is full and the
driver copies it into a new cache volume, a volume in the second pool, a
clone, a volume from a snapshot, an extend, then every volume and cache
entry deleted.

* With this package's ``volume_manager``, the figure equals the records
  after every step.
* With Cinder's (the control), the running count adds 10 GiB for the
  10 GiB request and subtracts the recorded 16 at the delete, and never
  adds the cache volumes the driver makes: it ends below zero with
  nothing left in the pool.
"""

import collections

from cinder import objects
from cinder.volume import volume_utils
from oslo_utils import units

from tests.functional import base
from tests.functional import cloud

GIB = units.Gi
MIB = units.Mi
SNAPSHOT_LIMIT = 3
"""A vtree of the cache entry plus three snapshots is full."""


class AllocatedCapacityScenario:
    """Create, clone, rotate and delete; the figure after each step."""

    SIMULATOR_OPTIONS = {"snapshot_limit": SNAPSHOT_LIMIT}
    BACKEND_OPTIONS = cloud.TWO_POOLS

    def reported(self) -> dict[str, int]:
        """Each pool's allocated_capacity_gb as published to schedulers."""
        self.manager.publish_service_capabilities(self.admin_ctx)
        return {pool["pool_name"]: pool["allocated_capacity_gb"]
                for pool in self.manager.last_capabilities["pools"]}

    def recorded(self) -> dict[str, int]:
        """Each pool's sum of the sizes Cinder records for its volumes."""
        sums = collections.Counter({cloud.POOL: 0, cloud.SECOND_POOL: 0})
        for volume in objects.VolumeList.get_all(self.admin_ctx):
            sums[volume_utils.extract_host(volume.host, "pool")] += (
                volume.size)
        return dict(sums)

    def run_steps(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """Run the scenario; (step, reported, recorded) after each step."""
        figures = []

        def step(name: str) -> None:
            figures.append((name, self.reported(), self.recorded()))

        step("start")
        blank, _unused = self.create_volume(10)
        step("blank 10 GiB")
        self.delete_volume(blank)
        step("blank deleted")
        meta, _image = self.make_image("img", GIB, [(0, MIB)], "alloc")
        from_image = []
        for _index in range(SNAPSHOT_LIMIT + 1):
            volume, _unused = self.create_volume(10, image_id=meta["id"])
            from_image.append(volume)
            step("from image, %d" % len(from_image))
        other, _unused = self.create_volume(10, pool=cloud.SECOND_POOL)
        step("blank 10 GiB in %s" % cloud.SECOND_POOL)
        clone, _unused = self.create_volume(16, source_volume=other)
        step("clone")
        snapshot, _unused = self.create_snapshot(clone)
        from_snapshot, _unused = self.create_volume(20, snapshot=snapshot)
        step("from snapshot")
        self.extend_volume(other, 30)
        step("extend to 30 GiB")
        self.delete_volume(from_snapshot)
        self.delete_snapshot(snapshot)
        for volume in from_image + [clone, other]:
            self.delete_volume(volume)
        step("user volumes deleted")
        self.delete_cache_entries()
        step("cache entries deleted")
        return figures


class TestAllocatedCapacityOurs(AllocatedCapacityScenario,
                                base.OurDriverTestCase):
    """This package's driver and volume manager."""

    def test_reported_equals_recorded_after_every_step(self) -> None:
        copies = self.spy(self.driver, "copy_volume_data_sparse")
        figures = self.run_steps()
        for name, reported, recorded in figures:
            self.assertEqual(recorded, reported, "after step %r" % name)
        # The scenario went where it says: the entry was rotated, both
        # pools held volumes, and nothing is left.
        self.assertEqual(1, len(copies))
        peak = {pool: max(recorded[pool] for _n, _r, recorded in figures)
                for pool in (cloud.POOL, cloud.SECOND_POOL)}
        # Four 16 GiB volumes and the 8 GiB entry; in the second pool 32
        # (extended to 30), 16 and 24 GiB.
        self.assertEqual({cloud.POOL: 16 * (SNAPSHOT_LIMIT + 1) + 8,
                          cloud.SECOND_POOL: 72}, peak)
        self.assertEqual({cloud.POOL: 0, cloud.SECOND_POOL: 0}, figures[-1][2])


class TestAllocatedCapacityCinderManager(AllocatedCapacityScenario,
                                         base.OurDriverTestCase):
    """This package's driver under Cinder's volume manager (the control)."""

    VOLUME_MANAGER = cloud.CINDER_MANAGER

    def test_running_count_drifts_below_the_records(self) -> None:
        figures = self.run_steps()
        name, reported, recorded = figures[2]
        self.assertEqual("blank deleted", name)
        # 10 GiB added for the request, the recorded 16 subtracted.
        self.assertEqual({cloud.POOL: -6, cloud.SECOND_POOL: 0}, reported)
        self.assertEqual({cloud.POOL: 0, cloud.SECOND_POOL: 0}, recorded)
        _name, reported, recorded = figures[-1]
        self.assertEqual({cloud.POOL: 0, cloud.SECOND_POOL: 0}, recorded)
        self.assertLess(reported[cloud.POOL], -6)
        self.assertLess(reported[cloud.SECOND_POOL], 0)
