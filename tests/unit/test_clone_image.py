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
"""clone_image, branch by branch, against a mocked array and a real DB."""

import datetime
from unittest import mock

from cinder import context
from cinder.db import api as db_api
from cinder import exception
from cinder.image import image_utils
from cinder import objects
from cinder import quota
from cinder.tests.unit import utils as test_utils
import fixtures
from oslo_utils import units
from oslo_utils import uuidutils

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver import cinder_locations
from powerflex_cache_driver import half_made
from powerflex_cache_driver import image_clone
from powerflex_cache_driver import options
from powerflex_cache_driver import quota_charge
from powerflex_cache_driver import vtree_rotation
from tests.unit import base

INTERNAL_PROJECT = "0b9a6c3cd2a44c0f9bd7b3e3a3f5e9a1"
INTERNAL_USER = "4c3e1c5a9f0d4e5fa7e0c2b1d9f8e7a6"
UPDATED = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
MISS = ({"provider_id": "downloaded"}, True)
VTREE_FULL = (500, {"message": "Error with details", "httpStatusCode": 500,
                    "errorCode": 0, "details": [{
                        "error": "TOO_MANY_SNAPS_IN_VTREE", "rc": 182,
                        "errorMessage": "There are too many snapshots "
                                        "in the VTree"}]})


class CloneImageFixtures:
    """A driver, images, cache entries and volumes for clone_image."""

    def setUp(self):
        super().setUp()
        self.override_config("cinder_internal_tenant_project_id",
                             INTERNAL_PROJECT)
        self.override_config("cinder_internal_tenant_user_id", INTERNAL_USER)
        self.project_ctx = context.RequestContext(
            "user", uuidutils.generate_uuid(), is_admin=False)
        # Operators opt in to cinder:// image locations (off by default).
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        self.volume_type = test_utils.create_volume_type(
            self.ctx, name="powerflex")
        # The cache-miss path (download into a new entry) has tests of its
        # own below and in the functional tests; here it is only counted.
        self.miss = self.mock_object(image_clone.ImageCloner,
                                     "_download_and_clone",
                                     return_value=MISS)

    def driver(self, driver_class=base.OURS, **overrides):
        overrides.setdefault("image_volume_cache_enabled", True)
        return self.make_driver(driver_class, **overrides)

    def db_volume(self, ctx, size, physical, host=base.HOST, **kwargs):
        return test_utils.create_volume(
            ctx, host=host, size=size, volume_type_id=self.volume_type.id,
            provider_id=self.gateway.add_volume(physical), **kwargs)

    def image(self, disk_format="qcow2", owner=None, updated_at=UPDATED,
              **kwargs):
        meta = {"id": uuidutils.generate_uuid(), "disk_format": disk_format,
                "container_format": "bare", "updated_at": updated_at,
                "owner": owner or self.project_ctx.project_id, "size": 1}
        meta.update(kwargs)
        return meta

    def cache_entry(self, image_meta, size=60, physical=64):
        internal = context.get_internal_tenant_context()
        entry_volume = self.db_volume(internal, size, physical)
        db_api.image_volume_cache_create(
            internal, base.HOST, None, image_meta["id"],
            image_meta["updated_at"].replace(tzinfo=None), entry_volume.id,
            size)
        return entry_volume

    def new_volume(self, size, **kwargs):
        return test_utils.create_volume(self.project_ctx, host=base.HOST,
                                        size=size, status="creating",
                                        volume_type_id=self.volume_type.id,
                                        **kwargs)

    def array_requests(self):
        """Requests sent, less the client's own token refreshes (logins)."""
        return [op for op in self.gateway.ops() if op != "login"]

    def clone(self, driver, volume, image_meta, location=(None, [])):
        self.gateway.reset_calls()
        return driver.clone_image(self.project_ctx.elevated(), volume,
                                  location, image_meta, None)

    def rotate(self, driver, image_meta):
        """Clone a 60 GiB volume from an entry whose vtree is full.

        The rotation's host copy and Cinder's delete of the replaced entry
        are mocked. Returns clone_image's answer and the copy's mock.
        """
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete"), \
                mock.patch.object(driver, "copy_volume_data_sparse") as copy:
            answer = self.clone(driver, self.new_volume(60), image_meta)
        return answer, copy

    def internal_volumes(self):
        return [v for v in objects.VolumeList.get_all(self.ctx)
                if v.project_id == INTERNAL_PROJECT]


class CloneImage(CloneImageFixtures, base.DriverTestCase):

    # -- cache entries ------------------------------------------------------

    def test_fresh_cache_entry_cloned_for_any_format(self):
        for disk_format in ("raw", "qcow2", "vmdk"):
            driver = self.driver()
            image_meta = self.image(disk_format)
            entry = self.cache_entry(image_meta)
            model_update, cloned = self.clone(driver, self.new_volume(62),
                                              image_meta)
            self.assertTrue(cloned, disk_format)
            self.assertEqual(["snapshotVolumes"], self.gateway.ops())
            self.assertEqual(entry.provider_id,
                             self.gateway.calls[0].body[
                                 "snapshotDefs"][0]["volumeId"])
            self.assertEqual(64, model_update["size"])
        self.miss.assert_not_called()

    def test_stale_cache_entry_removed_and_image_downloaded(self):
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        image_meta["updated_at"] = UPDATED + datetime.timedelta(hours=1)
        with mock.patch("cinder.volume.api.API.delete") as delete:
            self.assertEqual(MISS, self.clone(driver, self.new_volume(60),
                                              image_meta))
        self.assertEqual([], self.gateway.ops())
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])

    def test_no_entry_image_downloaded_into_new_entry(self):
        driver = self.driver()
        self.assertEqual(MISS, self.clone(driver, self.new_volume(60),
                                          self.image()))
        self.assertEqual([], self.gateway.ops())
        self.miss.assert_called_once()

    def test_entry_volume_deleted_meanwhile_downloads(self):
        # The entry is found, its volume is gone before it is read: as
        # Cinder's own cache path, go on to a download, do not fail.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        with mock.patch("cinder.objects.Volume.get_by_id",
                        side_effect=exception.VolumeNotFound(
                            volume_id="gone")):
            self.assertEqual(MISS, self.clone(driver, self.new_volume(60),
                                              image_meta))
        self.assertEqual([], self.gateway.ops())

    def test_cache_disabled_not_cloned(self):
        driver = self.driver(image_volume_cache_enabled=False)
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))

    def test_no_internal_tenant_not_cloned(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.override_config("cinder_internal_tenant_project_id", None)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))

    def test_encrypted_volume_not_cloned(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        volume = self.new_volume(
            60, encryption_key_id=uuidutils.generate_uuid())
        self.assertEqual((None, False),
                         self.clone(driver, volume, image_meta))
        self.assertEqual([], self.gateway.ops())

    def test_option_off_not_cloned(self):
        driver = self.driver(**{options.CLONE_IMAGE: False})
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))

    def test_full_vtree_without_rotation_removes_entry(self):
        # Left in place, Cinder's own cache path would hit the full vtree
        # again and fail the create; removed, the image is downloaded into
        # a new entry.
        driver = self.driver(**{options.ROTATE_FULL_VTREE: False})
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete") as delete:
            self.assertEqual(MISS, self.clone(
                driver, self.new_volume(60), image_meta))
        # A refusal (rc 182, vtree full) is an answer: the array made no
        # snapshot, so none is looked up by name.
        self.assertEqual(["snapshotVolumes"], self.array_requests())
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])

    def test_failed_rotation_removes_entry(self):
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete") as delete, \
                mock.patch.object(vtree_rotation.Rotator,
                                  "copy_to_new_cache_volume",
                                  side_effect=exception.ImageCopyFailure(
                                      reason="attach failed")):
            self.assertEqual(MISS, self.clone(
                driver, self.new_volume(60), image_meta))
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])

    def test_rotation_keeps_what_it_cannot_remove(self):
        # The copy fails and the half-made volume cannot be removed from
        # the array: its row stays, in error_deleting, with its quota, so
        # the array volume is not forgotten.
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        self.gateway.fail("removeVolume", 500,
                          {"message": "Error", "errorCode": 0}, times=3)
        with mock.patch("cinder.volume.api.API.delete"), \
                mock.patch.object(driver, "copy_volume_data_sparse",
                                  side_effect=OSError(5, "I/O error")):
            self.assertEqual(MISS, self.clone(
                driver, self.new_volume(60), image_meta))
        left = [v for v in self.internal_volumes()
                if v.id != entry_volume.id]
        self.assertEqual(["error_deleting"], [v.status for v in left])
        self.assertIn(left[0].provider_id, self.gateway.sizes_kb)
        # Quota still counts the kept row: usage equals the records.
        quotas = quota.QUOTAS.get_project_quotas(self.ctx, INTERNAL_PROJECT,
                                                 usages=True)
        self.assertEqual(sum(v.size for v in self.internal_volumes()),
                         quotas["gigabytes"]["in_use"])
        self.assertEqual(64, left[0].size)

    def test_rotation_failing_to_register_removes_the_copy(self):
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete") as delete, \
                mock.patch.object(driver, "copy_volume_data_sparse"), \
                mock.patch("cinder.image.cache.ImageVolumeCache."
                           "create_cache_entry",
                           side_effect=exception.CinderException("db")):
            self.assertEqual(MISS, self.clone(
                driver, self.new_volume(60), image_meta))
        self.assertEqual([entry_volume.id],
                         [v.id for v in self.internal_volumes()])
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])
        self.assertEqual(["createVolume", "removeVolume"],
                         [op for op in self.gateway.ops()
                          if op in ("createVolume", "removeVolume")])

    def test_rotation_copies_only_the_image(self):
        # A cache volume made here records its image's virtual size: past
        # it the volume holds zeros, and the copy stops there.
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        db_api.volume_admin_metadata_update(
            self.ctx, entry_volume.id,
            {cache_entries.IMAGE_BYTES_KEY: str(3 * units.Gi)}, False)
        (_unused, cloned), copy = self.rotate(driver, image_meta)
        self.assertTrue(cloned)
        self.assertEqual(3 * units.Gi, copy.call_args.args[3])
        [new] = [v for v in self.internal_volumes()
                 if v.id != entry_volume.id]
        self.assertEqual(str(3 * units.Gi), db_api.volume_admin_metadata_get(
            self.ctx, new.id)[cache_entries.IMAGE_BYTES_KEY])

    def test_rotation_of_an_entry_made_elsewhere_copies_everything(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        _unused, copy = self.rotate(driver, image_meta)
        self.assertIsNone(copy.call_args.args[3])

    def test_rotation_ignores_the_first_release_image_size(self):
        """Issue 20 item 1: a figure measured before unpacking is not used.

        The first release recorded ``powerflex_cache_image_bytes`` before
        a compressed image was decompressed (the gzip file's size); such
        an entry is copied whole.
        """
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        db_api.volume_admin_metadata_update(
            self.ctx, entry_volume.id,
            {"powerflex_cache_image_bytes": str(1157120)}, False)
        _unused, copy = self.rotate(driver, image_meta)
        self.assertIsNone(copy.call_args.args[3])

    def test_entry_of_a_larger_image_refuses_a_smaller_volume(self):
        """Issue 20 item 10: the size check runs on what the entry holds.

        A 3 GiB image (its entry records the 3 GiB written into it) into
        a 1 GiB volume: refused as Cinder's download path refuses it,
        whatever Glance says of the image (a compressed container's
        virtual size is not the image's), and nothing is sent.
        """
        driver = self.driver()
        image_meta = self.image(container_format="compressed")
        entry_volume = self.cache_entry(image_meta, size=8, physical=8)
        db_api.volume_admin_metadata_update(
            self.ctx, entry_volume.id,
            {cache_entries.IMAGE_BYTES_KEY: str(3 * units.Gi)}, False)
        error = self.assertRaises(exception.ImageUnacceptable, self.clone,
                                  driver, self.new_volume(1), image_meta)
        self.assertIn("Image virtual size is 3GB and doesn't fit in a "
                      "volume of size 1GB", str(error))
        self.assertEqual([], [op for op in self.array_requests()
                              if op != "getVolume"])
        self.miss.assert_not_called()
        model_update, cloned = self.clone(driver, self.new_volume(3),
                                          image_meta)
        self.assertTrue(cloned)
        self.assertEqual(8, model_update["size"])

    def test_rotation_gives_up_when_entry_removed_meanwhile(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        cloner = image_clone.ImageCloner(driver)
        # The full entry; gone at the rotation, at the next look and at
        # the look again under the image's lock.
        entries = [db_api.image_volume_cache_get_all(self.ctx)[0], None,
                   None, None]
        with mock.patch.object(cloner.entries, "entry",
                               side_effect=entries), \
                mock.patch.object(cloner.rotator,
                                  "copy_to_new_cache_volume") as copy:
            self.assertEqual(MISS, cloner.clone_image(
                self.project_ctx.elevated(), self.new_volume(60), None,
                image_meta, None))
        copy.assert_not_called()

    def test_entry_made_while_waiting_is_cloned_outside_the_lock(self):
        # A create that finds no entry waits for the image's lock; the
        # entry another create made meanwhile is cloned after the lock is
        # given back, so that the creates that waited clone side by side
        # (and across the services of a cluster) as in Cinder's own path.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        entry = db_api.image_volume_cache_get_all(self.ctx)[0]
        cloner = image_clone.ImageCloner(driver)
        held = []
        lock = mock.MagicMock()
        lock.__enter__.side_effect = lambda: held.append(True)
        lock.__exit__.side_effect = lambda *exc: held.pop() and None
        clone = driver.create_cloned_volume
        lock_held_at_clone = []

        def cloned(*args):
            lock_held_at_clone.append(bool(held))
            return clone(*args)
        with mock.patch.object(cloner.entries, "entry",
                               side_effect=[None, entry]), \
                mock.patch.object(image_clone.coordination.COORDINATOR,
                                  "get_lock", return_value=lock) as get, \
                mock.patch.object(driver, "create_cloned_volume",
                                  side_effect=cloned):
            _model_update, cloned_ok = cloner.clone_image(
                self.project_ctx.elevated(), self.new_volume(60), None,
                image_meta, None)
        self.assertTrue(cloned_ok)
        get.assert_called_once_with(image_meta["id"])
        self.assertEqual([False], lock_held_at_clone)
        self.miss.assert_not_called()

    def test_rotation_uses_entry_another_service_rotated(self):
        # Two services of a cluster hit the full vtree; the second one to
        # take the coordination lock finds the entry already replaced and
        # clones the new one instead of copying again.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        full_entry = db_api.image_volume_cache_get_all(self.ctx)[0]
        replaced_by = self.cache_entry(image_meta, size=60, physical=64)
        new_entry = [e for e in db_api.image_volume_cache_get_all(self.ctx)
                     if e["volume_id"] == replaced_by.id][0]
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        cloner = image_clone.ImageCloner(driver)
        # The entry met full, the one the lock holder made, and the one
        # this create looks up after the replacement.
        entries = [full_entry, new_entry, new_entry]
        with mock.patch.object(cloner.entries, "entry",
                               side_effect=entries), \
                mock.patch.object(cloner.rotator,
                                  "copy_to_new_cache_volume") as copy:
            model_update, cloned = cloner.clone_image(
                self.project_ctx.elevated(), self.new_volume(60), None,
                image_meta, None)
        self.assertTrue(cloned)
        copy.assert_not_called()
        snapshots = [c.body["snapshotDefs"][0]["volumeId"]
                     for c in self.gateway.calls
                     if c.op == "snapshotVolumes"]
        self.assertEqual([replaced_by.provider_id], snapshots[1:])
        self.assertNotIn("createVolume", self.gateway.ops())

    def test_no_quota_for_the_rounding_fails_without_download(self):
        # Cinder's own path would clone the entry again, then download the
        # whole image, only to be refused the same quota.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        volume = self.new_volume(60)
        db_api.quota_create(self.ctx, volume.project_id, "gigabytes", 62)
        self.assertRaises(quota_charge.RoundingExceedsQuota, self.clone,
                          driver, volume, image_meta)
        self.assertEqual([], [op for op in self.array_requests()
                              if op != "getVolume"])
        self.miss.assert_not_called()

    def test_cache_clone_error_downloads_into_volume(self):
        # As Cinder's own cache path: a failed clone is not a failed
        # create, and the entry stays; the image is copied into the volume
        # here, so that the size the array holds is what Cinder records
        # (Cinder's path would set the requested size back).
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", 500, {
            "message": "Error", "httpStatusCode": 500, "errorCode": 0},
            times=2)
        download = self.mock_object(image_clone.image_download, "download")
        copy = self.mock_object(image_clone.ImageCloner, "_copy_into",
                                return_value={"size": 64})
        self.assertEqual(({"size": 64}, True), self.clone(
            driver, self.new_volume(60), image_meta))
        # One download, with Cinder's checks, and the copy reads it.
        download.assert_called_once()
        copy.assert_called_once()
        self.assertIs(download.return_value.__enter__.return_value,
                      copy.call_args.args[-1])
        self.assertEqual(2, self.gateway.ops().count("snapshotVolumes"))
        self.assertEqual(1, len(db_api.image_volume_cache_get_all(self.ctx)))

    def test_cache_clone_error_tried_once_more(self):
        # One failed clone of the entry is tried again here, as Cinder's
        # path would, so that a full vtree met then is replaced.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", 500, {
            "message": "Error", "httpStatusCode": 500, "errorCode": 0})
        model_update, cloned = self.clone(driver, self.new_volume(60),
                                          image_meta)
        self.assertTrue(cloned)
        self.assertIn("provider_id", model_update)
        self.assertEqual(2, self.gateway.ops().count("snapshotVolumes"))

    def test_stock_does_not_clone_from_cache(self):
        driver = self.driver(base.STOCK)
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))

    # -- cinder:// locations --------------------------------------------------

    def location(self, volume, store=""):
        return ("cinder://%s%s" % (store, volume.id), [])

    def test_direct_clone_of_raw_image_volume(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        for store in ("", "powerflex/"):
            model_update, cloned = self.clone(
                driver, self.new_volume(12), self.image("raw"),
                self.location(image_volume, store))
            self.assertTrue(cloned)
            self.assertEqual(["snapshotVolumes"], self.gateway.ops())
            self.assertEqual(16, model_update["size"])

    def test_direct_clone_needs_cinder_in_allowed_schemes(self):
        self.override_config("allowed_direct_url_schemes", [])
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))
        self.assertEqual([], self.gateway.ops())

    def test_direct_clone_needs_raw_bare(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), self.image("qcow2"),
            self.location(image_volume)))
        self.assertEqual([], self.gateway.ops())

    def test_direct_clone_needs_access(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        image_meta = self.image("raw", owner=uuidutils.generate_uuid())
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), image_meta,
            self.location(image_volume)))
        self.assertEqual([], self.gateway.ops())

    def test_direct_clone_allowed_by_image_owner_metadata(self):
        driver = self.driver()
        owner = uuidutils.generate_uuid()
        image_volume = self.db_volume(self.project_ctx, 10, 16,
                                      metadata={"image_owner": owner})
        _, cloned = self.clone(driver, self.new_volume(12),
                               self.image("raw", owner=owner),
                               self.location(image_volume))
        self.assertTrue(cloned)

    def test_direct_clone_error_left_to_cinder(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.gateway.fail("snapshotVolumes", 500, {
            "message": "Error", "httpStatusCode": 500, "errorCode": 0})
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))
        self.assertEqual(["snapshotVolumes", "getVolumeByName"],
                         self.gateway.ops())

    def test_direct_clone_any_error_falls_back(self):
        # A copy across pools can fail in the device (EIO) or in os-brick;
        # as Cinder's own cinder:// path, that is a fallback, not a failed
        # create.
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        with mock.patch.object(driver, "create_cloned_volume",
                               side_effect=OSError(5, "I/O error")):
            self.assertEqual(MISS, self.clone(
                driver, self.new_volume(12), self.image("raw"),
                self.location(image_volume)))

    def test_location_not_a_pair_is_ignored(self):
        # Cinder's own image-service test double gives a bare string.
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), self.image("raw"),
            "cinder://%s" % image_volume.id))
        self.assertEqual([], self.gateway.ops())

    def test_direct_clone_skips_other_backend(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16,
                                      host="other@powerflex#PD1:SP1")
        self.assertEqual(MISS, self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))
        self.assertEqual([], self.gateway.ops())


class RotationWorkersRow(CloneImageFixtures, base.DriverTestCase):
    """With Cinder's workers table, which its test case mocks by default."""

    MOCK_WORKER = False

    def test_rotation_volume_has_a_workers_row_while_it_is_made(self):
        # Like the volumes the manager creates: a service stopped during
        # the copy leaves a row that its start-up clean-up finds.
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        during = []

        def copy(context, old, new, data_bytes):
            during.extend((w.resource_id, w.status)
                          for w in db_api.worker_get_all(self.ctx))
        volume = self.new_volume(60)
        with mock.patch("cinder.volume.api.API.delete"), \
                mock.patch.object(driver, "copy_volume_data_sparse",
                                  side_effect=copy):
            self.clone(driver, volume, image_meta)
        [new] = [v for v in self.internal_volumes()
                 if v.id != entry_volume.id]
        self.assertEqual([(new.id, "creating")], during)
        self.assertEqual([], db_api.worker_get_all(self.ctx))


class HalfMadePurge(CloneImageFixtures, base.DriverTestCase):
    """Cache volumes an interrupted create or rotation left behind."""

    def setUp(self):
        super().setUp()
        self.driver()  # the mocked gateway the volumes are made on

    def _internal(self, status, image_id, marked=True, host=base.HOST):
        internal = context.get_internal_tenant_context()
        volume = self.db_volume(internal, 8, 8, host=host, status=status,
                                display_name=half_made.display_name(
                                    image_id))
        if marked:
            half_made.mark(db_api, internal, volume, image_id)
        return volume.id

    def test_only_its_own_leftovers_of_the_image_and_backend(self):
        image_id, other_image = "img-1", "img-2"
        expected = {
            self._internal("error", image_id): False,
            self._internal("error_deleting", image_id): True,
        }
        kept = [
            self._internal("available", image_id),  # a live entry
            self._internal("creating", image_id),  # being made now
            self._internal("error", image_id, marked=False),  # Cinder's
            self._internal("error", other_image),
            self._internal("error", image_id, host="other@powerflex#PD1"),
        ]
        like = self.new_volume(8)
        internal = context.get_internal_tenant_context()
        with mock.patch("cinder.volume.api.API.delete") as delete:
            deleted = half_made.purge(internal, image_id, like,
                                      cinder_locations.same_backend)
        self.assertEqual(sorted(expected), sorted(deleted))
        self.assertEqual(
            expected, {call.args[1].id: call.kwargs["force"]
                       for call in delete.call_args_list})
        self.assertTrue(all(call.args[0].is_admin and
                            call.args[0].project_id == INTERNAL_PROJECT
                            for call in delete.call_args_list))
        self.assertNotIn(kept[0], deleted)

    def test_a_failed_delete_is_left_for_next_time(self):
        image_id = "img-1"
        first = self._internal("error", image_id)
        second = self._internal("error", image_id)
        internal = context.get_internal_tenant_context()
        with mock.patch("cinder.volume.api.API.delete",
                        side_effect=[exception.InvalidVolume(reason="busy"),
                                     None]) as delete:
            deleted = half_made.purge(internal, image_id,
                                      self.new_volume(8),
                                      cinder_locations.same_backend)
        self.assertEqual(2, delete.call_count)
        self.assertEqual(1, len(deleted))
        self.assertIn(deleted[0], (first, second))

    def test_every_cache_volume_made_here_is_marked(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.rotate(driver, image_meta)
        made = [v for v in self.internal_volumes()
                if half_made.MADE_FOR_KEY in v.admin_metadata]
        self.assertEqual(1, len(made))
        self.assertEqual(image_meta["id"],
                         made[0].admin_metadata[half_made.MADE_FOR_KEY])


class Helpers(base.DriverTestCase):

    def test_cinder_volume_ids(self):
        vol_id = uuidutils.generate_uuid()
        self.assertEqual([vol_id], cinder_locations.cinder_volume_ids(
            ("cinder://%s" % vol_id,
             [{"url": "cinder://store/%s" % vol_id},
              {"url": "http://glance/x"}, {"url": None},
              {"url": "cinder://not-a-uuid"}])))
        self.assertEqual([], cinder_locations.cinder_volume_ids(None))

    def test_entry_freshness_compares_utc(self):
        entry = {"image_updated_at": datetime.datetime(2026, 11, 1, 12, 0)}
        plus_one = datetime.timezone(datetime.timedelta(hours=1))
        self.assertTrue(cache_entries.entry_is_fresh(
            entry, {"updated_at": datetime.datetime(2026, 11, 1, 13, 0,
                                                    tzinfo=plus_one)}))
        self.assertFalse(cache_entries.entry_is_fresh(
            entry, {"updated_at": UPDATED + datetime.timedelta(seconds=1)}))
        self.assertTrue(cache_entries.entry_is_fresh(
            entry, {"updated_at": "2026-11-01T12:00:00Z"}))

    def test_same_backend_in_a_cluster_ignores_the_pool(self):
        # A cinder:// volume in another pool of the same clustered backend
        # is on this backend (a host-assisted copy makes the clone).
        sp1 = test_utils.create_volume(
            self.ctx, host="node1@powerflex#PD1:SP1",
            cluster_name="cluster@powerflex#PD1:SP1")
        sp2 = test_utils.create_volume(
            self.ctx, host="node2@powerflex#PD1:SP2",
            cluster_name="cluster@powerflex#PD1:SP2")
        other = test_utils.create_volume(
            self.ctx, host="node1@other#PD1:SP1",
            cluster_name="cluster@other#PD1:SP1")
        self.assertTrue(cinder_locations.same_backend(sp1, sp2))
        self.assertFalse(cinder_locations.same_backend(sp1, other))

    def test_same_backend_needs_a_host_or_cluster_on_both(self):
        """Issue 20 item 8: no host or cluster is no backend, not an error.

        A clustered volume and a lone host's are never on one backend; a
        volume never placed (no host) is on none.
        """
        clustered = test_utils.create_volume(
            self.ctx, host="node1@powerflex#PD1:SP1",
            cluster_name="cluster@powerflex#PD1:SP1")
        lone = test_utils.create_volume(self.ctx,
                                        host="node1@powerflex#PD1:SP1")
        unplaced = test_utils.create_volume(self.ctx, host=None)
        for a, b in ((clustered, lone), (lone, clustered),
                     (lone, unplaced), (unplaced, lone),
                     (clustered, unplaced), (unplaced, unplaced)):
            self.assertFalse(cinder_locations.same_backend(a, b))
        self.assertTrue(cinder_locations.same_backend(lone, lone))

    def test_same_pool_unknown_pool_is_same(self):
        volume = self.new_volume_like("cinder@powerflex#PD1:SP1")
        self.assertTrue(cinder_locations.same_pool(
            volume, self.new_volume_like("cinder@powerflex")))
        self.assertFalse(cinder_locations.same_pool(
            volume, self.new_volume_like("cinder@powerflex#PD1:SP2")))
        self.assertFalse(cinder_locations.same_pool(
            volume, self.new_volume_like("cinder@powerflex#PD2:SP1")))

    def new_volume_like(self, host):
        return test_utils.create_volume(self.ctx, host=host)


class CacheMiss(base.DriverTestCase):
    """A cache miss: the image goes into a new entry at its own size."""

    def setUp(self):
        super().setUp()
        self.override_config("cinder_internal_tenant_project_id",
                             INTERNAL_PROJECT)
        self.override_config("cinder_internal_tenant_user_id", INTERNAL_USER)
        self.override_config("verify_glance_signatures", "disabled")
        self.override_config("image_conversion_dir", self.useFixture(
            fixtures.TempDir()).path)
        self.project_ctx = context.RequestContext(
            "user", uuidutils.generate_uuid(), is_admin=False)
        self.volume_type = test_utils.create_volume_type(
            self.ctx, name="powerflex")
        fetch = self.mock_object(image_utils.TemporaryImages,
                                 "fetch")
        fetch.return_value.__enter__.return_value = "/nonexistent/image"
        self.virtual_size = 3 * units.Gi
        self.mock_object(image_utils, "qemu_img_info",
                         side_effect=lambda path: mock.Mock(
                             virtual_size=self.virtual_size))
        self.copies = self.mock_object(image_clone.volume_utils,
                                       "copy_image_to_volume")

    def driver(self, **overrides):
        overrides.setdefault("image_volume_cache_enabled", True)
        return self.make_driver(base.OURS, **overrides)

    def new_volume(self, size):
        return test_utils.create_volume(
            self.project_ctx, host=base.HOST, size=size, status="creating",
            volume_type_id=self.volume_type.id)

    def clone(self, driver, volume):
        image_meta = {"id": uuidutils.generate_uuid(), "size": units.Mi,
                      "disk_format": "qcow2", "container_format": "bare",
                      "updated_at": UPDATED,
                      "owner": self.project_ctx.project_id}
        self.gateway.reset_calls()
        return driver.clone_image(self.project_ctx, volume, (None, []),
                                  image_meta, mock.sentinel.image_service)

    def internal_usage(self):
        quotas = quota.QUOTAS.get_project_quotas(self.ctx, INTERNAL_PROJECT,
                                                 usages=True)
        return {name: (quotas[name]["in_use"], quotas[name]["reserved"])
                for name in ("volumes", "gigabytes")}

    def created_sizes_gib(self):
        """The sizes createVolume was asked for (the array rounds them)."""
        return [int(c.body["volumeSizeInKb"]) // units.Mi
                for c in self.gateway.calls if c.op == "createVolume"]

    def copied_into(self):
        return [c.args[2].id for c in self.copies.call_args_list]

    def test_entry_made_at_image_size_and_cloned(self):
        driver = self.driver()
        volume = self.new_volume(60)
        model_update, cloned = self.clone(driver, volume)
        self.assertTrue(cloned)
        self.assertEqual(64, model_update["size"])
        [entry] = db_api.image_volume_cache_get_all(self.ctx)
        self.assertEqual(8, entry["size"])
        self.assertEqual([8], self.created_sizes_gib())
        self.assertEqual([entry["volume_id"]], self.copied_into())
        self.assertEqual(["createVolume", "snapshotVolumes",
                          "setVolumeSize"],
                         [op for op in self.gateway.ops()
                          if op in ("createVolume", "snapshotVolumes",
                                    "setVolumeSize", "removeVolume")])
        entry_volume = objects.Volume.get_by_id(self.ctx, entry["volume_id"])
        self.assertEqual(("available", 8), (entry_volume.status,
                                            entry_volume.size))
        self.assertEqual({"volumes": (1, 0), "gigabytes": (8, 0)},
                         self.internal_usage())
        self.assertEqual(
            {"readonly": "True",
             cache_entries.IMAGE_BYTES_KEY: str(3 * units.Gi),
             half_made.MADE_FOR_KEY: entry["image_id"]},
            db_api.volume_admin_metadata_get(self.ctx, entry_volume.id))

    def test_image_larger_than_volume_fails_and_makes_nothing(self):
        driver = self.driver()
        self.virtual_size = 20 * units.Gi
        self.assertRaises(exception.ImageUnacceptable, self.clone, driver,
                          self.new_volume(10))
        self.assertEqual([], self.created_sizes_gib())
        self.assertEqual({"volumes": (0, 0), "gigabytes": (0, 0)},
                         self.internal_usage())

    def test_conversion_refused_removes_the_entry_and_fails(self):
        driver = self.driver()
        self.copies.side_effect = exception.ImageConversionNotAllowed(
            image_id="x", reason="qcow2 conversion disabled")
        self.assertRaises(exception.ImageConversionNotAllowed, self.clone,
                          driver, self.new_volume(60))
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertIn("removeVolume", self.gateway.ops())
        self.assertEqual({"volumes": (0, 0), "gigabytes": (0, 0)},
                         self.internal_usage())
        self.assertEqual([], [v for v in objects.VolumeList.get_all(
            self.ctx) if v.project_id == INTERNAL_PROJECT])

    def test_failed_entry_falls_back_to_the_volume_itself(self):
        driver = self.driver()
        volume = self.new_volume(60)
        self.copies.side_effect = [exception.ImageCopyFailure(reason="EIO"),
                                   None]
        model_update, cloned = self.clone(driver, volume)
        self.assertTrue(cloned)
        self.assertEqual(64, model_update["size"])
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([8, 60], self.created_sizes_gib())
        self.assertEqual(volume.id, self.copied_into()[-1])
        self.assertEqual({"volumes": (0, 0), "gigabytes": (0, 0)},
                         self.internal_usage())

    def test_no_room_in_the_cache_copies_into_the_volume(self):
        driver = self.driver(image_volume_cache_max_size_gb=4)
        volume = self.new_volume(60)
        model_update, cloned = self.clone(driver, volume)
        self.assertTrue(cloned)
        self.assertEqual([60], self.created_sizes_gib())
        self.assertEqual([volume.id], self.copied_into())
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
