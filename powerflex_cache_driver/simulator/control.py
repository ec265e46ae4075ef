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
"""Fault control of a simulator running as its own process.

Tests that run the simulator in their own process arm faults through
:class:`~.faults.FaultInjector` directly. A test driving a simulator in
another process (the one-machine cloud) uses this endpoint, which no
real gateway has, under ``/simulator/`` (outside the gateway's ``/api``):

``POST /simulator/faults``
    Body: a list of rules, each ``{"op": ..., "kind": "delay", "seconds":
    S, "times": N}`` or ``{"op": ..., "kind": "drop", "after": false,
    "times": N}``. A delay and a drop armed together on one operation
    hold its next request for ``S`` seconds and then close the connection
    without acting: the client that sent it can be killed meanwhile.
``GET /simulator/faults``
    ``{"armed": {op: rules not yet used}}``: a rule leaves the table when
    a request takes it, so a test learns that the request arrived.
``DELETE /simulator/faults``
    Clears every rule.

Requests authenticate with the gateway user's name and password (Basic).
"""

from typing import Any

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import faults

PREFIX = "/simulator/"
FAULTS_PATH = "/simulator/faults"


def is_control_path(path: str) -> bool:
    """Whether a request path is one of this module's."""
    return path.startswith(PREFIX)


def _arm(injector: faults.FaultInjector, rules: Any) -> None:
    if not isinstance(rules, list) or not rules:
        raise errors.invalid_request("a non-empty list of rules expected")
    parsed = []
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("op"), str):
            raise errors.invalid_request("every rule needs an op")
        times = rule.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise errors.invalid_request("times must be null or >= 1")
        kind = rule.get("kind")
        if kind == "delay":
            seconds = rule.get("seconds")
            if not isinstance(seconds, (int, float)) or seconds <= 0:
                raise errors.invalid_request("a delay needs seconds > 0")
            parsed.append((injector.delay, rule["op"], float(seconds),
                           times))
        elif kind == "drop":
            parsed.append((injector.drop, rule["op"], times,
                           bool(rule.get("after", False))))
        else:
            raise errors.invalid_request("kind must be delay or drop")
    # All or nothing: a bad rule arms none of them.
    for arm, *args in parsed:
        arm(*args)


def answer(injector: faults.FaultInjector, method: str, path: str,
           body: Any) -> tuple[int, Any]:
    """Serve one authenticated control request; return (status, payload)."""
    if path.split("?", 1)[0] != FAULTS_PATH:
        raise errors.not_found("Not found: %s" % path)
    if method == "GET":
        return 200, {"armed": injector.armed()}
    if method == "POST":
        _arm(injector, body)
        return 200, {"armed": injector.armed()}
    if method == "DELETE":
        injector.clear()
        return 200, {"armed": {}}
    raise errors.ApiError(405, errors.ILLEGAL, "Method not allowed")
