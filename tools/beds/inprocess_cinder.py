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
"""An in-process Cinder for one test or one command, on the simulator.

Cinder's volume service and volume API in this process: its database and
quotas, a real ``VolumeManager`` with the create-volume flow and the
image-volume cache, the PowerFlex gateway simulator as the array, the
simulated SDC, an image service serving real files and a fake RPC between
the API and the manager.

:class:`InProcessCinder` is mixed into a ``cinder.tests.unit.test.TestCase``
(it uses its ``useFixture``, ``override_config`` and ``patch``):
:class:`tools.beds.driver_testcases.InProcessCinderTestCase` for the tests,
:func:`tools.beds.driver_testcases.standalone` for commands. It wires the
pieces described in :mod:`tools.beds.driver_testcases` and offers the user
operations the scenarios need, each returning the REST calls the array
received while Cinder served it.
"""

import collections
import dataclasses
import os
from typing import Any, Optional
from unittest import mock
import uuid

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder import exception
from cinder import objects
from cinder.objects import base as objects_base
from cinder import quota
from cinder.volume import api as volume_api
from cinder.volume import configuration
from cinder.volume import driver as base_driver
from cinder.volume.drivers.san import san
from cinder.volume import manager as volume_manager
from cinder.volume import volume_utils
import fixtures
from oslo_config import cfg
from oslo_utils import importutils
from oslo_utils import units

from powerflex_cache_driver import compat
from powerflex_cache_driver import manager as our_manager
from powerflex_cache_driver import options as our_options
from powerflex_cache_driver import simulator
from tools.beds import disk_images
from tools.beds import fake_image_service
from tools.beds import fake_rpc
from tools.beds import gateway_simulator
from tools.beds import simulated_sdc

STOCK = "cinder.volume.drivers.dell_emc.powerflex.driver.PowerFlexDriver"
OURS = "powerflex_cache_driver.driver.PowerFlexCacheDriver"
CINDER_MANAGER = "cinder.volume.manager.VolumeManager"
MANAGERS = {STOCK: CINDER_MANAGER, OURS: our_manager.CLASS_PATH}
"""The ``volume_manager`` each driver's documentation asks for."""

BACKEND = "powerflex"
SERVICE_HOST = "cinder-functional@%s" % BACKEND
PROTECTION_DOMAIN = "PD1"
POOL = "%s:SP1" % PROTECTION_DOMAIN
SECOND_POOL = "%s:SP2" % PROTECTION_DOMAIN
"""The simulator's other pool (served with :data:`TWO_POOLS`)."""
TWO_POOLS = {"powerflex_storage_pools": "%s,%s" % (POOL, SECOND_POOL)}
"""``BACKEND_OPTIONS`` of a backend serving both pools."""
SDC_GUID = simulator.DEFAULT_SDC_GUID

PROJECT_ID = "7b0f3c2e-1d0a-4c59-9a53-4f1d2a6b0c11"
USER_ID = "c0f3a1de-6b9e-4b0f-8a3e-0f6c5d1e2a22"
INTERNAL_PROJECT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c33"
INTERNAL_USER_ID = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e044"

QUOTA_DEFAULTS = {"quota_volumes": 200, "quota_snapshots": 200,
                  "quota_gigabytes": 20000, "per_volume_size_limit": -1}


def start_volume_manager(admin_ctx: Any, host: str,
                         cluster: Optional[str] = None) -> Any:
    """Register a cinder-volume service and start its volume manager.

    The steps cinder-volume takes at start-up: the service record, the
    manager class ``volume_manager`` names, ``init_host`` (driver
    ``do_setup`` and ``check_for_setup_error`` against the simulator) and
    ``init_host_with_rpc``.
    """
    service = objects.Service(
        context=admin_ctx, host=host, cluster_name=cluster,
        binary="cinder-volume", topic="cinder-volume",
        availability_zone="nova", report_count=0,
        rpc_current_version=volume_manager.VolumeManager.RPC_API_VERSION,
        object_current_version=objects_base.OBJ_VERSIONS.get_current())
    service.create()
    manager_class = importutils.import_class(cfg.CONF.volume_manager)
    manager = manager_class(host=host, service_name=BACKEND, cluster=cluster)
    manager.init_host(added_to_cluster=None, service_id=service.id)
    if not manager.driver.initialized:
        raise RuntimeError("driver %s of %s did not initialize against the "
                           "simulator" % (type(manager.driver).__name__, host))
    manager.init_host_with_rpc()
    return manager


@dataclasses.dataclass
class Recorded:
    """The REST requests the array received during one user operation."""

    name: str
    calls: list

    def of(self, op: str) -> list:
        """Return the requests of one operation name."""
        return [call for call in self.calls if call.op == op]

    def counts(self) -> collections.Counter:
        """Requests by operation name."""
        return collections.Counter(call.op for call in self.calls)

    @property
    def extends(self) -> list[tuple[str, int]]:
        """``(array volume id, sizeInGB)`` of every ``setVolumeSize``."""
        return [(call.volume_id, int(call.body["sizeInGB"]))
                for call in self.of("setVolumeSize")]

    @property
    def extend_targets(self) -> list[int]:
        """The ``sizeInGB`` of every ``setVolumeSize``, in order."""
        return [size for _unused, size in self.extends]


class InProcessCinder:
    """Build the in-process Cinder and drive it as a user would."""

    SIMULATOR_OPTIONS: dict[str, Any] = {}
    """Extra :class:`GatewaySimulator` arguments (e.g. ``snapshot_limit``)."""

    SIMULATOR_POOLS: tuple[Any, ...] = ("SP1", "SP2")
    """The simulator's pools (names, or mappings such as ``{"name": "SP2",
    "zero_padding_enabled": False}``)."""

    BACKEND_OPTIONS: dict[str, Any] = {}
    """Options of the ``[powerflex]`` section set after the defaults."""

    VOLUME_MANAGER: Optional[str] = None
    """``volume_manager``; by default the one of :data:`MANAGERS`."""

    # -- construction --------------------------------------------------------

    def build_inprocess_cinder(self, driver_path: str) -> None:
        """Start the array, configure and start cinder-volume."""
        self.workdir = self.useFixture(fixtures.TempDir()).path
        self.sim = self.useFixture(gateway_simulator.SimulatorFixture(
            os.path.join(self.workdir, "array"),
            protection_domain=PROTECTION_DOMAIN, pools=self.SIMULATOR_POOLS,
            sdc_guids=(SDC_GUID,), **self.SIMULATOR_OPTIONS)).sim

        backend = self.sim.backend_options()
        self.sdc = self.useFixture(simulated_sdc.SimulatedSdcFixture(
            SDC_GUID, self.sim.by_id_dir,
            credentials=lambda: (backend["san_login"],
                                 backend["san_password"],
                                 self.sim.tokens.issue()))).sdc
        self.useFixture(simulated_sdc.InProcessPrivsepFixture())

        self.images = fake_image_service.FakeImageService()
        self.patch("cinder.image.glance.get_remote_image_service",
                   side_effect=fake_image_service.as_remote_service(
                       self.images))
        self.patch("cinder.image.glance.get_default_image_service",
                   return_value=self.images)

        self._configure(driver_path)
        self.admin_ctx = cinder_context.get_admin_context()
        self.user_ctx = cinder_context.RequestContext(
            user_id=USER_ID, project_id=PROJECT_ID, is_admin=False,
            roles=["member", "reader"])
        self._start_volume_service()
        self.sim.reset_calls()

    def _configure(self, driver_path: str) -> None:
        """Write the equivalent of cinder.conf for one backend."""
        driver_class = importutils.import_class(driver_path)
        opts = (volume_manager.volume_backend_opts + base_driver.volume_opts +
                base_driver.image_opts + san.san_opts +
                list(driver_class.get_driver_options()))
        opts += list(our_options.cache_opts)
        # Registers every option in [backend_defaults] and [powerflex].
        configuration.Configuration(opts, config_group=BACKEND)

        conversion_dir = os.path.join(self.workdir, "conversion")
        os.makedirs(conversion_dir)
        defaults = {
            "enabled_backends": [BACKEND],
            "image_conversion_dir": conversion_dir,
            "cinder_internal_tenant_project_id": INTERNAL_PROJECT_ID,
            "cinder_internal_tenant_user_id": INTERNAL_USER_ID,
            "reinit_driver_count": 0,
            "volume_manager": (self.VOLUME_MANAGER or
                               MANAGERS[driver_path]),
        }
        defaults.update(QUOTA_DEFAULTS)
        for name, value in defaults.items():
            self.override_config(name, value)

        backend = dict(self.sim.backend_options(pools=["SP1"]))
        backend.update({
            "volume_driver": driver_path,
            "volume_backend_name": BACKEND,
            "san_ip": "127.0.0.1",
            "driver_ssl_cert_verify": True,
            "driver_ssl_cert_path": self.sim.ca_cert_path,
            "powerflex_storage_pools": POOL,
            "image_volume_cache_enabled": True,
        })
        backend.update(self.BACKEND_OPTIONS)
        for name, value in backend.items():
            self.override_config(name, value, group=BACKEND)

    def _start_volume_service(self) -> None:
        """Register the service and start its manager as cinder-volume."""
        try:
            self.manager = start_volume_manager(self.admin_ctx, SERVICE_HOST)
        except RuntimeError as error:
            self.fail(str(error))
        self.driver = self.manager.driver

        self.casts = fake_rpc.CastQueue()
        scheduler = fake_rpc.FakeSchedulerAPI(self.casts, self.manager, POOL)
        volume_rpc = fake_rpc.FakeVolumeRPCAPI(self.casts, self.manager)
        self.scheduler = scheduler
        # Volume APIs made from now on (a driver may make its own, as ours
        # does to delete a replaced cache entry) cast to the same service.
        api_init = volume_api.API.__init__

        def init_api(api: Any, *args: Any, **kwargs: Any) -> None:
            api_init(api, *args, **kwargs)
            api.scheduler_rpcapi = scheduler
            api.volume_rpcapi = volume_rpc
        self.patch("cinder.volume.api.API.__init__", init_api)
        self.api = volume_api.API()
        # The image-volume cache deletes stale entries through its own API.
        cache = self.manager.image_volume_cache
        if cache is None:
            self.fail("the image-volume cache is not enabled")
        cache.volume_api.scheduler_rpcapi = scheduler
        cache.volume_api.volume_rpcapi = volume_rpc

    # -- recording -----------------------------------------------------------

    def _record(self, name: str, mark: int) -> Recorded:
        calls = self.sim.calls[mark:]
        recorded = Recorded(name, calls)
        self.operations.append(recorded)
        return recorded

    @property
    def operations(self) -> list[Recorded]:
        """Every user operation run in this test, with its REST calls."""
        ops = self.__dict__.get("_operations")
        if ops is None:
            ops = self.__dict__["_operations"] = []
        return ops

    # -- images ---------------------------------------------------------------

    def make_image(self, name: str, virtual_size: int,
                   pieces: list[tuple[int, int]], seed: str,
                   disk_format: str = "raw",
                   owner: str = PROJECT_ID,
                   container_format: str = "bare"
                   ) -> tuple[dict, disk_images.DiskImage]:
        """Create an image file with qemu-img and publish it.

        :param container_format: ``bare``, or ``compressed`` for the disk
            image compressed with gzip.
        """
        image_dir = os.path.join(self.workdir, "images")
        os.makedirs(image_dir, exist_ok=True)
        raw = disk_images.make_raw(os.path.join(image_dir, "%s.raw" % name),
                                   virtual_size, pieces, seed)
        disk_image = raw
        if disk_format == "qcow2":
            disk_image = disk_images.make_qcow2(
                raw, os.path.join(image_dir, "%s.qcow2" % name))
        elif disk_format != "raw":
            raise ValueError("unsupported disk format %s" % disk_format)
        if container_format == "compressed":
            disk_image = disk_images.make_gzip(
                disk_image, os.path.join(image_dir, "%s.%s.gz" %
                                         (name, disk_format)))
        elif container_format != "bare":
            raise ValueError("unsupported container %s" % container_format)
        meta = self.images.add_image(disk_image, owner=owner, name=name,
                                     container_format=container_format)
        return meta, disk_image

    def require_conversion_space(self, disk_image: disk_images.DiskImage
                                 ) -> None:
        """Skip when Cinder would refuse the image for lack of space.

        Cinder checks that its conversion directory has room for the
        image's ``size`` (the file size, 60 GiB for a 60 GiB raw image)
        even though the sparse download takes almost nothing.
        """
        conversion_dir = os.path.join(self.workdir, "conversion")
        free = os.statvfs(conversion_dir)
        free_bytes = free.f_bavail * free.f_frsize
        if free_bytes <= disk_image.file_size:
            self.skipTest("Cinder requires %d bytes free in "
                          "image_conversion_dir for this image, only %d "
                          "available" % (disk_image.file_size, free_bytes))

    # -- user operations ----------------------------------------------------

    def _deliver(self) -> None:
        self.casts.drain()

    def create_volume(self, size: int, image_id: Optional[str] = None,
                      snapshot: Optional[Any] = None,
                      source_volume: Optional[Any] = None,
                      expect_status: Optional[str] = "available",
                      volume_type: Optional[Any] = None,
                      pool: Optional[str] = None
                      ) -> tuple[Any, Recorded]:
        """Create a volume through the volume API, as a user would.

        :param expect_status: the status the volume must end in; None to
            leave it to the caller.
        :param pool: the ``protection_domain:storage_pool`` the scheduler
            places the volume in (by default the backend's first pool, or
            the source's for a clone).
        """
        mark = len(self.sim.calls)
        self.scheduler.pool_override = pool
        try:
            volume = self.api.create(
                self.user_ctx, size, "vol-%s" % uuid.uuid4().hex[:8], None,
                image_id=image_id, snapshot=snapshot,
                source_volume=source_volume, volume_type=volume_type)
        finally:
            self.scheduler.pool_override = None
        self._deliver()
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        # Where the driver maps volumes itself (Cinder 27 on), os-brick's
        # legacy path is a defect of the connection info; before, it is the
        # way volumes are mapped.
        if (volume.status == "error" and self.sdc.legacy_attempts and
                compat.DRIVER_MAPS_VOLUMES):
            self.host_copy_unsupported(self.sdc.legacy_attempts[0])
        if expect_status is not None:
            self.assertEqual(expect_status, volume.status,
                             "volume %s is %s" % (volume.id, volume.status))
        return volume, self._record("create %s" % size, mark)

    def delete_volume(self, volume: Any,
                      ctx: Optional[Any] = None) -> Recorded:
        """Delete a volume through the volume API (as its user)."""
        ctx = ctx or self.user_ctx
        mark = len(self.sim.calls)
        volume = objects.Volume.get_by_id(ctx, volume.id)
        self.api.delete(ctx, volume)
        self._deliver()
        self.assertRaises(exception.VolumeNotFound, objects.Volume.get_by_id,
                          self.admin_ctx, volume.id)
        return self._record("delete %s" % volume.id, mark)

    def delete_cache_entries(self) -> list[Recorded]:
        """Delete every image-volume cache entry, as an admin would."""
        recorded = []
        for entry in self.cache_entries():
            volume = objects.Volume.get_by_id(self.admin_ctx,
                                              entry["volume_id"])
            recorded.append(self.delete_volume(volume, self.admin_ctx))
        self.assertEqual([], self.cache_entries())
        return recorded

    def create_snapshot(self, volume: Any) -> tuple[Any, Recorded]:
        """Snapshot a volume through the volume API."""
        mark = len(self.sim.calls)
        volume = objects.Volume.get_by_id(self.user_ctx, volume.id)
        snapshot = self.api.create_snapshot(
            self.user_ctx, volume, "snap-%s" % uuid.uuid4().hex[:8], None)
        self._deliver()
        snapshot = objects.Snapshot.get_by_id(self.admin_ctx, snapshot.id)
        self.assertEqual("available", snapshot.status)
        return snapshot, self._record("snapshot %s" % volume.id, mark)

    def delete_snapshot(self, snapshot: Any) -> Recorded:
        """Delete a snapshot through the volume API."""
        mark = len(self.sim.calls)
        snapshot = objects.Snapshot.get_by_id(self.user_ctx, snapshot.id)
        self.api.delete_snapshot(self.user_ctx, snapshot)
        self._deliver()
        return self._record("delete snapshot %s" % snapshot.id, mark)

    def extend_volume(self, volume: Any, new_size: int
                      ) -> tuple[Any, Recorded]:
        """Extend a volume through the volume API."""
        mark = len(self.sim.calls)
        volume = objects.Volume.get_by_id(self.user_ctx, volume.id)
        self.api.extend(self.user_ctx, volume, new_size)
        self._deliver()
        volume = objects.Volume.get_by_id(self.admin_ctx, volume.id)
        self.assertEqual("available", volume.status)
        return volume, self._record("extend %s" % new_size, mark)

    def extend_volume_recording_request(self, volume: Any, new_size: int
                                        ) -> tuple[Any, Recorded]:
        """Extend as Cinder's volume manager records it: the size asked.

        What this package's driver left before its volume manager recorded
        the array size after an extend (and still leaves under Cinder's
        volume manager): a volume recorded below what the array holds,
        charged what it records.
        """
        with mock.patch.object(self.driver, "reserve_extend", None):
            return self.extend_volume(volume, new_size)

    def spy(self, obj: Any, name: str) -> list[Any]:
        """Record what ``obj.name`` returns (or raises) from now on.

        The method or function still runs; the list receives its result,
        or the exception it raised, call by call.
        """
        results: list[Any] = []
        original = getattr(obj, name)

        def recorder(*args: Any, **kwargs: Any) -> Any:
            try:
                result = original(*args, **kwargs)
            except Exception as exc:
                results.append(exc)
                raise
            results.append(result)
            return result
        patcher = mock.patch.object(obj, name, side_effect=recorder)
        patcher.start()
        self.addCleanup(patcher.stop)
        return results

    def set_project_quota(self, resource: str, limit: int,
                          project_id: str = PROJECT_ID) -> None:
        """Give a project its own quota limit for one resource.

        The ``default`` quota class Cinder's database migration creates
        (10 volumes, 10 snapshots, 1000 GiB) takes precedence over the
        ``quota_*`` options, so scenarios needing more set a project quota.
        """
        db_api.quota_create(self.admin_ctx, project_id, resource, limit)

    # -- what the test looks at --------------------------------------------

    def quota_usage(self, project_id: str = PROJECT_ID) -> dict[str, int]:
        """Return the project's ``in_use`` volumes, gigabytes, snapshots."""
        quotas = quota.QUOTAS.get_project_quotas(self.admin_ctx, project_id,
                                                 usages=True)
        usage = {name: quotas[name]["in_use"]
                 for name in ("volumes", "gigabytes", "snapshots")}
        for name in ("volumes", "gigabytes", "snapshots"):
            self.assertEqual(0, quotas[name]["reserved"],
                             "%s reservations left over" % name)
        return usage

    def db_usage(self, project_id: str = PROJECT_ID) -> dict[str, int]:
        """What the project's records add up to.

        Counted as Cinder's quota sync counts them: volumes, gigabytes
        (volumes and snapshots) and snapshots.
        """
        volumes, volume_gb = db_api.volume_data_get_for_project(
            self.admin_ctx, project_id)
        snapshots, snapshot_gb = db_api.snapshot_data_get_for_project(
            self.admin_ctx, project_id)
        return {"volumes": volumes or 0, "snapshots": snapshots or 0,
                "gigabytes": (volume_gb or 0) + (snapshot_gb or 0)}

    def quota_drift(self, project_id: str = PROJECT_ID) -> dict[str, int]:
        """Quota usage minus what the records add up to (0 when right)."""
        usage = self.quota_usage(project_id)
        records = self.db_usage(project_id)
        return {name: usage[name] - records[name] for name in usage}

    def array_volume(self, provider_id: str) -> Any:
        """Return the simulator's volume record."""
        return self.sim.array.volumes[provider_id]

    def array_size_gib(self, obj: Any) -> int:
        """Physical size on the array of a volume or snapshot, in GiB."""
        return self.array_volume(obj.provider_id).size_kb // units.Mi

    def cache_entries(self, image_id: Optional[str] = None) -> list:
        """Return the image-volume cache rows (optionally of one image)."""
        filters = {}
        if image_id is not None:
            filters["image_id"] = image_id
        return db_api.image_volume_cache_get_all(self.admin_ctx, **filters)

    def cache_volume(self, image_id: str) -> Any:
        """Return the internal tenant's volume caching ``image_id``."""
        entries = self.cache_entries(image_id)
        self.assertEqual(1, len(entries), entries)
        return objects.Volume.get_by_id(self.admin_ctx,
                                        entries[0]["volume_id"])

    def assert_volume_content(self, volume: Any,
                              disk_image: disk_images.DiskImage) -> None:
        """Assert the array volume holds the image's disk, then zeros."""
        record = self.array_volume(volume.provider_id)
        path = record.backing_path
        self.assertEqual(record.size_kb * units.Ki, os.path.getsize(path),
                         "backing file and array size differ")
        diff = disk_images.first_difference(disk_image.raw_reference, path,
                                            disk_image.virtual_size)
        self.assertEqual(-1, diff, "volume %s differs from the image at "
                         "byte %d" % (volume.id, diff))
        tail = disk_images.first_nonzero(path, disk_image.virtual_size)
        self.assertEqual(-1, tail, "volume %s has data after the image at "
                         "byte %d" % (volume.id, tail))

    def assert_array_matches_db(self) -> None:
        """Every array volume is a Cinder volume or snapshot, and back."""
        known = {v.provider_id for v in
                 objects.VolumeList.get_all(self.admin_ctx)}
        known |= {s.provider_id for s in
                  objects.SnapshotList.get_all(self.admin_ctx, {})}
        known.discard(None)
        self.assertEqual(known, set(self.sim.array.volumes),
                         "array volumes and Cinder's records differ")
        self.assertEqual([], os.listdir(self.sim.by_id_dir),
                         "volumes left mapped to the SDC")

    def volume_sizes(self) -> dict[str, tuple[int, int]]:
        """DB and array size (GiB) of every available or in-use volume.

        All projects (the internal tenant's cache volumes included), keyed
        by volume id.
        """
        sizes = {}
        for volume in objects.VolumeList.get_all(self.admin_ctx):
            if volume.status not in ("available", "in-use"):
                continue
            self.assertIsNotNone(volume.provider_id,
                                 "volume %s has no array volume" % volume.id)
            sizes[volume.id] = (volume.size, self.array_size_gib(volume))
        return sizes

    def assert_sizes_cover_array(self) -> None:
        """Every available or in-use volume records what the array holds.

        The guest sees the array volume and may write up to its end; a DB
        size below it loses that tail on migration or retype (Cinder copies
        the DB size) and bypasses the quota.
        """
        short = {volume_id: sizes
                 for volume_id, sizes in self.volume_sizes().items()
                 if sizes[0] < sizes[1]}
        self.assertEqual({}, short, "volumes whose DB size is below their "
                         "array size, {id: (DB GiB, array GiB)}")

    def assert_no_quota_drift(self) -> None:
        """Usage equals the records, for the user and internal projects."""
        exact = {"volumes": 0, "gigabytes": 0, "snapshots": 0}
        for project_id in (PROJECT_ID, INTERNAL_PROJECT_ID):
            self.assertEqual(exact, self.quota_drift(project_id),
                             "quota drift of project %s" % project_id)

    @staticmethod
    def pool_host(pool: str = POOL) -> str:
        """The host string of volumes in a pool (the backend's first)."""
        return volume_utils.append_host(SERVICE_HOST, pool)
