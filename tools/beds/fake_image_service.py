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
"""An image service serving real image files, counting downloads.

It mirrors ``cinder.tests.unit.image.fake._FakeImageService`` and the
parts of ``cinder.image.glance.GlanceImageService`` the create-volume flow
uses (``show``, ``download``, ``get_location``...), with the metadata Glance
returns: ``size`` is the file's byte count, ``virtual_size`` the disk size,
timestamps are timezone-aware datetimes.

``download`` writes the real bytes of the file. Unlike glanceclient, which
writes every chunk, it seeks over the holes of the sparse image file, so a
60 GiB raw image is "downloaded" in milliseconds into a sparse temporary
file with the same content.
"""

import collections
import copy
import datetime
from typing import Any, Optional
import uuid

from cinder import exception

from tools.beds import disk_images


def utcnow() -> datetime.datetime:
    """Return the current time as Glance reports it (UTC, second)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=0)


class FakeImageService:
    """Images backed by files on disk, as Glance would serve them."""

    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.files: dict[str, disk_images.DiskImage] = {}
        self.downloads: collections.Counter = collections.Counter()
        # Cinder's TemporaryImages registers itself here, as on Glance.
        self.temp_images = None

    # -- what the test uses -------------------------------------------------

    def add_image(self, disk_image: disk_images.DiskImage, owner: str,
                  name: Optional[str] = None,
                  image_id: Optional[str] = None,
                  container_format: str = "bare") -> dict[str, Any]:
        """Publish ``disk_image`` as an active image owned by ``owner``."""
        image_id = image_id or str(uuid.uuid4())
        now = utcnow()
        meta = {
            "id": image_id,
            "name": name or "image-%s" % disk_image.disk_format,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            "deleted": False,
            "status": "active",
            "visibility": "private",
            "protected": False,
            "owner": owner,
            "container_format": container_format,
            "disk_format": disk_image.disk_format,
            "size": disk_image.file_size,
            # Glance measures no disk inside a gzip container.
            "virtual_size": (disk_image.virtual_size
                             if container_format == "bare" else None),
            "min_disk": 0,
            "min_ram": 0,
            "checksum": None,
            "properties": {},
        }
        self.images[image_id] = meta
        self.files[image_id] = disk_image
        return copy.deepcopy(meta)

    def replace_data(self, image_id: str,
                     disk_image: disk_images.DiskImage,
                     updated_at: datetime.datetime) -> None:
        """Give an image new data and a new ``updated_at``."""
        meta = self.images[image_id]
        meta.update({"updated_at": updated_at,
                     "disk_format": disk_image.disk_format,
                     "size": disk_image.file_size,
                     "virtual_size": disk_image.virtual_size})
        self.files[image_id] = disk_image

    # -- the image service API ------------------------------------------------

    def detail(self, context: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Return every image's metadata."""
        return [copy.deepcopy(meta) for meta in self.images.values()]

    def show(self, context: Any, image_id: str) -> dict[str, Any]:
        """Return an image's metadata or raise ImageNotFound."""
        image = self.images.get(str(image_id))
        if image is None:
            raise exception.ImageNotFound(image_id=image_id)
        return copy.deepcopy(image)

    def get_location(self, context: Any,
                     image_id: str) -> tuple[Optional[str], list]:
        """Return ``(direct_url, locations)`` as Glance's v2 API does."""
        meta = self.show(context, image_id)
        return meta.get("direct_url"), list(meta.get("locations") or [])

    def download(self, context: Any, image_id: str,
                 data: Any = None) -> None:
        """Write the image file's bytes into the file object ``data``."""
        self.show(context, image_id)
        self.downloads[image_id] += 1
        disk_image = self.files[image_id]
        size = disk_image.file_size
        with open(disk_image.path, "rb") as source:
            for offset, length in disk_images.data_extents(disk_image.path):
                source.seek(offset)
                data.seek(offset)
                remaining = length
                while remaining:
                    chunk = source.read(min(disk_images.READ_CHUNK, remaining))
                    data.write(chunk)
                    remaining -= len(chunk)
        data.truncate(size)
        data.flush()

    def create(self, context: Any, metadata: dict[str, Any],
               data: Any = None) -> dict[str, Any]:
        """Register image metadata (no data)."""
        image_id = str(metadata.get("id", uuid.uuid4()))
        if image_id in self.images:
            raise exception.Duplicate()
        metadata = dict(metadata, id=image_id)
        self.images[image_id] = copy.deepcopy(metadata)
        return copy.deepcopy(metadata)

    def update(self, context: Any, image_id: str, metadata: dict[str, Any],
               data: Any = None, purge_props: bool = False,
               store_id: Optional[str] = None,
               base_image_ref: Optional[str] = None) -> dict[str, Any]:
        """Update an image's metadata."""
        if image_id not in self.images:
            raise exception.ImageNotFound(image_id=image_id)
        self.images[image_id].update(copy.deepcopy(metadata))
        return copy.deepcopy(self.images[image_id])

    def delete(self, context: Any, image_id: str) -> None:
        """Forget an image."""
        if self.images.pop(image_id, None) is None:
            raise exception.ImageNotFound(image_id=image_id)
        self.files.pop(image_id, None)

    def add_location(self, context: Any, image_id: str, url: str,
                     metadata: dict[str, Any]) -> bool:
        """Add a location, as Glance's multiple-locations API does."""
        meta = self.images[image_id]
        meta.setdefault("locations", []).append(
            {"url": url, "metadata": metadata})
        return True


def as_remote_service(service: FakeImageService) -> Any:
    """Return a stand-in for ``glance.get_remote_image_service``."""
    def get_remote_image_service(context: Any,
                                 image_href: str) -> tuple[Any, str]:
        image_id = str(image_href).rsplit("/", 1)[-1]
        return service, image_id
    return get_remote_image_service
