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
"""Two cinder-volume services of one cluster in the harness's process.

The harness's in-process Cinder has one ``VolumeManager``. :func:`start`
adds ``count`` more, each a service of its own (host ``bench-N@powerflex``)
in the cluster ``bench@powerflex``, sharing its configuration, database,
simulator and SDC, as active/active services of one backend
share an array. Casts are delivered concurrently in green threads (the
process is monkey-patched by eventlet, like cinder-volume), the
scheduler spreads new volumes over the services in turn, and Cinder's
locks are real (tooz, file backend): the harness's fake RPC
(:mod:`tools.beds.fake_rpc`) is reused, only its delivery and placement
are extended.
"""

import dataclasses
import itertools
import time
from typing import Any

from cinder import context as cinder_context
from cinder import objects
from cinder.volume import api as volume_api
import eventlet
from oslo_log import log as logging

from tools.beds import fake_rpc
from tools.beds import inprocess_cinder

LOG = logging.getLogger(__name__)

CLUSTER = "bench@%s" % inprocess_cinder.BACKEND


class ConcurrentCastQueue(fake_rpc.CastQueue):
    """Deliver every pending cast at once, each in its own green thread.

    :attr:`seconds` keeps how long each delivered ``create_volume`` ran,
    by volume id.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def drain(self) -> list[str]:
        """Deliver until nothing is pending; return the names delivered."""
        names: list[str] = []
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            pool = eventlet.GreenPool(len(batch))
            for message in batch:
                pool.spawn_n(self._deliver, message, names)
            pool.waitall()
        return names

    def _deliver(self, message: tuple, names: list[str]) -> None:
        name, handler, ctxt_dict, args = message
        context = self._serializer.deserialize_context(ctxt_dict)
        kwargs = {key: self._serializer.deserialize_entity(context, value)
                  for key, value in args.items()}
        started = time.perf_counter()
        try:
            handler(context, **kwargs)
        except Exception as exc:
            LOG.exception("Exception during message handling (%s)", name)
            self.failures.append((name, exc))
        if name == "create_volume":
            self.seconds[kwargs["volume"].id] = (time.perf_counter() -
                                                 started)
        names.append(name)
        self.delivered.append(name)


class RoundRobinSchedulerAPI(fake_rpc.FakeSchedulerAPI):
    """Place new volumes on the services of the cluster in turn."""

    def __init__(self, queue: fake_rpc.CastQueue, managers: list,
                 pool: str) -> None:
        super().__init__(queue, managers[0], pool)
        self._next = itertools.cycle(managers)

    def create_volume(self, *args: Any, **kwargs: Any) -> None:
        """Pick the next service, then place and cast as the harness does."""
        self._manager = next(self._next)
        super().create_volume(*args, **kwargs)


@dataclasses.dataclass
class Cluster:
    """The services, and an API whose casts reach them."""

    managers: list
    api: Any
    casts: ConcurrentCastQueue


def start(cinder: Any, count: int = 2) -> Cluster:
    """Start ``count`` clustered services next to ``cinder``'s own."""
    admin = cinder_context.get_admin_context()
    objects.Cluster(context=admin, name=CLUSTER,
                    binary="cinder-volume").create()
    managers = [inprocess_cinder.start_volume_manager(
        admin, "bench-%d@%s" % (index, inprocess_cinder.BACKEND), CLUSTER)
        for index in range(count)]
    casts = ConcurrentCastQueue()
    scheduler = RoundRobinSchedulerAPI(casts, managers, inprocess_cinder.POOL)
    volume_rpc = fake_rpc.FakeVolumeRPCAPI(casts, managers[0])
    api = volume_api.API()
    api.scheduler_rpcapi = scheduler
    api.volume_rpcapi = volume_rpc
    for manager in managers:
        cache = manager.image_volume_cache
        cache.volume_api.scheduler_rpcapi = scheduler
        cache.volume_api.volume_rpcapi = volume_rpc
    return Cluster(managers=managers, api=api, casts=casts)
