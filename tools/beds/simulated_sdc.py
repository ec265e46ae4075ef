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
"""An os-brick connector for the simulator's SDC, and its registration.

The connector is os-brick's ``ScaleIOConnector`` with the three things that
need a real SDC kernel module replaced:

* the SDC GUID (an ioctl on ``/dev/scini``) is the simulated SDC's GUID;
* the rescan ioctl does nothing: the simulator publishes the device link
  as soon as a volume is mapped;
* devices are looked up in the simulator's ``by_id_dir`` instead of
  ``/dev/disk/by-id``.

Everything else (``connect_volume``, ``disconnect_volume``, the device
check Cinder runs with ``dd``) is os-brick's own code.

:class:`SimulatedSdcFixture` registers the connector the way os-brick
finds connectors: the ``scaleio`` protocol entry of the mapping returned by
``os_brick.initiator.connector.get_connector_mapping()``, used by
``InitiatorConnector.factory``, and the connector list behind
``get_connector_properties`` (reduced to the SDC, so that the tests do not
probe iSCSI, FC or NVMe initiators of the machine they run on).
"""

import dataclasses
import os
from typing import Any, Callable, Optional

import fixtures
from os_brick import initiator
from os_brick.initiator import connector as brick_connector
from os_brick.initiator.connectors import scaleio

from powerflex_cache_driver.simulator import loop

CONNECTOR_PATH = "tools.beds.simulated_sdc.SimulatedSdcConnector"
BASE_CONNECTOR_PATH = "os_brick.initiator.connectors.base.BaseLinuxConnector"


@dataclasses.dataclass(frozen=True)
class SimulatedSdc:
    """The SDC of the simulated host: its GUID and its device directory."""

    guid: str
    by_id_dir: str
    legacy_attempts: list = dataclasses.field(default_factory=list)
    """Connection infos os-brick got without ``sdc_guid``."""
    credentials: Optional[Callable[[], tuple]] = None
    """Gives the gateway user, password and a token for os-brick's legacy path.

    They stand in for the host's ``/opt/emc/scaleio/openstack/connector.conf``
    that Cinder 25 and 26 deployments need: there the driver leaves mapping
    to os-brick. The token spares each mapping a 401 and a login, so the
    gateway sees the calls it would see from the driver.
    """


_ACTIVE: Optional[SimulatedSdc] = None


def active_sdc() -> SimulatedSdc:
    """Return the SDC registered by :class:`SimulatedSdcFixture`."""
    if _ACTIVE is None:
        raise RuntimeError("no simulated SDC is registered")
    return _ACTIVE


class SimulatedSdcConnector(scaleio.ScaleIOConnector):
    """os-brick's ScaleIO connector for the simulator's SDC."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._device_sizes: dict[str, int] = {}
        self._paths: dict[Optional[str], str] = {}

    def _get_guid(self, log_error: bool = True) -> str:
        """Return the simulated SDC's GUID (no ioctl)."""
        return active_sdc().guid

    def _rescan_vols(self) -> None:
        """Nothing to rescan: the simulator links devices on mapping."""

    @staticmethod
    def get_connector_properties(root_helper: str, *args: Any,
                                 **kwargs: Any) -> dict:
        """Report the simulated SDC's GUID, as a host with an SDC does."""
        return {"sdc_guid": active_sdc().guid}

    def _get_username_and_password_token(self, connection_properties: dict
                                         ) -> tuple:
        """Return the simulator's credentials instead of connector.conf's."""
        credentials = active_sdc().credentials
        if credentials is None:
            return super()._get_username_and_password_token(
                connection_properties)
        return credentials()

    def get_search_path(self) -> str:
        """Return the simulator's ``/dev/disk/by-id`` stand-in."""
        return active_sdc().by_id_dir

    def connect_volume(self, connection_properties: dict) -> dict:
        """Connect with os-brick's code; remember the device size.

        Connection infos without ``sdc_guid`` (drivers that map on the
        driver side but do not say so, like Cinder 27's) send os-brick down
        its legacy path, which maps through the gateway named in the
        connection info; they are recorded so the tests can tell why the
        attach failed.
        """
        if "sdc_guid" not in connection_properties:
            active_sdc().legacy_attempts.append(dict(connection_properties))
        device_info = super().connect_volume(connection_properties)
        path = device_info["path"]
        self._device_sizes[os.path.realpath(path)] = loop.device_size(path)
        self._paths[connection_properties.get("scaleIO_volume_id")] = path
        return device_info

    def disconnect_volume(self, connection_properties: dict,
                          device_info: Optional[dict] = None,
                          force: bool = False,
                          ignore_errors: bool = False) -> None:
        """Disconnect with os-brick's code, keeping the device size.

        The simulated device is a regular file (unless the simulator runs
        on loop devices). ``qemu-img convert``
        (without ``-n``, as Cinder runs it) recreates a regular-file target
        at the image's virtual size, where on a real SDC device it can only
        write into a block device of fixed size. Give the file back the size
        it had when it was connected, as the block device would have kept.
        """
        path = (device_info.get("path") if isinstance(device_info, dict)
                else None)
        # Cinder 25 and 26 pass the volume, not the device info.
        path = path or self._paths.pop(
            connection_properties.get("scaleIO_volume_id"), None)
        if path:
            real = os.path.realpath(path)
            size = self._device_sizes.pop(real, None)
            if (size is not None and os.path.isfile(real) and
                    os.path.getsize(real) < size):
                os.truncate(real, size)
        super().disconnect_volume(connection_properties, device_info,
                                  force=force, ignore_errors=ignore_errors)

    def extend_volume(self, connection_properties: dict) -> int:
        """Return the device's new size (the simulator refreshed it)."""
        self.get_config(connection_properties)
        return loop.device_size(self._find_volume_path())


class SimulatedSdcFixture(fixtures.Fixture):
    """Register :class:`SimulatedSdcConnector` with os-brick."""

    def __init__(self, guid: str, by_id_dir: str,
                 credentials: Optional[Callable[[], tuple]] = None
                 ) -> None:
        super().__init__()
        self.sdc = SimulatedSdc(guid=guid, by_id_dir=by_id_dir,
                                credentials=credentials)

    def _setUp(self) -> None:
        global _ACTIVE
        previous = _ACTIVE
        _ACTIVE = self.sdc

        def restore_active() -> None:
            global _ACTIVE
            _ACTIVE = previous
        self.addCleanup(restore_active)

        mapping = brick_connector.get_connector_mapping()
        saved_entry = mapping.get(initiator.SCALEIO)
        mapping[initiator.SCALEIO] = CONNECTOR_PATH

        def restore_mapping() -> None:
            if saved_entry is None:
                mapping.pop(initiator.SCALEIO, None)
            else:
                mapping[initiator.SCALEIO] = saved_entry
        self.addCleanup(restore_mapping)

        connectors = brick_connector.unix_connector_list
        saved_list = list(connectors)
        connectors[:] = [BASE_CONNECTOR_PATH, CONNECTOR_PATH]

        def restore_list() -> None:
            connectors[:] = saved_list
        self.addCleanup(restore_list)


class InProcessPrivsepFixture(fixtures.Fixture):
    """Run os-brick's and Cinder's privsep entrypoints in this process.

    oslo.privsep's ``set_client_mode(False)`` makes an entrypoint a plain
    call instead of a call to a privsep daemon started through
    ``sudo privsep-helper``. The tests run as root, so the commands run with
    the same privileges they would have in the daemon.
    """

    def _setUp(self) -> None:
        from cinder import privsep as cinder_privsep
        from os_brick import privileged as brick_privileged

        for context in (brick_privileged.default,
                        brick_privileged.brick_privsep_hide_output,
                        cinder_privsep.sys_admin_pctxt):
            self.addCleanup(context.set_client_mode, context.client_mode)
            context.set_client_mode(False)
