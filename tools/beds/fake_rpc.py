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
"""Fake RPC: casts from Cinder's volume API delivered to one manager.

Cinder's volume API casts to the scheduler, which casts to a volume
service. Here both hops end in one ``VolumeManager``: the fake scheduler
places every new volume in the manager's single pool, as Cinder's filter
scheduler would with one backend. Casts are queued and delivered by
:meth:`CastQueue.drain`, in order, after the API call returned, as an RPC
server would; casts issued while a cast is delivered (for example the
deletion of a stale image-volume cache entry during a create) are delivered
after it.

Contexts and objects go through Cinder's own RPC serializers, so the
manager receives fresh copies, as it would from the message bus.
"""

import collections
from typing import Any, Callable, Optional

from cinder.objects import base as objects_base
from cinder import rpc
from cinder.volume import volume_utils
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class CastQueue:
    """Casts waiting for delivery."""

    def __init__(self) -> None:
        self._pending: collections.deque = collections.deque()
        self.delivered: list[str] = []
        self.failures: list[tuple[str, Exception]] = []
        self._serializer = rpc.RequestContextSerializer(
            objects_base.CinderObjectSerializer())

    def cast(self, name: str, handler: Callable[..., Any], context: Any,
             **kwargs: Any) -> None:
        """Queue ``handler(context, **kwargs)``, serialized like a cast."""
        message = (name, handler, self._serializer.serialize_context(context),
                   {key: self._serializer.serialize_entity(context, value)
                    for key, value in kwargs.items()})
        self._pending.append(message)

    def drain(self) -> list[str]:
        """Deliver every pending cast; return the names delivered.

        As an RPC server does, an exception raised by the manager is
        logged (and kept in :attr:`failures`), not raised to the caster.
        """
        names = []
        while self._pending:
            name, handler, ctxt_dict, args = self._pending.popleft()
            context = self._serializer.deserialize_context(ctxt_dict)
            kwargs = {key: self._serializer.deserialize_entity(context, value)
                      for key, value in args.items()}
            try:
                handler(context, **kwargs)
            except Exception as exc:
                LOG.exception("Exception during message handling (%s)", name)
                self.failures.append((name, exc))
            names.append(name)
            self.delivered.append(name)
        return names

    def __len__(self) -> int:
        return len(self._pending)


class _Strict:
    """Fail loudly on any cast the scenarios do not expect."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError("unexpected RPC %s.%s" %
                             (type(self).__name__, name))


class FakeSchedulerAPI(_Strict):
    """The scheduler RPC API: every volume goes to the manager's pool."""

    def __init__(self, queue: CastQueue, manager: Any, pool: str) -> None:
        self._queue = queue
        self._manager = manager
        self._pool = pool
        self.pool_override: Optional[str] = None
        """When set, the pool of the next volumes, whatever the request
        (a test's way to reach a driver with a volume in another pool)."""

    def _place(self, volume: Any, request_spec: Any) -> None:
        backend = None
        if request_spec is not None:
            backend = request_spec.get("resource_backend")
        host = backend or volume_utils.append_host(self._manager.host,
                                                   self._pool)
        if self.pool_override is not None:
            host = volume_utils.append_host(
                volume_utils.extract_host(host), self.pool_override)
        elif volume_utils.extract_host(host, "pool") is None:
            host = volume_utils.append_host(host, self._pool)
        volume.host = host
        volume.cluster_name = self._manager.cluster
        volume.save()

    def create_volume(self, ctxt: Any, volume: Any,
                      snapshot_id: Optional[str] = None,
                      image_id: Optional[str] = None,
                      request_spec: Any = None,
                      filter_properties: Optional[dict] = None,
                      backup_id: Optional[str] = None) -> None:
        """Place the volume and cast ``create_volume`` to the manager."""
        self._place(volume, request_spec)
        self._queue.cast("create_volume", self._manager.create_volume, ctxt,
                         volume=volume, request_spec=request_spec,
                         filter_properties=filter_properties or {},
                         allow_reschedule=True)

    def extend_volume(self, ctxt: Any, volume: Any, new_size: int,
                      reservations: list, request_spec: Any) -> None:
        """Cast ``extend_volume`` to the manager."""
        self._queue.cast("extend_volume", self._manager.extend_volume, ctxt,
                         volume=volume, new_size=new_size,
                         reservations=reservations)

    def create_snapshot(self, ctxt: Any, volume: Any, snapshot: Any,
                        backend: str, request_spec: Any = None) -> None:
        """Cast ``create_snapshot`` to the manager holding the volume."""
        self._queue.cast("create_snapshot", self._manager.create_snapshot,
                         ctxt, snapshot=snapshot)


class FakeVolumeRPCAPI(_Strict):
    """The volume RPC API of the one volume service."""

    def __init__(self, queue: CastQueue, manager: Any) -> None:
        self._queue = queue
        self._manager = manager

    def delete_volume(self, ctxt: Any, volume: Any,
                      unmanage_only: bool = False,
                      cascade: bool = False) -> None:
        """Cast ``delete_volume`` to the manager."""
        self._queue.cast("delete_volume", self._manager.delete_volume, ctxt,
                         volume=volume, unmanage_only=unmanage_only,
                         cascade=cascade)

    def delete_snapshot(self, ctxt: Any, snapshot: Any,
                        unmanage_only: bool = False) -> None:
        """Cast ``delete_snapshot`` to the manager."""
        self._queue.cast("delete_snapshot", self._manager.delete_snapshot,
                         ctxt, snapshot=snapshot,
                         unmanage_only=unmanage_only)


class RetryElsewhere:
    """The scheduler RPC API a failed create reschedules through.

    It places the volume on another service's ``pool`` and delivers the
    create there before it returns, as a scheduler and a quicker service
    would. :attr:`creates` counts the reschedules.
    """

    def __init__(self, service: Any, pool: str) -> None:
        self.queue = CastQueue()
        self._scheduler = FakeSchedulerAPI(self.queue, service, pool)
        self.creates = 0

    def create_volume(self, ctxt: Any, volume: Any, **kwargs: Any) -> None:
        """Schedule the create to the other service and run it there."""
        self.creates += 1
        self.queue.cast("create_volume", self._scheduler.create_volume,
                        ctxt, volume=volume, **kwargs)
        self.queue.drain()
        if self.queue.failures:
            raise AssertionError("the retry failed: %s" %
                                 self.queue.failures)


def reschedule_to(test: Any, second: Any, pool: str) -> RetryElsewhere:
    """Make the test's failed creates reschedule to service ``second``.

    Creates carry the retry information the filter scheduler adds when
    ``scheduler_max_attempts`` > 1 (so Cinder's ``OnFailureRescheduleTask``
    reschedules instead of failing); the reschedule's cast is delivered at
    once, as a scheduler and a faster service would: the retry is over
    before the failed attempt's ``_post_reschedule`` clean-up runs.

    :returns: the scheduler RPC API the reschedules go through.
    """
    first_create = test.scheduler.create_volume

    def create_with_retry(ctxt: Any, volume: Any, **kwargs: Any) -> None:
        kwargs["filter_properties"] = {"retry": {
            "num_attempts": 1, "backends": [test.manager.host],
            "hosts": [test.manager.host]}}
        first_create(ctxt, volume, **kwargs)
    test.mock_object(test.scheduler, "create_volume",
                     side_effect=create_with_retry)
    elsewhere = RetryElsewhere(second, pool)
    test.mock_object(test.manager, "scheduler_rpcapi", new=elsewhere)
    return elsewhere
