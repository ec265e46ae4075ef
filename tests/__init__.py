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
"""Tests of powerflex-cache-driver.

``tests/unit`` and ``tests/functional`` are this package's own tests and
form the default run. ``tests/upstream`` runs Cinder's PowerFlex suite
against our drivers; it needs its own working directory (see tox.ini) and is
loaded only when named explicitly.
"""

import os
import unittest

OWN_SUITES = ("unit", "functional")


def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite,
               pattern: str) -> unittest.TestSuite:
    """Discover the default suites, leaving out ``tests/upstream``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for name in OWN_SUITES:
        tests.addTests(loader.discover(os.path.join(here, name),
                                       pattern=pattern or "test*.py",
                                       top_level_dir=os.path.dirname(here)))
    return tests
