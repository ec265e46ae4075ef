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
"""The mappings of volumes to SDCs and NVMe hosts, and their QoS limits.

The refusals depend on the gateway version: 4.x and later answer "already
mapped" and "not mapped" with other codes than 3.x. Every change of a
volume's mappings publishes (or withdraws) its by-id link
(:mod:`.devices`).

Not thread-safe: the :class:`~.array.Array` calls it under its lock.
"""

from typing import Optional

from powerflex_cache_driver.simulator import devices
from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model


class Mappings:
    """Maps and unmaps the volumes of one array.

    :param publisher: the array's by-id links and loop devices.
    :param version_tuple: the gateway version as a tuple of ints.
    """

    def __init__(self, publisher: devices.DevicePublisher,
                 version_tuple: tuple[int, ...]) -> None:
        self.publisher = publisher
        self.v4 = version_tuple >= (4,)

    def _not_mapped(self) -> errors.ApiError:
        return errors.array_error(
            errors.VOL_NOT_MAPPED_V4 if self.v4
            else errors.VOL_NOT_MAPPED_TO_INI)

    def map(self, volume: model.Volume, host: model.Host,
            allow_multiple: bool = False,
            access_mode: Optional[str] = None) -> None:
        """Map ``volume`` to an SDC or NVMe host."""
        if host.id in volume.mappings:
            raise errors.array_error(
                errors.VOL_ALREADY_MAPPED_V4 if self.v4
                else errors.VOL_ALREADY_MAPPED_TO_THIS_INI)
        if volume.mappings and not allow_multiple:
            raise errors.array_error(errors.VOL_ALREADY_MAPPED_TO_AN_INI)
        if volume.access_mode_limit == "ReadOnly":
            access_mode = "ReadOnly"
        volume.mappings[host.id] = model.SdcMapping(
            host.id, access_mode or "ReadWrite")
        self.publisher.publish(volume)

    def unmap(self, volume: model.Volume,
              host: Optional[model.Host] = None) -> None:
        """Unmap ``volume`` from ``host``, or from every host if None."""
        if host is None:
            if not volume.mappings:
                raise self._not_mapped()
            volume.mappings.clear()
        else:
            if host.id not in volume.mappings:
                raise self._not_mapped()
            del volume.mappings[host.id]
        self.publisher.publish(volume)

    def set_limits(self, volume: model.Volume, host: model.Host,
                   iops: Optional[int] = None,
                   bandwidth_kbps: Optional[int] = None) -> None:
        """Set the QoS limits of ``volume``'s mapping to ``host``."""
        mapping = volume.mappings.get(host.id)
        if mapping is None:
            raise self._not_mapped()
        if iops is not None:
            if iops < 0 or 0 < iops <= 10:
                raise errors.invalid_request(
                    "iopsLimit must be 0 (unlimited) or greater than 10")
            mapping.limit_iops = iops
        if bandwidth_kbps is not None:
            if bandwidth_kbps < 0 or bandwidth_kbps % 1024:
                raise errors.invalid_request(
                    "bandwidthLimitInKbps must be 0 (unlimited) or in "
                    "granularity of 1024")
            mapping.limit_bw_kbps = bandwidth_kbps
