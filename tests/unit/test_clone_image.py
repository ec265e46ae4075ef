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
from cinder.tests.unit import utils as test_utils
from oslo_utils import uuidutils

from powerflex_cache_driver import image_clone
from powerflex_cache_driver import options
from tests.unit import base

INTERNAL_PROJECT = "0b9a6c3cd2a44c0f9bd7b3e3a3f5e9a1"
INTERNAL_USER = "4c3e1c5a9f0d4e5fa7e0c2b1d9f8e7a6"
UPDATED = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
VTREE_FULL = (500, {"message": "Error with details", "httpStatusCode": 500,
                    "errorCode": 0, "details": [{
                        "error": "TOO_MANY_SNAPS_IN_VTREE", "rc": 182,
                        "errorMessage": "There are too many snapshots "
                                        "in the VTree"}]})


class CloneImage(base.DriverTestCase):

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

    def clone(self, driver, volume, image_meta, location=(None, [])):
        self.gateway.reset_calls()
        return driver.clone_image(self.project_ctx.elevated(), volume,
                                  location, image_meta, None)

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
            self.assertNotIn("size", model_update)

    def test_stale_cache_entry_left_to_cinder(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        image_meta["updated_at"] = UPDATED + datetime.timedelta(hours=1)
        self.assertEqual((None, False),
                         self.clone(driver, self.new_volume(60), image_meta))
        self.assertEqual([], self.gateway.ops())

    def test_no_entry_not_cloned(self):
        driver = self.driver()
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), self.image()))
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

    def test_full_vtree_without_rotation_left_to_cinder(self):
        driver = self.driver(**{options.ROTATE_FULL_VTREE: False})
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))
        self.assertEqual(["snapshotVolumes"], self.gateway.ops())

    def test_full_vtree_without_rotation_removes_entry(self):
        # Left in place, Cinder's own cache path would hit the full vtree
        # again and fail the create; removed, Cinder downloads the image.
        driver = self.driver(**{options.ROTATE_FULL_VTREE: False})
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete") as delete:
            self.assertEqual((None, False), self.clone(
                driver, self.new_volume(60), image_meta))
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])

    def test_failed_rotation_removes_entry(self):
        driver = self.driver()
        image_meta = self.image()
        entry_volume = self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        with mock.patch("cinder.volume.api.API.delete") as delete, \
                mock.patch.object(image_clone.ImageCloner,
                                  "_copy_to_new_cache_volume",
                                  side_effect=exception.ImageCopyFailure(
                                      reason="attach failed")):
            self.assertEqual((None, False), self.clone(
                driver, self.new_volume(60), image_meta))
        self.assertEqual([], db_api.image_volume_cache_get_all(self.ctx))
        self.assertEqual([entry_volume.id],
                         [c.args[1].id for c in delete.call_args_list])

    def test_rotation_gives_up_when_entry_removed_meanwhile(self):
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", *VTREE_FULL)
        cloner = image_clone.ImageCloner(driver)
        entries = [db_api.image_volume_cache_get_all(self.ctx)[0], None]
        with mock.patch.object(cloner, "_cache_entry",
                               side_effect=entries), \
                mock.patch.object(cloner,
                                  "_copy_to_new_cache_volume") as copy:
            self.assertEqual((None, False), cloner.clone_image(
                self.project_ctx.elevated(), self.new_volume(60), None,
                image_meta))
        copy.assert_not_called()

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
        with mock.patch.object(cloner, "_cache_entry",
                               side_effect=[full_entry, new_entry]), \
                mock.patch.object(cloner,
                                  "_copy_to_new_cache_volume") as copy:
            model_update, cloned = cloner.clone_image(
                self.project_ctx.elevated(), self.new_volume(60), None,
                image_meta)
        self.assertTrue(cloned)
        copy.assert_not_called()
        snapshots = [c.body["snapshotDefs"][0]["volumeId"]
                     for c in self.gateway.calls
                     if c.op == "snapshotVolumes"]
        self.assertEqual([replaced_by.provider_id], snapshots[1:])
        self.assertNotIn("createVolume", self.gateway.ops())

    def test_cache_clone_error_left_to_cinder(self):
        # As Cinder's own cache path: a failed clone is not a failed
        # create; the entry stays for Cinder's path to try again.
        driver = self.driver()
        image_meta = self.image()
        self.cache_entry(image_meta)
        self.gateway.fail("snapshotVolumes", 500, {
            "message": "Error", "httpStatusCode": 500, "errorCode": 0})
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(60), image_meta))
        self.assertEqual(1, len(db_api.image_volume_cache_get_all(self.ctx)))

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
            self.assertNotIn("size", model_update)

    def test_direct_clone_needs_cinder_in_allowed_schemes(self):
        self.override_config("allowed_direct_url_schemes", [])
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))
        self.assertEqual([], self.gateway.ops())

    def test_direct_clone_needs_raw_bare(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(12), self.image("qcow2"),
            self.location(image_volume)))

    def test_direct_clone_needs_access(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16)
        image_meta = self.image("raw", owner=uuidutils.generate_uuid())
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(12), image_meta,
            self.location(image_volume)))

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
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))
        self.assertEqual(["snapshotVolumes"], self.gateway.ops())

    def test_direct_clone_skips_other_backend(self):
        driver = self.driver()
        image_volume = self.db_volume(self.project_ctx, 10, 16,
                                      host="other@powerflex#PD1:SP1")
        self.assertEqual((None, False), self.clone(
            driver, self.new_volume(12), self.image("raw"),
            self.location(image_volume)))


class Helpers(base.DriverTestCase):

    def test_cinder_volume_ids(self):
        vol_id = uuidutils.generate_uuid()
        self.assertEqual([vol_id], image_clone.cinder_volume_ids(
            ("cinder://%s" % vol_id,
             [{"url": "cinder://store/%s" % vol_id},
              {"url": "http://glance/x"}, {"url": None},
              {"url": "cinder://not-a-uuid"}])))
        self.assertEqual([], image_clone.cinder_volume_ids(None))

    def test_entry_freshness_compares_utc(self):
        entry = {"image_updated_at": datetime.datetime(2026, 11, 1, 12, 0)}
        plus_one = datetime.timezone(datetime.timedelta(hours=1))
        self.assertTrue(image_clone.entry_is_fresh(
            entry, {"updated_at": datetime.datetime(2026, 11, 1, 13, 0,
                                                    tzinfo=plus_one)}))
        self.assertFalse(image_clone.entry_is_fresh(
            entry, {"updated_at": UPDATED + datetime.timedelta(seconds=1)}))
        self.assertTrue(image_clone.entry_is_fresh(
            entry, {"updated_at": "2026-11-01T12:00:00Z"}))

    def test_same_pool_unknown_pool_is_same(self):
        volume = self.new_volume_like("cinder@powerflex#PD1:SP1")
        self.assertTrue(image_clone.same_pool(
            volume, self.new_volume_like("cinder@powerflex")))
        self.assertFalse(image_clone.same_pool(
            volume, self.new_volume_like("cinder@powerflex#PD1:SP2")))
        self.assertFalse(image_clone.same_pool(
            volume, self.new_volume_like("cinder@powerflex#PD2:SP1")))

    def new_volume_like(self, host):
        return test_utils.create_volume(self.ctx, host=host)
