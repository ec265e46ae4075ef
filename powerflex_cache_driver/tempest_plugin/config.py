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
"""Options of the ``[powerflex_cache]`` group of ``tempest.conf``."""

from oslo_config import cfg

group = cfg.OptGroup(name="powerflex_cache",
                     title="powerflex-cache-driver test options")

opts = [
    cfg.BoolOpt("enabled",
                default=True,
                help="Run this package's tests. Set False on a cloud whose "
                     "backend is not a PowerFlex (cache) driver."),
    cfg.IntOpt("granularity_gib",
               default=8,
               min=1,
               help="Allocation granularity of the array in GiB: 8 on "
                    "PowerFlex Mirroring systems, 1 on PowerFlex 5 "
                    "erasure-coded ones. Volumes are expected to be recorded "
                    "at their requested size rounded up to it."),
    cfg.IntOpt("snapshot_limit",
               default=126,
               min=1,
               help="Snapshots one vtree of the array holds (126 on a real "
                    "PowerFlex; the gateway simulator's --snapshot-limit)."),
    cfg.IntOpt("max_vtree_test_volumes",
               default=40,
               min=0,
               help="The vtree test creates snapshot_limit + 2 volumes from "
                    "one image; it is skipped when that is more than this."),
    cfg.BoolOpt("check_image_cache",
                default=True,
                help="The backend has the image-volume cache enabled and a "
                     "Cinder internal tenant: check its entries (one per "
                     "image). When False the cache tests are skipped."),
    cfg.StrOpt("internal_project_id",
               default=None,
               help="Project id of Cinder's internal tenant. When set, "
                    "cache entries must belong to it; when not, they must "
                    "belong to a project other than the test's."),
    cfg.ListOpt("image_formats",
                default=["raw", "qcow2", "vmdk", "vhdx", "vdi"],
                help="Disk formats of the images the cache tests upload "
                     "(made with qemu-img from one raw file)."),
    cfg.IntOpt("volumes_per_image",
               default=3,
               min=2,
               help="Volumes the cache tests create from each image."),
    cfg.BoolOpt("verify_content",
                default=True,
                help="Upload a volume made from each image back to Glance "
                     "(qcow2) and compare its data with the original image "
                     "with 'qemu-img compare'. Needs qemu-img on the host "
                     "running Tempest."),
]


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """The options of this plugin, for Tempest's sample configuration."""
    return [(group, opts)]
