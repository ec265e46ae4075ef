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
"""Cinder's own test case, made runnable by pytest as well as stestr."""

from cinder.tests.unit import test


class CinderTestCase(test.TestCase):
    """``cinder.tests.unit.test.TestCase`` (SQLite DB, config fixtures)."""

    def _common_cleanup(self) -> None:
        # Cinder's cleanup deletes every public instance attribute; pytest's
        # unittest support keeps the test method there while it runs and
        # removes it afterwards, so keep it for pytest to find.
        test_methods = {name: value for name, value in self.__dict__.items()
                        if name.startswith("test")}
        super()._common_cleanup()
        self.__dict__.update(test_methods)
