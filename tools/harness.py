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
"""Run a scenario in the functional tests' cloud, from a command.

The functional harness (:class:`tests.functional.base.FunctionalTestCase`
with :class:`tests.functional.cloud.CloudMixin`) is a TestCase: its set-up
builds Cinder's database, configuration, a real ``VolumeManager`` and the
gateway simulator, and its clean-ups stop the simulator and remove every
temporary directory. :func:`run_scenario` runs one purpose-built TestCase
programmatically, so a command gets exactly the cloud the tests get and
the same teardown, without a test runner:

* the scenario is a function of the TestCase (the cloud), whose return
  value is handed back;
* an error, a failed assertion or a skip (for example: not enough free
  space for Cinder's image conversion check) becomes a
  :class:`ScenarioError` carrying the reason;
* after the run, the simulator is checked to be stopped and the work
  directory to be gone.

Call :func:`tools.preflight.green_start` before importing this module.
"""

import os
import unittest
from typing import Any, Callable, Optional, TypeVar

from cinder.db import api as db_api

from tests.functional import base
from tests.functional import cloud

T = TypeVar("T")

DRIVERS = {"stock": cloud.STOCK, "ours": cloud.OURS}
"""Label -> ``volume_driver`` class path, stock first."""

PROJECT_QUOTAS = {"volumes": 2000, "snapshots": 2000, "gigabytes": 200000}
"""The user project's limits: the ``default`` quota class Cinder's
database migration creates (10 volumes, 1000 GiB) is too small for the
scenarios."""


class ScenarioError(RuntimeError):
    """The scenario could not run to its end."""


class _ScenarioCase(base.FunctionalTestCase):
    """One cloud, one scenario.

    Cinder's locks are real (tooz with a file backend in the test's lock
    directory), as in a cinder-volume service, not mocked as in Cinder's
    unit tests: scenarios with concurrent creates depend on them.
    """

    MOCK_TOOZ = False

    def __init__(self, scenario: Callable[[Any], Any],
                 prepare: Optional[Callable[[Any], None]] = None) -> None:
        super().__init__("test_scenario")
        self._scenario = scenario
        self._prepare = prepare
        self._outcome: list[Any] = []
        self._leftovers: dict[str, Any] = {}

    def setUp(self) -> None:
        """Build the cloud, then let the caller adjust it."""
        super().setUp()
        self._leftovers = {"sim": self.sim, "workdir": self.workdir}
        for resource, limit in PROJECT_QUOTAS.items():
            db_api.quota_create(self.admin_ctx, cloud.PROJECT_ID, resource,
                                limit)
        if self._prepare is not None:
            self._prepare(self)

    def test_scenario(self) -> None:
        """Run the scenario and keep what it returns."""
        self._outcome.append(self._scenario(self))


def _last_traceback(trace: str) -> str:
    """Drop the captured log testtools puts before the traceback."""
    marker = "Traceback (most recent call last):"
    index = trace.rfind(marker)
    return trace[index:] if index >= 0 else trace


def run_scenario(driver: str, scenario: Callable[[Any], T],
                 prepare: Optional[Callable[[Any], None]] = None,
                 case_options: Optional[dict[str, Any]] = None) -> T:
    """Run ``scenario(cloud)`` against a fresh cloud using ``driver``.

    :param driver: ``"stock"`` or ``"ours"`` (see :data:`DRIVERS`).
    :param scenario: called with the TestCase once its cloud is built
        (``create_volume``, ``make_image``, ``sim``, ``images``...).
    :param prepare: called right after the cloud is built, before
        ``scenario``.
    :param case_options: class attributes of the TestCase (for example
        ``SIMULATOR_OPTIONS`` or ``BACKEND_OPTIONS``).
    :returns: what ``scenario`` returned.
    :raises ScenarioError: when the scenario did not complete, or when
        the simulator or the work directory outlived the run.
    """
    attrs = {"VOLUME_DRIVER": DRIVERS[driver], "DRIVER_LABEL": driver}
    attrs.update(case_options or {})
    case_class = type("%sScenario" % driver.capitalize(), (_ScenarioCase,),
                      attrs)
    case = case_class(scenario, prepare)
    result = unittest.TestResult()
    case.run(result)
    for _test, reason in result.skipped:
        raise ScenarioError("%s driver: cannot run: %s" % (driver, reason))
    for _test, trace in result.errors + result.failures:
        raise ScenarioError("%s driver: the scenario failed:\n%s"
                            % (driver, _last_traceback(trace)))
    leftovers = case._leftovers
    sim = leftovers.get("sim")
    if sim is not None and sim.running:
        raise ScenarioError("the gateway simulator is still running")
    workdir = leftovers.get("workdir")
    if workdir and os.path.exists(workdir):
        raise ScenarioError("work directory %s was not removed" % workdir)
    if not case._outcome:
        raise ScenarioError("%s driver: the scenario returned nothing"
                            % driver)
    return case._outcome[0]
