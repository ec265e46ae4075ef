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
"""Configuration options of powerflex-cache-driver.

Every option carries the ``powerflex_cache_`` prefix. They are registered in
the ``backend_defaults`` group and appended to each backend's configuration,
the way Cinder's PowerFlex driver registers its own options, and listed for
oslo-config-generator through the ``oslo.config.opts`` entry point
``powerflex_cache_driver``.
"""

import itertools

from oslo_config import cfg

CLONE_IMAGE = "powerflex_cache_clone_image"
ROTATE_FULL_VTREE = "powerflex_cache_rotate_full_vtree"

cache_opts = [
    cfg.BoolOpt(CLONE_IMAGE,
                default=True,
                help="Create volumes from images in clone_image: from the "
                     "volume a raw image's cinder:// location names, or from "
                     "a fresh image-volume cache entry of this host or "
                     "cluster whatever the image's disk format; on a cache "
                     "miss, make the entry at the image's size first. When "
                     "False, Cinder's own cache and download path is used, "
                     "and a volume that makes a new cache entry ends with "
                     "the requested size recorded, below the array size."),
    cfg.BoolOpt(ROTATE_FULL_VTREE,
                default=True,
                help="When the vtree of an image-volume cache entry is full "
                     "(126 snapshots, or "
                     "powerflex_max_image_cache_vtree_size), copy the entry "
                     "through this host into a new volume that replaces it, "
                     "instead of letting Cinder download the image again. "
                     "Needs powerflex_cache_clone_image."),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """List the options for oslo-config-generator.

    They are shown in a backend section, as Cinder shows its driver options.
    """
    return [("backend", list(itertools.chain(cache_opts)))]
