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
"""Bad input on every entry point, this driver next to Cinder's own.

A table of rows, each one test per driver: a bad configuration given to
``do_setup`` and ``check_for_setup_error`` (the calls cinder-volume makes
at start-up), or a bad request sent through Cinder's volume API (size,
image, source volume, volume type, quota), on the simulated gateway.

Every row asserts, for the driver under test:

* the exact class of the error (raised by the entry point, or by the
  driver method Cinder's flow called, or by Cinder's flow itself);
* that its message names what is wrong (the option, the size, the pool,
  the volume) and, where there is one, the fix;
* that the array is unchanged: no volume, snapshot or mapping added,
  removed or resized (the simulator's state before and after);
* that no quota reservation is left open (Cinder's ``reservations`` and
  ``quota_usages`` tables), and usage equals the records;
* for a request, the status the volume or snapshot ends in, and the user
  message Cinder recorded for it (what ``openstack volume message list``
  shows: Cinder never shows users the exception's text, only the detail
  of the message) or that there is none.

The stock column records what Cinder's ``PowerFlexDriver`` does with the
same input through the same entry point: it is a comparison, and where
Cinder's driver does worse (a message naming nothing, a raw ``requests``
error), that is its expectation, not a failure.
"""

import dataclasses
import os
import socket
from typing import Any, Callable, Optional, Union
import uuid

from cinder.db import api as db_api
from cinder import exception
from cinder.message import message_field
from cinder import objects
from cinder.volume import configuration
from cinder.volume.drivers.dell_emc.powerflex import rest_client
from cinder.volume import manager as volume_manager
from cinder.volume import volume_types
from oslo_utils import importutils
from oslo_utils import units
import requests
import sqlalchemy

from powerflex_cache_driver import compat
from powerflex_cache_driver import quota_charge
from powerflex_cache_driver.simulator import tls
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
PIECES = [(0, MIB), (GIB // 2, MIB)]

CONFIG = "setup"
"""Entry point: a new driver's ``do_setup`` and ``check_for_setup_error``."""
CREATE = "create"
"""Entry point: a volume create through Cinder's API and create flow."""
CLONE = "clone"
"""Entry point: a clone of ``ctx['source']`` through the API."""
SNAPSHOT = "snapshot"
"""Entry point: a snapshot of ``ctx['source']`` through the API."""
EXTEND = "extend"
"""Entry point: an extend of ``ctx['source']`` through the API."""

DRIVER_FAILED_CREATE = message_field.Detail.DRIVER_FAILED_CREATE
SNAPSHOT_CREATE_ERROR = message_field.Detail.SNAPSHOT_CREATE_ERROR
DRIVER_FAILED_EXTEND = message_field.Detail.DRIVER_FAILED_EXTEND
QUOTA_EXCEED = message_field.Detail.QUOTA_EXCEED
NOT_ENOUGH_SPACE_FOR_IMAGE = message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE
UNKNOWN_ERROR = message_field.Detail.UNKNOWN_ERROR

MAX_ATTEMPTS = 3
"""``scheduler_max_attempts``: Cinder's filter scheduler's default."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one driver does with a row's input."""

    error: Optional[type]
    """The exact class raised; None when nothing is refused."""
    says: tuple[str, ...] = ()
    """Fragments of the error's message (``str.format``-ed with the
    row's context: ``{volume_id}``, ``{source_id}``, ``{port}``...)."""
    status: Optional[str] = None
    """The status the volume or snapshot acted on ends in; None for a
    configuration row or a request the API refuses before any record."""
    user_messages: tuple = ()
    """The ``message_field.Detail`` of each user message recorded for the
    volume or snapshot, in any order; none when empty."""
    attempts: Optional[int] = None
    """Driver create attempts (reschedules + 1), when the row counts."""
    quota_drift: bool = False
    """Stock only: usage and records differ after the request (Cinder's
    driver records the rounded size and charges the size asked)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One bad input on one entry point, and what each driver does."""

    name: str
    entry: str
    arrange: Callable[["BadInputMixin", dict], dict]
    """Prepares the row; returns the request's arguments (``size``,
    ``image_id``, ``volume_type``, ``pool``) or, for a configuration row,
    the backend options to set."""
    ours: Outcome
    stock: Union[Outcome, dict, None]
    """Cinder's driver: an Outcome, ``{29: ..., 25: ...}`` where releases
    differ (25 stands for every release before 29: see
    :func:`_release`), or None where its entry point differs from ours
    (not run)."""


def _release() -> int:
    """The stock release the expectations describe: 29, or 25."""
    return 29 if driver_testcases.STOCK_RECORDS_ROUNDED_SIZE else 25


# -- arrangements -------------------------------------------------------------


def options(**values: Any) -> Callable[["BadInputMixin", dict], dict]:
    """A configuration row: these backend options, nothing else."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        return dict(values)
    return arrange


def wrong_ca(test: "BadInputMixin", ctx: dict) -> dict:
    """``driver_ssl_cert_path`` names another authority's certificate."""
    directory = os.path.join(test.workdir, "other-ca")
    os.makedirs(directory)
    other = tls.generate(directory)
    ctx["ca"] = other.ca_cert
    return {"driver_ssl_cert_path": other.ca_cert}


def unreachable(test: "BadInputMixin", ctx: dict) -> dict:
    """The gateway's port has nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ctx["port"] = sock.getsockname()[1]
    return {"powerflex_rest_server_port": ctx["port"]}


def request(size: int,
            **kwargs: Any) -> Callable[["BadInputMixin", dict], dict]:
    """A request with nothing prepared."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        return dict(kwargs, size=size)
    return arrange


def then(first: Callable[["BadInputMixin", dict], Any],
         second: Callable[["BadInputMixin", dict], dict]
         ) -> Callable[["BadInputMixin", dict], dict]:
    """Run ``first`` for its effect, then ``second`` for the request."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        first(test, ctx)
        return second(test, ctx)
    return arrange


def unpadded_pool(test: "BadInputMixin", ctx: dict) -> None:
    """The backend's pool does not pad new volumes with zeros."""
    pool = next(p for p in test.sim.array.pools.values() if p.name == "SP1")
    test.addCleanup(setattr, pool, "zero_padding_enabled",
                    pool.zero_padding_enabled)
    pool.zero_padding_enabled = False
    # As five minutes later: Cinder's client caches pool properties.
    test.driver._get_client().spCache.purge_all()


def unlimited_gigabytes(test: "BadInputMixin", ctx: dict) -> None:
    """The project may use any size (the API lets any size through)."""
    test.set_project_quota("gigabytes", -1)


def quota_left(gib: int) -> Callable[["BadInputMixin", dict], None]:
    """The project has ``gib`` GiB of ``gigabytes`` quota left."""
    def arrange(test: "BadInputMixin", ctx: dict) -> None:
        test.set_project_quota("gigabytes",
                               test.quota_usage()["gigabytes"] + gib)
    return arrange


def rounding_off(test: "BadInputMixin", ctx: dict) -> None:
    """``powerflex_round_volume_capacity = False``."""
    test.override_config("powerflex_round_volume_capacity", False,
                         group=inprocess_cinder.BACKEND)


def image(virtual_gib: int, disk_format: str = "raw",
          virtual_size: Any = "true") -> Callable[["BadInputMixin", dict],
                                                  None]:
    """An image of ``virtual_gib`` GiB whose metadata says ``virtual_size``.

    ``"true"`` keeps what the image holds, None removes it (Glance had
    not measured it), a number is a lie.
    """
    def arrange(test: "BadInputMixin", ctx: dict) -> None:
        name = "img-%s" % uuid.uuid4().hex[:6]
        meta, disk = test.make_image(name, virtual_gib * GIB, PIECES, name,
                                     disk_format=disk_format)
        if virtual_size != "true":
            test.images.images[meta["id"]]["virtual_size"] = virtual_size
        ctx["image_id"] = meta["id"]
        ctx["image"] = disk
    return arrange


def with_image(size: int) -> Callable[["BadInputMixin", dict], dict]:
    """A create of ``size`` GiB from ``ctx['image_id']``."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        return {"size": size, "image_id": ctx["image_id"]}
    return arrange


def image_location(location: str) -> Callable[["BadInputMixin", dict], None]:
    """The image's only location is ``location`` (cinder:// allowed)."""
    def arrange(test: "BadInputMixin", ctx: dict) -> None:
        test.override_config("allowed_direct_url_schemes", ["cinder"])
        meta = test.images.images[ctx["image_id"]]
        meta["direct_url"] = location
        meta["locations"] = [{"url": location, "metadata": {}}]
    return arrange


def source(size: int, provider_id: bool = True
           ) -> Callable[["BadInputMixin", dict], None]:
    """An available volume to act on; without its array volume's id."""
    def arrange(test: "BadInputMixin", ctx: dict) -> None:
        volume = test.create_volume(size)[0]
        if not provider_id:
            # What a volume made by hand in the database (or by a failed
            # manage) looks like: available, no array volume named.
            volume.provider_id = None
            volume.save()
        ctx["source"] = volume
        ctx["source_id"] = volume.id
    return arrange


def volume_type(**extra_specs: str
                ) -> Callable[["BadInputMixin", dict], None]:
    """A volume type with these extra specs, in ``ctx['volume_type']``."""
    def arrange(test: "BadInputMixin", ctx: dict) -> None:
        vtype = volume_types.create(test.admin_ctx,
                                    "type-%s" % uuid.uuid4().hex[:6],
                                    extra_specs)
        ctx["volume_type"] = objects.VolumeType.get_by_id(test.admin_ctx,
                                                          vtype["id"])
        ctx["volume_type_name"] = vtype["name"]
    return arrange


def typed(size: int) -> Callable[["BadInputMixin", dict], dict]:
    """A create of ``size`` GiB of ``ctx['volume_type']``."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        return {"size": size, "volume_type": ctx["volume_type"]}
    return arrange


def retries(test: "BadInputMixin", ctx: dict) -> None:
    """Creates may be rescheduled, as by Cinder's filter scheduler.

    The scheduler passes ``retry`` in the filter properties (which lets
    the create flow reschedule a failed create) and gives up after
    :data:`MAX_ATTEMPTS` attempts, leaving the volume in error. With one
    backend, each attempt lands on the same service again.
    """
    scheduler = test.scheduler
    place = scheduler.create_volume
    ctx["scheduled"] = scheduled = []

    def create_volume(ctxt: Any, volume: Any,
                      snapshot_id: Optional[str] = None,
                      image_id: Optional[str] = None,
                      request_spec: Any = None,
                      filter_properties: Optional[dict] = None,
                      backup_id: Optional[str] = None) -> None:
        props = dict(filter_properties or {})
        retry = dict(props.get("retry") or {"num_attempts": 0,
                                            "hosts": []})
        retry["num_attempts"] += 1
        props["retry"] = retry
        scheduled.append(volume.id)
        if retry["num_attempts"] > MAX_ATTEMPTS:
            volume.status = "error"
            volume.save()
            return
        place(ctxt, volume, request_spec=request_spec,
              filter_properties=props)
    test.mock_object(scheduler, "create_volume", side_effect=create_volume)


def extend_to(size: int) -> Callable[["BadInputMixin", dict], dict]:
    """An extend of ``ctx['source']`` to ``size`` GiB."""
    def arrange(test: "BadInputMixin", ctx: dict) -> dict:
        return {"size": size}
    return arrange


# -- the table ----------------------------------------------------------------

InvalidInput = exception.InvalidInput
BackendError = exception.VolumeBackendAPIException
InvalidVolume = exception.InvalidVolume
ImageUnacceptable = exception.ImageUnacceptable
SSLError = requests.exceptions.SSLError
ConnectionError_ = requests.exceptions.ConnectionError

ROWS = [
    # -- configuration: do_setup and check_for_setup_error ------------------
    # Cinder's driver lets the requests library's errors through: the
    # operator reads a traceback, or "Expecting value" for a password.
    Row("wrong CA certificate", CONFIG, wrong_ca,
        ours=Outcome(BackendError, ("driver_ssl_cert_path", "{ca}",
                                    "CERTIFICATE_VERIFY_FAILED")),
        stock=Outcome(SSLError, ("CERTIFICATE_VERIFY_FAILED",))),
    Row("wrong password", CONFIG,
        options(san_password="not-the-password"),
        ours=Outcome(BackendError, ("san_login", "san_password", "401")),
        stock=Outcome(requests.exceptions.JSONDecodeError,
                      ("Expecting value",))),
    Row("unreachable gateway", CONFIG, unreachable,
        ours=Outcome(BackendError, ("san_ip", "powerflex_rest_server_port",
                                    "127.0.0.1:{port}")),
        stock=Outcome(ConnectionError_, ("{port}",))),
    Row("unknown protection domain", CONFIG,
        options(powerflex_storage_pools="PDX:SP1"),
        ours=Outcome(InvalidInput, ("powerflex_storage_pools", "PDX:SP1",
                                    "no protection domain PDX")),
        stock={29: Outcome(BackendError, ("PDX",)),
               25: Outcome(InvalidInput, ("PDX:SP1",))}),
    Row("unknown storage pool", CONFIG,
        options(powerflex_storage_pools="PD1:SPX"),
        ours=Outcome(InvalidInput, ("powerflex_storage_pools", "PD1:SPX",
                                    "no storage pool SPX")),
        stock=Outcome(InvalidInput, ("PD1:SPX",))),
    # Cinder 29's driver looks the pool up as a protection domain first.
    Row("storage pool without its protection domain", CONFIG,
        options(powerflex_storage_pools="SP1"),
        ours=Outcome(InvalidInput, ("powerflex_storage_pools", "SP1",
                                    "protection_domain:storage_pool")),
        stock={29: Outcome(BackendError, ("Protection Domain", "SP1")),
               25: Outcome(InvalidInput, ("SP1",
                                          "protection_domain:storage_pool"))}),
    Row("no storage pool", CONFIG, options(powerflex_storage_pools=None),
        ours=Outcome(InvalidInput, ("powerflex_storage_pools",)),
        stock=Outcome(InvalidInput, ("powerflex_storage_pools",))),
    Row("san_password missing", CONFIG, options(san_password=""),
        ours=Outcome(InvalidInput, ("san_password not set",)),
        stock=Outcome(InvalidInput, ("IP, username and password",))),
    Row("san_ip missing", CONFIG, options(san_ip=""),
        ours=Outcome(InvalidInput, ("san_ip not set",)),
        stock=Outcome(InvalidInput, ("IP, username and password",))),
    Row("san_login missing", CONFIG, options(san_login=""),
        ours=Outcome(InvalidInput, ("san_login not set",)),
        stock=Outcome(InvalidInput, ("IP, username and password",))),
    Row("certificate verification without driver_ssl_cert_path", CONFIG,
        options(driver_ssl_cert_path=None),
        ours=Outcome(InvalidInput, ("driver_ssl_cert_path",
                                    "driver_ssl_cert_verify")),
        stock=Outcome(InvalidInput, ("certificate must be specified",))),
    Row("over-subscription ratio above the array's", CONFIG,
        options(powerflex_max_over_subscription_ratio=20.0),
        ours=Outcome(InvalidInput, ("powerflex_max_over_subscription_ratio",
                                    "20.0", "10.0 or less")),
        stock=Outcome(InvalidInput, ("20.0",))),
    # -- requests: Cinder's API refuses them before any record -------------
    Row("size 0", CREATE, request(0),
        ours=Outcome(InvalidInput, ("size '0'",)),
        stock=Outcome(InvalidInput, ("size '0'",))),
    Row("negative size", CREATE, request(-8),
        ours=Outcome(InvalidInput, ("size", "-8")),
        stock=Outcome(InvalidInput, ("size", "-8"))),
    # A raw image's file size is its virtual size: the API sees the lie.
    Row("raw image lying about its virtual_size", CREATE,
        then(image(2, virtual_size=GIB), with_image(1)),
        ours=Outcome(InvalidInput, ("image 2GB", "volume size 1GB")),
        stock=Outcome(InvalidInput, ("image 2GB", "volume size 1GB"))),
    Row("image larger than the volume", CREATE,
        then(image(2, "qcow2"), with_image(1)),
        ours=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                         "volume of size 1GB")),
        stock=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                          "volume of size 1GB"))),
    Row("extend to a smaller size", EXTEND, then(source(16), extend_to(8)),
        ours=Outcome(InvalidInput, ("current: 16", "extended: 8")),
        stock=Outcome(InvalidInput, ("current: 16", "extended: 8"))),
    # -- requests: the volume service refuses them ---------------------------
    # Cinder's own download path records no user message for an image
    # that does not fit: the volume is in error, unexplained.
    Row("image without virtual_size, larger than the volume", CREATE,
        then(image(2, "qcow2", virtual_size=None), with_image(1)),
        ours=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                         "volume of size 1GB"), "error",
                     (NOT_ENOUGH_SPACE_FOR_IMAGE,)),
        stock=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                          "volume of size 1GB"), "error")),
    Row("qcow2 image lying about its virtual_size", CREATE,
        then(image(2, "qcow2", virtual_size=GIB), with_image(1)),
        ours=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                         "volume of size 1GB"), "error",
                     (NOT_ENOUGH_SPACE_FOR_IMAGE,)),
        stock=Outcome(ImageUnacceptable, ("virtual size is 2GB",
                                          "volume of size 1GB"), "error")),
    # Not a volume id: ignored, the image's data is used.
    Row("malformed cinder:// location", CREATE,
        then(then(image(1), image_location("cinder://not-a-volume")),
             with_image(1)),
        ours=Outcome(None, (), "available"),
        stock=Outcome(None, (), "available", quota_drift=True)),
    Row("absurd size (1 EiB)", CREATE,
        then(unlimited_gigabytes, request(units.Gi)),
        ours=Outcome(BackendError, ("%s GiB" % units.Gi, "PD1:SP1",
                                    "allocation limit"), "error",
                     (DRIVER_FAILED_CREATE,)),
        stock=Outcome(BackendError, ("allocation limit",), "error",
                      (DRIVER_FAILED_CREATE,))),
    Row("size not a multiple of 8 GiB, rounding off", CREATE,
        then(rounding_off, request(10)),
        ours=Outcome(BackendError, ("10 GiB", "8 GiB",
                                    "powerflex_round_volume_capacity"),
                     "error", (DRIVER_FAILED_CREATE,)),
        stock=Outcome(BackendError, ("size 10", "8GB"), "error",
                      (DRIVER_FAILED_CREATE,))),
    # Cinder's driver names the pool and the option in its log only.
    Row("pool without zero padding", CREATE, then(unpadded_pool, request(8)),
        ours=Outcome(BackendError, ("PD1:SP1", "zero padding",
                                    "powerflex_allow_non_padded_volumes"),
                     "error", (DRIVER_FAILED_CREATE,)),
        stock=Outcome(BackendError, ("unsafe backend configuration",),
                      "error", (DRIVER_FAILED_CREATE,))),
    # The scheduler placed the volume in a pool the array does not have
    # (a stale report).
    Row("pool the array does not have", CREATE,
        request(8, pool="PD1:SPX"),
        ours=Outcome(InvalidInput, ("pool SPX",), "error",
                     (DRIVER_FAILED_CREATE,)),
        stock=Outcome(InvalidInput, ("pool SPX",), "error",
                      (DRIVER_FAILED_CREATE,))),
    Row("volume type with an unknown provisioning:type", CREATE,
        then(volume_type(**{"provisioning:type": "fat"}), typed(8)),
        ours=Outcome(BackendError, ("provisioning:type is fat",
                                    "thick, thin or compressed"), "error",
                     (DRIVER_FAILED_CREATE,)),
        stock=Outcome(BackendError, ("Illegal provisioning type",), "error",
                      (DRIVER_FAILED_CREATE,))),
    # Room for the size asked, not for its rounding: not rescheduled
    # (every service would refuse it), and the user is told, once.
    # Cinder's driver charges the size asked only: the volume is made.
    Row("quota has room for the size asked, not for the rounding", CREATE,
        then(then(quota_left(3), retries), request(1)),
        ours=Outcome(quota_charge.RoundingExceedsQuota,
                     ("requested 1 GiB", "holds 8 GiB", "quota"),
                     "error", (QUOTA_EXCEED,), attempts=1),
        stock=Outcome(None, (), "available", attempts=1,
                      quota_drift=True)),
    # -- a volume without its array volume (provider_id) ---------------------
    # Cinder records no user message for a failed clone.
    Row("clone of a volume without provider_id", CLONE,
        then(source(8, provider_id=False), request(8)),
        ours=Outcome(InvalidVolume, ("{source_id}", "provider_id"),
                     "error"),
        stock=Outcome(BackendError, ("volume None",), "error")),
    Row("snapshot of a volume without provider_id", SNAPSHOT,
        then(source(8, provider_id=False), request(8)),
        ours=Outcome(InvalidVolume, ("{source_id}", "provider_id"), "error",
                     (SNAPSHOT_CREATE_ERROR,)),
        stock=Outcome(BackendError, ("volume None",), "error",
                      (SNAPSHOT_CREATE_ERROR,))),
    Row("extend of a volume without provider_id", EXTEND,
        then(source(8, provider_id=False), extend_to(16)),
        ours=Outcome(InvalidVolume, ("{source_id}", "provider_id"),
                     "error_extending", (DRIVER_FAILED_EXTEND,)),
        stock=Outcome(BackendError, ("volume None",), "error_extending",
                      (DRIVER_FAILED_EXTEND,))),
]


class BadInputMixin:
    """Runs one row against the driver of the test case."""

    def setUp(self) -> None:
        super().setUp()
        self.set_project_quota("volumes", 50)
        self.set_project_quota("snapshots", 50)
        self.assertEqual({}, self.sim.array.volumes)

    # -- what is looked at ----------------------------------------------------

    def array_state(self) -> dict:
        """Every array volume and snapshot: name, size, vtree, mappings."""
        array = self.sim.array
        with array.lock:
            return {vid: (v.name, v.size_kb, v.vtree_id, v.ancestor_id,
                          tuple(sorted(v.mappings)))
                    for vid, v in array.volumes.items()}

    def open_reservations(self) -> list:
        """Reservations not committed nor rolled back, and usages reserved."""
        engine = compat.SQL_API.get_engine()
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT project_id, resource, delta FROM reservations "
                "WHERE deleted = 0")).fetchall()
            rows += conn.execute(sqlalchemy.text(
                "SELECT project_id, resource, reserved FROM quota_usages "
                "WHERE deleted = 0 AND reserved != 0")).fetchall()
        return [tuple(row) for row in rows]

    def user_messages(self, resource_id: Optional[str]) -> list:
        """The user messages Cinder recorded (of one resource, or all)."""
        filters = {}
        if resource_id is not None:
            filters["resource_uuid"] = resource_id
        return [(m["resource_uuid"], m["detail_id"],
                 message_field.translate_detail(m["detail_id"]))
                for m in self.db_message_get_all(filters)]

    def db_message_get_all(self, filters: dict) -> list:
        return db_api.message_get_all(self.admin_ctx, filters=filters)

    # -- entry points ---------------------------------------------------------

    def setup_driver(self, values: dict) -> None:
        """Start a new driver with ``values`` as cinder-volume does."""
        for name, value in values.items():
            self.override_config(name, value, group=inprocess_cinder.BACKEND)
        # The token refresh loop Cinder 29's client starts in do_setup
        # would outlive the test.
        if hasattr(rest_client.RestClient, "_start_token_refresh_thread"):
            self.mock_object(rest_client.RestClient,
                             "_start_token_refresh_thread")
        driver_class = importutils.import_class(self.VOLUME_DRIVER)
        conf = configuration.Configuration(
            volume_manager.volume_backend_opts,
            config_group=inprocess_cinder.BACKEND)
        driver = driver_class(configuration=conf, db=self.manager.db,
                              host=inprocess_cinder.SERVICE_HOST)
        driver.do_setup(self.admin_ctx)
        driver.check_for_setup_error()

    def driver_errors(self) -> list:
        """Spy the driver methods a request reaches; their exceptions."""
        seen: list = []
        for name in ("create_volume", "create_cloned_volume",
                     "create_volume_from_snapshot", "clone_image",
                     "create_snapshot", "extend_volume"):
            results = self.spy(self.driver, name)
            seen.append((name, results))
        return seen

    def act(self, row: Row, ctx: dict, args: dict) -> tuple[Any, Any]:
        """Run the request; return (error, resource acted on or None)."""
        if row.entry == CONFIG:
            try:
                self.setup_driver(args)
            except Exception as error:
                return error, None
            return None, None
        size = args.pop("size")
        pool = args.pop("pool", None)
        self.scheduler.pool_override = pool
        try:
            if row.entry in (CREATE, CLONE):
                made = self.api.create(
                    self.user_ctx, size, "vol-%s" % uuid.uuid4().hex[:8],
                    None, source_volume=(ctx["source"] if row.entry == CLONE
                                         else None), **args)
            elif row.entry == SNAPSHOT:
                made = self.api.create_snapshot(
                    self.user_ctx,
                    objects.Volume.get_by_id(self.user_ctx,
                                             ctx["source"].id),
                    "snap-%s" % uuid.uuid4().hex[:8], None)
            elif row.entry == EXTEND:
                made = objects.Volume.get_by_id(self.user_ctx,
                                                ctx["source"].id)
                self.api.extend(self.user_ctx, made, size)
            else:
                raise AssertionError("unknown entry point %s" % row.entry)
        except Exception as error:
            return error, None
        finally:
            self.scheduler.pool_override = None
        ctx["volume_id"] = made.id
        self._deliver()
        return None, made

    # -- one row --------------------------------------------------------------

    def expectation(self, row: Row) -> Outcome:
        expected = row.ours if self.is_ours else row.stock
        if isinstance(expected, dict):
            expected = expected[_release()]
        self.assertIsNotNone(expected)
        return expected

    def check(self, row: Row) -> None:
        expected = self.expectation(row)
        ctx: dict = {}
        args = row.arrange(self, ctx)
        self.assertEqual([], self.casts.failures)
        state = self.array_state()
        usage = self.quota_usage()
        messages = self.user_messages(None)
        spies = self.driver_errors()
        error, made = self.act(row, ctx, args)
        driver_errors = [(name, result) for name, results in spies
                         for result in results
                         if isinstance(result, Exception)]
        attempts = sum(len(results) for name, results in spies
                       if name in ("create_volume", "create_cloned_volume",
                                   "create_volume_from_snapshot"))
        if error is None and driver_errors:
            error = driver_errors[0][1]
        if error is None and self.casts.failures:
            error = self.casts.failures[0][1]
        status = None
        if made is not None:
            made = type(made).get_by_id(self.admin_ctx, made.id)
            status = made.status
        seen = {"error": "%s: %s" % (type(error).__name__, error),
                "status": status, "driver_errors": driver_errors,
                "messages": self.user_messages(None)[len(messages):],
                "attempts": attempts, "failures": self.casts.failures}
        why = "%s (%s): %s" % (row.name, self.DRIVER_LABEL, seen)

        if expected.error is None:
            self.assertIsNone(error, why)
        else:
            self.assertIs(expected.error, type(error), why)
            for fragment in expected.says:
                self.assertIn(fragment.format(**ctx), str(error), why)
        self.assertEqual(expected.status, status, why)
        if expected.attempts is not None:
            self.assertEqual(expected.attempts, attempts, why)
            if "scheduled" in ctx:
                # Each placement by the scheduler: a reschedule adds one.
                self.assertEqual(expected.attempts, len(ctx["scheduled"]),
                                 why)
        # The user is told why, or not at all.
        new_messages = sorted(m[:2] for m in
                              self.user_messages(None)[len(messages):])
        self.assertEqual(sorted((made.id, detail[0]) for detail
                                in expected.user_messages),
                         new_messages, why)
        # The array is unchanged, but for a volume made as asked (and the
        # image-volume cache entry it came from).
        after = self.array_state()
        if status == "available" and row.entry in (CREATE, CLONE):
            if "image" in ctx:
                self.assert_volume_content(made, ctx["image"])
            made_now = {made.provider_id} | {
                objects.Volume.get_by_id(self.admin_ctx,
                                         entry["volume_id"]).provider_id
                for entry in self.cache_entries()}
            after = {pid: v for pid, v in after.items()
                     if pid not in made_now}
        self.assertEqual(state, after, why)
        self.assertEqual([], self.open_reservations(), why)
        drift = {project: self.quota_drift(project)["gigabytes"]
                 for project in (inprocess_cinder.PROJECT_ID,
                                 inprocess_cinder.INTERNAL_PROJECT_ID)}
        if expected.quota_drift:
            self.assertNotEqual({inprocess_cinder.PROJECT_ID: 0,
                                 inprocess_cinder.INTERNAL_PROJECT_ID: 0},
                                drift, why)
        else:
            self.assert_no_quota_drift()
        if status is None:
            # Refused before any record: nothing is charged.
            self.assertEqual(usage, self.quota_usage(), why)
        self.assertEqual([], os.listdir(self.sim.by_id_dir))


class OursBadInput(BadInputMixin, driver_testcases.OurDriverTestCase):
    """Our driver, every row."""


class StockBadInput(BadInputMixin, driver_testcases.StockDriverTestCase):
    """Cinder's driver, every row whose entry point it shares."""

    STOCK_29_SCENARIO = False


def _add_rows() -> None:
    seen: set[str] = set()
    for row in ROWS:
        name = driver_testcases.row_test_name(row.entry, row.name, seen)
        for case, outcome in ((OursBadInput, row.ours),
                              (StockBadInput, row.stock)):
            if outcome is None:
                continue

            def test(self: BadInputMixin, row: Row = row) -> None:
                self.check(row)
            test.__name__ = name
            test.__doc__ = "%s: %s" % (row.entry, row.name)
            setattr(case, name, test)


_add_rows()
