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
"""Base test case: a driver (ours or stock) set up against FakeGateway."""

from typing import Any

from cinder import context
from cinder import objects
from cinder.tests.unit import fake_snapshot
from cinder.tests.unit import fake_volume
from cinder.volume import configuration as conf
from cinder.volume.drivers.dell_emc.powerflex import driver as stock
from cinder.volume.drivers.san import san
from oslo_utils import uuidutils
from requests_mock.contrib import fixture as rm_fixture

from powerflex_cache_driver import driver as ours
from powerflex_cache_driver import options
from tests.unit import fake_gateway
from tools.beds import cinder_testcase


OURS = ours.PowerFlexCacheDriver
STOCK = stock.PowerFlexDriver
HOST = "cinder@powerflex#PD1:SP1"


class DriverTestCase(cinder_testcase.CinderTestCase):
    """Build drivers the way cinder-volume does, against a mocked array."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = context.get_admin_context()
        self.mocker = self.useFixture(rm_fixture.Fixture(case_sensitive=True))

    def make_driver(self, driver_class: type, gen_type: str = "Mirroring",
                    replication: bool = False, **overrides: Any) -> Any:
        """Return ``driver_class`` after do_setup/check_for_setup_error."""
        self.gateway = fake_gateway.FakeGateway(self.mocker, gen_type)
        configuration = conf.Configuration(
            stock.powerflex_opts + san.san_opts + options.cache_opts,
            conf.SHARED_CONF_GROUP)
        settings = {
            "san_ip": "127.0.0.1",
            "san_login": "admin",
            "san_password": "not-logged",
            "powerflex_storage_pools": "PD1:SP1",
            "san_thin_provision": True,
        }
        if replication:
            settings["replication_device"] = [{
                "backend_id": "secondary", "san_ip": "127.0.0.2",
                "san_login": "admin", "san_password": "not-logged"}]
        settings.update(overrides)
        for name, value in settings.items():
            self.override_config(name, value, conf.SHARED_CONF_GROUP)
        driver = driver_class(configuration=configuration)
        driver.do_setup(self.ctx)
        driver.check_for_setup_error()
        self.gateway.reset_calls()
        return driver

    def volume(self, size: int, physical: int, replicated: bool = False,
               **updates: Any) -> objects.Volume:
        """A Cinder volume of DB size ``size`` backed by ``physical`` GiB."""
        provider_id = self.gateway.add_volume(physical)
        volume = fake_volume.fake_volume_obj(
            self.ctx, id=uuidutils.generate_uuid(), size=size,
            provider_id=provider_id, host=HOST, **updates)
        if replicated:
            self.gateway.pair(provider_id, self.gateway.add_volume(
                physical, host="127.0.0.2"))
            volume.volume_type = fake_volume.fake_volume_type_obj(
                self.ctx, extra_specs={"replication_enabled": "<is> True"})
        return volume

    def snapshot(self, volume_size: int, physical: int) -> objects.Snapshot:
        """A snapshot of a volume of ``volume_size`` GiB."""
        return fake_snapshot.fake_snapshot_obj(
            self.ctx, volume_size=volume_size,
            provider_id=self.gateway.add_volume(physical))

    def new_volume(self, size: int) -> objects.Volume:
        """A volume being created, not yet on the array."""
        volume = fake_volume.fake_volume_obj(
            self.ctx, id=uuidutils.generate_uuid(), size=size,
            provider_id=None, host=HOST)
        # Not created from an image (Cinder 29 looks at this in create).
        volume.glance_metadata = {}
        return volume
