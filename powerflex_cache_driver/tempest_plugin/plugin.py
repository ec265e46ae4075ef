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
"""The Tempest plugin class (entry point ``tempest.test_plugins``)."""

import os
from typing import Any

from tempest import config
from tempest.test_discover import plugins

from powerflex_cache_driver.tempest_plugin import config as project_config


class PowerFlexCachePlugin(plugins.TempestPlugin):
    """Loads this package's Tempest tests and their options."""

    def load_tests(self) -> tuple[str, str]:
        """Return the test directory and the top-level directory.

        The top level is the directory holding the ``powerflex_cache_driver``
        package, so test ids are ``powerflex_cache_driver.tempest_plugin.
        tests.api.volume...`` (they match Tempest's ``--regex volume``).
        """
        here = os.path.dirname(os.path.abspath(__file__))
        top_level = os.path.dirname(os.path.dirname(here))
        return os.path.join(here, "tests"), top_level

    def register_opts(self, conf: Any) -> None:
        """Register the ``[powerflex_cache]`` group."""
        config.register_opt_group(conf, project_config.group,
                                  project_config.opts)

    def get_opt_lists(self) -> list[tuple[str, list[Any]]]:
        """Options per group name, for the sample configuration."""
        return [(project_config.group.name, project_config.opts)]
