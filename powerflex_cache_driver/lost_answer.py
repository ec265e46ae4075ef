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
"""Array creates whose answer was lost.

Cinder's REST client sends ``createVolume`` and ``snapshotVolumes`` once:
no retry. When the connection drops after the array acted, or the read
times out, the create fails although the array made the volume, which no
Cinder row then knows of. (A retry would not help: the array refuses a
second volume of the same name with rc 99.)

Every array volume Cinder's driver makes is named after the Cinder object
(``id_to_base64`` of the volume or snapshot id), so after any failed create
the array volume is looked up by that name (``getByName``):

* found, and it is what was asked (in the requested storage pool and at
  least the requested size for a ``createVolume``; a snapshot of the
  requested source for a ``snapshotVolumes``): the array did the work, and
  it is used, as if the answer had arrived. The name is unique on the
  array and derived from the Cinder id, so it can only have been made for
  this create. Throwing it away would fail a create that succeeded;
* found, but not what was asked (a leftover of an earlier attempt of the
  same object, such as a half-made clone that could not be removed): it is
  removed and the error is raised;
* not found: the error is raised. After a read timeout the array may still
  act later; the volume then ends in error, and deleting it removes the
  array volume by its name (:func:`remove_by_name`).
"""

import functools
import inspect
from typing import Any, Callable, Optional
import urllib.parse

from cinder.volume.drivers.dell_emc.powerflex import rest_client
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils
from oslo_log import log as logging
from oslo_utils import units

LOG = logging.getLogger(__name__)

_NOT_FOUND_CODES = (rest_client.VOLUME_NOT_FOUND_ERROR,
                    getattr(rest_client, "OLD_VOLUME_NOT_FOUND_ERROR", 78))
"""``errorCode`` of the gateway's answer for a volume it does not hold."""


class LookupFailed(Exception):
    """The gateway did not say whether a volume of that name exists."""


def array_name(object_id: str) -> str:
    """The array name Cinder's driver gives a volume or snapshot."""
    return flex_utils.id_to_base64(object_id)


def find_by_name(client: Any, object_id: str) -> Optional[dict]:
    """The array volume named after ``object_id``, or None.

    :raises LookupFailed: the gateway gave no clear answer.
    """
    name = array_name(object_id)
    try:
        r, response = client.execute_powerflex_get_request(
            "/types/Volume/instances/getByName::%(name)s",
            name=urllib.parse.quote(name, ""))
    except Exception as exc:
        raise LookupFailed(str(exc)) from exc
    if r.status_code != 200:
        if (response or {}).get("errorCode") in _NOT_FOUND_CODES:
            return None
        raise LookupFailed(str(response))
    try:
        return client.query_volume(response)
    except Exception as exc:
        raise LookupFailed(str(exc)) from exc


def is_gone(client: Any, provider_id: str) -> bool:
    """Whether the gateway says it holds no volume ``provider_id``.

    False when the volume is there or the answer tells nothing.
    """
    try:
        r, response = client.execute_powerflex_get_request(
            "/instances/Volume::%(vol_id)s", vol_id=provider_id)
    except Exception:
        LOG.debug("Could not query array volume %s.", provider_id,
                  exc_info=True)
        return False
    return (r.status_code != 200 and
            (response or {}).get("errorCode") in _NOT_FOUND_CODES)


def remove_by_name(client: Any, object_id: str) -> None:
    """Remove the array volume named after ``object_id``, if there is one.

    For a Cinder volume or snapshot without ``provider_id``: its create
    failed, but the array may have made its volume anyway (late, after the
    client gave up waiting).
    """
    try:
        found = find_by_name(client, object_id)
    except LookupFailed:
        LOG.warning("%(id)s has no array volume id; could not look for an "
                    "array volume named %(name)s.",
                    {"id": object_id, "name": array_name(object_id)},
                    exc_info=True)
        return
    if found is None:
        return
    LOG.warning("%(id)s has no array volume id, but array volume %(pid)s "
                "is named after it (made by a create whose answer was "
                "lost); removing it.", {"id": object_id, "pid": found["id"]})
    client.remove_volume(found["id"])


def _recover(client: Any, object_id: str, what: str,
             matches: Callable[[dict], bool]) -> Optional[str]:
    """After a failed create: the id of the array volume to use, or None.

    Called with the create's exception being handled; returns None when
    that exception is to be raised.
    """
    try:
        found = find_by_name(client, object_id)
    except LookupFailed:
        LOG.warning("%(what)s %(id)s failed; could not check whether the "
                    "array made it anyway.", {"what": what, "id": object_id},
                    exc_info=True)
        return None
    if found is None:
        return None
    try:
        usable = matches(found)
    except Exception:
        LOG.warning("%(what)s %(id)s failed; could not check array volume "
                    "%(pid)s named after it.",
                    {"what": what, "id": object_id, "pid": found["id"]},
                    exc_info=True)
        return None
    if usable:
        LOG.warning("%(what)s %(id)s failed, but the array made it: array "
                    "volume %(pid)s named %(name)s; using it.",
                    {"what": what, "id": object_id, "pid": found["id"],
                     "name": found.get("name")})
        return found["id"]
    LOG.warning("%(what)s %(id)s failed; array volume %(pid)s named after "
                "it is not what was asked (left by an earlier attempt); "
                "removing it.",
                {"what": what, "id": object_id, "pid": found["id"]})
    try:
        client.remove_volume(found["id"])
    except Exception:
        LOG.exception("Could not remove array volume %s.", found["id"])
    return None


def _recovering(client: Any, method: Callable[..., str], id_arg: str,
                describe: Callable[[dict], str],
                matcher: Callable[[dict], Callable[[dict], bool]]
                ) -> Callable[..., str]:
    """Wrap a create of ``client``: after a failure, :func:`_recover`.

    ``id_arg`` names the argument holding the Cinder id the array volume
    is named after; ``describe`` and ``matcher`` get the call's arguments
    and give the log label and what a found volume must be.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return method(*args, **kwargs)
        except Exception:
            call = signature.bind(*args, **kwargs).arguments
            pid = _recover(client, call[id_arg], describe(call),
                           matcher(call))
            if pid is None:
                raise
            return pid
    return wrapper


def _blank_volume_matcher(client: Any) -> Callable[[dict], Callable]:
    """A createVolume's volume: in the requested pool, at least its size."""
    def matcher(call: dict) -> Callable[[dict], bool]:
        size_kb = int(call["volume_size"]) * units.Mi

        def matches(found: dict) -> bool:
            pool_id = client.get_storage_pool_id(
                call["protection_domain_name"], call["storage_pool_name"])
            return (not found.get("ancestorVolumeId") and
                    found.get("storagePoolId") == pool_id and
                    int(found.get("sizeInKb") or 0) >= size_kb)
        return matches
    return matcher


def _snapshot_matcher(call: dict) -> Callable[[dict], bool]:
    """A snapshotVolumes' volume: a snapshot of the requested source."""
    source = call["volume_provider_id"]
    return lambda found: found.get("ancestorVolumeId") == source


def recover_lost_answers(client: Optional[Any]) -> None:
    """Make a REST client find the volumes of creates whose answer it lost.

    Wraps the client's ``create_volume`` and ``snapshot_volume`` (the
    latter also makes clones and volumes from snapshots).
    """
    if client is None:
        return
    client.create_volume = _recovering(
        client, client.create_volume, "volume_id",
        lambda call: "Create of volume", _blank_volume_matcher(client))
    client.snapshot_volume = _recovering(
        client, client.snapshot_volume, "snapshot_id",
        lambda call: "Array snapshot of %s for" % call["volume_provider_id"],
        _snapshot_matcher)
