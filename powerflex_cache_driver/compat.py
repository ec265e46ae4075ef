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
"""The one place that knows how Cinder releases differ.

Supported releases and what differs between them (features are detected,
not release numbers):

* Cinder 29.0.0 (2026.2): ``PowerFlexBaseDriver`` with ``PowerFlexDriver``
  (SDC) and ``PowerFlexNVMeDriver`` (NVMe-TCP) subclasses; the REST client
  knows PowerFlex 5 erasure-coded systems (``check_powerflex_ec_version``)
  and ``snapshot_volume(..., from_source=True)`` makes thin clones there.
  The SDC driver maps volumes itself and returns ``sdc_guid``.
* Cinder 28.0.0 (2026.1): a single ``PowerFlexDriver`` class, no NVMe-TCP
  driver, no erasure-coded support, ``snapshot_volume(id, name)`` only; it
  maps volumes itself and returns ``sdc_guid``, and has
  ``powerflex_max_image_cache_vtree_size``.
* Cinder 27.0.0 (2025.2): as 28, but its driver leaves ``sdc_guid`` out of
  the connection info it maps for (see :func:`with_sdc_guid`).
* Cinder 26.3.0 (2025.1) and 25.3.1 (2024.2): a single ``PowerFlexDriver``,
  no NVMe-TCP driver, no erasure-coded support, ``snapshot_volume(id,
  name)`` only. The driver does not map volumes: os-brick does, with the
  gateway credentials of the host's
  ``/opt/emc/scaleio/openstack/connector.conf`` (:data:`DRIVER_MAPS_VOLUMES`
  is False). ``ImageVolumeCache`` has no ``delete_cached_volume`` yet
  (:func:`delete_cached_volume`).
"""

from http import client as http_client
import importlib
import inspect
import json
from typing import Any, Callable, ContextManager, Optional

from cinder.db import api as db_api
from cinder import exception
from cinder.i18n import _
from cinder.volume.drivers.dell_emc.powerflex import driver as stock
from cinder.volume.drivers.dell_emc.powerflex import rest_client
from oslo_log import log as logging
import requests

LOG = logging.getLogger(__name__)

SQL_API: Any = (db_api if hasattr(db_api, "main_context_manager")
                else importlib.import_module("cinder.db.sqlalchemy.api"))
"""Cinder's SQLAlchemy layer: ``cinder.db.api`` in releases that merged it
there (29.0.0), ``cinder.db.sqlalchemy.api`` in earlier ones (25.x), whose
``cinder.db.api`` forwards to it."""

STOCK_SDC_DRIVER: type = stock.PowerFlexDriver
"""Cinder's PowerFlex driver for the SDC (``scaleio``) protocol."""

STOCK_NVME_DRIVER: Optional[type] = getattr(stock, "PowerFlexNVMeDriver",
                                            None)
"""Cinder's PowerFlex NVMe-TCP driver, or None on releases without it."""


def is_erasure_coded(client: Any) -> bool:
    """Tell whether ``client`` talks to a PowerFlex 5 erasure-coded system.

    Releases whose REST client predates PowerFlex 5 only know Mirroring
    systems.
    """
    check = getattr(client, "check_powerflex_ec_version", None)
    return bool(check()) if check is not None else False


def _snapshot_takes_from_source(client: Any) -> bool:
    params = inspect.signature(client.snapshot_volume).parameters
    return "from_source" in params


def clone_on_array(client: Any, source_provider_id: str,
                   volume_id: str) -> str:
    """Create a writable copy of an array volume; return its provider id.

    One ``snapshotVolumes`` call on Mirroring systems, ``createThinClone`` on
    erasure-coded ones (where the release supports them).
    """
    if _snapshot_takes_from_source(client):
        return client.snapshot_volume(source_provider_id, volume_id,
                                      from_source=True)
    return client.snapshot_volume(source_provider_id, volume_id)


class _UnavailableNVMeDriver(STOCK_SDC_DRIVER):
    """Stands in for ``PowerFlexNVMeDriver`` on releases without it.

    Loading the NVMe-TCP variant there fails at once with an error that
    names the ``volume_driver`` setting, instead of an ImportError.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise exception.InvalidConfigurationValue(
            option="volume_driver",
            value=_("%s (this Cinder release has no PowerFlexNVMeDriver; "
                    "use powerflex_cache_driver.driver.PowerFlexCacheDriver)")
            % type(self).__name__)


NVME_DRIVER_BASE: type = STOCK_NVME_DRIVER or _UnavailableNVMeDriver
"""Base class of the NVMe-TCP variant on this release."""


DRIVER_MAPS_VOLUMES: bool = hasattr(rest_client.RestClient,
                                    "query_sdc_id_by_guid")
"""True where Cinder's SDC driver maps volumes to the SDC itself (27 on).

Before (25, 26) the driver only returns the gateway's address and
os-brick maps the volume, with credentials from the host's
``/opt/emc/scaleio/openstack/connector.conf``.
"""


def with_sdc_guid(connection_info: dict, connector: dict) -> dict:
    """Put the connector's ``sdc_guid`` into SDC connection info.

    Cinder 28 and 29 return it; Cinder 27 maps the volume itself but leaves
    it out, and os-brick 7 then takes its legacy path, which maps the volume
    again through a gateway address the connection info does not carry, so
    attaching fails. With ``sdc_guid`` os-brick only waits for the device,
    as the driver already mapped it.

    Cinder 25 and 26 do not map the volume: there os-brick's legacy path is
    the only one that maps it, so the connection info is left as it is.
    """
    data = connection_info.get("data")
    if (DRIVER_MAPS_VOLUMES and
            connection_info.get("driver_volume_type") == "scaleio" and
            data is not None and not data.get("sdc_guid") and
            connector.get("sdc_guid")):
        data["sdc_guid"] = connector["sdc_guid"]
    return connection_info


def delete_cached_volume(cache: Any, context: Any, entry: dict,
                         reason: str) -> None:
    """Delete the volume of an image-volume cache entry as Cinder does.

    ``ImageVolumeCache.delete_cached_volume`` appeared in Cinder 27; before,
    the same deletion is its private ``_delete_image_volume``.
    """
    delete = getattr(cache, "delete_cached_volume", None)
    if delete is not None:
        delete(context, entry, reason)
        return
    LOG.debug("%(msg)s: entry %(entry)s.",
              {"msg": reason, "entry": entry.get("volume_id")})
    cache._delete_image_volume(context, entry)


def _login_again_on_401(client: Any) -> Callable[..., Any]:
    check_response = client._check_response

    def check_and_log_in_again(response: Any, request: str,
                               params: Optional[dict] = None) -> Any:
        response = check_response(response, request, params)
        if response.status_code not in (http_client.UNAUTHORIZED,
                                        http_client.FORBIDDEN):
            return response
        LOG.info("PowerFlex gateway refused the token; logging in again "
                 "and sending the request once more.")
        if not client._refresh_token():
            return response
        auth = (client.rest_username, client.rest_token)
        timeout = (client.rest_api_connect_timeout,
                   client.rest_api_read_timeout)
        verify = client._get_verify_cert()
        # The client passes the parameters of a POST, None for a GET.
        if params is None:
            retried = requests.get(request, auth=auth, verify=verify,
                                   timeout=timeout)
        else:
            retried = requests.post(request, data=json.dumps(params),
                                    headers=client._get_headers(), auth=auth,
                                    verify=verify, timeout=timeout)
        return check_response(retried, request, params)
    return check_and_log_in_again


def log_in_again_on_401(client: Optional[Any]) -> None:
    """Make a REST client log in again when the gateway refuses its token.

    Cinder 25 and 26 do it in ``RestClient._check_response``; from 27 on
    the client only renews its token every five minutes, so a token the
    gateway revoked (a gateway restart, a password change, an MDM
    switch-over) fails every request until then. The request is sent once
    more after a fresh login.
    """
    if client is None:
        return
    params = inspect.signature(client._check_response).parameters
    if "is_get_request" in params:
        return  # this release's client already does it
    client._check_response = _login_again_on_401(client)


def db_transaction(context: Any) -> ContextManager:
    """One writing transaction for Cinder's database calls with ``context``.

    Cinder's database functions join a transaction already open on their
    context (oslo.db's enginefacade).
    """
    return SQL_API.main_context_manager.writer.using(context)


def commit_reservations_joined(context: Any, reservations: list,
                               project_id: str) -> None:
    """Cinder's ``reservation_commit`` in the transaction open on ``context``.

    Call it inside :func:`db_transaction`. It runs Cinder's own function
    without its deadlock retry: a retry inside a transaction the database
    has already rolled back would commit nothing and say nothing, so a
    deadlock ends the whole transaction, for its caller to retry whole.
    """
    commit = inspect.unwrap(SQL_API.reservation_commit)
    commit(context, reservations, project_id=project_id)
