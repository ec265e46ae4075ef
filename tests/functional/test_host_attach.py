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
array's own answers (six calls for the two volumes of a copy); these
tests hold it to what Cinder's attach guarantees: nothing left mapped
after a failure or a lost answer, a mapping found in place left in place,
the volume type's QoS limits set; and to what
:mod:`powerflex_cache_driver.host_mappings` adds: a mapping shared by two
copies stays until the last ends, one left by a killed copy is removed.
"""

import collections
import os
import subprocess
from typing import Any

from cinder import exception
from cinder import objects
from cinder.objects import fields
from cinder.volume import volume_types
from oslo_config import cfg
import requests

from powerflex_cache_driver import compat
from powerflex_cache_driver import data_copy
from powerflex_cache_driver import host_attach
from powerflex_cache_driver import host_mappings
from tools.beds import driver_testcases

CONF = cfg.CONF


class HostAttachTest(driver_testcases.OurDriverTestCase):
    """:class:`HostAttacher` against the simulator."""

    def setUp(self) -> None:
        if not compat.DRIVER_MAPS_VOLUMES:
            self.skipTest("this Cinder's driver does not map volumes "
                          "itself; copies attach through Cinder's path")
        super().setUp()
        self.mock_object(host_attach, "_SWEPT", set())
        self.attacher = host_attach.HostAttacher(
            self.driver,
            data_copy.HostAssistedCopy(self.driver).connector_properties())

    def _calls_during(self, action: Any) -> collections.Counter:
        before = self.sim.counts()
        action()
        return self.sim.counts() - before

    def _mappings(self, volume: Any) -> dict:
        return dict(self.sim.array.volumes[volume.provider_id].mappings)

    def _records(self) -> list:
        try:
            return os.listdir(os.path.join(
                CONF.oslo_concurrency.lock_path, host_mappings.DIRECTORY))
        except FileNotFoundError:
            return []

    def _sdc_id(self) -> str:
        return self.driver._get_client().query_sdc_id_by_guid(
            self.attacher.properties["sdc_guid"])

    def test_copy_attached_and_detached_with_six_calls(self) -> None:
        """A source (mappings read first) and a new destination."""
        source, _unused = self.create_volume(8)
        new, _unused = self.create_volume(8)
        attached = {}

        def attach() -> None:
            attached[source.id] = self.attacher.attach(self.admin_ctx,
                                                       source)
            attached[new.id] = self.attacher.attach(self.admin_ctx, new,
                                                    new=True)
        calls = self._calls_during(attach)
        self.assertEqual({"getSdcs": 1, "getVolume": 1, "addMappedSdc": 2},
                         dict(calls))
        for volume in (source, new):
            path = attached[volume.id]["device"]["path"]
            self.assertEqual(8 * 1024 ** 3, data_copy.device_size(path))
            self.assertEqual(1, len(self._mappings(volume)))
        self.assertEqual(2, len(self._records()))

        def detach() -> None:
            for volume in (new, source):
                self.attacher.detach(self.admin_ctx, attached[volume.id],
                                     volume)
        self.assertEqual({"removeMappedSdc": 2},
                         dict(self._calls_during(detach)))
        self.assertEqual({}, self._mappings(source))
        self.assertEqual({}, self._mappings(new))
        self.assertEqual([], os.listdir(self.sim.by_id_dir))
        self.assertEqual([], self._records())

    def test_mapping_found_in_place_stays(self) -> None:
        """A volume mapped here already (an instance on this host)."""
        volume, _unused = self.create_volume(8)
        sdc_id = self._sdc_id()
        self.driver._get_client().map_volume(volume.provider_id, sdc_id)
        # Were the mapping sent, its answer would be lost, and the copy
        # could not tell its own mapping from the one in place.
        self.sim.faults.drop("addMappedSdc", after=True)

        def copy() -> None:
            info = self.attacher.attach(self.admin_ctx, volume)
            self.attacher.detach(self.admin_ctx, info, volume)
        self.assertEqual({"getSdcs": 1, "getVolume": 1},
                         dict(self._calls_during(copy)))
        self.assertEqual([sdc_id], list(self._mappings(volume)))
        self.assertEqual([], self._records())

    def test_two_copies_share_a_source_mapping(self) -> None:
        """The first copy to end leaves the mapping to the other."""
        source, _unused = self.create_volume(8)
        other = host_attach.HostAttacher(self.driver,
                                         self.attacher.properties)
        first = self.attacher.attach(self.admin_ctx, source)
        second = other.attach(self.admin_ctx, source)
        self.assertEqual(1, len(self.sim.calls_of("addMappedSdc")))
        self.attacher.detach(self.admin_ctx, first, source)
        self.assertEqual(1, len(self._mappings(source)))
        self.assertEqual(0, len(self.sim.calls_of("removeMappedSdc")))
        other.detach(self.admin_ctx, second, source)
        self.assertEqual({}, self._mappings(source))
        self.assertEqual([], self._records())

    def _dead_copy_holding(self, volume: Any) -> None:
        """A copy of ``volume`` whose process ended while it held it."""
        process = subprocess.Popen(["sleep", "60"])
        holder = dict(host_mappings.this_process(), pid=process.pid,
                      start=host_mappings._start_time(process.pid))
        process.kill()
        process.wait()
        self.driver._get_client().map_volume(volume.provider_id,
                                             self._sdc_id())
        key = host_mappings.key_of(self._sdc_id(), volume.provider_id)
        with host_mappings.locked(key) as record:
            record.volume_id = volume.id
            record.ours = True
            record.holders["killed-copy"] = holder

    def test_mapping_of_a_killed_copy_removed_by_the_next_copy(self) -> None:
        source, _unused = self.create_volume(8)
        self._dead_copy_holding(source)
        info = self.attacher.attach(self.admin_ctx, source)
        self.attacher.detach(self.admin_ctx, info, source)
        self.assertEqual({}, self._mappings(source))
        self.assertEqual([], self._records())

    def test_record_of_a_killed_copy_dropped_when_the_volume_is_deleted(
            self) -> None:
        """The removal unmapped it: no stale record stays behind."""
        left, _unused = self.create_volume(8)
        kept, _unused = self.create_volume(8)
        self._dead_copy_holding(left)
        self._dead_copy_holding(kept)
        self.assertEqual(2, len(self._records()))
        self.delete_volume(left)
        self.assertEqual(1, len(self._records()))
        self.assertEqual([kept.provider_id],
                         [host_mappings.provider_id_of(record.key)
                          for record in host_mappings.stale_records()])

    def test_volume_a_killed_copy_left_mapped_without_its_id_deleted(
            self) -> None:
        """A restart mid-copy across pools: the array volume goes too.

        The service was stopped while it copied into the new volume, so
        Cinder never recorded its array volume; the copy's mapping of it
        is still there when the user deletes the volume in error.
        """
        volume, _unused = self.create_volume(8)
        self._dead_copy_holding(volume)
        # The copy was another service's on this host, killed after this
        # process swept at its first copy.
        host_attach._SWEPT.add(self._sdc_id())
        array_id = self._errored_without_id(volume)
        self.delete_volume(volume)
        self.assertNotIn(array_id, self.sim.array.volumes)
        self.assertEqual([], self._records())

    def _errored_without_id(self, volume: Any) -> str:
        """The volume as a create killed mid-copy leaves it; its array id."""
        array_id = volume.provider_id
        volume.provider_id = None
        volume.status = fields.VolumeStatus.ERROR
        volume.save()
        return array_id

    def _status_after_delete(self, volume: Any) -> str:
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.api.delete(self.admin_ctx, volume, force=True)
        self._deliver()
        try:
            return objects.Volume.get_by_id(self.admin_ctx, volume.id).status
        except exception.VolumeNotFound:
            return "deleted"

    def test_delete_fails_while_a_killed_copy_mapping_stays(self) -> None:
        """The unmap refused: error_deleting, and the retry removes it."""
        volume, _unused = self.create_volume(8)
        self._dead_copy_holding(volume)
        array_id = self._errored_without_id(volume)
        self.sim.faults.fail("removeMappedSdc", 65, http_status=500)
        self.assertEqual("error_deleting", self._status_after_delete(volume))
        self.assertIn(array_id, self.sim.array.volumes)
        self.assertEqual(1, len(self._records()))
        self.assertEqual("deleted", self._status_after_delete(volume))
        self.assertNotIn(array_id, self.sim.array.volumes)
        self.assertEqual([], self._records())

    def test_unread_attachments_keep_the_record_of_a_copy(self) -> None:
        """Attachments that cannot be read: the record stays the copy's."""
        volume, _unused = self.create_volume(8)
        self._dead_copy_holding(volume)
        array_id = self._errored_without_id(volume)
        self.mock_object(objects.VolumeAttachmentList,
                         "get_all_by_volume_id",
                         side_effect=RuntimeError("database gone"))
        self.assertEqual("error_deleting", self._status_after_delete(volume))
        self.assertIn(array_id, self.sim.array.volumes)
        self.assertEqual(1, len(self._records()))

    def test_delete_sweeps_only_the_mappings_of_its_volume(self) -> None:
        """Another volume a killed copy left mapped stays mapped.

        (Cinder's own attach for a backup may have found that mapping in
        place meanwhile, without an attachment record.)
        """
        other, _unused = self.create_volume(8)
        self._dead_copy_holding(other)
        doomed, _unused = self.create_volume(8)
        self._errored_without_id(doomed)
        self.delete_volume(doomed)
        self.assertEqual(1, len(self._mappings(other)))
        self.assertEqual(1, len(self._records()))

    def test_mapping_of_a_killed_copy_removed_by_the_first_copy(
            self) -> None:
        """The first copy of the process sweeps, once."""
        left, _unused = self.create_volume(8)
        source, _unused = self.create_volume(8)
        new, _unused = self.create_volume(8)
        self._dead_copy_holding(left)
        held = host_attach.HostAttacher(self.driver,
                                        self.attacher.properties)
        held_info = held.attach(self.admin_ctx, new, new=True)
        data_copy.HostAssistedCopy(self.driver).copy(
            self.admin_ctx, source, new, skip_zeros=False)
        self.assertEqual({}, self._mappings(left))
        self.assertEqual(1, len(self._mappings(new)))
        self.assertEqual(1, len(self._records()))
        # A second copy does not look again.
        self._dead_copy_holding(left)
        data_copy.HostAssistedCopy(self.driver).copy(
            self.admin_ctx, source, new, skip_zeros=False)
        self.assertEqual(1, len(self._mappings(left)))
        held.detach(self.admin_ctx, held_info, new)
        self.assertEqual({}, self._mappings(new))
        self.attacher.sweep()
        self.assertEqual({}, self._mappings(left))
        self.assertEqual([], self._records())

    def test_recorded_as_a_copy_mapping_before_the_array_is_asked(
            self) -> None:
        """A process killed during the request leaves it to be removed."""
        volume, _unused = self.create_volume(8)
        client = self.driver._get_client()
        post = client.execute_powerflex_post_request
        seen = []

        def execute_powerflex_post_request(url: str, *args: Any,
                                           **kwargs: Any) -> Any:
            if url.endswith("/action/addMappedSdc"):
                key = host_mappings.key_of(self._sdc_id(),
                                           volume.provider_id)
                seen.append(host_mappings._load(key).to_dict())
            return post(url, *args, **kwargs)
        self.mock_object(client, "execute_powerflex_post_request",
                         side_effect=execute_powerflex_post_request)
        info = self.attacher.attach(self.admin_ctx, volume)
        self.assertEqual(1, len(seen))
        self.assertTrue(seen[0]["ours"])
        self.assertEqual([self.attacher._copy_id], list(seen[0]["holders"]))
        self.attacher.detach(self.admin_ctx, info, volume)
        self.assertEqual({}, self._mappings(volume))

    def test_lost_answer_keeps_an_instance_mapping_made_meanwhile(
            self) -> None:
        """Mapped for an instance between the read and the copy's map."""
        volume, _unused = self.create_volume(8)
        client = self.driver._get_client()
        post = client.execute_powerflex_post_request

        def execute_powerflex_post_request(url: str, *args: Any,
                                           **kwargs: Any) -> Any:
            if url.endswith("/action/addMappedSdc"):
                # The instance's mapping, then the copy's is lost.
                post(url, *args, **kwargs)
                objects.VolumeAttachment(
                    self.admin_ctx, volume_id=volume.id,
                    attach_status=fields.VolumeAttachStatus.ATTACHED,
                    connector=self.attacher.properties).create()
                raise requests.exceptions.ConnectionError("dropped")
            return post(url, *args, **kwargs)
        self.mock_object(client, "execute_powerflex_post_request",
                         side_effect=execute_powerflex_post_request)
        self.assertRaises(requests.exceptions.ConnectionError,
                          self.attacher.attach, self.admin_ctx, volume)
        self.assertEqual([self._sdc_id()], list(self._mappings(volume)))
        self.assertEqual([], self._records())

    def test_sweep_tried_again_after_it_failed(self) -> None:
        source, _unused = self.create_volume(8)
        new, _unused = self.create_volume(8)
        sweep = self.mock_object(host_attach.HostAttacher, "sweep",
                                 side_effect=[OSError("gone"), None])
        for _copy in range(3):
            data_copy.HostAssistedCopy(self.driver).copy(
                self.admin_ctx, source, new, skip_zeros=False)
        self.assertEqual(2, sweep.call_count)

    def test_setup_check_needs_a_lock_path(self) -> None:
        self.override_config("lock_path", None, group="oslo_concurrency")
        error = self.assertRaises(cfg.RequiredOptError,
                                  self.driver.check_for_setup_error)
        self.assertIn("lock_path", str(error))
        self.assertIn("oslo_concurrency", str(error))

    def test_mapping_stays_for_an_attachment_made_during_the_copy(
            self) -> None:
        """Cinder attached the source here while the copy held it."""
        source, _unused = self.create_volume(8)
        info = self.attacher.attach(self.admin_ctx, source)
        attachment = objects.VolumeAttachment(
            self.admin_ctx, volume_id=source.id,
            attach_status=fields.VolumeAttachStatus.ATTACHED,
            connector=self.attacher.properties)
        attachment.create()
        self.attacher.detach(self.admin_ctx, info, source)
        self.assertEqual([self._sdc_id()], list(self._mappings(source)))
        self.assertEqual([], self._records())

    def test_failed_disconnect_still_unmaps(self) -> None:
        volume, _unused = self.create_volume(8)
        info = self.attacher.attach(self.admin_ctx, volume, new=True)
        self.mock_object(info["connector"], "disconnect_volume",
                         side_effect=OSError("flush failed"))
        self.assertRaises(OSError, self.attacher.detach, self.admin_ctx,
                          info, volume)
        self.assertEqual({}, self._mappings(volume))
        self.assertEqual([], self._records())

    def test_refused_mapping_leaves_nothing_mapped(self) -> None:
        volume, _unused = self.create_volume(8)
        self.assertEqual([], self._records())
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
        self.assertEqual([], self._records())

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
        calls = self._calls_during(
            lambda: self.attacher.detach(self.admin_ctx, info, volume))
        self.assertEqual({}, self._mappings(volume))
        # "Not mapped" is believed: asked once.
        self.assertEqual({"removeMappedSdc": 1}, dict(calls))
        self.assertEqual([], self._records())

    def test_unmap_refused_fails_the_detach(self) -> None:
        """The array keeps the mapping: the detach says so.

        The record keeps the mapping as a copy's, for the sweep.
        """
        volume, _unused = self.create_volume(8)
        info = self.attacher.attach(self.admin_ctx, volume)
        self.sim.faults.fail("removeMappedSdc", 0, details_rc=0,
                             message="Internal error")
        error = self.assertRaises(exception.VolumeBackendAPIException,
                                  self.attacher.detach, self.admin_ctx, info,
                                  volume)
        self.assertIn(volume.id, str(error))
        self.assertEqual(1, len(self._mappings(volume)))
        self.assertEqual(1, len(self._records()))
        self.attacher.sweep()
        self.assertEqual({}, self._mappings(volume))
        self.assertEqual([], self._records())

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
