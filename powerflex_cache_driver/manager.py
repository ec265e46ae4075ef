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

This manager is Cinder's own with two changes:

* before each stats report it counts every pool the driver reports in the
  database, as the service does at start-up (every volume of this backend,
  or of its cluster, whatever its status), so the figure the scheduler
  gets equals the sum of the recorded sizes of the pool's volumes. One
  statement counts all the pools of a report (:func:`pool_summaries`):
  it reads volume rows only (a host's pools' rows through Cinder's index;
  a cluster's, having none on ``cluster_name``, the whole table once),
  where Cinder's ``get_volume_summary``, once per pool, would also read
  the metadata of every volume in the cloud;
* an extend records the size the array holds after it, as every create
  of this package's driver does, instead of the size asked for: Cinder's
  manager writes the requested size after the driver returns, so an
  8 GiB volume extended to 10 GiB would record 10 while the guest sees
  16. The quota for the rounding is reserved before the array is asked
  (:meth:`PowerFlexCacheMixin.reserve_extend
  <powerflex_cache_driver.driver.PowerFlexCacheMixin.reserve_extend>`)
  and committed with Cinder's own reservations; a project without room
  for it gets a user message and its volume back unchanged, and the
  array is not asked.

Both apply to the backends whose driver is this package's; with another
driver this manager is Cinder's.
"""

from collections.abc import Sequence
from typing import Any

from cinder import context as cinder_context
from cinder import exception
from cinder.message import message_field
from cinder import quota
from cinder.volume import manager
from cinder.volume import volume_utils
from oslo_log import log as logging
import sqlalchemy as sa

from powerflex_cache_driver import compat
from powerflex_cache_driver import quota_charge

LOG = logging.getLogger(__name__)

CLASS_PATH = "powerflex_cache_driver.manager.VolumeManager"
"""The ``volume_manager`` value that selects this manager."""


def told_apart(value: str, other: str) -> bool:
    """Whether no host (or cluster_name) can be in both pools' filters.

    Cinder matches a value holding a pool (``...#pool``) whole, with
    ``=``: byte for byte on MySQL (``= BINARY(...)``), so no row can
    equal two distinct values. Only with a database URL Cinder does not
    take for MySQL's (``mariadb://``) would it compare in the column's
    collation, where case and trailing spaces do not count (beyond
    printable ASCII, more): values equal but for those are not told
    apart. Nor is a value without a pool, which Cinder matches with
    ``LIKE '<value>#%'`` too.
    """
    def plain(text: str) -> bool:
        return "#" in text and text.isascii() and text.isprintable()

    return (plain(value) and plain(other)
            and value.rstrip(" ").lower() != other.rstrip(" ").lower())


def _rounds(values: dict[str, str]) -> list[dict[str, str]]:
    """Pools (name -> filter value) in rounds of pools told apart.

    One round, unless pool names are alike (:func:`told_apart`).
    """
    rounds: list[dict[str, str]] = []
    for pool, value in values.items():
        for round_ in rounds:
            if all(told_apart(value, other) for other in round_.values()):
                round_[pool] = value
                break
        else:
            rounds.append({pool: value})
    return rounds


def pool_summaries(ctxt: Any, backend: str, clustered: bool,
                   pools: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Count the volumes of pools and sum their sizes, in one statement.

    Each pool gets the count and size Cinder's
    ``VolumeList.get_volume_summary(ctxt, False, filters={"host" or
    "cluster_name": "<backend>#<pool>"})`` gives, from the same rows:
    those not deleted whose host (cluster_name when clustered) meets
    Cinder's own condition for that filter (``_filter_host``: the whole
    value, case and all, ``= BINARY(...)`` on MySQL), so a volume of
    ``pool10`` is not one of ``pool1``'s and one with a host but no pool
    is in none. Not the distinct metadata of every volume in the cloud,
    which get_volume_summary also reads and a count does not need.

    The statement reads the rows that meet any pool's condition and
    groups them by ``CASE WHEN`` <pool 1's condition> ``THEN 0 WHEN``...:
    the first pool whose condition a row meets, the only one when no
    row can meet two (:func:`told_apart`). Pools whose names are too
    alike for that are counted by a statement more. By ``host``, the
    database finds the pools' rows with Cinder's index on ``(deleted,
    host)`` and reads those only; there is no index on ``cluster_name``:
    a cluster's count reads the volume rows of the cloud, once for all
    its pools.

    :param backend: the service's host (``host@backend``), or its cluster
        (``cluster@backend``) when clustered: the volumes of a cluster may
        carry the host of any of its services.
    :param pools: the pool names the driver reports.
    :returns: pool name -> (volumes, GiB).
    """
    volume = compat.SQL_API.models.Volume
    field = volume.cluster_name if clustered else volume.host
    values = {pool: volume_utils.append_host(backend, pool) for pool in pools}
    summaries = dict.fromkeys(values, (0, 0))
    if not values:
        return summaries
    with compat.SQL_API.main_context_manager.reader.using(ctxt):
        for round_ in _rounds(values):
            names = list(round_)
            conditions = [compat.SQL_API._filter_host(field, value)
                          for value in round_.values()]
            which = sa.case(*[(condition, index) for index, condition
                              in enumerate(conditions)])
            query = compat.SQL_API.model_query(
                ctxt, which, sa.func.count(volume.id),
                sa.func.sum(volume.size), read_deleted="no").filter(
                    sa.or_(*conditions)).group_by(which)
            if not clustered and all("#" in value
                                     for value in round_.values()):
                # The same rows (what equals a value byte for byte is
                # equal to it in any collation), as a plain IN list on
                # the (deleted, host) index for a database that finds no
                # index range in the equalities with BINARY(...).
                query = query.filter(field.in_(sorted(round_.values())))
            for index, count, size in query.all():
                summaries[names[index]] = (int(count), int(size or 0))
    return summaries


class VolumeManager(manager.VolumeManager):
    """Cinder's volume manager; records array sizes, counts pools."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Volume id -> the array size an extend running leads to.
        self._extends: dict[str, int] = {}

    def extend_volume(self, context: Any, volume: Any, new_size: int,
                      reservations: Any) -> None:
        """Extend a volume; record the size the array then holds.

        The quota for the rounding is reserved first, beside what Cinder's
        API reserved for the size asked: Cinder commits both when it
        records the size, and rolls both back when the extend fails. When
        the project has no room, the extend is refused with a user
        message, the volume keeps its size and status, and nothing is
        sent to the array.
        """
        reserve_extend = getattr(self.driver, "reserve_extend", None)
        if reserve_extend is None or not self.driver.initialized:
            super().extend_volume(context, volume, new_size, reservations)
            return
        try:
            array_gib, more = reserve_extend(volume, new_size)
        except exception.QuotaError as error:
            self._refuse_extend(context, volume, new_size, reservations,
                                error)
            return
        except Exception:
            LOG.exception("Volume %s: could not reserve the quota for the "
                          "size the extend records.", volume.id)
            self.extend_volume_completion(context, volume, new_size,
                                          reservations, error=True)
            return
        self._extends[volume.id] = array_gib
        try:
            super().extend_volume(context, volume, new_size,
                                  list(reservations or []) + more)
        finally:
            self._extends.pop(volume.id, None)

    def extend_volume_completion(self, context: Any, volume: Any,
                                 new_size: int, reservations: Any,
                                 error: bool) -> None:
        """Finish an extend; record the array size when this manager ran it.

        Cinder commits the reservations and writes the size given here;
        the pool's running count and the ``resize.end`` notification carry
        it too.
        """
        planned = self._extends.pop(volume.id, None)
        if planned is not None and not error:
            new_size = self._recorded_size(volume, new_size, planned)
        super().extend_volume_completion(context, volume, new_size,
                                         reservations, error)

    def _recorded_size(self, volume: Any, new_size: int,
                       planned: int) -> int:
        """The size an extend records: what the array holds after it.

        ``planned`` is reserved; a volume grown on the array outside
        Cinder holds more, and the project is charged for that too.
        """
        held = self.driver.array_size_after_extend(volume.id) or planned
        if held > planned:
            charge = quota_charge.RoundingCharge(
                volume, self.driver._granularity(), reserved_gib=planned)
            try:
                charge.cover(held)
            except exception.QuotaError as error:
                LOG.error("Volume %(vol)s: records %(held)s GiB, what the "
                          "array holds (grown outside Cinder), without the "
                          "quota for it: %(error)s Sync the project's "
                          "usage with powerflex-cache-manage volumes "
                          "reconcile --fix.",
                          {"vol": volume.id, "held": held, "error": error})
        record = max(held, planned)
        if record > new_size:
            LOG.info("Volume %(vol)s: extended to %(req)s GiB; recording "
                     "%(array)s GiB, the size the array holds.",
                     {"vol": volume.id, "req": new_size, "array": record})
        return record

    def _refuse_extend(self, context: Any, volume: Any, new_size: int,
                       reservations: Any, error: Exception) -> None:
        """Give back the reservation and the status; tell the user why."""
        LOG.error("Volume %(vol)s: extend to %(new)s GiB refused: %(error)s",
                  {"vol": volume.id, "new": new_size, "error": error})
        try:
            quota.QUOTAS.rollback(context, reservations,
                                  project_id=volume.project_id)
        finally:
            volume.status = ("in-use" if volume.volume_attachment
                             else "available")
            volume.save()
            self.message_api.create(
                context, message_field.Action.EXTEND_VOLUME,
                resource_uuid=volume.id,
                detail=message_field.Detail.QUOTA_EXCEED)

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
        """Replace the running count of each pool by the database's.

        One statement counts them all (:func:`pool_summaries`); when it
        fails, every pool keeps its running count, and that is logged.
        """
        if not pool_names:
            return
        ctxt = cinder_context.get_admin_context()
        try:
            summaries = pool_summaries(ctxt, self.cluster or self.host,
                                       bool(self.cluster), pool_names)
        except Exception:
            LOG.exception("Could not count the allocated capacity of "
                          "pools %s in the database; reporting the "
                          "running counts.", ", ".join(pool_names))
            return
        for name in pool_names:
            _volumes, counted = summaries[name]
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
