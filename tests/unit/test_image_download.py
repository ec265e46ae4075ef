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
"""Unpacking a downloaded image as Cinder does (the real copies are in
``tests/functional/test_image_containers.py``)."""

import gzip
import os
from unittest import mock

from cinder import exception
import fixtures

from powerflex_cache_driver import image_download
from tools.beds import cinder_testcase


class Unpack(cinder_testcase.CinderTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.tmp, "image")

    def meta(self, container_format, disk_format="raw"):
        return {"id": "img-1", "container_format": container_format,
                "disk_format": disk_format}

    def test_bare_is_left_as_downloaded(self):
        with open(self.path, "wb") as f:
            f.write(b"\x1f\x8b" + b"raw data that looks like gzip")
        self.assertFalse(image_download._unpack(self.path,
                                                self.meta("bare")))

    def test_compressed_refused_unless_allowed(self):
        with gzip.open(self.path, "wb") as f:
            f.write(b"data")
        self.override_config("allow_compression_on_image_upload", False)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_download._unpack, self.path,
                                  self.meta("compressed"))
        self.assertIn("Image compression disallowed", str(error))

    def test_compressed_must_be_gzip(self):
        with open(self.path, "wb") as f:
            f.write(b"not gzip")
        self.override_config("allow_compression_on_image_upload", True)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_download._unpack, self.path,
                                  self.meta("compressed"))
        self.assertIn("Only gzip is supported", str(error))

    def test_compressed_is_decompressed_in_place(self):
        with gzip.open(self.path, "wb") as f:
            f.write(b"data")
        self.override_config("allow_compression_on_image_upload", True)
        with mock.patch("cinder.image.accelerator.ImageAccel") as accel:
            self.assertTrue(image_download._unpack(
                self.path, self.meta("compressed")))
        accel.assert_called_once_with(self.path, self.path)
        accel.return_value.decompress_img.assert_called_once_with(
            run_as_root=True)


class UnpackedImageService(cinder_testcase.CinderTestCase):

    def test_show_says_bare_and_the_rest_is_the_service(self):
        service = mock.Mock()
        service.show.return_value = {"id": "img-1",
                                     "container_format": "compressed",
                                     "disk_format": "qcow2"}
        unpacked = image_download.UnpackedImageService(service)
        self.assertEqual({"id": "img-1", "container_format": "bare",
                          "disk_format": "qcow2"},
                         unpacked.show("ctx", "img-1"))
        # The service's own answer is not changed.
        self.assertEqual("compressed",
                         service.show.return_value["container_format"])
        self.assertIs(service.temp_images, unpacked.temp_images)
        unpacked.download("ctx", "img-1", data="file")
        service.download.assert_called_once_with("ctx", "img-1",
                                                 data="file")


class UnpackAndMeasure(cinder_testcase.CinderTestCase):

    def test_unreadable_container_fails_like_cinders_copy(self):
        """A corrupt gzip: ImageCopyFailure, which Cinder never reschedules.

        Out of ``clone_image`` any other error would send the create to
        the next backend, to be downloaded and refused again there.
        """
        broken = exception.CinderAcceleratorError(
            accelerator="GZIP", description="gzip -d failed", cmd="gzip",
            reason="unexpected end of file")
        with mock.patch.object(image_download, "_unpack",
                               side_effect=broken):
            self.assertRaises(exception.ImageCopyFailure,
                              image_download._unpack_and_measure, "/x",
                              {"id": "img-1"})

    def test_refusals_stay_refusals(self):
        refused = exception.ImageUnacceptable(image_id="img-1",
                                              reason="not gzip")
        with mock.patch.object(image_download, "_unpack",
                               side_effect=refused):
            self.assertRaises(exception.ImageUnacceptable,
                              image_download._unpack_and_measure, "/x",
                              {"id": "img-1"})

    def test_raw_counts_the_whole_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, "i")
        with open(path, "wb") as f:
            f.write(b"x" * 3000)
        info = mock.Mock(virtual_size=1024)
        with mock.patch.object(image_download.image_utils, "qemu_img_info",
                               return_value=info):
            self.assertEqual(3000, image_download._written_bytes(
                path, {"disk_format": "raw"}))
            self.assertEqual(1024, image_download._written_bytes(
                path, {"disk_format": "qcow2"}))
