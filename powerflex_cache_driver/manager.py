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
"""A volume manager whose pools report the allocated capacity Cinder records.

Set it in the ``[DEFAULT]`` section of the cinder-volume service's
cinder.conf, beside the backend's ``volume_driver``::

    volume_manager = powerflex_cache_driver.manager.VolumeManager

Cinder's volume manager keeps each pool's ``allocated_capacity_gb`` as a
running count: it adds a volume's size when its create starts and subtracts
the size when the volume is deleted, and counts the database only when the
service starts. With a driver that records more than was requested, the two
differ: a 10 GiB request adds 10 GiB, the volume is recorded at the 16 GiB
the array holds, and its delete subtracts 16. The image-volume cache
volumes the driver makes itself are never added and are subtracted when
Cinder evicts them. So the figure drifts below what the pool holds with
every delete, until the service restarts.

This manager is Cinder's own with one change: before each stats report it
counts every pool the driver reports in the database, as the service does
at start-up (every volume of this backend, or of its cluster, whatever its
status), so the figure the scheduler gets equals the sum of the recorded
sizes of the pool's volumes. It applies to every backend of the service
and does nothing else.
"""

from typing import Any

from cinder import context as cinder_context
from cinder import objects
from cinder.volume import manager
from cinder.volume import volume_utils
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

CLASS_PATH = "powerflex_cache_driver.manager.VolumeManager"
"""The ``volume_manager`` value that selects this manager."""


def pool_allocated_gib(ctxt: Any, backend: str, clustered: bool,
                       pool: str) -> int:
    """Sum the recorded sizes of a pool's volumes in Cinder's database.

    :param backend: the service's host (``host@backend``), or its cluster
        (``cluster@backend``) when clustered: the volumes of a cluster may
        carry the host of any of its services.
    :param pool: the pool name the driver reports.
    """
    field = "cluster_name" if clustered else "host"
    filters = {field: volume_utils.append_host(backend, pool)}
    _count, size, _metadata = objects.VolumeList.get_volume_summary(
        ctxt, False, filters=filters)
    return int(size)


class VolumeManager(manager.VolumeManager):
    """Cinder's volume manager, counting allocated capacity at each report."""

    def _append_volume_stats(self, vol_stats: dict) -> None:
        """Count each reported pool's allocated capacity, then append it.

        Called by Cinder's stats report with the driver's fresh stats. A
        pool the database cannot count keeps the running count.
        """
        pools = vol_stats.get("pools")
        if isinstance(pools, list):
            self._count_pools([pool["pool_name"] for pool in pools])
        super()._append_volume_stats(vol_stats)

    def _count_pools(self, pool_names: list[str]) -> None:
        """Replace the running count of each pool by the database's."""
        ctxt = cinder_context.get_admin_context()
        backend = self.cluster or self.host
        for name in pool_names:
            try:
                counted = pool_allocated_gib(ctxt, backend,
                                             bool(self.cluster), name)
            except Exception:
                LOG.exception("Could not count the allocated capacity of "
                              "pool %s in the database; reporting the "
                              "running count.", name)
                continue
            stats = self.stats["pools"].setdefault(
                name, {"allocated_capacity_gb": 0})
            running = stats.get("allocated_capacity_gb")
            if running != counted:
                LOG.debug("Pool %(pool)s: allocated_capacity_gb is "
                          "%(counted)s GiB in the database, %(running)s by "
                          "the running count; reporting %(counted)s.",
                          {"pool": name, "counted": counted,
                           "running": running})
            stats["allocated_capacity_gb"] = counted
