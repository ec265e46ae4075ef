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
"""The pure size arithmetic and extend plans."""

import testtools

from powerflex_cache_driver import sizing


class RoundUp(testtools.TestCase):

    def test_matches_cinder_round_to_num_gran(self):
        from cinder.volume.drivers.dell_emc.powerflex import utils
        for size in range(0, 200):
            for gran in (1, 8):
                self.assertEqual(utils.round_to_num_gran(size, gran),
                                 sizing.round_up(size, gran), (size, gran))

    def test_rejects_non_positive_granularity(self):
        self.assertRaises(ValueError, sizing.round_up, 8, 0)
        self.assertRaises(ValueError, sizing.round_up, -1, 8)

    def test_granularity(self):
        self.assertEqual(8, sizing.granularity(erasure_coded=False))
        self.assertEqual(1, sizing.granularity(erasure_coded=True))


class PlanExtend(testtools.TestCase):

    def test_array_covers_request(self):
        plan = sizing.plan_extend(60, 64, 8)
        self.assertIs(sizing.Action.SKIP, plan.action)
        self.assertEqual("array size 64 GiB already covers requested 60 GiB, "
                         "no extend", plan.describe())

    def test_short_array_extends_to_rounded_request_at_once(self):
        plan = sizing.plan_extend(65, 64, 8)
        self.assertIs(sizing.Action.EXTEND, plan.action)
        self.assertEqual(72, plan.target_gib)
        self.assertEqual("array size 64 GiB is below requested 65 GiB, "
                         "extend to 72 GiB", plan.describe())

    def test_never_extends_to_a_size_the_array_has(self):
        for known in range(8, 129, 8):
            for requested in range(1, known + 1):
                plan = sizing.plan_extend(requested, known, 8)
                self.assertIs(sizing.Action.SKIP, plan.action)

    def test_extends_whenever_the_rounded_request_exceeds_the_array(self):
        for known in range(8, 129, 8):
            for requested in range(known + 1, known + 17):
                plan = sizing.plan_extend(requested, known, 8)
                self.assertIs(sizing.Action.EXTEND, plan.action)
                self.assertEqual(sizing.round_up(requested, 8),
                                 plan.target_gib)

    def test_ec_granularity_extends_exactly(self):
        plan = sizing.plan_extend(12, 10, 1)
        self.assertEqual(12, plan.target_gib)


class CloneArraySize(testtools.TestCase):

    def test_clone_holds_its_source_array_size_at_least(self):
        self.assertEqual(64, sizing.clone_array_size(60, 60, 8))
        self.assertEqual(72, sizing.clone_array_size(72, 60, 8))
        self.assertEqual(16, sizing.clone_array_size(10, 12, 8))

    def test_clone_grows_to_the_rounded_request(self):
        self.assertEqual(72, sizing.clone_array_size(60, 65, 8))
        self.assertEqual(12, sizing.clone_array_size(10, 12, 1))
