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
"""PowerFlex volume drivers whose sizes match the disk the guest sees.

Set one of these in a backend section of cinder.conf::

    volume_driver = powerflex_cache_driver.driver.PowerFlexCacheDriver
    volume_driver = powerflex_cache_driver.driver.PowerFlexCacheNVMeDriver

Both are Cinder's PowerFlex drivers with one mixin on top. The mixin changes
how sizes are handled (see :mod:`powerflex_cache_driver.sizing`):

* every create path reports the array size (the requested size rounded up
  to the array granularity, or the source's array size when larger), so
  what Cinder records covers the disk the guest sees;
* the project is charged quota for that size before anything is made on
  the array (:mod:`powerflex_cache_driver.quota_charge`), except for
  Cinder's temporary volumes (``use_quota`` False), which Cinder does not
  count: a host-assisted migration is charged when it completes, as its
  counted record takes the new size;
* clones, clones of image-volume cache entries, volumes from snapshots and
  ``extend_volume`` send an extend only when the requested size, rounded
  up, exceeds the array size, decided from the recorded size alone, on both
  sides of a replicated volume;
* a clone whose extend fails is removed from the array before the error is
  raised, and its quota given back; so are the clones already made when a
  later clone of a consistency group fails.
"""

import dataclasses
import importlib
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
from oslo_utils import importutils
from oslo_utils import units
import requests

from powerflex_cache_driver import cinder_locations
from powerflex_cache_driver import compat
from powerflex_cache_driver import create_flow
from powerflex_cache_driver import data_copy
from powerflex_cache_driver import host_attach
from powerflex_cache_driver import host_mappings
from powerflex_cache_driver import image_clone
from powerflex_cache_driver import lost_answer
from powerflex_cache_driver import manager
from powerflex_cache_driver import options
from powerflex_cache_driver import quota_charge
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


_MadeClone = tuple[Any, dict, quota_charge.RoundingCharge]
"""A clone made for a group: the volume, its model update, its charge."""


GATEWAY_NOT_FOUND = "Could not find"
"""How the gateway's answers for an unknown protection domain or storage
pool begin ("Could not find Protection Domain", "... Storage Pool")."""


class PowerFlexCacheMixin:
    """Size policy shared by the SDC and NVMe-TCP drivers."""

    VERSION = "1.0.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(options.cache_opts)
        # Volume id -> requested size, for volumes clone_image left to
        # Cinder's own image path (see create_volume).
        self._image_volume_sizes: dict[str, int] = {}
        # Volume id -> array size after an extend, until this package's
        # volume manager records it (array_size_after_extend).
        self._extended_sizes: dict[str, int] = {}
        self._manager_records_extends = False

    powerflex_cache_create_flow = True
    """Cinder's create flows for this driver are :mod:`.create_flow`'s."""

    def do_setup(self, context: Any) -> None:
        """Set up Cinder's driver and wrap its REST clients.

        They log in again on 401, and find the volumes of creates whose
        answer was lost (:mod:`powerflex_cache_driver.lost_answer`). A
        create refused for the quota of the rounding is not rescheduled
        (:mod:`powerflex_cache_driver.create_flow`).
        """
        self._check_gateway_options()
        super().do_setup(context)
        create_flow.install()
        for client in (self.primary_client,
                       getattr(self, "secondary_client", None)):
            compat.log_in_again_on_401(client)
            lost_answer.recover_lost_answers(client)
        self._manager_records_extends = self._check_volume_manager()

    def check_for_setup_error(self) -> None:
        """Cinder's driver's checks, and where copies keep their record.

        :raises oslo_config.cfg.RequiredOptError: volumes are mapped to
            this host for copies and ``[oslo_concurrency] lock_path``,
            where the record of them is kept, is not set.
        """
        self._check_pool_names()
        try:
            super().check_for_setup_error()
        except Exception as error:
            self._explain_setup_error(error)
            raise
        if host_attach.driver_maps_sdc(self):
            host_mappings.check_configured()

    @staticmethod
    def _check_volume_manager() -> bool:
        """Whether this package's volume manager runs; warn when not.

        Only this package's volume manager reports what Cinder records
        (:mod:`powerflex_cache_driver.manager`) and records the array
        size after an extend.
        """
        try:
            chosen = importutils.import_class(CONF.volume_manager)
        except (ImportError, ValueError):
            return False
        ours = issubclass(chosen, manager.VolumeManager)
        if not ours:
            LOG.warning("volume_manager is %(chosen)s: the pools' "
                        "allocated_capacity_gb will read below the sizes "
                        "Cinder records, since this driver records the "
                        "array size and makes image-volume cache volumes "
                        "itself, and an extend will record the size asked "
                        "for, below the array size. Set volume_manager = "
                        "%(ours)s in [DEFAULT].",
                        {"chosen": CONF.volume_manager,
                         "ours": manager.CLASS_PATH})
        return ours

    # -- configuration -----------------------------------------------------

    def _check_gateway_options(self) -> None:
        """Refuse what Cinder's driver refuses, naming the option to set.

        :raises InvalidInput: the gateway's address, user or password is
            not set, or certificate verification has no certificate.
        """
        conf = self.configuration
        missing = [name for name in ("san_ip", "san_login", "san_password")
                   if not conf.safe_get(name)]
        if missing:
            raise exception.InvalidInput(reason=_(
                "%(missing)s not set in the backend section: the PowerFlex "
                "gateway's address (san_ip), user (san_login) and password "
                "(san_password) are required.") %
                {"missing": ", ".join(missing)})
        verify = (conf.safe_get("driver_ssl_cert_verify") or
                  conf.safe_get("sio_verify_server_certificate"))
        if verify and not (conf.safe_get("driver_ssl_cert_path") or
                           conf.safe_get("sio_server_certificate_path")):
            raise exception.InvalidInput(reason=_(
                "driver_ssl_cert_verify is True but driver_ssl_cert_path is "
                "not set: set it to the CA certificate (PEM) that signed "
                "the PowerFlex gateway's certificate."))

    def _check_pool_names(self) -> None:
        """Refuse a malformed pool list or ratio, naming the option.

        :raises InvalidInput: a ``powerflex_storage_pools`` entry is not
            ``protection_domain:storage_pool``, or
            ``powerflex_max_over_subscription_ratio`` exceeds the array's.
        """
        stock = importlib.import_module(compat.STOCK_SDC_DRIVER.__module__)
        limit = stock.POWERFLEX_MAX_OVERSUBSCRIPTION_RATIO
        ratio = self.configuration.safe_get(
            "powerflex_max_over_subscription_ratio")
        if ratio is not None and ratio > limit:
            raise exception.InvalidInput(reason=_(
                "powerflex_max_over_subscription_ratio is %(ratio)s, above "
                "the %(limit)s PowerFlex supports: set it to %(limit)s or "
                "less.") % {"ratio": ratio, "limit": limit})
        for pool in self.storage_pools or []:
            if pool.count(":") != 1 or not all(pool.split(":")):
                raise exception.InvalidInput(reason=_(
                    "powerflex_storage_pools names %(pool)s, which is not "
                    "protection_domain:storage_pool: name each pool with "
                    "its protection domain (PD1:SP1), separated by "
                    "commas.") % {"pool": pool})

    def _explain_setup_error(self, error: Exception) -> None:
        """Raise a set-up failure in the operator's words, or return.

        Only on the failure path: the gateway's login is tried once to
        tell a certificate, an unreachable gateway and refused credentials
        apart; then each configured pool is looked up.

        :raises VolumeBackendAPIException: the gateway cannot be verified,
            reached or logged in to, naming the options to check.
        :raises InvalidInput: a configured protection domain or storage
            pool does not exist.
        """
        client = self._get_client()
        gateway = "https://%s:%s" % (client.rest_ip, client.rest_port)
        unreachable = (requests.exceptions.ConnectionError,
                       requests.exceptions.Timeout)
        cause: Any = error
        if not isinstance(error, unreachable):
            try:
                cause = requests.get(
                    gateway + "/api/login",
                    auth=(client.rest_username, client.rest_password),
                    verify=client._get_verify_cert(),
                    timeout=(client.rest_api_connect_timeout,
                             client.rest_api_read_timeout))
            except requests.exceptions.RequestException as probe_error:
                cause = probe_error
        args = {"gw": gateway, "err": cause, "path": client.certificate_path,
                "user": client.rest_username,
                "status": getattr(cause, "status_code", None)}
        if isinstance(cause, requests.exceptions.SSLError):
            msg = _("Cannot verify the certificate of the PowerFlex gateway "
                    "at %(gw)s with driver_ssl_cert_path (%(path)s): "
                    "%(err)s. Set driver_ssl_cert_path to the certificate "
                    "of the authority that signed the gateway's "
                    "certificate.") % args
        elif isinstance(cause, unreachable):
            msg = _("Cannot reach the PowerFlex gateway at %(gw)s (san_ip, "
                    "powerflex_rest_server_port): %(err)s. Check that the "
                    "gateway runs and that this host can reach it.") % args
        elif args["status"] in (401, 403):
            msg = _("The PowerFlex gateway at %(gw)s refused the login of "
                    "user %(user)s (HTTP %(status)s): check san_login and "
                    "san_password.") % args
        else:
            self._explain_pool_error()
            return
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg) from error

    def _explain_pool_error(self) -> None:
        """Raise for the first configured pool the array does not have.

        Only when the gateway says it cannot find the protection domain or
        the pool (``Could not find ...``); any other failure of a lookup
        returns, and the set-up error is raised as it is.

        :raises InvalidInput: naming the pool and what is missing.
        """
        client = self._get_client()
        for pool in self.storage_pools or []:
            pd, sp = pool.split(":")
            args = {"pool": pool, "pd": pd, "sp": sp}
            for lookup, missing in (
                    (lambda: client._get_protection_domain_id(pd),
                     _("powerflex_storage_pools names %(pool)s, but the "
                       "PowerFlex system has no protection domain %(pd)s: "
                       "name an existing protection domain.")),
                    (lambda: client.get_storage_pool_id(pd, sp),
                     _("powerflex_storage_pools names %(pool)s, but "
                       "protection domain %(pd)s has no storage pool "
                       "%(sp)s: name an existing storage pool."))):
                try:
                    lookup()
                except Exception as error:
                    if GATEWAY_NOT_FOUND not in str(error):
                        return
                    raise exception.InvalidInput(
                        reason=missing % args) from error

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _require_array_volume(obj: Any, action: str) -> None:
        """Refuse to act on a volume or snapshot without an array volume.

        :raises InvalidVolume: ``obj`` has no ``provider_id``.
        """
        if obj.provider_id:
            return
        msg = (_("Cannot %(action)s %(id)s: it has no PowerFlex volume (its "
                 "provider_id is empty): it was not made on this backend or "
                 "its create failed. Delete it, or bring its array volume "
                 "under Cinder with 'cinder manage'.") %
               {"action": action, "id": obj.id})
        LOG.error(msg)
        raise exception.InvalidVolume(reason=msg)

    def _check_volume_creation_safe(self, protection_domain_name: str,
                                    storage_pool_name: str,
                                    secondary: bool = False) -> None:
        """Cinder's refusal of a pool without zero padding, with its fix.

        :raises VolumeBackendAPIException: naming the pool and the option.
        """
        if self._get_client(secondary).is_volume_creation_safe(
                protection_domain_name, storage_pool_name):
            return
        msg = (_("Cannot create a volume in storage pool %(pd)s:%(sp)s: "
                 "zero padding is disabled in that pool, so a new volume "
                 "could read data of deleted volumes. Enable zero padding "
                 "on the pool, or set powerflex_allow_non_padded_volumes = "
                 "True to accept that.") %
               {"pd": protection_domain_name, "sp": storage_pool_name})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg)

    def _get_provisioning_and_compression(self, storage_type: dict,
                                          *args: Any, **kwargs: Any) -> Any:
        """Cinder's driver's; a refused extra spec is named with its value.

        :raises VolumeBackendAPIException: ``provisioning:type`` is not
            thick, thin or compressed.
        """
        try:
            return super()._get_provisioning_and_compression(
                storage_type, *args, **kwargs)
        except exception.VolumeBackendAPIException:
            value = storage_type.get("provisioning:type")
            if value in (None, "thick", "thin", "compressed"):
                raise
        msg = (_("The volume type's extra spec provisioning:type is "
                 "%(value)s; PowerFlex supports thick, thin or compressed. "
                 "Use a volume type whose provisioning:type is one of "
                 "them.") % {"value": value})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg)

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

    def _extend_array_volume(self, volume_id: str, array_volume: _ArrayVolume,
                             plan: sizing.ExtendPlan) -> int:
        """Send the plan's extend; return what the array then holds.

        When the array refuses because the volume already holds more than
        the target (it was grown on the array behind Cinder's back), its
        size is read once and the operation goes on.
        """
        try:
            array_volume.client.extend_volume(array_volume.provider_id,
                                              plan.target_gib)
            return plan.target_gib
        except exception.VolumeBackendAPIException:
            try:
                held = self._array_size_gib(array_volume)
            except Exception:
                # The read only decides whether to go on; the extend's own
                # error is what to report.
                LOG.debug("Could not read the size of array volume %s.",
                          array_volume.provider_id, exc_info=True)
                held = 0
            if held < plan.target_gib:
                raise
        LOG.info("Volume %(vol)s (%(label)s array volume %(pid)s): the array "
                 "refused the extend to %(target)s GiB because the volume "
                 "already holds %(held)s GiB (grown on the array outside "
                 "Cinder); going on with %(held)s GiB.",
                 {"vol": volume_id, "label": array_volume.label,
                  "pid": array_volume.provider_id,
                  "target": plan.target_gib, "held": held})
        return held

    def _ensure_array_size(
            self, volume_id: str, requested_gib: int, array_gib: int,
            array_volumes: Callable[[], list[_ArrayVolume]]) -> int:
        """Extend array volumes only as far as the request needs.

        :param volume_id: the Cinder volume, for the log.
        :param requested_gib: the size Cinder asks for.
        :param array_gib: the array size the recorded size stands for.
        :param array_volumes: returns the array volumes to extend (two for
            a replicated volume); called only when an extend is needed.
        :returns: the array size after the operation.
        """
        plan = sizing.plan_extend(requested_gib, array_gib,
                                  self._granularity())
        LOG.info("Volume %(vol)s: %(decision)s.",
                 {"vol": volume_id, "decision": plan.describe()})
        if plan.action is sizing.Action.SKIP:
            return array_gib
        return max(self._extend_array_volume(volume_id, array_volume, plan)
                   for array_volume in array_volumes())

    def _remove_unfinished(self, volume: Any, provider_id: str) -> None:
        """Remove an array volume made for a create that then failed.

        When it cannot be removed, the volume (which ends in error) keeps
        it as its ``provider_id``: deleting the volume removes it then.
        A replicated volume's secondary side goes first
        (:meth:`_remove_unfinished_secondary`).
        """
        LOG.warning("Volume %(vol)s: create failed after array volume "
                    "%(pid)s was made; removing it.",
                    {"vol": volume.id, "pid": provider_id})
        try:
            if volume.is_replicated():
                self._remove_unfinished_secondary(volume, provider_id)
            self._get_client().remove_volume(provider_id)
        except Exception:
            LOG.exception("Volume %(vol)s: could not remove array volume "
                          "%(pid)s; the volume keeps it and ends in error. "
                          "Deleting the volume removes it.",
                          {"vol": volume.id, "pid": provider_id})
            volume.provider_id = provider_id
            volume.save()
        else:
            volume.provider_id = None

    def _remove_unfinished_secondary(self, volume: Any,
                                     provider_id: str) -> None:
        """Remove what a failed create made on the replication secondary.

        The replication pair, and the secondary's volume, when the pair
        was made; when the create failed between making the secondary's
        volume and pairing it, that volume, found by the name Cinder's
        driver gives it (the volume's id).

        :raises Exception: the pairs could not be read, or the pair or the
            secondary's volume could not be removed (logged, naming the
            secondary's volume): the primary must stay, for the delete of
            the volume to tear the pair down again.
        """
        try:
            self._teardown_volume_replication(provider_id)
            lost_answer.remove_by_name(self._get_client(secondary=True),
                                       volume.id)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error("Volume %(vol)s: could not remove the "
                          "replication secondary of array volume %(pid)s "
                          "(an array volume named %(name)s on the "
                          "secondary system).",
                          {"vol": volume.id, "pid": provider_id,
                           "name": lost_answer.array_name(volume.id)})

    def _teardown_volume_replication(self, provider_id: str) -> None:
        """Unpair an array volume and remove its secondary, as Cinder does.

        Cinder's driver takes a failed query of the replication pairs for
        "no pair" and goes on to remove the primary, which would leave the
        pair and the secondary's volume behind; here the failure is
        raised, so that a delete or a clean-up removes nothing it could
        not see the pair of.

        :raises VolumeBackendAPIException: the pairs could not be read, or
            the pair or the secondary's volume could not be removed.
        """
        if not provider_id:
            super()._teardown_volume_replication(provider_id)
            return
        client = self._get_client()
        pair = next((pair for pair in client._query_replication_pairs()
                     if pair.get("localVolumeId") == provider_id), None)
        if pair is None:
            LOG.info("Array volume %s is in no replication pair.",
                     provider_id)
            return
        client.remove_volumes_pair(pair["id"])
        if not self._is_failed_over:
            self._get_client(secondary=True).remove_volume(
                pair["remoteVolumeId"])

    def _pool_reads_zeros(self, volume: Any) -> bool:
        """Whether a new volume in ``volume``'s pool reads back zeros."""
        pd, sp = self._extract_domain_and_pool_from_host(volume.host)
        properties = self._get_client().get_storage_pool_properties(pd, sp)
        return bool(properties.get("zeroPaddingEnabled"))

    def copy_volume_data_sparse(self, context: Any, src_volume: Any,
                                dst_volume: Any,
                                data_bytes: Optional[int] = None
                                ) -> data_copy.CopyStats:
        """Copy one volume's data into another through this host.

        Zero blocks are skipped when the destination pool pads with zeros;
        then a source known to hold only zeros past ``data_bytes`` is
        copied that far only.
        """
        skip_zeros = self._pool_reads_zeros(dst_volume)
        if not skip_zeros:
            LOG.info("Volume %s: pool is not zero-padded, copying every "
                     "block.", dst_volume.id)
        return data_copy.HostAssistedCopy(self).copy(
            context, src_volume, dst_volume, skip_zeros, data_bytes)

    def _create_charged(self, volume: Any
                        ) -> tuple[dict, quota_charge.RoundingCharge]:
        """Create ``volume`` on the array, charging quota for its size.

        The project is charged for the array size before the array is
        asked; the charge is given back if the create fails.
        """
        gran = self._granularity()
        array_gib = sizing.round_up(volume.size, gran)
        charge = quota_charge.RoundingCharge(volume, gran)
        charge.cover(array_gib)
        try:
            model_update = super().create_volume(volume) or {}
        except Exception as error:
            charge.refund()
            self._explain_create_error(volume, error)
            raise
        model_update["size"] = array_gib
        LOG.info("Volume %(vol)s: the array holds %(array)s GiB for "
                 "requested %(req)s GiB; Cinder records %(array)s GiB.",
                 {"vol": volume.id, "req": volume.size, "array": array_gib})
        return model_update, charge

    def _explain_create_error(self, volume: Any, error: Exception) -> None:
        """Raise an array's refusal of a create naming size and pool.

        Returns when ``error`` is not the array's or already names the
        pool.
        """
        pool = volume_utils.extract_host(volume.host, "pool")
        if (not isinstance(error, exception.VolumeBackendAPIException) or
                (pool and pool in str(error))):
            return
        msg = (_("Cannot create volume %(vol)s of %(size)s GiB in storage "
                 "pool %(pool)s: %(error)s") %
               {"vol": volume.id, "size": volume.size, "pool": pool,
                "error": error.kwargs.get("data", error)})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg) from error

    def _create_volume_by_copy(self, volume: Any, source: Any
                               ) -> tuple[dict, quota_charge.RoundingCharge]:
        """Create ``volume`` in its own pool holding ``source``'s data.

        :returns: the model update and the quota charged for the volume.
        """
        self._require_array_volume(source, "copy")
        self._check_volume_size(volume.size)
        model_update, charge = self._create_charged(volume)
        volume.provider_id = model_update["provider_id"]
        source_gib = sizing.round_up(source.size, self._granularity())
        try:
            if source_gib > model_update["size"]:
                # A cinder:// image volume may be recorded above the
                # request; the copy needs all of it.
                charge.cover(source_gib)
                model_update["size"] = self._ensure_array_size(
                    volume.id, source_gib, model_update["size"],
                    lambda: [_ArrayVolume("new", self._get_client(),
                                          volume.provider_id)])
                charge.cover(model_update["size"])
            self.copy_volume_data_sparse(cinder_context.get_admin_context(),
                                         source,
                                         volume)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove_unfinished(volume,
                                        model_update["provider_id"])
                charge.refund()
        return model_update, charge

    def _copies_across_pools(self, volume: Any, source: Any) -> bool:
        """Whether a clone of ``source`` is copied through this host.

        An array snapshot stays in its source's storage pool; a clone
        placed in another pool is a new volume there, with the data copied.
        """
        if cinder_locations.same_pool(volume, source):
            return False
        LOG.info("Volume %(vol)s: source %(src)s is in storage pool "
                 "%(src_pool)s, not %(pool)s; copying through this host.",
                 {"vol": volume.id, "src": source.id,
                  "src_pool": volume_utils.extract_host(source.host, "pool"),
                  "pool": volume_utils.extract_host(volume.host, "pool")})
        return True

    def _clone_charged(self, volume: Any, source: Any
                       ) -> tuple[dict, quota_charge.RoundingCharge]:
        """Clone ``source`` as ``create_cloned_volume`` does; with the charge.

        For the clones of a group, which are undone when a later one fails
        (:meth:`create_group_from_src`). Sources of groups are never
        image-volume cache entries, so Cinder's check of their vtree (in
        its ``create_cloned_volume``) does not apply.
        """
        if self._copies_across_pools(volume, source):
            return self._create_volume_by_copy(volume, source)
        return self._clone_on_array(volume, source)

    def _undo_group_clones(self, group: Any,
                           made: list[_MadeClone]) -> None:
        """Remove the clones a failed group create made; refund their quota.

        Cinder leaves every volume of the group in error without applying
        any model update: each is then charged what Cinder reserved for it,
        and has no array volume (or keeps the one that could not be
        removed, which deleting the volume removes).
        """
        if made:
            LOG.warning("Group %(group)s: a volume could not be created "
                        "from its source; removing the %(count)s volumes "
                        "already made from the array and giving back "
                        "their extra quota.",
                        {"group": group.id, "count": len(made)})
        for volume, model_update, charge in made:
            try:
                self._remove_unfinished(volume, model_update["provider_id"])
            except Exception:
                # Logged; the other clones are undone all the same.
                LOG.exception("Group %(group)s: could not undo volume "
                              "%(vol)s (array volume %(pid)s).",
                              {"group": group.id, "vol": volume.id,
                               "pid": model_update["provider_id"]})
            charge.refund()

    # -- overridden driver methods ------------------------------------------

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any
                    ) -> tuple[Optional[dict], bool]:
        """Create a volume from an image on the array when possible.

        See :mod:`powerflex_cache_driver.image_clone` for the order.
        """
        result: tuple[Optional[dict], bool] = image_clone.NOT_CLONED
        if self.configuration.safe_get(options.CLONE_IMAGE):
            try:
                result = image_clone.ImageCloner(self).clone_image(
                    context, volume, image_location, image_meta,
                    image_service)
            except image_clone.IMAGE_CHECK_ERRORS as error:
                with excutils.save_and_reraise_exception():
                    image_clone.tell_user(context, volume, error)
        if not result[1]:
            # Cinder's own image path runs next; see create_volume.
            self._image_volume_sizes[volume.id] = volume.size
        return result

    def create_cloned_volume(self, volume: Any, src_vref: Any) -> dict:
        """Clone a volume: one array snapshot, or a copy across pools."""
        # Cinder's own image path may end here (its cache or cinder://
        # clone) instead of in create_volume.
        self._image_volume_sizes.pop(volume.id, None)
        if self._copies_across_pools(volume, src_vref):
            return self._create_volume_by_copy(volume, src_vref)[0]
        return super().create_cloned_volume(volume, src_vref)

    def create_group_from_src(self, context: Any, group: Any,
                              volumes: list, group_snapshot: Any = None,
                              snapshots: Optional[list] = None,
                              source_group: Any = None,
                              source_vols: Optional[list] = None
                              ) -> tuple[dict, list[dict]]:
        """Create a consistency group from a group snapshot or a group.

        One clone per volume, as Cinder's driver makes them; when one
        fails, the clones already made are removed from the array and
        their quota given back before the error is raised, so nothing
        half-made remains. Other groups are left to Cinder's generic group
        support (``NotImplementedError``).
        """
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        sources = snapshots if group_snapshot and snapshots else source_vols
        made: list[_MadeClone] = []
        for source, volume in zip(sources or [], volumes):
            try:
                model_update, charge = self._clone_charged(volume, source)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._undo_group_clones(group, made)
            made.append((volume, model_update, charge))
        volume_updates = [dict(model_update, id=volume.id,
                               status=fields.VolumeStatus.AVAILABLE)
                          for volume, model_update, _charge in made]
        return {"status": fields.GroupStatus.AVAILABLE}, volume_updates

    def _migration_charge(self, volume: Any, new_volume: Any
                          ) -> quota_charge.RoundingCharge:
        """The charge of a migration's counted record for what it takes.

        At completion ``volume`` (counted) takes ``new_volume``'s recorded
        size and volume type.
        """
        return quota_charge.RoundingCharge(
            volume, self._granularity(),
            volume_type_id=new_volume.volume_type_id)

    def before_volume_copy(self, context: Any, src_vol: Any, dest_vol: Any,
                           remote: Optional[str] = None) -> None:
        """Refuse a migration copy that would lose data or overrun quota.

        Cinder's host-assisted migration and retype copy the size the
        source records, and at completion the source's record takes the
        destination's size. Called on the source's driver before the copy,
        with the destination made; a refusal makes Cinder delete the
        destination and leave the source as it was.

        :raises VolumeBackendAPIException: the source holds more on the
            array than it records (extended to a size within the rounding,
            or made by Cinder's own driver): the copy would lose its tail.
        :raises RoundingExceedsQuota: the project has no room for the size
            the destination records.
        """
        super().before_volume_copy(context, src_vol, dest_vol, remote=remote)
        array_gib = sizing.round_up(src_vol.size, self._granularity())
        if array_gib > src_vol.size:
            msg = (_("Cannot migrate volume %(vol)s by a host copy: it "
                     "records %(size)s GiB while the array holds "
                     "%(array)s GiB, and Cinder copies only the recorded "
                     "size, so what the guest wrote past %(size)s GiB "
                     "would be lost. Extend the volume to %(array)s GiB "
                     "first (the array is not changed), then migrate.") %
                   {"vol": src_vol.id, "size": src_vol.size,
                    "array": array_gib})
            LOG.error(msg)
            raise exception.VolumeBackendAPIException(data=msg)
        self._migration_charge(src_vol, dest_vol).check(dest_vol.size)

    def update_migrated_volume(self, ctxt: Any, volume: Any, new_volume: Any,
                               original_volume_status: str) -> dict:
        """Finish a migration into this backend; charge the size it records.

        ``new_volume`` is Cinder's temporary volume (``use_quota`` False,
        charged nothing) and records the array size. Once this returns,
        Cinder swaps the records: ``volume``, which Cinder counts, takes
        ``new_volume``'s size and volume type. The project is charged the
        difference first. The copy is over by now and Cinder would keep
        the destination of a migration failed here, so a project without
        room (checked before the copy when the source is this driver's) is
        logged and the migration completes.
        """
        charge = self._migration_charge(volume, new_volume)
        try:
            charge.cover(new_volume.size)
        except quota_charge.RoundingExceedsQuota as error:
            LOG.error("Volume %(vol)s: migration completes without the "
                      "quota for the size it now records: %(error)s "
                      "Project %(project)s's usage is below its records "
                      "until it is raised and synced (cinder-manage quota "
                      "sync).", {"vol": volume.id, "error": error,
                                 "project": volume.project_id})
        try:
            return super().update_migrated_volume(
                ctxt, volume, new_volume, original_volume_status)
        except Exception:
            with excutils.save_and_reraise_exception():
                charge.refund()

    def create_volume(self, volume: Any) -> dict:
        """Create a volume; Cinder records the size the array holds.

        One exception: when ``clone_image`` left an image to Cinder's own
        image-volume cache path and Cinder creates the volume at the
        image's size to clone it into a new cache entry, Cinder extends it
        to the requested size afterwards and writes that size itself; the
        size is then left to Cinder.
        """
        self._check_volume_size(volume.size)
        requested = self._image_volume_sizes.pop(volume.id, None)
        if requested is not None and volume.size < requested:
            model_update = super().create_volume(volume) or {}
            model_update.pop("size", None)
            LOG.info("Volume %(vol)s: created at the image's size "
                     "%(size)s GiB by Cinder's image-volume cache path; "
                     "Cinder extends it to %(req)s GiB and records that "
                     "size itself.",
                     {"vol": volume.id, "size": volume.size,
                      "req": requested})
            return model_update
        return self._create_charged(volume)[0]

    def _create_volume_from_source(self, volume: Any, source: Any) -> dict:
        """Create a volume from a volume or snapshot with one array copy.

        Shared by ``create_cloned_volume`` (including clones of image-volume
        cache entries) and ``create_volume_from_snapshot``
        (:meth:`_clone_on_array`).
        """
        return self._clone_on_array(volume, source)[0]

    def _clone_on_array(self, volume: Any, source: Any
                        ) -> tuple[dict, quota_charge.RoundingCharge]:
        """Create a volume from a volume or snapshot with one array copy.

        The new array volume has its source's array size; it is extended
        only when the rounded requested size exceeds that. The model update
        carries the array size, and the project is charged for it first.

        :returns: the model update and the quota charged for the volume.
        """
        self._require_array_volume(source, "create a volume from")
        try:
            # A snapshot carries the size of its volume at snapshot time.
            source_size = source.volume_size
        except AttributeError:
            source_size = source.size
        self._check_volume_size(volume.size)
        gran = self._granularity()
        charge = quota_charge.RoundingCharge(volume, gran)
        charge.cover(sizing.clone_array_size(source_size, volume.size, gran))
        client = self._get_client()
        try:
            provider_id = compat.clone_on_array(client, source.provider_id,
                                                volume.id)
        except Exception:
            with excutils.save_and_reraise_exception():
                charge.refund()
        LOG.info("Volume %(vol)s: array volume %(pid)s created from "
                 "%(src)s (array volume %(src_pid)s).",
                 {"vol": volume.id, "pid": provider_id, "src": source.id,
                  "src_pid": source.provider_id})
        model_update = {
            "provider_id": provider_id,
            "replication_status": fields.ReplicationStatus.DISABLED,
        }
        try:
            array_gib = self._ensure_array_size(
                volume.id, volume.size, sizing.round_up(source_size, gran),
                lambda: [_ArrayVolume("new", client, provider_id)])
            charge.cover(array_gib)
            if volume.is_replicated():
                self._setup_volume_replication(volume, provider_id)
                model_update["replication_status"] = (
                    fields.ReplicationStatus.ENABLED)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove_unfinished(volume, provider_id)
                charge.refund()
        model_update["size"] = array_gib
        LOG.info("Volume %(vol)s: Cinder records %(array)s GiB, the size the "
                 "array holds (requested %(req)s GiB).",
                 {"vol": volume.id, "array": array_gib, "req": volume.size})
        return model_update, charge

    def delete_volume(self, volume: Any) -> None:
        """Delete a volume; one without an array volume id too.

        A volume whose create failed has no ``provider_id``, but the array
        may have made its volume after the client gave up waiting (see
        :mod:`powerflex_cache_driver.lost_answer`): on a real delete it is
        looked up by the name it was given, and removed unless another
        Cinder record owns it or it is mapped
        (:func:`~powerflex_cache_driver.lost_answer.remove_late_create`).
        A copy into the volume that ended with its service (a restart in
        the middle of a copy across pools) left it mapped to this host
        before Cinder learnt its id: the mappings such copies left of it
        are removed first, and if one cannot be, the delete fails (the
        volume ends ``error_deleting``; deleting it again tries again)
        instead of leaving the array volume behind.
        """
        if not volume.provider_id:
            copy_mapped = None
            if host_attach.driver_maps_sdc(self):
                data_copy.HostAssistedCopy(self).sweep_left_mappings(
                    volume.id)
                copy_mapped = host_mappings.left_by_copy
            lost_answer.remove_late_create(self._get_client(), volume,
                                           copy_mapped)
        try:
            super().delete_volume(volume)
        except exception.VolumeBackendAPIException:
            with excutils.save_and_reraise_exception() as ctx:
                ctx.reraise = not self._in_deletion(volume)
        if volume.provider_id and host_attach.driver_maps_sdc(self):
            # A copy killed mid-way left its record of the mapping the
            # removal just undid.
            host_mappings.forget(volume.provider_id)

    def create_snapshot(self, snapshot: Any) -> dict:
        """Snapshot a volume; one without an array volume is refused."""
        self._require_array_volume(snapshot.volume, "snapshot volume")
        return super().create_snapshot(snapshot)

    def delete_snapshot(self, snapshot: Any) -> None:
        """Delete a snapshot; one without an array volume id too."""
        if not snapshot.provider_id:
            lost_answer.remove_late_create(self._get_client(), snapshot)
        try:
            super().delete_snapshot(snapshot)
        except exception.VolumeBackendAPIException:
            with excutils.save_and_reraise_exception() as ctx:
                ctx.reraise = not self._in_deletion(snapshot)

    def _in_deletion(self, obj: Any) -> bool:
        """Whether the array is removing ``obj``'s array volume already.

        It answers rc 212 to every request about a volume it is removing
        (a ``removeVolume`` whose answer was lost and that Cinder sent
        again, say), where Cinder's driver only takes rc 79 for gone: the
        volume is as good as deleted.
        """
        if not (obj.provider_id and lost_answer.is_being_removed(
                self._get_client(), obj.provider_id)):
            return False
        LOG.info("Array volume %(pid)s of %(id)s is being removed by the "
                 "array already (rc 212): deleted.",
                 {"pid": obj.provider_id, "id": obj.id})
        return True

    def reserve_extend(self, volume: Any, new_size: int
                       ) -> tuple[int, list]:
        """Reserve the quota for the size an extend to ``new_size`` records.

        Called by this package's volume manager
        (:mod:`powerflex_cache_driver.manager`) before the extend, which
        then records the array size instead of ``new_size``. Cinder's API
        reserved ``new_size``; the rounding beyond it is reserved here, to
        be committed or rolled back with Cinder's reservations.

        :returns: the array size the extend leads to, and the reservations.
        :raises RoundingExceedsQuota: the project has no room for the
            rounding; nothing is reserved and the array is not asked.
        """
        gran = self._granularity()
        array_gib = sizing.round_up(new_size, gran)
        charge = quota_charge.RoundingCharge(volume, gran,
                                             reserved_gib=new_size)
        return array_gib, charge.reserve(array_gib)

    def extend_volume(self, volume: Any, new_size: int) -> None:
        """Extend a volume, sending the array only what it needs.

        On a replicated volume both the primary and the secondary array
        volumes are extended. Cinder writes the size after the driver
        returns: ``new_size`` with Cinder's volume manager, the array size
        (:meth:`array_size_after_extend`) with this package's.
        """
        LOG.info("Extend volume %(vol)s from %(old)s GiB to %(new)s GiB.",
                 {"vol": volume.id, "old": volume.size, "new": new_size})
        self._check_volume_size(new_size)
        self._require_array_volume(volume, "extend volume")
        array_gib = self._ensure_array_size(
            volume.id, new_size,
            sizing.round_up(volume.size, self._granularity()),
            lambda: self._array_volumes_of(volume))
        LOG.info("Volume %(vol)s: the array holds %(array)s GiB after the "
                 "extend to %(new)s GiB.",
                 {"vol": volume.id, "array": array_gib, "new": new_size})
        if self._manager_records_extends:
            self._extended_sizes[volume.id] = array_gib

    def array_size_after_extend(self, volume_id: str) -> Optional[int]:
        """The size the array held after the volume's last extend, once.

        More than the rounded request when the volume was grown on the
        array outside Cinder.
        """
        return self._extended_sizes.pop(volume_id, None)

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
