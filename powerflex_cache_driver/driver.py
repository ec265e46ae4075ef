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
"""PowerFlex volume drivers that send the array only the extends it needs.

Set one of these in a backend section of cinder.conf::

    volume_driver = powerflex_cache_driver.driver.PowerFlexCacheDriver
    volume_driver = powerflex_cache_driver.driver.PowerFlexCacheNVMeDriver

Both are Cinder's PowerFlex drivers with one mixin on top. The mixin changes
how sizes are handled (see :mod:`powerflex_cache_driver.sizing`):

* clones, clones of image-volume cache entries and volumes from snapshots
  are extended on the array only when the requested size, rounded up to the
  array granularity, exceeds what the array already holds;
* ``extend_volume`` follows the same rule, on both sides of a replicated
  volume;
* the Cinder database keeps the requested size on every create path, so
  project quota usage never drifts by the rounding;
* a clone whose extend fails is removed from the array before the error is
  raised.
"""

import dataclasses
from typing import Any, Callable, Optional

from cinder import context as cinder_context
from cinder import exception
from cinder.i18n import _
from cinder import interface
from cinder.objects import fields
from cinder.volume import configuration
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from powerflex_cache_driver import compat
from powerflex_cache_driver import data_copy
from powerflex_cache_driver import image_clone
from powerflex_cache_driver import options
from powerflex_cache_driver import sizing

CONF = cfg.CONF
CONF.register_opts(options.cache_opts, group=configuration.SHARED_CONF_GROUP)

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _ArrayVolume:
    """One array volume whose size the driver may have to raise."""

    label: str
    client: Any
    provider_id: str


class PowerFlexCacheMixin:
    """Size policy shared by the SDC and NVMe-TCP drivers."""

    VERSION = "1.0.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(options.cache_opts)

    # -- helpers -----------------------------------------------------------

    def _granularity(self) -> int:
        """Array allocation granularity in GiB (8, or 1 on EC systems)."""
        return sizing.granularity(compat.is_erasure_coded(self._get_client()))

    def _check_volume_size(self, size: int) -> None:
        """Refuse a size the array would round while rounding is off.

        Called before any REST call on create, clone and extend, so a refused
        request leaves nothing on the array.
        """
        gran = self._granularity()
        if (sizing.is_aligned(size, gran) or
                self.configuration.powerflex_round_volume_capacity):
            return
        msg = (_("Cannot use a size of %(size)s GiB: PowerFlex allocates in "
                 "multiples of %(gran)s GiB and "
                 "powerflex_round_volume_capacity is False. Request a "
                 "multiple of %(gran)s GiB or set "
                 "powerflex_round_volume_capacity = True.") %
               {"size": size, "gran": gran})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg)

    def _array_size_gib(self, array_volume: _ArrayVolume) -> int:
        """Read an array volume's size (one GET), in whole GiB."""
        info = array_volume.client.query_volume(array_volume.provider_id)
        return int(info["sizeInKb"]) // units.Mi

    def _ensure_array_size(
            self, volume_id: str, requested_gib: int, lower_bound_gib: int,
            array_volumes: Callable[[], list[_ArrayVolume]]) -> None:
        """Extend array volumes only as far as the request needs.

        :param volume_id: the Cinder volume, for the log.
        :param requested_gib: the size Cinder asks for.
        :param lower_bound_gib: what the array is known to hold at least,
            from the database alone.
        :param array_volumes: returns the array volumes to size (two for a
            replicated volume); called only when the database alone does not
            settle the decision.
        """
        gran = self._granularity()
        verify = self.configuration.safe_get(options.VERIFY_ARRAY_SIZE)
        plan = sizing.plan_extend(requested_gib, lower_bound_gib, gran,
                                  known_is_exact=False, read_allowed=verify)
        if plan.action is sizing.Action.SKIP:
            LOG.info("Volume %(vol)s: %(decision)s.",
                     {"vol": volume_id, "decision": plan.describe()})
            return
        for array_volume in array_volumes():
            side_plan = plan
            if plan.action is sizing.Action.READ_ARRAY_SIZE:
                side_plan = sizing.plan_extend(
                    requested_gib, self._array_size_gib(array_volume), gran,
                    known_is_exact=True)
            LOG.info("Volume %(vol)s (%(label)s array volume %(pid)s): "
                     "%(decision)s.",
                     {"vol": volume_id, "label": array_volume.label,
                      "pid": array_volume.provider_id,
                      "decision": side_plan.describe()})
            if side_plan.action is sizing.Action.EXTEND:
                array_volume.client.extend_volume(array_volume.provider_id,
                                                  side_plan.target_gib)

    def _remove_unfinished(self, volume_id: str, provider_id: str) -> None:
        """Remove an array volume made for a create that then failed."""
        LOG.warning("Volume %(vol)s: create failed after array volume "
                    "%(pid)s was made; removing it.",
                    {"vol": volume_id, "pid": provider_id})
        try:
            self._get_client().remove_volume(provider_id)
        except Exception:
            LOG.exception("Volume %(vol)s: could not remove array volume "
                          "%(pid)s; remove it from the array by hand.",
                          {"vol": volume_id, "pid": provider_id})

    def _pool_reads_zeros(self, volume: Any) -> bool:
        """Whether a new volume in ``volume``'s pool reads back zeros."""
        pd, sp = self._extract_domain_and_pool_from_host(volume.host)
        properties = self._get_client().get_storage_pool_properties(pd, sp)
        return bool(properties.get("zeroPaddingEnabled"))

    def copy_volume_data_sparse(self, context: Any, src_volume: Any,
                                dst_volume: Any) -> data_copy.CopyStats:
        """Copy one volume's data into another through this host.

        Zero blocks are skipped when the destination pool pads with zeros.
        """
        skip_zeros = self._pool_reads_zeros(dst_volume)
        if not skip_zeros:
            LOG.info("Volume %s: pool is not zero-padded, copying every "
                     "block.", dst_volume.id)
        return data_copy.HostAssistedCopy(self).copy(
            context, src_volume, dst_volume, skip_zeros)

    def _create_volume_by_copy(self, volume: Any, source: Any) -> dict:
        """Create ``volume`` in its own pool holding ``source``'s data."""
        model_update = self.create_volume(volume)
        volume.update(model_update)
        try:
            self.copy_volume_data_sparse(cinder_context.get_admin_context(),
                                         source,
                                         volume)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove_unfinished(volume.id,
                                        model_update["provider_id"])
        return model_update

    # -- overridden driver methods ------------------------------------------

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
        """Create a volume from an image on the array when possible.

        See :mod:`powerflex_cache_driver.image_clone` for the order.
        """
        if not self.configuration.safe_get(options.CLONE_IMAGE):
            return None, False
        return image_clone.ImageCloner(self).clone_image(
            context, volume, image_location, image_meta)

    def create_cloned_volume(self, volume: Any, src_vref: Any) -> dict:
        """Clone a volume: one array snapshot, or a copy across pools."""
        if not image_clone.same_pool(volume, src_vref):
            LOG.info("Volume %(vol)s: source %(src)s is in storage pool "
                     "%(src_pool)s, not %(pool)s; copying through this "
                     "host.",
                     {"vol": volume.id, "src": src_vref.id,
                      "src_pool": volume_utils.extract_host(src_vref.host,
                                                            "pool"),
                      "pool": volume_utils.extract_host(volume.host,
                                                        "pool")})
            return self._create_volume_by_copy(volume, src_vref)
        return super().create_cloned_volume(volume, src_vref)

    def create_volume(self, volume: Any) -> dict:
        """Create a volume; the database keeps the requested size."""
        model_update = super().create_volume(volume) or {}
        model_update.pop("size", None)
        gran = self._granularity()
        LOG.info("Volume %(vol)s: array holds %(array)s GiB for requested "
                 "%(req)s GiB; the database keeps %(req)s GiB.",
                 {"vol": volume.id, "req": volume.size,
                  "array": sizing.round_up(volume.size, gran)})
        return model_update

    def _create_volume_from_source(self, volume: Any, source: Any) -> dict:
        """Create a volume from a volume or snapshot with one array copy.

        Shared by ``create_cloned_volume`` (including clones of image-volume
        cache entries) and ``create_volume_from_snapshot``. The new array
        volume has its source's physical size; it is extended only when the
        rounded requested size exceeds that.
        """
        try:
            # A snapshot carries the size of its volume at snapshot time.
            source_size = source.volume_size
        except AttributeError:
            source_size = source.size
        self._check_volume_size(volume.size)
        client = self._get_client()
        provider_id = compat.clone_on_array(client, source.provider_id,
                                            volume.id)
        LOG.info("Volume %(vol)s: array volume %(pid)s created from "
                 "%(src)s (array volume %(src_pid)s).",
                 {"vol": volume.id, "pid": provider_id, "src": source.id,
                  "src_pid": source.provider_id})
        model_update = {
            "provider_id": provider_id,
            "replication_status": fields.ReplicationStatus.DISABLED,
        }
        try:
            lower_bound = sizing.lower_bound_from_db(source_size,
                                                     self._granularity())
            self._ensure_array_size(
                volume.id, volume.size, lower_bound,
                lambda: [_ArrayVolume("new", client, provider_id)])
            if volume.is_replicated():
                self._setup_volume_replication(volume, provider_id)
                model_update["replication_status"] = (
                    fields.ReplicationStatus.ENABLED)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove_unfinished(volume.id, provider_id)
        return model_update

    def extend_volume(self, volume: Any, new_size: int) -> None:
        """Extend a volume, sending the array only what it needs.

        On a replicated volume both the primary and the secondary array
        volumes are checked and extended as needed.
        """
        LOG.info("Extend volume %(vol)s from %(old)s GiB to %(new)s GiB.",
                 {"vol": volume.id, "old": volume.size, "new": new_size})
        self._check_volume_size(new_size)
        lower_bound = sizing.lower_bound_from_db(volume.size,
                                                 self._granularity())
        self._ensure_array_size(volume.id, new_size, lower_bound,
                                lambda: self._array_volumes_of(volume))

    def _array_volumes_of(self, volume: Any) -> list[_ArrayVolume]:
        """The array volumes behind a Cinder volume, secondary first."""
        client = self._get_client()
        primary = _ArrayVolume("primary", client, volume.provider_id)
        if not volume.is_replicated():
            return [primary]
        remote_vol_id = client.get_volumes_pair_attrs(
            "localVolumeId", volume.provider_id)[3]
        return [_ArrayVolume("secondary", self._get_client(secondary=True),
                             remote_vol_id), primary]


@interface.volumedriver
class PowerFlexCacheDriver(PowerFlexCacheMixin, compat.STOCK_SDC_DRIVER):
    """PowerFlex driver (SDC, ``scaleio`` protocol) with the size policy."""

    def _initialize_connection(self, vol_or_snap: Any, connector: dict,
                               *args: Any) -> dict:
        """Map a volume or snapshot; the connection info names the SDC."""
        return compat.with_sdc_guid(
            super()._initialize_connection(vol_or_snap, connector, *args),
            connector)


@interface.volumedriver
class PowerFlexCacheNVMeDriver(PowerFlexCacheMixin, compat.NVME_DRIVER_BASE):
    """PowerFlex NVMe-TCP driver with the size policy."""
