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
id is looked up once per copy, ``addMappedSdc`` answering "already mapped
to this SDC" (rc 81, 4037 from PowerFlex 4) means somebody else mapped the
volume here and the mapping is left as it was found, and os-brick's
connector (given ``sdc_guid``, as Cinder gives it) only waits for the
device, which proves the mapping. A volume type's QoS limits are set on the
mapping as Cinder's ``initialize_connection`` sets them. Five calls for a
two-volume copy.

Everywhere else (Cinder 25 and 26, where os-brick maps; NVMe-TCP) the
copy attaches through Cinder's own ``_attach_volume``.
"""

from typing import Any, Optional

from cinder import coordination
from cinder import exception
from cinder.i18n import _
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils
from oslo_log import log as logging
from oslo_utils import excutils

from powerflex_cache_driver import compat

LOG = logging.getLogger(__name__)

ALREADY_MAPPED_HERE = (81, 4037)
"""``addMappedSdc`` rc: the volume is mapped to this SDC (before 4, 4 on)."""

NOT_MAPPED_HERE = (84, 4039)
"""``removeMappedSdc`` rc: the volume is not mapped to this SDC."""

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


class HostAttacher:
    """Attach volumes to this host for one copy, and detach them.

    One instance serves one copy: it remembers this host's SDC id and which
    volumes it mapped itself.
    """

    def __init__(self, driver: Any, properties: dict) -> None:
        """``properties``: this host's os-brick connector properties."""
        self.driver = driver
        self.properties = properties
        self._sdc_id: Optional[str] = None
        self._mapped: set[str] = set()

    @property
    def maps_itself(self) -> bool:
        """Whether volumes are mapped here rather than by Cinder's path."""
        return (compat.DRIVER_MAPS_VOLUMES and
                getattr(self.driver, "storage_protocol", None) == "scaleio"
                and bool(self.properties.get("sdc_guid")))

    def attach(self, context: Any, volume: Any) -> dict:
        """Attach ``volume`` to this host; unmap it again if that fails.

        :returns: Cinder's attach info (``conn``, ``device``,
            ``connector``); ``device["path"]`` is the block device.
        """
        if self.maps_itself:
            return self._attach_sdc(volume)
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

        A detach whose unmap failed although the volume is no longer
        mapped to this host (something else unmapped it meanwhile) did
        what it had to.
        """
        try:
            if self.maps_itself:
                self._detach_sdc(attach_info, volume)
            else:
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

    def _attach_sdc(self, volume: Any) -> dict:
        client = self.driver._get_client()
        sdc_id = self._sdc()
        try:
            self._map(client, volume, sdc_id)
            conn = {"driver_volume_type": "scaleio",
                    "data": {"scaleIO_volname":
                             flex_utils.id_to_base64(volume.id),
                             "scaleIO_volume_id": volume.provider_id,
                             "sdc_guid": self.properties["sdc_guid"]}}
            return self.driver._connect_device(conn)
        except Exception:
            with excutils.save_and_reraise_exception():
                if volume.id in self._mapped:
                    self._unmap_quietly(client, volume, sdc_id)

    def _map(self, client: Any, volume: Any, sdc_id: str) -> None:
        """Map ``volume`` here; remember it when this call mapped it."""
        params = {"sdcId": sdc_id, "allowMultipleMappings": "True"}
        try:
            answer, response = client.execute_powerflex_post_request(
                _MAP_URL, params, vol_id=volume.provider_id)
        except Exception:
            # The answer was lost: the mapping may have been made.
            self._mapped.add(volume.id)
            raise
        if answer.status_code == 200:
            self._mapped.add(volume.id)
            LOG.debug("Volume %(vol)s (%(pid)s) mapped to SDC %(sdc)s for a "
                      "copy.", {"vol": volume.id, "pid": volume.provider_id,
                                "sdc": sdc_id})
            self._set_qos_limits(client, volume, sdc_id)
            return
        if _error_code(response) in ALREADY_MAPPED_HERE:
            LOG.info("Volume %(vol)s (%(pid)s) is already mapped to this "
                     "host's SDC %(sdc)s; it stays mapped after the copy.",
                     {"vol": volume.id, "pid": volume.provider_id,
                      "sdc": sdc_id})
            return
        if answer.status_code >= 500:
            # A timeout or a gateway error: it may have been mapped.
            self._mapped.add(volume.id)
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

    def _detach_sdc(self, attach_info: dict, volume: Any) -> None:
        attach_info["connector"].disconnect_volume(
            attach_info["conn"]["data"], attach_info["device"], force=True)
        if volume.id not in self._mapped:
            return
        # The lock Cinder's terminate_connection takes for the volume.
        with coordination.COORDINATOR.get_lock(
                "powerflex-vol-%s" % volume.id):
            self._unmap(self.driver._get_client(), volume, self._sdc())

    def _unmap(self, client: Any, volume: Any, sdc_id: str) -> None:
        """Unmap ``volume`` from this host's SDC.

        "Not mapped here" (rc 84, 4039) is checked against the volume's
        mappings before it is believed, and the unmap is sent once more
        when the volume is mapped here after all: a volume left mapped
        would stay so, since nothing else unmaps a copy's volumes.
        """
        for attempt in (1, 2):
            answer, response = client.execute_powerflex_post_request(
                _UNMAP_URL, {"sdcId": sdc_id}, vol_id=volume.provider_id)
            if answer.status_code == 200:
                break
            if _error_code(response) not in NOT_MAPPED_HERE:
                self._unmap_failed(volume, sdc_id, response)
            if not self._mapped_here(volume):
                break
            LOG.warning("Volume %(vol)s (%(pid)s): the array answered "
                        "\"not mapped\" to its unmap from SDC %(sdc)s, yet "
                        "the volume is mapped there.",
                        {"vol": volume.id, "pid": volume.provider_id,
                         "sdc": sdc_id})
            if attempt == 2:
                self._unmap_failed(volume, sdc_id, response)
        self._mapped.discard(volume.id)

    @staticmethod
    def _unmap_failed(volume: Any, sdc_id: str, response: Any) -> None:
        raise exception.VolumeBackendAPIException(data=_(
            "Failed to unmap volume %(vol)s (%(pid)s) from SDC %(sdc)s "
            "after a copy: %(err)s.") % {
                "vol": volume.id, "pid": volume.provider_id, "sdc": sdc_id,
                "err": _message(response)})

    def _unmap_quietly(self, client: Any, volume: Any, sdc_id: str) -> None:
        try:
            self._unmap(client, volume, sdc_id)
        except Exception:
            LOG.warning("Could not unmap volume %s after a failed attach.",
                        volume.id, exc_info=True)

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
                here.add(self._sdc() if self.maps_itself else
                         client.query_sdc_id_by_guid(guid))
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
