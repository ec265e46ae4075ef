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
"""Run a scenario in the tests' in-process Cinder, from a command.

:func:`run_scenario` builds, for one driver, the in-process Cinder the
functional tests get (:func:`tools.beds.driver_testcases.standalone`:
Cinder's database, configuration, a real ``VolumeManager`` and the gateway
simulator, torn down afterwards: the simulator stopped, every temporary
directory removed), outside any test runner:

* the scenario is a function of the in-process Cinder, whose return value
  is handed back;
* an error, a failed assertion or a skip (for example: not enough free
  space for Cinder's image conversion check) becomes a
  :class:`ScenarioError` carrying the reason;
* after the run, the simulator is checked to be stopped and the work
  directory to be gone.

Call :func:`tools.preflight.green_start` before importing this module.
"""

import os
import traceback
from typing import Any, Callable, Optional, TypeVar
import unittest

from cinder.db import api as db_api

from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

T = TypeVar("T")

DRIVERS = {"stock": inprocess_cinder.STOCK, "ours": inprocess_cinder.OURS}
"""Label -> ``volume_driver`` class path, stock first."""

PROJECT_QUOTAS = {"volumes": 2000, "snapshots": 2000, "gigabytes": 200000}
"""The user project's limits: the ``default`` quota class Cinder's
database migration creates (10 volumes, 1000 GiB) is too small for the
scenarios."""


class ScenarioError(RuntimeError):
    """The scenario could not run to its end."""


class _ScenarioBed(driver_testcases.InProcessCinderTestCase):
    """One in-process Cinder, for one scenario.

    Cinder's locks are real (tooz with a file backend in the bed's lock
    directory), as in a cinder-volume service, not mocked as in Cinder's
    unit tests: scenarios with concurrent creates depend on them.
    """

    MOCK_TOOZ = False


def run_scenario(driver: str, scenario: Callable[[Any], T],
                 prepare: Optional[Callable[[Any], None]] = None,
                 case_options: Optional[dict[str, Any]] = None) -> T:
    """Run ``scenario(cinder)`` against a fresh in-process Cinder.

    :param driver: ``"stock"`` or ``"ours"`` (see :data:`DRIVERS`).
    :param scenario: called with the in-process Cinder once it is built
        (``create_volume``, ``make_image``, ``sim``, ``images``...).
    :param prepare: called right after it is built, before ``scenario``.
    :param case_options: class attributes of the bed's test case (for
        example ``SIMULATOR_OPTIONS`` or ``BACKEND_OPTIONS``).
    :returns: what ``scenario`` returned.
    :raises ScenarioError: when the scenario did not complete, or when
        the simulator or the work directory outlived the run.
    """
    attrs = {"VOLUME_DRIVER": DRIVERS[driver], "DRIVER_LABEL": driver}
    attrs.update(case_options or {})
    bed_class = type("%sScenario" % driver.capitalize(), (_ScenarioBed,),
                     attrs)
    leftovers: dict[str, Any] = {}
    try:
        with driver_testcases.standalone(bed_class) as cinder:
            leftovers.update(sim=cinder.sim, workdir=cinder.workdir)
            for resource, limit in PROJECT_QUOTAS.items():
                db_api.quota_create(cinder.admin_ctx,
                                    inprocess_cinder.PROJECT_ID, resource,
                                    limit)
            if prepare is not None:
                prepare(cinder)
            outcome = scenario(cinder)
    except unittest.SkipTest as skip:
        raise ScenarioError("%s driver: cannot run: %s"
                            % (driver, skip)) from None
    except Exception:
        raise ScenarioError("%s driver: the scenario failed:\n%s"
                            % (driver, traceback.format_exc())) from None
    sim = leftovers.get("sim")
    if sim is not None and sim.running:
        raise ScenarioError("the gateway simulator is still running")
    workdir = leftovers.get("workdir")
    if workdir and os.path.exists(workdir):
        raise ScenarioError("work directory %s was not removed" % workdir)
    return outcome
