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
"""Quota for the rounding, against a real quota database."""

from cinder.db import api as db_api
from cinder import exception
from cinder import quota
from cinder.tests.unit import utils as test_utils
from oslo_utils import uuidutils

from powerflex_cache_driver import quota_charge
from tests.unit import base

QUOTAS = quota.QUOTAS
TYPE_NAME = "powerflex"
SHRINK_REFUSED = (500, {"message": "Volume capacity can only be increased",
                        "httpStatusCode": 500, "errorCode": 133})


class RoundingQuota(base.DriverTestCase):

    def setUp(self):
        super().setUp()
        self.project_id = uuidutils.generate_uuid()
        self.volume_type = test_utils.create_volume_type(
            self.ctx, name=TYPE_NAME)

    def usage(self) -> dict[str, int]:
        """In-use gigabytes (total and of the type); asserts none reserved."""
        quotas = QUOTAS.get_project_quotas(self.ctx, self.project_id,
                                           usages=True)
        for name in ("gigabytes", "gigabytes_" + TYPE_NAME):
            self.assertEqual(0, quotas[name]["reserved"], name)
        return {name: quotas[name]["in_use"]
                for name in ("gigabytes", "gigabytes_" + TYPE_NAME)}

    def requested(self, size: int, **kwargs):
        """A volume being created, with its quota charged as the API does."""
        deltas = {"volumes": 1, "gigabytes": size}
        QUOTAS.add_volume_type_opts(self.ctx, deltas, self.volume_type.id)
        QUOTAS.commit(self.ctx, QUOTAS.reserve(
            self.ctx, project_id=self.project_id, **deltas),
            project_id=self.project_id)
        return test_utils.create_volume(
            self.ctx, size=size, host=base.HOST, status="creating",
            project_id=self.project_id, volume_type_id=self.volume_type.id,
            **kwargs)

    def array_requests(self) -> list[str]:
        """Requests sent, less the client's own token refreshes (logins)."""
        return [op for op in self.gateway.ops() if op != "login"]

    def limit_gigabytes(self, limit: int) -> None:
        db_api.quota_create(self.ctx, self.project_id, "gigabytes", limit)

    def test_create_charges_the_rounding_on_both_resources(self):
        driver = self.make_driver(base.OURS)
        volume = self.requested(10)
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())
        self.assertEqual(16, driver.create_volume(volume)["size"])
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_aligned_create_charges_nothing_more(self):
        driver = self.make_driver(base.OURS)
        volume = self.requested(16)
        driver.create_volume(volume)
        self.assertEqual({"gigabytes": 16, "gigabytes_powerflex": 16},
                         self.usage())

    def test_rounding_over_quota_makes_nothing(self):
        driver = self.make_driver(base.OURS)
        self.limit_gigabytes(12)
        volume = self.requested(10)
        error = self.assertRaises(quota_charge.RoundingExceedsQuota,
                                  driver.create_volume, volume)
        message = str(error)
        for text in ("16 GiB", "requested 10 GiB", "gigabytes", "12 GiB",
                     volume.id):
            self.assertIn(text, message)
        self.assertEqual([], self.array_requests())
        self.assertEqual({"gigabytes": 10, "gigabytes_powerflex": 10},
                         self.usage())

    def test_clone_over_quota_makes_no_snapshot(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(60, 64)
        self.limit_gigabytes(62)
        volume = self.requested(60)
        self.gateway.reset_calls()
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual([], self.array_requests())
        self.assertEqual(60, self.usage()["gigabytes"])

    def test_failed_create_gives_the_rounding_back(self):
        driver = self.make_driver(base.OURS)
        volume = self.requested(10)
        self.gateway.fail("createVolume", 500,
                          {"message": "Error", "errorCode": 0})
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_volume, volume)
        self.assertEqual(10, self.usage()["gigabytes"])

    def test_failed_clone_extend_gives_the_rounding_back(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(8, 8)
        volume = self.requested(9)
        self.gateway.fail("setVolumeSize", *SHRINK_REFUSED, times=3)
        self.assertRaises(exception.VolumeBackendAPIException,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual(9, self.usage()["gigabytes"])
        self.assertEqual("removeVolume", self.gateway.ops()[-1])

    def test_clone_of_grown_source_charges_what_the_array_holds(self):
        # The source holds 32 GiB on the array although Cinder records 10:
        # the clone holds 32 too and the project pays for 32.
        driver = self.make_driver(base.OURS)
        source = self.volume(10, 32)
        volume = self.requested(20)
        self.assertEqual(32, driver.create_cloned_volume(volume,
                                                         source)["size"])
        self.assertEqual(32, self.usage()["gigabytes"])

    def test_clone_of_grown_source_over_quota_is_removed(self):
        driver = self.make_driver(base.OURS)
        source = self.volume(10, 32)
        self.limit_gigabytes(24)
        volume = self.requested(20)
        self.assertRaises(quota_charge.RoundingExceedsQuota,
                          driver.create_cloned_volume, volume, source)
        self.assertEqual("removeVolume", self.gateway.ops()[-1])
        self.assertEqual(20, self.usage()["gigabytes"])

    def test_stock_charges_only_the_requested_size(self):
        driver = self.make_driver(base.STOCK)
        volume = self.requested(10)
        self.assertEqual(16, driver.create_volume(volume)["size"])
        self.assertEqual(10, self.usage()["gigabytes"])
