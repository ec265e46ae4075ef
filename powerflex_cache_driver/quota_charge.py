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
"""Quota for the rounding: charge what Cinder records, not what was asked.

Cinder's API reserves quota for the requested size. The driver reports the
array size, which the array rounds up to its granularity, and Cinder records
it. :class:`RoundingCharge` reserves and commits the difference for the
volume's project (``gigabytes`` and ``gigabytes_<volume type>``) before
anything is made on the array, and gives it back if the create then fails,
so that each project's usage always equals the sum of its volumes' recorded
sizes.

Cinder counts only volumes whose ``use_quota`` is True: its temporary
volumes (the destination of a host-assisted migration or retype, the
volume of a generic revert to a snapshot, a backup's copy of an attached
volume...) are made and deleted without touching the quota, so nothing is
charged for them either. A migration that completes swaps the records: the
source record, counted, takes the destination's size and volume type, and
is charged then (:meth:`RoundingCharge.cover` on the source with the
destination's type).

Each charge (and each refund) is one database transaction, in which
Cinder's quota engine reads what it needs and reserves, and Cinder's
``reservation_commit`` commits (Cinder's ``QUOTAS.reserve`` and
``QUOTAS.commit`` would take five transactions): a charge is made whole or
not at all. A check (:meth:`RoundingCharge.check`) is the same
transaction without the commit, rolled back.
"""

from typing import Any, Optional

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder import exception
from cinder.i18n import _
from cinder import quota
from oslo_db import api as oslo_db_api
from oslo_log import log as logging

from powerflex_cache_driver import compat

LOG = logging.getLogger(__name__)
QUOTAS = quota.QUOTAS


class _CheckDone(Exception):
    """Ends a checking transaction, so that it writes nothing."""


class RoundingExceedsQuota(exception.QuotaError):
    """The project has room for the requested size, not the array size."""

    message = _("Volume %(volume_id)s: the array holds %(array_size)s GiB "
                "for the requested %(requested)s GiB, and project "
                "%(project_id)s has no room for the %(extra)s GiB more: "
                "quota %(resource)s is %(limit)s GiB with %(consumed)s GiB "
                "consumed. Request a size the array holds exactly (a "
                "multiple of %(granularity)s GiB) or raise the quota.")


class RoundingCharge:
    """Quota charged for one volume beyond what Cinder reserved for it.

    ``volume.size`` is what Cinder reserved (the requested size) unless
    ``reserved_gib`` says otherwise;
    :meth:`cover` raises the charge so that the project pays for a recorded
    size, :meth:`refund` gives back everything charged. A volume Cinder
    does not count (``use_quota`` False) is charged nothing.

    :param volume_type_id: the type whose ``gigabytes_<type>`` is charged,
        when not the volume's own (a retype's destination type).
    :param reserved_gib: what Cinder reserved, when not ``volume.size``
        (an extend reserves the new size).
    """

    def __init__(self, volume: Any, granularity_gib: int,
                 volume_type_id: Optional[str] = None,
                 reserved_gib: Optional[int] = None) -> None:
        self.volume = volume
        self.granularity_gib = granularity_gib
        self.volume_type_id = volume_type_id or volume.volume_type_id
        self.reserved_gib = (volume.size if reserved_gib is None
                             else reserved_gib)
        self.charged_gib = 0
        self._uncounted_logged = False

    def _counted(self) -> bool:
        """Whether Cinder counts the volume in its project's quota."""
        if self.volume.use_quota:
            return True
        if not self._uncounted_logged:
            self._uncounted_logged = True
            LOG.info("Volume %(vol)s is a temporary volume of Cinder's "
                     "(use_quota False), not counted in project "
                     "%(project)s's quota: no quota charged for the size "
                     "the array holds.",
                     {"vol": self.volume.id,
                      "project": self.volume.project_id})
        return False

    def _delta(self, recorded_gib: int) -> int:
        """The GiB ``recorded_gib`` needs beyond reservation and charge."""
        delta = recorded_gib - self.reserved_gib - self.charged_gib
        if delta <= 0 or not self._counted():
            return 0
        return delta

    def _exceeds(self, error: Any, recorded_gib: int,
                 delta: int) -> RoundingExceedsQuota:
        """The refusal to tell the user for Cinder's ``OverQuota``."""
        over = error.kwargs["overs"][0]
        usage = error.kwargs["usages"][over]
        return RoundingExceedsQuota(
            volume_id=self.volume.id, array_size=recorded_gib,
            requested=self.reserved_gib,
            project_id=self.volume.project_id, extra=delta,
            resource=over, limit=error.kwargs["quotas"][over],
            consumed=usage["in_use"] + usage["reserved"],
            granularity=self.granularity_gib)

    def _volume_type(self, admin: Any) -> Optional[Any]:
        """The volume type charged, without a read when the volume has it."""
        if not self.volume_type_id:
            return None
        loaded = (self.volume.volume_type
                  if self.volume.obj_attr_is_set("volume_type") else None)
        if loaded is not None and loaded.id == self.volume_type_id:
            return loaded
        # As Cinder's add_volume_type_opts: a type since deleted too.
        return db_api.volume_type_get(admin, self.volume_type_id,
                                      inactive=True)

    def _resources(self, admin: Any) -> dict[str, Any]:
        """The quota resources charged: ``gigabytes`` and its type's.

        The ones Cinder's ``QUOTAS.resources`` and
        ``QUOTAS.add_volume_type_opts`` name for a volume's gigabytes,
        made here from the volume's type rather than from a read of every
        volume type in the cloud on each charge.
        """
        gigabytes = quota.ReservableResource("gigabytes", "_sync_gigabytes",
                                             "quota_gigabytes")
        resources = {gigabytes.name: gigabytes}
        volume_type = self._volume_type(admin)
        if volume_type is not None:
            typed = quota.VolumeTypeResource("gigabytes", volume_type)
            resources[typed.name] = typed
        return resources

    @oslo_db_api.wrap_db_retry(max_retries=5, retry_on_deadlock=True)
    def _reservations(self, recorded_gib: int, delta: int,
                      commit: bool = False, check: bool = False) -> list:
        """Reserve ``delta`` GiB more for the project, in one transaction.

        Cinder's quota engine reads the project's limits and usage and
        reserves (its driver's ``reserve``, as ``QUOTAS.reserve`` calls
        it) for ``gigabytes`` and the type's (:meth:`_resources`); with
        ``commit``, Cinder's ``reservation_commit`` then commits the
        reservations, all in one database transaction
        (:func:`powerflex_cache_driver.compat.db_transaction`), retried
        whole on a deadlock: the charge is made whole or not at all.

        :param commit: commit the reservations in the transaction.
        :param check: undo the transaction once the reservations are made:
            nothing is reserved, the project has room.
        :returns: the reservations made and left open (none for a check or
            a commit).
        :raises RoundingExceedsQuota: the project has no room for it;
            nothing is reserved.
        """
        admin = cinder_context.get_admin_context()
        refused = None
        reservations: list = []
        # Before the transaction: a read of the volume type, where one is
        # needed, would end it on an SQLite database (one connection every
        # session shares).
        resources = self._resources(admin)
        deltas = {name: delta for name in resources}
        try:
            with compat.db_transaction(admin):
                try:
                    # What QUOTAS.reserve does, with the resources read.
                    # It must come first in the transaction: Cinder's
                    # quota_reserve retries itself on a deadlock, which
                    # after statements of this transaction would run on
                    # without them.
                    reservations = QUOTAS._driver.reserve(
                        admin, resources, deltas,
                        project_id=self.volume.project_id)
                except exception.OverQuota as error:
                    # Not raised in the transaction: as in Cinder's own
                    # reserve, the usage it refreshed on the way is kept.
                    refused = error
                else:
                    if check:
                        raise _CheckDone()
                    if commit:
                        compat.commit_reservations_joined(
                            admin, reservations,
                            project_id=self.volume.project_id)
                        reservations = []
        except _CheckDone:
            reservations = []
        if refused is not None:
            raise self._exceeds(refused, recorded_gib, delta)
        return reservations

    def _reserve(self, recorded_gib: int, keep: bool) -> int:
        """Charge what ``recorded_gib`` needs beyond the charge; return it.

        The reservation is committed at once (``keep``), or not made (a
        check).

        :raises RoundingExceedsQuota: the project has no room.
        """
        delta = self._delta(recorded_gib)
        if delta:
            self._reservations(recorded_gib, delta, commit=keep,
                               check=not keep)
        return delta

    def reserve(self, recorded_gib: int) -> list:
        """Reserve what ``recorded_gib`` needs, to commit with Cinder's own.

        For an extend: the reservations join the ones Cinder's API made
        for the size asked, which Cinder commits when it records the size,
        rolls back when the extend fails, and expires when the service
        dies before either.

        :returns: the reservations (none when nothing more is needed).
        :raises RoundingExceedsQuota: the project has no room.
        """
        delta = self._delta(recorded_gib)
        return self._reservations(recorded_gib, delta) if delta else []

    def check(self, recorded_gib: int) -> None:
        """Make sure the project has room for ``recorded_gib``; charge none.

        :raises RoundingExceedsQuota: it has not.
        """
        self._reserve(recorded_gib, keep=False)

    def cover(self, recorded_gib: int) -> None:
        """Charge the project so that it pays for ``recorded_gib``.

        Nothing is charged for a volume Cinder does not count.

        :raises RoundingExceedsQuota: the project has no room; nothing is
            charged by this call.
        """
        delta = self._reserve(recorded_gib, keep=True)
        if not delta:
            return
        self.charged_gib += delta
        LOG.info("Volume %(vol)s: charged project %(project)s %(delta)s GiB "
                 "more quota for the %(size)s GiB the array holds "
                 "(requested %(req)s GiB).",
                 {"vol": self.volume.id, "project": self.volume.project_id,
                  "delta": delta, "size": recorded_gib,
                  "req": self.reserved_gib})

    def refund(self) -> None:
        """Give back all quota charged so far (the create failed)."""
        if not self.charged_gib:
            return
        try:
            self._reservations(self.reserved_gib, -self.charged_gib,
                               commit=True)
        except Exception:
            LOG.exception("Volume %(vol)s: could not give back %(delta)s GiB "
                          "of quota to project %(project)s; resync it with "
                          "cinder-manage quota sync.",
                          {"vol": self.volume.id, "delta": self.charged_gib,
                           "project": self.volume.project_id})
            return
        LOG.info("Volume %(vol)s: gave back %(delta)s GiB of quota to "
                 "project %(project)s.",
                 {"vol": self.volume.id, "delta": self.charged_gib,
                  "project": self.volume.project_id})
        self.charged_gib = 0
