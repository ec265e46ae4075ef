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
"""The PowerFlex gateway simulator as a test fixture."""

import os
from typing import Any

import fixtures

from powerflex_cache_driver import simulator
from tools.beds import green_import_order

LOOP_DEVICES_ENV = "POWERFLEX_SIM_LOOP_DEVICES"
"""Set to 1 to run every functional test and tools scenario on loop
devices (``loop_devices`` of :class:`GatewaySimulator`, root)."""


def loop_devices_requested() -> bool:
    """True when :data:`LOOP_DEVICES_ENV` asks for loop devices."""
    value = os.environ.get(LOOP_DEVICES_ENV, "")
    return value.lower() in ("1", "true", "yes")


class SimulatorFixture(fixtures.Fixture):
    """Run a :class:`GatewaySimulator` for the duration of a test.

    :param workdir: the simulator's directory (certificates, sparse backing
        files, the ``by-id`` directory).
    :param kwargs: passed to :class:`GatewaySimulator`; ``loop_devices``
        defaults to :func:`loop_devices_requested`.
    """

    def __init__(self, workdir: str, **kwargs: Any) -> None:
        super().__init__()
        self.workdir = workdir
        self.kwargs = kwargs
        self.sim: Any = None

    def _setUp(self) -> None:
        self.useFixture(green_import_order.GreenImportOrderFixture())
        os.makedirs(self.workdir, exist_ok=True)
        kwargs = dict(self.kwargs)
        kwargs.setdefault("loop_devices", loop_devices_requested())
        self.sim = simulator.GatewaySimulator(self.workdir, **kwargs)
        self.sim.start()
        self.addCleanup(self.sim.stop)
