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
"""Cinder's create-volume flow: a refusal of quota is not rescheduled.

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

:func:`install` puts :func:`get_flow` in the place of Cinder's in
``cinder.volume.flows.manager.create_volume``, where Cinder's volume
manager calls it; it builds Cinder's flow and changes only that. Flows
built for another backend's driver are the same as Cinder's: only this
package's driver raises the refusal.
"""

import functools
import inspect
from typing import Any

from cinder.message import api as message_api
from cinder.message import message_field
from cinder.volume.flows.manager import create_volume as create_flow
from oslo_log import log as logging
from taskflow import states

from powerflex_cache_driver import quota_charge

LOG = logging.getLogger(__name__)

CINDER_GET_FLOW = create_flow.get_flow
"""Cinder's own ``get_flow``, which :func:`get_flow` calls."""


def _tell_user(context: Any, volume: Any, state: str,
               details: dict) -> None:
    """Record the user message of a task failed for the rounding's quota.

    A taskflow notifier callback, called for each task that fails.
    """
    failure = details.get("result")
    if not getattr(failure, "check", None) or not failure.check(
            quota_charge.RoundingExceedsQuota):
        return
    LOG.info("Volume %(vol)s: create refused for quota, not rescheduled "
             "(every service of the backend would refuse it): %(error)s",
             {"vol": volume.id, "error": failure.exception_str})
    try:
        message_api.API().create(
            context, message_field.Action.CREATE_VOLUME_FROM_BACKEND,
            resource_uuid=volume.id,
            detail=message_field.Detail.QUOTA_EXCEED)
    except Exception:
        LOG.exception("Volume %s: could not record the user message of "
                      "the refusal.", volume.id)


def get_flow(*args: Any, **kwargs: Any) -> Any:
    """Cinder's create-volume flow, whose failure task spares quota refusals.

    Takes Cinder's ``get_flow`` arguments and returns its engine, compiled.
    """
    call = inspect.signature(CINDER_GET_FLOW).bind(*args, **kwargs)
    engine = CINDER_GET_FLOW(*args, **kwargs)
    engine.compile()
    for atom in engine.compilation.execution_graph:
        if isinstance(atom, create_flow.OnFailureRescheduleTask):
            atom.no_reschedule_types.append(
                quota_charge.RoundingExceedsQuota)
    engine.atom_notifier.register(
        states.FAILURE, functools.partial(
            _tell_user, call.arguments["context"], call.arguments["volume"]))
    return engine


def install() -> None:
    """Make Cinder's volume manager build its create flows with ours.

    Idempotent.
    """
    create_flow.get_flow = get_flow
