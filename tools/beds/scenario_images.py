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
"""The disks of the scenarios the tests, the demo and the benchmark share.

Each is a virtual size and the pieces of data written into the sparse
raw file (``(offset, length)``, see :func:`tools.beds.disk_images.make_raw`),
for :meth:`tools.beds.inprocess_cinder.InProcessCinder.make_image`:

* the seed disk: the image of the traced seed flow
  (``tests/functional/test_seed.py``, the demo, the benchmark), 60 GiB
  virtual, about 1 MiB of data;
* the small disk: the image of the snapshot, clone and extend scenario
  (``tests/functional/test_snapshot_clone_extend.py``, the demo), 1 GiB
  virtual.
"""

from oslo_utils import units

GIB = units.Gi
MIB = units.Mi

SEED_VIRTUAL_SIZE = 60 * GIB
SEED_PIECES = [(0, 64 * units.Ki), (GIB + 12345, 4 * units.Ki),
               (30 * GIB, units.Mi), (SEED_VIRTUAL_SIZE - 64 * units.Ki,
                                      64 * units.Ki)]

SMALL_VIRTUAL_SIZE = 1 * GIB
SMALL_PIECES = [(0, MIB), (SMALL_VIRTUAL_SIZE // 2, MIB),
                (SMALL_VIRTUAL_SIZE - MIB, MIB)]
