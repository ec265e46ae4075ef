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
"""Images whose ``cinder://`` location names a volume: which one to clone.

A raw/bare image uploaded from a volume (or registered with a
``cinder://[store/]<id>`` location) names that volume; when it is on this
backend, ``available`` and the image owner's, the image is cloned from it
rather than from the image-volume cache. The placement predicates here
(:func:`same_backend`, :func:`same_pool`) serve the rest of the driver
too.
"""

from typing import Any, Optional

from cinder import objects
from cinder.volume.flows.manager import create_volume as create_volume_flow
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def cinder_volume_ids(image_location: Any) -> list[str]:
    """Volume ids named by ``cinder://[store/]<id>`` image locations.

    Parsed by the create-volume flow's own parser, so the locations Cinder
    accepts for its cinder:// clones are exactly the ones used here.
    """
    if not image_location or not isinstance(image_location, tuple):
        # Cinder passes (direct_url, locations); anything else names no
        # volume.
        return []
    direct_url, locations = image_location
    urls = [direct_url] + [loc.get("url") for loc in locations or []]
    ids = create_volume_flow.CreateVolumeFromSpecTask._extract_cinder_ids(
        urls)
    return list(dict.fromkeys(ids))


def same_backend(volume_a: Any, volume_b: Any) -> bool:
    """Whether two volumes are served by the same Cinder backend.

    In a cluster the cluster name stands for the host; both carry the pool
    (``cluster@backend#pool``), which is left out here. A clustered volume
    and one that is not are never on the same backend, and a volume with
    neither host nor cluster (never placed) is on none: the answers
    Cinder's own ``cinder://`` clone gets from filtering the database by
    the new volume's cluster or host.
    """
    if volume_a.cluster_name or volume_b.cluster_name:
        hosts = (volume_a.cluster_name, volume_b.cluster_name)
    else:
        hosts = (volume_a.host, volume_b.host)
    if not all(hosts):
        return False
    return (volume_utils.extract_host(hosts[0], "backend") ==
            volume_utils.extract_host(hosts[1], "backend"))


def same_pool(volume_a: Any, volume_b: Any) -> bool:
    """Whether two volumes sit in the same PowerFlex storage pool.

    Pools are ``protection_domain:storage_pool`` in the volume host. A
    missing host or pool tells nothing, and then the array is left to decide.
    """
    if not volume_a.host or not volume_b.host:
        return True
    pool_a = volume_utils.extract_host(volume_a.host, "pool")
    pool_b = volume_utils.extract_host(volume_b.host, "pool")
    return pool_a is None or pool_b is None or pool_a == pool_b


def image_volume(context: Any, volume: Any, image_location: Any,
                 image_meta: dict) -> Optional[Any]:
    """The volume a raw image's cinder:// location names, if usable.

    Usable: on this backend, ``available``, and the image owner's: in
    the image owner's project, or marked with the image owner in its
    ``image_owner`` metadata (Cinder's upload to an image, its volume
    in the internal tenant). Cinder's own path checks only that the
    image's owner is the project asking (or that mark), so an image
    of the asking project whose location names another project's
    volume would clone that volume; here it is skipped, and the
    image is downloaded.
    """
    if (image_meta.get("disk_format") != "raw" or
            image_meta.get("container_format") != "bare"):
        return None
    ids = cinder_volume_ids(image_location)
    if not ids:
        return None
    if "cinder" not in CONF.allowed_direct_url_schemes:
        LOG.info("Volume %(vol)s: image %(img)s has a cinder:// "
                 "location, not used: allowed_direct_url_schemes does "
                 "not include cinder.",
                 {"vol": volume.id, "img": image_meta.get("id")})
        return None
    admin = context.elevated()
    for candidate in objects.VolumeList.get_all(
            admin, filters={"id": ids}):
        if not same_backend(candidate, volume):
            LOG.debug("Image volume %s is on another backend.",
                      candidate.id)
            continue
        owner = ((candidate.metadata or {}).get("image_owner")
                 or candidate.project_id)
        if image_meta.get("owner") != owner:
            LOG.warning("Volume %(vol)s: image %(img)s of project "
                        "%(image_owner)s names volume %(src)s of "
                        "project %(owner)s in a cinder:// location; "
                        "not cloned.",
                        {"vol": volume.id, "img": image_meta.get("id"),
                         "image_owner": image_meta.get("owner"),
                         "src": candidate.id, "owner": owner})
            continue
        if candidate.status != "available":
            LOG.info("Volume %(vol)s: image volume %(src)s is "
                     "%(status)s, not available; not cloned.",
                     {"vol": volume.id, "src": candidate.id,
                      "status": candidate.status})
            continue
        return candidate
    return None
