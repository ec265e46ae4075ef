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
"""Scenario 7: where ``clone_image`` takes a volume from, and where not.

Cinder's create-from-image flow asks the driver's ``clone_image`` first.
The stock driver never clones there: Cinder goes on with its own cache
path, which checks ``image_conversion_dir`` for room for the whole image
(``image_utils.check_available_space`` with the image's ``size``) *before*
looking at the cache, so a full conversion directory fails the create
with ``ImageTooBig`` even when the cache entry is there. Ours clones a
fresh cache entry (any disk format) or a ``cinder://`` image volume in
``clone_image``, so Cinder's cache path does not run at all.

Not cloned by ours: a stale cache entry (the image's ``updated_at``
changed), an encrypted volume, a ``cinder://`` volume whose image belongs
to another project. Except for the encrypted volume, ours then takes the
cache miss over in ``clone_image`` as well: the image is downloaded once
into a new cache volume (made at the image's virtual size rounded up to the
array granularity) that becomes the entry, and the volume is a snapshot of
it, recorded at the size the array holds.
"""

import datetime
import os
import subprocess
from typing import Any

from cinder.db import api as db_api
from cinder import exception
from cinder.image import image_utils
from cinder import objects
from cinder.volume import volume_types
import fixtures
from oslo_utils import units

from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
VIRTUAL_SIZE = 2 * GIB
PIECES = [(0, MIB), (VIRTUAL_SIZE // 3, 512 * units.Ki),
          (VIRTUAL_SIZE - MIB, MIB)]
NEW_PIECES = [(4096, MIB), (GIB + MIB, MIB)]
BIG_VIRTUAL_SIZE = 60 * GIB
BIG_PIECES = [(0, MIB), (BIG_VIRTUAL_SIZE - MIB, MIB)]
OTHER_PROJECT_ID = "5d6e7f80-91a2-4b3c-8d4e-5f60718293a4"


class TmpfsFixture(fixtures.Fixture):
    """A small tmpfs mounted for the duration of a test (needs root)."""

    def __init__(self, path: str, size_bytes: int) -> None:
        super().__init__()
        self.path = path
        self.size_bytes = size_bytes

    def _setUp(self) -> None:
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%d" % self.size_bytes, "tmpfs", self.path],
                       check=True, capture_output=True)
        self.addCleanup(subprocess.run, ["umount", self.path], check=True)


def snapshot_sources(recorded: inprocess_cinder.Recorded) -> list[str]:
    """Array volumes snapshotted during one operation."""
    return [definition["volumeId"]
            for call in recorded.of("snapshotVolumes")
            for definition in call.body["snapshotDefs"]]


class CloneImageSourcesScenario:
    """clone_image sources, for the driver of the concrete class."""

    def _second_volume_served(self, disk_format: str) -> None:
        meta, image = self.make_image("img-%s" % disk_format, VIRTUAL_SIZE,
                                      PIECES, disk_format,
                                      disk_format=disk_format)
        self.create_volume(8, image_id=meta["id"])
        cache_volume = self.cache_volume(meta["id"])
        cloned = self.spy(self.driver, "clone_image")
        space_checks = self.spy(image_utils, "check_available_space")

        second, hit = self.create_volume(8, image_id=meta["id"])
        # Both drivers end with one snapshot of the entry, no GET, no new
        # array volume, no mapping, no download...
        self.assertEqual({"snapshotVolumes": 1}, dict(hit.counts()))
        self.assertEqual([cache_volume.provider_id], snapshot_sources(hit))
        self.assertEqual(1, self.images.downloads[meta["id"]])
        self.assert_volume_content(second, image)
        # ...but ours made it in clone_image, so Cinder's cache path (and
        # its conversion directory check) never ran.
        self.assertEqual(1, len(cloned))
        self.assertEqual(self.expect(stock=False, ours=True), cloned[0][1])
        self.assertEqual(self.expect(stock=1, ours=0), len(space_checks))

    def test_raw_second_volume_from_clone_image(self) -> None:
        """raw: ours serves the cache hit in clone_image."""
        self._second_volume_served("raw")

    def test_qcow2_second_volume_from_clone_image(self) -> None:
        """qcow2: the entry holds raw data, ours clones it as well."""
        self._second_volume_served("qcow2")

    def test_full_conversion_dir_with_cached_60gib_image(self) -> None:
        """A conversion dir too small for the image: stock ImageTooBig."""
        meta, image = self.make_image("big", BIG_VIRTUAL_SIZE, BIG_PIECES,
                                      "big")
        self.assertEqual(BIG_VIRTUAL_SIZE, meta["size"])
        self.require_conversion_space(image)
        self.create_volume(60, image_id=meta["id"])
        cache_volume = self.cache_volume(meta["id"])

        small_dir = os.path.join(self.workdir, "small-conversion")
        try:
            self.useFixture(TmpfsFixture(small_dir, 16 * MIB))
        except subprocess.CalledProcessError as exc:
            self.skipTest("cannot mount a small tmpfs: %s" % exc.stderr)
        self.override_config("image_conversion_dir", small_dir)
        space_checks = self.spy(image_utils, "check_available_space")

        second, recorded = self.create_volume(60, image_id=meta["id"],
                                              expect_status=None)
        self.assertEqual(1, self.images.downloads[meta["id"]])
        if self.is_ours:
            self.assertEqual("available", second.status)
            self.assertEqual({"snapshotVolumes": 1},
                             dict(recorded.counts()))
            self.assertEqual([cache_volume.provider_id],
                             snapshot_sources(recorded))
            self.assertEqual([], space_checks)
            self.assertEqual(64, second.size)
            self.assertEqual(64, self.array_size_gib(second))
            self.assert_volume_content(second, image)
        else:
            # Refused before the cache is even looked at: no REST call.
            self.assertEqual("error", second.status)
            self.assertEqual([], recorded.calls)
            self.assertEqual(1, len(space_checks))
            self.assertIsInstance(space_checks[0], exception.ImageTooBig)
            self.assertEqual([exception.ImageTooBig],
                             [type(exc) for _name, exc in
                              self.casts.failures])
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_stale_entry_never_used(self) -> None:
        """The image's updated_at changed: new download, new bytes."""
        meta, old_image = self.make_image("img", VIRTUAL_SIZE, PIECES, "old")
        before, _unused = self.create_volume(8, image_id=meta["id"])
        stale = self.cache_volume(meta["id"])
        _new_meta, new_image = self.make_image("img-v2", VIRTUAL_SIZE,
                                               NEW_PIECES, "new")
        self.images.replace_data(
            meta["id"], new_image,
            meta["updated_at"] + datetime.timedelta(seconds=1))
        cloned = self.spy(self.driver, "clone_image")

        after, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertNotIn(stale.provider_id, snapshot_sources(recorded))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(after, new_image)
        self.assert_volume_content(before, old_image)
        self.assertNotIn(stale.provider_id, self.sim.array.volumes)
        fresh = self.cache_volume(meta["id"])
        self.assert_volume_content(fresh, new_image)
        # Stock: Cinder downloads into the volume and caches a snapshot
        # of it. Ours: clone_image removes the stale entry, downloads into
        # a new cache volume and clones the volume from it.
        self.assertEqual(self.expect(stock=[(None, False)], ours=[True]),
                         [c if c == (None, False) else c[1] for c in cloned])
        self.assertEqual(
            self.expect(stock=[after.provider_id], ours=[fresh.provider_id]),
            snapshot_sources(recorded))

        third, hit = self.create_volume(8, image_id=meta["id"])
        self.assertEqual([fresh.provider_id], snapshot_sources(hit))
        self.assertEqual(self.expect(stock=False, ours=True), cloned[1][1])
        self.assert_volume_content(third, new_image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def _encrypted_type(self) -> Any:
        volume_type = volume_types.create(self.admin_ctx, "luks", {})
        db_api.volume_type_encryption_create(
            self.admin_ctx, volume_type["id"],
            {"provider": "luks", "cipher": "aes-xts-plain64",
             "key_size": 256, "control_location": "front-end"})
        return objects.VolumeType.get_by_id(self.admin_ctx,
                                            volume_type["id"])

    def test_encrypted_volume_not_cloned(self) -> None:
        """An encrypted volume is never a clone of the (plain) entry."""
        meta, _image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(8, image_id=meta["id"])
        cache_volume = self.cache_volume(meta["id"])
        cloned = self.spy(self.driver, "clone_image")

        # Cinder downloads the image and writes it through a LUKS layer
        # (cryptsetup on the host); whether that works here depends on the
        # host, so the final status is not asserted.
        volume, recorded = self.create_volume(
            8, image_id=meta["id"], volume_type=self._encrypted_type(),
            expect_status=None)
        self.assertIsNotNone(volume.encryption_key_id)
        self.assertEqual([], snapshot_sources(recorded))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        # Cinder does not even ask the driver...
        self.assertEqual([], cloned)
        # ...and the driver says no by itself when asked.
        self.sim.reset_calls()
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.assertEqual((None, False), self.driver.clone_image(
            self.admin_ctx, volume, (None, []),
            self.images.show(self.admin_ctx, meta["id"]), self.images))
        self.assertEqual([], self.sim.calls)
        self.assertEqual(cache_volume.id, self.cache_volume(meta["id"]).id)

    def _image_volume(self) -> tuple[dict, Any, Any]:
        """An image and a volume of this project holding its data."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        source, _unused = self.create_volume(8, image_id=meta["id"])
        self.delete_cache_entries()
        return meta, image, source

    def test_cinder_location_cloned(self) -> None:
        """cinder://<volume>: one snapshot once the operator allows it."""
        meta, image, source = self._image_volume()
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % source.id, {})
        # allowed_direct_url_schemes is empty by default: neither Cinder
        # nor our clone_image looks at cinder:// locations; downloaded and
        # cached.
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(1, len(self.cache_entries()))
        # Stock caches a snapshot of the new volume, ours makes the new
        # volume a snapshot of the new cache volume.
        self.assertEqual(
            self.expect(stock=[volume.provider_id],
                        ours=[self.cache_volume(meta["id"]).provider_id]),
            snapshot_sources(recorded))
        self.assert_volume_content(volume, image)

        # With cinder:// allowed, the image volume is cloned: by our
        # clone_image before the cache entry, by Cinder's own path for stock.
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        cloned = self.spy(self.driver, "clone_image")
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertEqual({"snapshotVolumes": 1}, dict(recorded.counts()))
        self.assertEqual([source.provider_id], snapshot_sources(recorded))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assertEqual(self.expect(stock=[(None, False)], ours=[True]),
                         [c if c == (None, False) else c[1] for c in cloned])
        self.assert_volume_content(volume, image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_cinder_location_of_a_volume_without_host(self) -> None:
        """Issue 20 item 8: a cinder:// volume on no backend is skipped.

        The image's volume has no host (nor cluster). Cinder's own path
        filters image volumes by the new volume's host in the database
        and goes on; ours used to fail the create with InvalidVolume
        ("volume is not assigned to a host") from comparing hosts.
        """
        meta, image, source = self._image_volume()
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % source.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        host = source.host
        source.host = None
        source.save()
        self.addCleanup(self.restore_host, source, host)
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertNotIn(source.provider_id, snapshot_sources(recorded))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(volume, image)
        self.assert_array_matches_db()

    @staticmethod
    def restore_host(volume: Any, host: str) -> None:
        volume.host = host
        volume.save()

    def test_cinder_location_of_another_owner_not_used(self) -> None:
        """The image belongs to another project: its volume is not used."""
        meta, image, source = self._image_volume()
        self.images.update(self.admin_ctx, meta["id"],
                           {"owner": OTHER_PROJECT_ID})
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % source.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        cloned = self.spy(self.driver, "clone_image")
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertNotIn(source.provider_id, snapshot_sources(recorded))
        self.assertEqual(2, self.images.downloads[meta["id"]])
        self.assert_volume_content(volume, image)
        # Not cloned from the other project's volume; ours then takes the
        # cache miss over (a new entry, the volume a snapshot of it).
        self.assertEqual(self.expect(stock=[(None, False)], ours=[True]),
                         [c if c == (None, False) else c[1] for c in cloned])
        self.assertEqual(
            self.expect(stock=[volume.provider_id],
                        ours=[self.cache_volume(meta["id"]).provider_id]),
            snapshot_sources(recorded))
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()

    def test_cinder_location_of_another_projects_volume(self) -> None:
        """Issue 21: an image of the asking project names another's volume.

        The image is this project's; a cinder:// location (added by a
        service user) names a volume of another project holding other
        data. Cinder's own path checks only that the image is the asking
        project's, and clones the other project's volume: the new volume
        holds that project's data. Ours skips the volume and downloads
        the image.
        """
        victim_meta, victim_data = self.make_image(
            "victim", VIRTUAL_SIZE, NEW_PIECES, "victim")
        victim, _unused = self.create_volume(8, image_id=victim_meta["id"])
        victim.project_id = OTHER_PROJECT_ID
        victim.save()
        self.delete_cache_entries()
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % victim.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])

        volume, recorded = self.create_volume(8, image_id=meta["id"])

        if self.is_ours:
            self.assertNotIn(victim.provider_id, snapshot_sources(recorded))
            self.assertEqual(1, self.images.downloads[meta["id"]])
            self.assert_volume_content(volume, image)
        else:
            self.assertEqual([victim.provider_id],
                             snapshot_sources(recorded))
            self.assertEqual(0, self.images.downloads[meta["id"]])
            self.assert_volume_content(volume, victim_data)
        self.assert_array_matches_db()

    def test_cinder_location_of_a_volume_in_use(self) -> None:
        """Its data changes under the clone: ours downloads the image."""
        meta, image, source = self._image_volume()
        self.images.add_location(self.admin_ctx, meta["id"],
                                 "cinder://%s" % source.id, {})
        self.override_config("allowed_direct_url_schemes", ["cinder"])
        source.status = "in-use"
        source.save()
        self.addCleanup(self.restore_status, source, "available")
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        self.assertEqual(self.expect(stock=[source.provider_id], ours=[]),
                         [pid for pid in snapshot_sources(recorded)
                          if pid == source.provider_id])
        self.assert_volume_content(volume, image)

    @staticmethod
    def restore_status(volume: Any, status: str) -> None:
        volume.status = status
        volume.save()

    def test_cache_clone_fails_once(self) -> None:
        """A transient snapshot error on a cache hit does not fail it."""
        meta, image = self.make_image("img", VIRTUAL_SIZE, PIECES, "img")
        self.create_volume(8, image_id=meta["id"])
        cache_volume = self.cache_volume(meta["id"])
        self.sim.faults.fail("snapshotVolumes", 500)
        volume, recorded = self.create_volume(8, image_id=meta["id"])
        # Stock: Cinder's cache path gives up and downloads. Ours leaves
        # the volume to that path, whose own clone then succeeds.
        self.assertEqual(self.expect(stock=2, ours=1),
                         self.images.downloads[meta["id"]])
        self.assertEqual(self.expect(stock=[cache_volume.provider_id],
                                     ours=[cache_volume.provider_id] * 2),
                         snapshot_sources(recorded))
        self.assertEqual(self.expect(stock=1, ours=0),
                         recorded.counts()["createVolume"])
        self.assert_volume_content(volume, image)
        if self.is_ours:
            self.assert_sizes_cover_array()
            self.assert_no_quota_drift()
        self.assert_array_matches_db()


class TestCloneImageSourcesStock(CloneImageSourcesScenario,
                                 driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestCloneImageSourcesOurs(CloneImageSourcesScenario,
                                driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
