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
  array volume by its name (:func:`remove_late_create`).

Removing by name at delete time is guarded, since a name is not proof of
ownership:

* only a real delete removes by name: Cinder's record, read again, has no
  ``provider_id`` and a status a create never leaves it in (deleting,
  error...). Cinder's reschedule clean-up (``OnFailureRescheduleTask.
  _post_reschedule``) calls the driver's delete on the failed attempt
  while the create is cast again, maybe to another backend on the same
  array, which makes an array volume of the same name;
* an array volume another Cinder volume or snapshot record names as its
  ``provider_id`` (an operator managed the orphan with
  ``manage_existing``, which keeps the array name), or that the array
  reports mapped, is kept, with a warning;
* when the array does not say whether the name exists, the delete fails,
  so that it can be retried, instead of forgetting a volume the array may
  hold.
"""

import functools
import inspect
from typing import Any, Callable, Optional
import urllib.parse

from cinder import context as cinder_context
from cinder import exception
from cinder.i18n import _
from cinder import objects
from cinder.volume.drivers.dell_emc.powerflex import rest_client
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils
from oslo_log import log as logging
from oslo_utils import units

LOG = logging.getLogger(__name__)

NOT_FOUND_CODES = (rest_client.VOLUME_NOT_FOUND_ERROR,
                   getattr(rest_client, "OLD_VOLUME_NOT_FOUND_ERROR", 78))
"""``errorCode`` of the gateway's answer for a volume it does not hold."""

CREATE_OVER_STATUSES = ("deleting", "error_deleting",
                        "error_managing_deleting", "error")
"""Statuses of a volume or snapshot record that no create is working on.

Cinder's API deletes from ``deleting`` (``error_managing_deleting`` for a
volume whose manage failed) and leaves ``error_deleting`` when the delete
fails; its own clean-ups delete a volume in ``error`` directly (an image
volume whose clone failed, ``VolumeManager._clone_image_volume``).
``error`` is final: a rescheduled create keeps ``creating`` until its last
attempt is over. A create in progress anywhere keeps the record in
``creating`` or ``downloading``, or sets ``provider_id``."""


class LookupFailed(Exception):
    """The gateway did not say whether a volume of that name exists."""


def array_name(object_id: str) -> str:
    """The array name Cinder's driver gives a volume or snapshot."""
    return flex_utils.id_to_base64(object_id)


def find_by_name(client: Any, object_id: str) -> Optional[dict]:
    """The array volume named after ``object_id``, or None.

    None too when the array is removing that volume (rc 212: its name stays
    taken until the removal completes, but there is nothing left to use or
    to remove).

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
        if (response or {}).get("errorCode") in (
                NOT_FOUND_CODES + (VOLUME_REMOVAL_IN_PROGRESS,)):
            return None
        raise LookupFailed(str(response))
    try:
        return client.query_volume(response)
    except Exception as exc:
        if is_being_removed(client, response):
            return None
        raise LookupFailed(str(exc)) from exc


VOLUME_REMOVAL_IN_PROGRESS = 212
"""``VOL_REMOVE_IN_PROGRESS``: "A volume removal operation is currently in
progress." The array answers it to a request naming a volume it is
removing (Dell's csi-powerflex takes it for a deleted volume)."""


def _error_code(client: Any, provider_id: str) -> Optional[int]:
    """The gateway's error code for a GET of volume ``provider_id``.

    None when the volume is there or the answer tells nothing.
    """
    try:
        r, response = client.execute_powerflex_get_request(
            "/instances/Volume::%(vol_id)s", vol_id=provider_id)
    except Exception:
        LOG.debug("Could not query array volume %s.", provider_id,
                  exc_info=True)
        return None
    if r.status_code == 200 or not isinstance(response, dict):
        return None
    return response.get("errorCode")


def is_gone(client: Any, provider_id: str) -> bool:
    """Whether the gateway says it holds no volume ``provider_id``.

    Or that it is removing it (rc 212): it is gone for any use.
    False when the volume is there or the answer tells nothing.
    """
    return _error_code(client, provider_id) in (
        NOT_FOUND_CODES + (VOLUME_REMOVAL_IN_PROGRESS,))


def is_being_removed(client: Any, provider_id: str) -> bool:
    """Whether the gateway says it is removing volume ``provider_id``."""
    return _error_code(client, provider_id) == VOLUME_REMOVAL_IN_PROGRESS


def owners(provider_id: str) -> list[str]:
    """The Cinder records naming array volume ``provider_id``.

    Volumes and snapshots, deleted rows excluded, read through Cinder's
    objects, as ``"volume <id>"`` and ``"snapshot <id>"``.
    """
    ctx = cinder_context.get_admin_context()
    volumes = objects.VolumeList.get_all(
        ctx, filters={"provider_id": provider_id})
    snapshots = objects.SnapshotList.get_all(
        ctx, {"provider_id": provider_id})
    return (["volume %s" % volume.id for volume in volumes] +
            ["snapshot %s" % snapshot.id for snapshot in snapshots])


def _reason_to_keep(found: dict) -> Optional[str]:
    """Why an array volume found by name is not to be removed, or None."""
    mapped = found.get("mappedSdcInfo")
    if mapped:
        return "the array reports it mapped to %s" % ", ".join(
            str(m.get("sdcId") or m.get("sdcName")) for m in mapped)
    owned = owners(found["id"])
    if owned:
        return ("Cinder's %s records it as its array volume" %
                " and ".join(owned))
    return None


def remove_by_name(client: Any, object_id: str, kind: str = "Volume",
                   copy_mapped: Optional[Callable[[str], bool]] = None
                   ) -> None:
    """Remove the array volume named after ``object_id``, if it is no one's.

    For a Cinder volume or snapshot without ``provider_id``: its create
    failed, but the array may have made its volume anyway (late, after the
    client gave up waiting). An array volume the array reports mapped, or
    that a Cinder record names as its ``provider_id``, is kept.

    :param kind: ``"Volume"`` or ``"Snapshot"``, for the messages.
    :raises VolumeBackendAPIException: the gateway did not say whether an
        array volume of that name exists.
    """
    name = array_name(object_id)
    try:
        found = find_by_name(client, object_id)
    except LookupFailed as exc:
        msg = (_("%(kind)s %(id)s: could not tell whether the array holds "
                 "an array volume named %(name)s, which its failed create "
                 "may have made (%(err)s). It is not removed; retry once "
                 "the array answers.") %
               {"kind": kind, "id": object_id, "name": name, "err": exc})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg) from exc
    if found is None:
        return
    if (copy_mapped is not None and found.get("mappedSdcInfo") and
            copy_mapped(found["id"])):
        msg = (_("%(kind)s %(id)s: array volume %(pid)s named after it is "
                 "still mapped to this host by a copy whose service ended, "
                 "and the mapping could not be removed; delete it again.") %
               {"kind": kind, "id": object_id, "pid": found["id"]})
        LOG.error(msg)
        raise exception.VolumeBackendAPIException(data=msg)
    reason = _reason_to_keep(found)
    if reason:
        LOG.warning("%(kind)s %(id)s has no array volume id; array volume "
                    "%(pid)s is named %(name)s after it but is kept: "
                    "%(reason)s.",
                    {"kind": kind, "id": object_id, "pid": found["id"],
                     "name": name, "reason": reason})
        return
    LOG.warning("%(kind)s %(id)s has no array volume id, but array volume "
                "%(pid)s is named %(name)s after it (made by a create whose "
                "answer was lost); removing it.",
                {"kind": kind, "id": object_id, "pid": found["id"],
                 "name": name})
    client.remove_volume(found["id"])


def _create_may_be_running(record: Any) -> bool:
    """Whether a create of ``record`` may be at work, by Cinder's DB.

    The record is read again: the caller's copy may predate a rescheduled
    create that another backend has made, or is making, since.
    """
    kind = record.obj_name()
    try:
        current = type(record).get_by_id(
            cinder_context.get_admin_context(), record.id)
    except exception.NotFound:
        LOG.info("%(kind)s %(id)s is no longer in Cinder's database; not "
                 "looking for an array volume named %(name)s.",
                 {"kind": kind, "id": record.id,
                  "name": array_name(record.id)})
        return True
    if current.provider_id or current.status not in CREATE_OVER_STATUSES:
        LOG.info("%(kind)s %(id)s is %(status)s in Cinder's database, with "
                 "array volume id %(pid)s: a create of it may be at work "
                 "elsewhere (rescheduled), so the array volume named "
                 "%(name)s, if any, is left to it.",
                 {"kind": kind, "id": record.id, "status": current.status,
                  "pid": current.provider_id,
                  "name": array_name(record.id)})
        return True
    return False


def remove_late_create(client: Any, record: Any,
                       copy_mapped: Optional[Callable[[str], bool]] = None
                       ) -> None:
    """On delete, remove what a failed create of ``record`` made late.

    ``record`` is a Cinder volume or snapshot without ``provider_id``.
    Nothing is looked up unless the delete is a real one
    (:data:`CREATE_OVER_STATUSES`); then :func:`remove_by_name`.
    """
    if not _create_may_be_running(record):
        remove_by_name(client, record.id, record.obj_name(), copy_mapped)


REFUSED = (exception.SnapshotLimitReached,)
"""Failures the array answered for, with nothing made: not looked up.

A full vtree (rc 182) is met once per rotation of a cache entry.
"""


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
        except REFUSED:
            raise
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
