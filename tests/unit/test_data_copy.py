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
"""The sparse copy loop, on real files."""

import io
import os

import fixtures
import testtools

from powerflex_cache_driver import data_copy

MIB = 1024 * 1024


class CopyStream(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.src = os.path.join(self.tmp, "src")
        self.dst = os.path.join(self.tmp, "dst")
        with open(self.src, "wb") as f:
            f.truncate(64 * MIB)
            f.seek(3 * MIB + 17)
            f.write(b"powerflex" * 1000)
            f.seek(40 * MIB)
            f.write(os.urandom(MIB))
        with open(self.dst, "wb") as f:
            f.truncate(64 * MIB)

    def copy(self, skip_zeros, length=64 * MIB):
        with open(self.src, "rb") as src, open(self.dst, "r+b") as dst:
            return data_copy.copy_stream(src, dst, length, MIB, skip_zeros)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def test_sparse_copy_writes_only_data_chunks(self):
        stats = self.copy(skip_zeros=True)
        self.assertEqual(self.read(self.src), self.read(self.dst))
        self.assertEqual(64 * MIB, stats.bytes_total)
        # 9000 bytes at 3 MiB + 17 span one chunk; the random MiB another.
        self.assertEqual(2 * MIB, stats.bytes_written)
        self.assertEqual(62 * MIB, stats.bytes_skipped)
        self.assertLess(os.stat(self.dst).st_blocks * 512, 4 * MIB)

    def test_holes_are_not_read_where_the_source_tells(self):
        stats = self.copy(skip_zeros=True)
        with open(self.src, "rb") as src:
            try:
                os.lseek(src.fileno(), 0, os.SEEK_DATA)
            except OSError:
                self.skipTest("this file system has no SEEK_DATA")
        # The file system may report data in larger extents than written,
        # but never the whole 64 MiB of a file with two small data runs.
        self.assertLess(stats.bytes_read, 16 * MIB)

    def test_zero_chunks_read_from_a_device_are_not_written(self):
        src = io.BytesIO(b"\0" * (8 * MIB) + b"x" * MIB)
        dst = io.BytesIO(b"\0" * (9 * MIB))
        stats = data_copy.copy_stream(src, dst, 9 * MIB, MIB, True)
        self.assertEqual(9 * MIB, stats.bytes_read)
        self.assertEqual(MIB, stats.bytes_written)
        self.assertEqual(b"x" * MIB, dst.getvalue()[8 * MIB:])

    def test_full_copy_writes_everything(self):
        stats = self.copy(skip_zeros=False)
        self.assertEqual(self.read(self.src), self.read(self.dst))
        self.assertEqual(64 * MIB, stats.bytes_written)

    def test_copy_stops_at_length(self):
        stats = self.copy(skip_zeros=False, length=3 * MIB + 5)
        self.assertEqual(3 * MIB + 5, stats.bytes_read)
        self.assertEqual(b"\0" * 5, self.read(self.dst)[3 * MIB:3 * MIB + 5])
