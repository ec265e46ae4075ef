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
"""Attaching volumes to the cinder-volume host for a host-assisted copy.

Cinder's ``_attach_volume`` and ``_detach_volume`` go through the driver's
``initialize_connection`` and ``terminate_connection``, which on an SDC ask
the gateway ten times per volume: the SDC's id by its GUID, the SDC, the
volume (already mapped?), the mapping, and the SDC's volumes (is it
mapped now?), and the same five again to unmap it. A copy attaches two
volumes, so a vtree rotation cost twenty calls where a cache miss, which
attaches one, costs ten.

Where the installed Cinder maps volumes to the SDC itself (27 on; see
:data:`powerflex_cache_driver.compat.DRIVER_MAPS_VOLUMES`),
:class:`HostAttacher` maps with the array's own answers instead: the SDC's
id is looked up once per copy, a source volume's mappings are read once (a
volume mapped here already, for an instance on this host or by Cinder, is
left as it was found), and os-brick's connector (given ``sdc_guid``, as
Cinder gives it) only waits for the device, which proves the mapping. A
volume type's QoS limits are set on the mapping as Cinder's
``initialize_connection`` sets them. Six calls for a two-volume copy.
Which copies hold which mapping, across every volume service of this host,
is kept by :mod:`powerflex_cache_driver.host_mappings`: a mapping is
removed by the last copy holding it, only when a copy made it, and after a
copy killed mid-way by the next copy of the volume or the first copy after
the service starts again.

Everywhere else (Cinder 25 and 26, where os-brick maps; NVMe-TCP) the
copy attaches through Cinder's own ``_attach_volume``.
"""

from typing import Any, Optional
import uuid

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder.i18n import _
from cinder import objects
from cinder.objects import fields
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils
from oslo_log import log as logging
from oslo_utils import excutils

from powerflex_cache_driver import compat
from powerflex_cache_driver import host_mappings
from powerflex_cache_driver import lost_answer

LOG = logging.getLogger(__name__)

ALREADY_MAPPED_HERE = (81, 4037)
"""``addMappedSdc`` rc: the volume is mapped to this SDC (before 4, 4 on)."""

NOT_MAPPED_HERE = (84, 4039)
"""``removeMappedSdc`` rc: the volume is not mapped to this SDC."""

_SWEPT: set[str] = set()
"""The SDCs whose left mappings this process swept."""

_MAP_URL = "/instances/Volume::%(vol_id)s/action/addMappedSdc"
_UNMAP_URL = "/instances/Volume::%(vol_id)s/action/removeMappedSdc"


def _error_code(response: Any) -> Optional[int]:
    if isinstance(response, dict):
        code = response.get("errorCode")
        if isinstance(code, int):
            return code
    return None


def _message(response: Any) -> str:
    if isinstance(response, dict) and response.get("message"):
        return str(response["message"])
    return str(response)


def driver_maps_sdc(driver: Any) -> bool:
    """Whether copies through ``driver`` map volumes to the SDC here.

    Where the installed Cinder maps volumes itself and the driver speaks
    to an SDC (not NVMe-TCP); then
    :mod:`powerflex_cache_driver.host_mappings` keeps the record of the
    copies' mappings.
    """
    return (compat.DRIVER_MAPS_VOLUMES and
            getattr(driver, "storage_protocol", None) == "scaleio")


class HostAttacher:
    """Attach volumes to this host for one copy, and detach them.

    One instance serves one copy: it remembers this host's SDC id and which
    volumes were made for the copy.
    """

    def __init__(self, driver: Any, properties: dict) -> None:
        """``properties``: this host's os-brick connector properties."""
        self.driver = driver
        self.properties = properties
        self._sdc_id: Optional[str] = None
        self._copy_id = uuid.uuid4().hex
        self._new: set[str] = set()

    @property
    def maps_itself(self) -> bool:
        """Whether volumes are mapped here rather than by Cinder's path."""
        return (driver_maps_sdc(self.driver) and
                bool(self.properties.get("sdc_guid")))

    def attach(self, context: Any, volume: Any, new: bool = False) -> dict:
        """Attach ``volume`` to this host; unmap it again if that fails.

        :param new: the volume was made for this copy, so nothing else
            can have mapped it.
        :returns: Cinder's attach info (``conn``, ``device``,
            ``connector``); ``device["path"]`` is the block device.
        """
        if self.maps_itself:
            return self._attach_sdc(volume, new)
        # Cinder's ``_attach_volume`` leaves the volume mapped when the
        # mapping was made but its answer was lost (or a later step of the
        # connection failed); nothing would unmap it afterwards.
        try:
            return self.driver._attach_volume(context, volume,
                                              self.properties)[0]
        except Exception:
            with excutils.save_and_reraise_exception():
                try:
                    self.driver.terminate_connection(volume, self.properties,
                                                     force=True)
                except Exception:
                    LOG.warning("Could not unmap volume %s after a failed "
                                "attach.", volume.id, exc_info=True)

    def detach(self, context: Any, attach_info: dict, volume: Any) -> None:
        """Detach a volume after a copy.

        On an SDC the mapping is removed when this copy made it and no
        other copy holds it (:mod:`powerflex_cache_driver.host_mappings`).
        Otherwise a detach whose unmap failed although the volume is no
        longer mapped to this host (something else unmapped it meanwhile)
        did what it had to.
        """
        if self.maps_itself:
            try:
                attach_info["connector"].disconnect_volume(
                    attach_info["conn"]["data"], attach_info["device"],
                    force=True)
            finally:
                self._release(volume)
            return
        try:
            self.driver._detach_volume(context, attach_info, volume,
                                       self.properties, force=True)
        except Exception:
            with excutils.save_and_reraise_exception() as ctxt:
                if self._mapped_here(volume):
                    LOG.error("Could not detach volume %s after a copy.",
                              volume.id)
                else:
                    LOG.warning("Volume %s: the detach after a copy "
                                "failed, but the volume is not mapped to "
                                "this host any more; going on.", volume.id,
                                exc_info=True)
                    ctxt.reraise = False

    # -- mapping to the SDC ---------------------------------------------------

    def _sdc(self) -> str:
        if self._sdc_id is None:
            self._sdc_id = self.driver._get_client().query_sdc_id_by_guid(
                self.properties["sdc_guid"])
        return self._sdc_id

    def _key(self, volume: Any) -> str:
        return host_mappings.key_of(self._sdc(), volume.provider_id)

    def _attach_sdc(self, volume: Any, new: bool) -> dict:
        self._hold(volume, new)
        try:
            conn = {"driver_volume_type": "scaleio",
                    "data": {"scaleIO_volname":
                             flex_utils.id_to_base64(volume.id),
                             "scaleIO_volume_id": volume.provider_id,
                             "sdc_guid": self.properties["sdc_guid"]}}
            return self.driver._connect_device(conn)
        except Exception:
            with excutils.save_and_reraise_exception():
                try:
                    self._release(volume)
                except Exception:
                    LOG.warning("Could not unmap volume %s after a failed "
                                "attach.", volume.id, exc_info=True)

    def _hold(self, volume: Any, new: bool) -> None:
        """Have ``volume`` mapped here and held by this copy.

        A mapping another copy holds is shared; one left by a copy whose
        process is gone is taken over; otherwise the volume is mapped.
        """
        if new:
            self._new.add(volume.id)
        with host_mappings.locked(self._key(volume)) as record:
            record.volume_id = volume.id
            dead = record.drop_dead_holders()
            if dead:
                LOG.info("Volume %(vol)s (%(pid)s): %(count)d copies that "
                         "held its mapping to this host ended with their "
                         "process.", {"vol": volume.id,
                                      "pid": volume.provider_id,
                                      "count": len(dead)})
            if record.holders:
                record.holders[self._copy_id] = host_mappings.this_process()
                return
            try:
                self._map(volume, new, record)
            except Exception:
                with excutils.save_and_reraise_exception():
                    record.holders.pop(self._copy_id, None)
                    if record.ours:
                        self._unmap_quietly(volume, record)

    def _release(self, volume: Any) -> None:
        """End this copy's hold on ``volume``; unmap it if it was the last.

        When the unmap fails, the record keeps the mapping as a copy's,
        for the next copy of the volume or the next :meth:`sweep` to
        remove.
        """
        with host_mappings.locked(self._key(volume)) as record:
            record.holders.pop(self._copy_id, None)
            record.drop_dead_holders()
            if not record.holders and record.ours:
                self._unmap_unless_attached(volume, record)

    def sweep_once(self) -> None:
        """:meth:`sweep`, at the first copy of this process on an SDC."""
        if not self.maps_itself or self._sdc() in _SWEPT:
            return
        try:
            self.sweep()
            _SWEPT.add(self._sdc())
        except Exception:
            LOG.warning("Could not look for volumes that copies left mapped "
                        "to this host when their process ended.",
                        exc_info=True)

    def sweep(self, volume_id: Optional[str] = None) -> None:
        """Remove the mappings copies left when their process ended.

        A copy killed mid-way (its service was stopped or crashed) left
        its volumes mapped to this host, and nothing else would unmap
        them until they are deleted; the first copy after the service
        starts removes them, and so does the next copy of each volume.

        :param volume_id: only the mappings of this Cinder volume.
        """
        for stale in host_mappings.stale_records():
            key = stale.key
            if host_mappings.sdc_id_of(key) != self._sdc():
                continue
            with host_mappings.locked(key) as record:
                if volume_id is not None and record.volume_id != volume_id:
                    continue
                record.drop_dead_holders()
                if record.holders or not record.ours:
                    continue
                volume = objects.Volume(
                    id=record.volume_id,
                    provider_id=host_mappings.provider_id_of(key))
                try:
                    self._unmap_unless_attached(volume, record)
                except Exception:
                    LOG.warning("Could not remove the mapping of volume "
                                "%(vol)s (%(pid)s) to this host that a copy "
                                "left when its process ended; the next copy "
                                "of the volume tries again.",
                                {"vol": volume.id,
                                 "pid": volume.provider_id}, exc_info=True)
                    continue
                LOG.info("Removed the mapping of volume %(vol)s (%(pid)s) "
                         "to this host that a copy left when its process "
                         "ended.", {"vol": volume.id,
                                    "pid": volume.provider_id})

    def _unmap_unless_attached(self, volume: Any,
                               record: host_mappings.Record) -> None:
        """Remove a copy's mapping, unless Cinder attached the volume here.

        A volume attached to this host while a copy held it (Cinder found
        the mapping in place) keeps its mapping for that attachment.
        """
        attachment = (None if volume.id in self._new else
                      self._attached_here(volume))
        if attachment == "unknown":
            # Whether Cinder attached it here could not be read: the
            # record stays the copy's, for the next sweep or copy.
            return
        if attachment:
            LOG.info("Volume %(vol)s was attached to this host (attachment "
                     "%(att)s) while a copy held it; its mapping stays for "
                     "that attachment.", {"vol": volume.id,
                                          "att": attachment})
            record.ours = False
            return
        self._unmap(volume, record)

    def _unmap(self, volume: Any, record: host_mappings.Record) -> None:
        """Remove a copy's mapping of ``volume``; the record forgets it.

        "Not mapped here" (rc 84, 4039) and "no such volume" are answers:
        the mapping is gone.

        :raises VolumeBackendAPIException: the array kept the mapping.
        """
        sdc_id = self._sdc()
        # The lock Cinder's terminate_connection takes for the volume.
        with coordination.COORDINATOR.get_lock(
                "powerflex-vol-%s" % volume.id):
            answer, response = self.driver._get_client(
            ).execute_powerflex_post_request(
                _UNMAP_URL, {"sdcId": sdc_id}, vol_id=volume.provider_id)
        code = _error_code(response)
        if answer.status_code == 200:
            LOG.debug("Volume %(vol)s (%(pid)s) unmapped from SDC %(sdc)s "
                      "after a copy.", {"vol": volume.id,
                                        "pid": volume.provider_id,
                                        "sdc": sdc_id})
        elif code in NOT_MAPPED_HERE or code in lost_answer.NOT_FOUND_CODES:
            LOG.info("Volume %(vol)s (%(pid)s) was not mapped to SDC "
                     "%(sdc)s any more at the end of a copy.",
                     {"vol": volume.id, "pid": volume.provider_id,
                      "sdc": sdc_id})
        else:
            raise exception.VolumeBackendAPIException(data=_(
                "Failed to unmap volume %(vol)s (%(pid)s) from SDC %(sdc)s "
                "after a copy: %(err)s.") % {
                    "vol": volume.id, "pid": volume.provider_id,
                    "sdc": sdc_id, "err": _message(response)})
        record.ours = False

    def _unmap_quietly(self, volume: Any,
                       record: host_mappings.Record) -> None:
        try:
            self._unmap_unless_attached(volume, record)
        except Exception:
            LOG.warning("Could not unmap volume %s after a failed attach; "
                        "the next copy of the volume unmaps it.", volume.id,
                        exc_info=True)

    def _attached_here(self, volume: Any) -> Optional[str]:
        """The id of an attachment of ``volume`` to this host, if any."""
        guid = self.properties.get("sdc_guid")
        host = self.properties.get("host")
        try:
            attachments = objects.VolumeAttachmentList.get_all_by_volume_id(
                cinder_context.get_admin_context(), volume.id)
        except Exception:
            LOG.warning("Volume %s: could not read its attachments; its "
                        "mapping to this host stays, in case one is "
                        "here.", volume.id, exc_info=True)
            return "unknown"
        for attachment in attachments:
            if attachment.attach_status == fields.VolumeAttachStatus.DETACHED:
                continue
            connector = attachment.connector or {}
            if ((guid and connector.get("sdc_guid") == guid) or
                    (host and attachment.attached_host == host)):
                return attachment.id
        return None

    def _map(self, volume: Any, new: bool,
             record: host_mappings.Record) -> None:
        """Map ``volume`` here unless it is; hold it for this copy.

        ``record.ours`` tells whether a copy made the mapping. Before the
        array is asked, the record says the mapping is a copy's, so that
        a process killed during the request leaves it to be removed.

        :param record: no copy holds the mapping; ``ours`` when a copy
            left it (its process is gone, or its unmap failed).
        """
        client = self.driver._get_client()
        sdc_id = self._sdc()
        was_ours = record.ours
        if not new and not was_ours:
            mappings = client.query_volume(
                volume.provider_id).get("mappedSdcInfo") or []
            if any(m.get("sdcId") == sdc_id for m in mappings):
                LOG.info("Volume %(vol)s (%(pid)s) is mapped to this host's "
                         "SDC %(sdc)s already; it stays mapped after the "
                         "copy.", {"vol": volume.id,
                                   "pid": volume.provider_id, "sdc": sdc_id})
                record.holders[self._copy_id] = host_mappings.this_process()
                return
        record.ours = True
        record.holders[self._copy_id] = host_mappings.this_process()
        host_mappings.save(record)
        params = {"sdcId": sdc_id, "allowMultipleMappings": "True"}
        # A lost answer, a timeout or a gateway error leaves the record
        # saying the mapping (which may have been made) is a copy's.
        answer, response = client.execute_powerflex_post_request(
            _MAP_URL, params, vol_id=volume.provider_id)
        if answer.status_code == 200:
            LOG.debug("Volume %(vol)s (%(pid)s) mapped to SDC %(sdc)s for a "
                      "copy.", {"vol": volume.id, "pid": volume.provider_id,
                                "sdc": sdc_id})
            self._set_qos_limits(client, volume, sdc_id)
            return
        if _error_code(response) in ALREADY_MAPPED_HERE:
            # A new volume, or one a copy left mapped: the mapping is a
            # copy's. Otherwise something mapped it since the query above:
            # it is not.
            record.ours = new or was_ours
            return
        if answer.status_code < 500:
            record.ours = was_ours
        raise exception.VolumeBackendAPIException(data=_(
            "Failed to map volume %(vol)s (%(pid)s) to SDC %(sdc)s for a "
            "copy: %(err)s.") % {"vol": volume.id, "pid": volume.provider_id,
                                 "sdc": sdc_id, "err": _message(response)})

    def _set_qos_limits(self, client: Any, volume: Any, sdc_id: str) -> None:
        """The volume type's QoS limits, as Cinder sets them when mapping."""
        storage_type = dict(self.driver._get_volumetype_extraspecs(volume))
        storage_type.update(self.driver._get_volumetype_qos(volume))
        size = flex_utils.round_to_num_gran(volume.size)
        iops = self.driver._get_iops_limit(size, storage_type)
        bandwidth = self.driver._get_bandwidth_limit(size, storage_type)
        if iops is not None or bandwidth is not None:
            client.set_sdc_limits(volume.provider_id, sdc_id, bandwidth,
                                  iops)

    def _mapped_here(self, volume: Any) -> bool:
        """Whether ``volume`` is mapped to this host (True if unsure).

        This host is the SDC of the connector's ``sdc_guid`` or the
        NVMe host of its ``nqn``.
        """
        client = self.driver._get_client()
        try:
            mappings = client.query_volume(
                volume.provider_id).get("mappedSdcInfo") or []
            if not mappings:
                return False
            here = set()
            guid = self.properties.get("sdc_guid")
            if guid and hasattr(client, "query_sdc_id_by_guid"):
                here.add(client.query_sdc_id_by_guid(guid))
        except Exception:
            LOG.debug("Could not read the mappings of volume %s.",
                      volume.id, exc_info=True)
            return True
        nqn = self.properties.get("nqn")
        if not here and not nqn:
            return True
        return any(m.get("sdcId") in here or
                   (nqn is not None and m.get("nqn") == nqn)
                   for m in mappings)
