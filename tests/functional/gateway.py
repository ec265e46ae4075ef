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
from tests.functional import green


class SimulatorFixture(fixtures.Fixture):
    """Run a :class:`GatewaySimulator` for the duration of a test.

    :param workdir: the simulator's directory (certificates, sparse backing
        files, the ``by-id`` directory).
    :param kwargs: passed to :class:`GatewaySimulator`.
    """

    def __init__(self, workdir: str, **kwargs: Any) -> None:
        super().__init__()
        self.workdir = workdir
        self.kwargs = kwargs
        self.sim: Any = None

    def _setUp(self) -> None:
        self.useFixture(green.GreenImportOrderFixture())
        os.makedirs(self.workdir, exist_ok=True)
        self.sim = simulator.GatewaySimulator(self.workdir, **self.kwargs)
        self.sim.start()
        self.addCleanup(self.sim.stop)
