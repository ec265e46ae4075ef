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
"""Options: one prefix, listed for the generator, sample kept current."""

import io
import os

from oslo_config import cfg
from oslo_config import generator
import testtools

from powerflex_cache_driver import options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GENERATOR_CONF = os.path.join(
    ROOT, "etc", "powerflex-cache-driver",
    "powerflex-cache-driver-config-generator.conf")


class Options(testtools.TestCase):

    def test_every_option_has_the_prefix(self):
        for group, opts in options.list_opts():
            for opt in opts:
                self.assertTrue(opt.name.startswith("powerflex_cache_"),
                                opt.name)

    def test_sample_config_matches_the_options(self):
        conf = cfg.ConfigOpts()
        generator.register_cli_opts(conf)
        conf(["--config-file", GENERATOR_CONF])
        output = io.StringIO()
        generator.generate(conf, output_file=output)
        with open(os.path.join(ROOT, conf.output_file)) as sample:
            self.assertEqual(sample.read(), output.getvalue(),
                             "run 'tox -e genconfig' to refresh the sample")
