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
"""Cinder's create-volume flow: what this driver's failures reschedule.

When this package's driver finds that the project has room for the size
asked but not for the size the array holds
(:class:`~powerflex_cache_driver.quota_charge.RoundingExceedsQuota`),
every other service of the backend would refuse it the same: Cinder's
flow would still reschedule the create to each of them, and the user
would read "Driver failed to create the volume" once per service, then
"No valid backend". With :func:`install`, the flow's
``OnFailureRescheduleTask`` takes the refusal as one not worth a
reschedule (as it takes an image too big: the volume ends ``error``), and
the user is told why with Cinder's own message "Not enough quota resource
for operation".

Nor is a failed create whose volume keeps an array volume this driver
could not remove (:func:`_on_failure`).

:func:`install` puts :func:`get_flow` in the place of Cinder's in
``cinder.volume.flows.manager.create_volume``, where Cinder's volume
manager calls it; it builds Cinder's flow and changes only that, for a
driver that says it is this package's (:data:`DRIVER_FLAG`): flows built
for another backend's driver are Cinder's.
"""

import functools
import inspect
from typing import Any, Optional

from cinder.db import api as db_api
from cinder.message import api as message_api
from cinder.message import message_field
from cinder.volume.flows.manager import create_volume as create_flow
from oslo_log import log as logging
from taskflow import states

from powerflex_cache_driver import quota_charge

LOG = logging.getLogger(__name__)

CINDER_GET_FLOW = create_flow.get_flow
"""Cinder's own ``get_flow``, which :func:`get_flow` calls."""

DRIVER_FLAG = "powerflex_cache_create_flow"
"""A driver class attribute, True for the drivers whose flows change."""


def _quota_message_recorded(context: Any, volume: Any) -> bool:
    """Whether Cinder already told the user of the refusal (a raw create)."""
    quota_exceed = message_field.Detail.QUOTA_EXCEED[0]
    return any(message["detail_id"] == quota_exceed
               for message in db_api.message_get_all(
                   context, filters={"resource_uuid": volume.id}))


def _on_failure(context: Any, volume: Any, reschedule: Optional[Any],
                state: str, details: dict) -> None:
    """Decide, when a task of the flow fails, what the failure task does.

    A taskflow notifier callback, called for each task that fails, before
    the flow reverts:

    * a volume that still names an array volume (this driver kept it,
      having failed to remove it after a failed create) is not
      rescheduled: it ends ``error`` holding it, and its delete removes
      it. A reschedule would try one delete, forget a failed one, and the
      retry elsewhere would overwrite ``provider_id``: an array volume
      nobody knows of;
    * a refusal for the rounding's quota gets Cinder's user message "Not
      enough quota resource for operation" (not rescheduled: see
      :func:`get_flow`).
    """
    failure = details.get("result")
    if not getattr(failure, "check", None):
        return
    if volume.provider_id and reschedule is not None:
        LOG.warning("Volume %(vol)s: create failed and the volume keeps "
                    "array volume %(pid)s; not rescheduled, so that its "
                    "delete removes it.",
                    {"vol": volume.id, "pid": volume.provider_id})
        reschedule.do_reschedule = False
    if not failure.check(quota_charge.RoundingExceedsQuota):
        return
    LOG.info("Volume %(vol)s: create refused for quota, not rescheduled "
             "(every service of the backend would refuse it): %(error)s",
             {"vol": volume.id, "error": failure.exception_str})
    try:
        if not _quota_message_recorded(context, volume):
            message_api.API().create(
                context, message_field.Action.CREATE_VOLUME_FROM_BACKEND,
                resource_uuid=volume.id,
                detail=message_field.Detail.QUOTA_EXCEED)
    except Exception:
        LOG.exception("Volume %s: could not record the user message of "
                      "the refusal.", volume.id)


def get_flow(*args: Any, **kwargs: Any) -> Any:
    """Cinder's create-volume flow, with this module's failure handling.

    Its failure task does not reschedule a refusal for the rounding's
    quota, nor a create whose volume keeps an array volume
    (:func:`_on_failure`). Takes Cinder's ``get_flow`` arguments and
    returns its engine, compiled.
    """
    call = inspect.signature(CINDER_GET_FLOW).bind(*args, **kwargs)
    engine = CINDER_GET_FLOW(*args, **kwargs)
    if not getattr(call.arguments["driver"], DRIVER_FLAG, False):
        return engine
    engine.compile()
    reschedule = None
    for atom in engine.compilation.execution_graph:
        if isinstance(atom, create_flow.OnFailureRescheduleTask):
            atom.no_reschedule_types.append(
                quota_charge.RoundingExceedsQuota)
            reschedule = atom
    engine.atom_notifier.register(
        states.FAILURE, functools.partial(
            _on_failure, call.arguments["context"],
            call.arguments["volume"], reschedule))
    return engine


def install() -> None:
    """Make Cinder's volume manager build its create flows with ours.

    And make Cinder's own user message for a raw create the refusal
    failed (``Driver failed to create the volume``) the quota's, as it
    maps its own quota errors. Idempotent.
    """
    create_flow.get_flow = get_flow
    names = message_field.Detail.EXCEPTION_DETAIL_MAPPINGS[
        message_field.Detail.QUOTA_EXCEED]
    if quota_charge.RoundingExceedsQuota.__name__ not in names:
        names.append(quota_charge.RoundingExceedsQuota.__name__)
