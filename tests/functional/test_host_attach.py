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
"""Attaching volumes to this host for a copy, on the simulator.

The attach of :mod:`powerflex_cache_driver.host_attach` maps with the
array's own answers (five calls for the two volumes of a copy); these
tests hold it to what Cinder's attach guarantees: nothing left mapped
after a failure or a lost answer, a mapping found in place left in place,
the volume type's QoS limits set.
"""

import collections
import os
from typing import Any

from cinder import exception
from cinder import objects
from cinder.volume import volume_types
import requests

from powerflex_cache_driver import compat
from powerflex_cache_driver import data_copy
from powerflex_cache_driver import host_attach
from tests.functional import base


class HostAttachTest(base.OurDriverTestCase):
    """:class:`HostAttacher` against the simulator."""

    def setUp(self) -> None:
        if not compat.DRIVER_MAPS_VOLUMES:
            self.skipTest("this Cinder's driver does not map volumes "
                          "itself; copies attach through Cinder's path")
        super().setUp()
        self.attacher = host_attach.HostAttacher(
            self.driver,
            data_copy.HostAssistedCopy(self.driver)._connector_properties())

    def _calls_during(self, action: Any) -> collections.Counter:
        before = self.sim.counts()
        action()
        return self.sim.counts() - before

    def _mappings(self, volume: Any) -> dict:
        return dict(self.sim.array.volumes[volume.provider_id].mappings)

    def test_two_volumes_attached_and_detached_with_five_calls(self) -> None:
        first, _unused = self.create_volume(8)
        second, _unused = self.create_volume(8)
        attached = {}

        def attach() -> None:
            for volume in (first, second):
                attached[volume.id] = self.attacher.attach(self.admin_ctx,
                                                           volume)
        calls = self._calls_during(attach)
        self.assertEqual({"getSdcs": 1, "addMappedSdc": 2}, dict(calls))
        for volume in (first, second):
            path = attached[volume.id]["device"]["path"]
            self.assertEqual(8 * 1024 ** 3, data_copy.device_size(path))
            self.assertEqual(1, len(self._mappings(volume)))

        def detach() -> None:
            for volume in (second, first):
                self.attacher.detach(self.admin_ctx, attached[volume.id],
                                     volume)
        self.assertEqual({"removeMappedSdc": 2},
                         dict(self._calls_during(detach)))
        self.assertEqual({}, self._mappings(first))
        self.assertEqual({}, self._mappings(second))
        self.assertEqual([], os.listdir(self.sim.by_id_dir))

    def test_mapping_found_in_place_stays(self) -> None:
        """A volume mapped here already (an instance on this host)."""
        volume, _unused = self.create_volume(8)
        client = self.driver._get_client()
        sdc_id = client.query_sdc_id_by_guid(
            self.attacher.properties["sdc_guid"])
        client.map_volume(volume.provider_id, sdc_id)
        info = self.attacher.attach(self.admin_ctx, volume)
        self.attacher.detach(self.admin_ctx, info, volume)
        self.assertEqual([sdc_id], list(self._mappings(volume)))
        self.assertEqual(0, len(self.sim.calls_of("removeMappedSdc")))

    def test_refused_mapping_leaves_nothing_mapped(self) -> None:
        volume, _unused = self.create_volume(8)
        self.sim.faults.fail("addMappedSdc", 0, details_rc=80,
                             message="Could not find the SDC")
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  self.attacher.attach, self.admin_ctx,
                                  volume)
        self.assertIn(volume.id, str(error))
        self.assertEqual({}, self._mappings(volume))
        self.assertEqual([], os.listdir(self.sim.by_id_dir))

    def test_lost_answer_of_the_mapping_is_undone(self) -> None:
        """Mapped on the array, answer lost: unmapped before raising."""
        volume, _unused = self.create_volume(8)
        self.sim.faults.drop("addMappedSdc", after=True)
        self.assertRaises(requests.exceptions.ConnectionError,
                          self.attacher.attach, self.admin_ctx, volume)
        self.assertEqual(1, len(self.sim.calls_of("removeMappedSdc")))
        self.assertEqual({}, self._mappings(volume))

    def test_device_never_appearing_is_unmapped(self) -> None:
        """os-brick cannot find the device: the mapping is undone."""
        volume, _unused = self.create_volume(8)
        self.patch("cinder.volume.driver.BaseVD._connect_device",
                   side_effect=exception.DeviceUnavailable(
                       path="/dev/nothing", reason="gone"))
        self.assertRaises(exception.DeviceUnavailable, self.attacher.attach,
                          self.admin_ctx, volume)
        self.assertEqual({}, self._mappings(volume))

    def test_unmapped_meanwhile_detaches(self) -> None:
        """Somebody unmapped the volume during the copy: detach goes on."""
        volume, _unused = self.create_volume(8)
        info = self.attacher.attach(self.admin_ctx, volume)
        self.driver._get_client().unmap_volume(volume.provider_id)
        self.attacher.detach(self.admin_ctx, info, volume)
        self.assertEqual({}, self._mappings(volume))

    def test_unmap_refused_fails_the_detach(self) -> None:
        """The array keeps the mapping: the detach says so."""
        volume, _unused = self.create_volume(8)
        info = self.attacher.attach(self.admin_ctx, volume)
        self.sim.faults.fail("removeMappedSdc", 0, details_rc=0,
                             message="Internal error")
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  self.attacher.detach, self.admin_ctx, info,
                                  volume)
        self.assertIn(volume.id, str(error))
        self.assertEqual(1, len(self._mappings(volume)))

    def test_volume_type_qos_limits_set_on_the_mapping(self) -> None:
        qos_type = volume_types.create(self.admin_ctx, "limited",
                                       {"maxIOPS": "1000"})
        volume, _unused = self.create_volume(
            8, volume_type=objects.VolumeType.get_by_id(self.admin_ctx,
                                                        qos_type["id"]))
        info = self.attacher.attach(self.admin_ctx, volume)
        limits = self.sim.calls_of("setMappedSdcLimits")
        self.assertEqual(1, len(limits))
        self.assertEqual("1000", limits[0].body["iopsLimit"])
        self.attacher.detach(self.admin_ctx, info, volume)
