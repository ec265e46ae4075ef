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
"""Faults of the simulated gateway that several scenarios inject.

A fault is armed on an in-process Cinder
(:class:`tools.beds.inprocess_cinder.InProcessCinder`, a test) by calling
what :func:`slow` returns with it and a dict the scenario keeps its
context in (``arm(test, ctx)``), the form of the rows of
``tests/functional/test_faults.py``.
"""

from typing import Any, Callable

Arm = Callable[[Any, dict], None]

READ_TIMEOUT = 2.5
"""The REST client's read timeout in the rows that provoke one (seconds);
only there: a loaded machine may answer others more slowly."""
SLOW = READ_TIMEOUT * 1.6
"""An injected delay the client gives up waiting for."""


def slow(op: str, times: int = 1) -> Arm:
    """``op`` answers after the client's read timeout (the array acts)."""
    def arm(test: Any, ctx: dict) -> None:
        client = test.driver._get_client()
        test.addCleanup(setattr, client, "rest_api_read_timeout",
                        client.rest_api_read_timeout)
        client.rest_api_read_timeout = READ_TIMEOUT
        test.sim.faults.delay(op, SLOW, times=times)
        ctx["slow"] = op
    return arm
