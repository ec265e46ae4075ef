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
"""``powerflex-cache-manage`` against the in-process Cinder.

The command's functions run in-process against the in-process Cinder's
cinder-volume service, database and simulated array, with its
configuration (its ``[powerflex]`` section). It has no HTTP API: changes
go through :class:`ApiAdapter`, which offers :class:`BlockStorage
<powerflex_cache_driver.cmd.block_storage.BlockStorage>`'s methods over
Cinder's real volume API (quotas, cache eviction, the volume manager).
:class:`ManageTestCase` is the test case of the command's scenarios
(``tests/functional/test_manage_cache.py``,
``tests/functional/test_manage_reconcile.py``).
"""

import io
from typing import Any, Optional

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import exception
from cinder.message import message_field
from cinder import objects
from cinder.volume import volume_types
from oslo_config import cfg
from oslo_utils import units

from powerflex_cache_driver.cmd import block_storage
from powerflex_cache_driver.cmd import common
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
PIECES = [(0, MIB), (GIB, MIB)]

ADMIN_PROJECT_ID = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e55"
ADMIN_USER_ID = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b66"


class ApiAdapter:
    """BlockStorage's methods over the harness's in-process volume API.

    Requests are made as an admin of :data:`ADMIN_PROJECT_ID`; casts are
    delivered to the volume manager when the command waits. ``writes``
    lists every create, delete and extend asked for.
    """

    def __init__(self, test: Any) -> None:
        self.test = test
        self.ctx = cinder_context.RequestContext(
            user_id=ADMIN_USER_ID, project_id=ADMIN_PROJECT_ID,
            is_admin=True, roles=["admin", "member", "reader"])
        self.writes: list[tuple] = []

    @property
    def project_id(self) -> str:
        """The admin's project."""
        return ADMIN_PROJECT_ID

    @staticmethod
    def _as_api(volume: Any) -> dict:
        return {"id": volume.id, "status": volume.status,
                "size": volume.size}

    def create_volume(self, size: int, image_ref: Optional[str] = None,
                      volume_type: Optional[str] = None,
                      name: Optional[str] = None) -> dict:
        """``POST /volumes``."""
        self.writes.append(("create", size, image_ref, volume_type))
        vtype = (volume_types.get_volume_type_by_name(self.ctx, volume_type)
                 if volume_type else None)
        try:
            volume = self.test.api.create(self.ctx, size, name, None,
                                          image_id=image_ref,
                                          volume_type=vtype)
        except (exception.OverQuota, exception.QuotaError) as error:
            raise block_storage.OverQuota(str(error), 413)
        return self._as_api(volume)

    def get_volume(self, volume_id: str) -> dict:
        """``GET /volumes/{id}``."""
        try:
            volume = objects.Volume.get_by_id(self.ctx, volume_id)
        except exception.VolumeNotFound as error:
            raise block_storage.NotFound(str(error), 404)
        return self._as_api(volume)

    def wait_for_status(self, volume_id: str, statuses: Any,
                        timeout: float = 600.0) -> dict:
        """Deliver the casts, then show the volume."""
        self.test.casts.drain()
        return self.get_volume(volume_id)

    def delete_volume(self, volume_id: str) -> None:
        """``DELETE /volumes/{id}``."""
        self.writes.append(("delete", volume_id))
        try:
            volume = objects.Volume.get_by_id(self.ctx, volume_id)
        except exception.VolumeNotFound as error:
            raise block_storage.NotFound(str(error), 404)
        self.test.api.delete(self.ctx, volume)

    def wait_gone(self, volume_id: str, timeout: float = 600.0) -> None:
        """Deliver the casts; the volume must be gone."""
        self.test.casts.drain()
        try:
            volume = self.get_volume(volume_id)
        except block_storage.NotFound:
            return
        raise block_storage.ApiError("volume %s is %s" %
                                     (volume_id, volume["status"]))

    def extend_volume(self, volume_id: str, new_size: int) -> None:
        """``os-extend``."""
        self.writes.append(("extend", volume_id, new_size))
        volume = objects.Volume.get_by_id(self.ctx, volume_id)
        try:
            self.test.api.extend(self.ctx, volume, new_size)
        except (exception.OverQuota, exception.QuotaError) as error:
            raise block_storage.OverQuota(str(error), 413)
        except exception.Invalid as error:
            raise block_storage.ApiError(str(error), 400)

    def list_messages(self, resource_id: str) -> list[str]:
        """The user messages of a resource, as the API words them."""
        rows = db.message_get_all(self.test.admin_ctx,
                                  filters={"resource_uuid": resource_id})
        return ["%s: %s" % (message_field.translate_action(m["action_id"]),
                            message_field.translate_detail(m["detail_id"]))
                for m in rows]

    def get_image(self, image_id: str) -> dict:
        """``GET /v2/images/{id}``."""
        try:
            return self.test.images.show(self.ctx, image_id)
        except exception.ImageNotFound as error:
            raise block_storage.NotFound(str(error), 404)


class ManageTestCase(driver_testcases.OurDriverTestCase):
    """The command's functions with the harness's cinder.conf."""

    def setUp(self) -> None:
        super().setUp()
        # cinder-volume's host option: the service runs as SERVICE_HOST.
        self.override_config("host",
                             inprocess_cinder.SERVICE_HOST.split("@")[0])
        self.backends = common.select_backends(cfg.CONF)

    def run_command(self, function: Any, *args: Any,
                    **kwargs: Any) -> tuple[int, str]:
        """Run a ``run_*`` function; its exit status and output."""
        out = io.StringIO()
        status = function(self.backends, *args, out=out, **kwargs)
        return status, out.getvalue()

    def cached_image(self, name: str) -> tuple[dict, Any]:
        """An image and a user volume made from it (a cache miss)."""
        meta, _disk = self.make_image(name, 2 * GIB, PIECES, name)
        volume, _unused = self.create_volume(8, image_id=meta["id"])
        return meta, volume
