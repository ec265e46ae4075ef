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
"""Cinder's own PowerFlex unit tests, run against this package's drivers.

Cinder ships its PowerFlex tests in ``cinder.tests.unit.volume.drivers.
dell_emc.powerflex``. Their fixtures build drivers from the test doubles in
its ``mocks`` module, subclasses of Cinder's ``PowerFlexDriver`` and
``PowerFlexNVMeDriver`` that only stub the login. :func:`load_tests` rebases
those doubles on our classes before the tests run, so every upstream test
exercises our code.

Tests that assert stock behaviour this package changes on purpose are listed
in :mod:`tests.upstream.differences`; they still run, as expected failures,
so a difference that disappears shows up as an unexpected success.
"""

import os
import unittest

from cinder import objects

objects.register_all()

from powerflex_cache_driver import compat  # noqa
from powerflex_cache_driver import driver  # noqa
from tests.upstream import differences  # noqa

UPSTREAM_PACKAGE = "cinder.tests.unit.volume.drivers.dell_emc.powerflex"


def install_our_drivers() -> None:
    """Rebase Cinder's PowerFlex test doubles on our driver classes."""
    mocks = __import__(UPSTREAM_PACKAGE + ".mocks", fromlist=["_"])
    mocks.PowerFlexDriver.__bases__ = (driver.PowerFlexCacheDriver,)
    if compat.STOCK_NVME_DRIVER is not None:
        mocks.PowerFlexNVMeDriver.__bases__ = (
            driver.PowerFlexCacheNVMeDriver,)


def _iter_tests(suite: unittest.TestSuite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite,
               pattern: str) -> unittest.TestSuite:
    """Load Cinder's PowerFlex tests with our drivers in place."""
    install_our_drivers()
    import cinder
    package = __import__(UPSTREAM_PACKAGE, fromlist=["_"])
    top = os.path.dirname(os.path.dirname(cinder.__file__))
    upstream = loader.discover(os.path.dirname(package.__file__),
                               pattern="test_*.py", top_level_dir=top)
    suite = unittest.TestSuite()
    for test in _iter_tests(upstream):
        suite.addTest(differences.mark_expected_failure(test))
    return suite
