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
"""The pools' recount before each stats report, timed at cloud scale.

``python -m tools.cloudlib.recount [--volumes N] [--pools P]`` makes a
scratch database (``cinder_recount``) in a MariaDB, creates Cinder's
schema with Cinder's own migrations, fills it with bulk inserts (100,000
volumes over 20 unequal pools by default: one pool holds 40% of them, the
smallest well under 1%; deleted rows, volumes with no pool or no host,
three metadata rows and one or two admin metadata rows per volume, volume
types, services, a cluster), then times the recount each stats report
runs, in this process, under Cinder's own oslo.db engine and context:

* before: each pool counted with Cinder's ``VolumeList.get_volume_summary``
  (what the manager did up to now);
* after: this checkout's ``VolumeManager._count_pools``, on a manager
  built as cinder-volume builds it.

Each is run for every pool alone and for the whole report of each
service (the pools of the cluster, then those of a service of its own):
the median of five runs. The statements are counted with SQLAlchemy's
``before_cursor_execute`` event; each distinct one is run again under
MariaDB's ``ANALYZE`` for its plan and the rows it read.
Both ways must give every pool the same figure, the one the fill
planned; the exit status is 1 if not. The scratch database and its user
are dropped at the end, also on failure.

When the cloud runs (``tools/cloud status``), its MariaDB is used;
otherwise a MariaDB of its own is started the way the cloud starts its
own (:class:`tools.cloudlib.infra.MariaDB`) in a temporary directory, on
port 21950, and stopped and removed at the end. It needs Cinder and
PyMySQL: run from an interpreter without them, it runs itself again
with the cloud's virtualenv (``.venv-cloud``, built by ``tools/cloud
up``).
"""

import argparse
import dataclasses
import datetime
import importlib.util
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence
import uuid

from tools.cloudlib import infra
from tools.cloudlib import layout
from tools.cloudlib import procs

SCRATCH_DB = "cinder_recount"
"""The scratch database, and the name of the user that owns it."""
PORT = 21950
"""The port of the MariaDB started when no cloud runs (below the kernel's
ephemeral range, away from the cloud's)."""
RUNS = 5
"""Timed runs of each recount; the median is reported."""
BATCH = 2000
"""Rows per ``executemany`` of the fill."""
LARGEST_SHARE = 0.4
"""The first pool's share of the volumes; the others share the rest
unequally (as ``index ** -1.5``)."""
DELETED_SHARE = 0.15
"""Rows of deleted volumes (``deleted = 1``), which no figure counts."""
UNPLACED_SHARE = 0.01
"""Volumes in no pool: a third never scheduled (no host), a third with a
host and no pool (``host@backend``), a third with a pool's name in
another case or with a trailing space."""
PROJECTS = 200
USERS = 500
VOLUME_TYPES = ("powerflex", "powerflex-thick", "powerflex-gold",
                "powerflex-compressed")
SIZES = (8, 8, 8, 16, 16, 16, 24, 32, 32, 40, 48, 64, 80, 96, 128, 256,
         512, 1024)
"""GiB, as a PowerFlex backend records them (multiples of 8), the small
ones more often."""
APPS = ("web", "db", "cache", "queue", "batch", "ci", "backup", "logs",
        "search", "ml", "vdi", "mail")
SERVICE_BACKEND = layout.BACKEND
CLUSTER = "%s@%s" % (layout.CLUSTER, SERVICE_BACKEND)
"""The cluster most pools are in; its services are the cloud's two."""
CLUSTER_HOSTS = tuple("%s@%s" % (host, SERVICE_BACKEND)
                      for host in layout.VOLUME_HOSTS)
STANDALONE = "cloud-vol3@%s" % SERVICE_BACKEND
"""A service of no cluster, with every fourth pool."""
EPOCH = datetime.datetime(2024, 1, 1)

VOLUME_COLUMNS = (
    "id", "created_at", "updated_at", "deleted_at", "deleted", "user_id",
    "project_id", "host", "cluster_name", "service_uuid", "size",
    "availability_zone", "status", "attach_status", "display_name",
    "volume_type_id", "bootable", "multiattach", "use_quota",
    "provider_id", "launched_at", "terminated_at")
METADATA_COLUMNS = ("volume_id", "key", "value", "deleted", "created_at",
                    "deleted_at")


@dataclasses.dataclass(frozen=True)
class Pool:
    """A pool of the scratch cloud and the service that reports it."""

    name: str
    backend: str
    """The cluster (``cluster@backend``) or host (``host@backend``) the
    pool's stats report counts it under."""
    clustered: bool
    share: float
    """Its share of the placed volumes."""

    @property
    def hosts(self) -> tuple[str, ...]:
        """The ``host@backend`` of the services that create its volumes."""
        return CLUSTER_HOSTS if self.clustered else (self.backend,)


@dataclasses.dataclass
class Fill:
    """The rows of the scratch database, and what each pool must count."""

    services: list[tuple[Any, ...]]
    volume_types: list[tuple[Any, ...]]
    volumes: list[tuple[Any, ...]]
    metadata: list[tuple[Any, ...]]
    admin_metadata: list[tuple[Any, ...]]
    expected: dict[str, tuple[int, int]]
    """Pool name -> (volumes, GiB) of its volumes not deleted."""
    rows: dict[str, int]
    """Pool name -> its volume rows, deleted ones included."""


def plan_pools(count: int) -> list[Pool]:
    """``count`` pools ``PD1:SP1``... with unequal shares summing to 1.

    The first holds :data:`LARGEST_SHARE`; every fourth pool is the
    :data:`STANDALONE` service's, the others the :data:`CLUSTER`'s, so
    ``PD1:SP1`` shares its name's beginning with ``PD1:SP10`` to
    ``PD1:SP19`` in the same cluster.
    """
    if count < 1:
        raise ValueError("at least one pool")
    if count == 1:
        shares = [1.0]
    else:
        rest = [index ** -1.5 for index in range(2, count + 1)]
        shares = [LARGEST_SHARE] + [(1 - LARGEST_SHARE) * weight / sum(rest)
                                    for weight in rest]
    pools = []
    for index, share in enumerate(shares, 1):
        clustered = index % 4 != 0
        pools.append(Pool("PD1:SP%d" % index,
                          CLUSTER if clustered else STANDALONE,
                          clustered, share))
    return pools


def apportion(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` by ``shares`` into integers (largest remainders)."""
    exact = [total * share / sum(shares) for share in shares]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(shares)),
                          key=lambda i: (counts[i] - exact[i], i))
    for index in by_remainder[:total - sum(counts)]:
        counts[index] += 1
    return counts


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_rows(volumes: int, pools: Sequence[Pool], seed: int = 1) -> Fill:
    """The rows of a cloud of ``volumes`` volume rows over ``pools``.

    Deterministic for a seed. :data:`UNPLACED_SHARE` of the rows are in
    no pool; of the others, each pool gets its share, and
    :data:`DELETED_SHARE` of every kind are deleted rows (with their
    metadata deleted too).
    """
    rng = random.Random(seed)
    service_uuids = {host: _uuid(rng) for host in CLUSTER_HOSTS}
    service_uuids[STANDALONE] = _uuid(rng)
    services = [(host, "cinder-volume", "cinder-volume", 0, False, "nova",
                 CLUSTER if host in CLUSTER_HOSTS else None, service_uuid,
                 False, EPOCH, EPOCH)
                for host, service_uuid in service_uuids.items()]
    type_ids = [_uuid(rng) for _name in VOLUME_TYPES]
    volume_types = [(type_id, name, True, False, EPOCH, None)
                    for type_id, name in zip(type_ids, VOLUME_TYPES)]
    projects = [uuid.UUID(int=rng.getrandbits(128)).hex
                for _index in range(PROJECTS)]
    users = [uuid.UUID(int=rng.getrandbits(128)).hex
             for _index in range(USERS)]

    unplaced = int(volumes * UNPLACED_SHARE)
    placement: list[Optional[Pool]] = [None] * unplaced
    for pool, count in zip(pools, apportion(volumes - unplaced,
                                            [p.share for p in pools])):
        placement += [pool] * count
    rng.shuffle(placement)

    fill = Fill(services, volume_types, [], [], [], {}, {})
    for pool in pools:
        fill.expected[pool.name] = (0, 0)
        fill.rows[pool.name] = 0
    for number, pool in enumerate(placement):
        volume_id = _uuid(rng)
        created = EPOCH + datetime.timedelta(seconds=number * 300)
        deleted = rng.random() < DELETED_SHARE
        size = rng.choice(SIZES)
        project = rng.randrange(PROJECTS)
        if pool is not None:
            host = rng.choice(pool.hosts)
            location = "%s#%s" % (host, pool.name)
            cluster = ("%s#%s" % (CLUSTER, pool.name) if pool.clustered
                       else None)
            service = service_uuids[host]
            status = "available" if rng.random() < 0.55 else "in-use"
            fill.rows[pool.name] += 1
            if not deleted:
                count, gib = fill.expected[pool.name]
                fill.expected[pool.name] = (count + 1, gib + size)
        elif number % 3 == 0:
            location = cluster = service = None
            status = "error"
        elif number % 3 == 1:
            # From before pools: the backend without one.
            location = rng.choice(CLUSTER_HOSTS)
            cluster, service = CLUSTER, service_uuids[location]
            status = "available"
        else:
            # A pool's name in another case, or with a trailing space:
            # the same pool for MySQL's collation, not for Cinder.
            like = rng.choice(pools)
            name = rng.choice((like.name.lower(), like.name + " "))
            host = rng.choice(like.hosts)
            location = "%s#%s" % (host, name)
            cluster = "%s#%s" % (CLUSTER, name) if like.clustered else None
            service = service_uuids[host]
            status = "available"
        in_use = status == "in-use" and not deleted
        if deleted:
            status = "deleted"
        gone = created + datetime.timedelta(days=30) if deleted else None
        fill.volumes.append((
            volume_id, created, gone or created, gone, deleted,
            users[rng.randrange(USERS)], projects[project], location,
            cluster, service, size, "nova", status,
            "attached" if in_use else "detached", "vol-%06d" % number,
            rng.choice(type_ids), rng.random() < 0.3, False, True,
            None if location is None else _uuid(rng)[:16], created, gone))
        for key, value in (
                ("app", rng.choice(APPS)),
                ("owner", "team-%d" % (project % 40)),
                ("ref", "CHG%07d" % rng.randrange(10 ** 7))):
            fill.metadata.append((volume_id, key, value, deleted, created,
                                  gone))
        fill.admin_metadata.append((volume_id, "readonly", "False", deleted,
                                    created, gone))
        if in_use:
            fill.admin_metadata.append((volume_id, "attached_mode", "rw",
                                        False, created, None))
    return fill


def _insert(cursor: Any, table: str, columns: Sequence[str],
            rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` in batches of :data:`BATCH` (``executemany``)."""
    sql = "INSERT INTO %s (%s) VALUES (%s)" % (
        table, ", ".join("`%s`" % column for column in columns),
        ", ".join(["%s"] * len(columns)))
    for start in range(0, len(rows), BATCH):
        cursor.executemany(sql, rows[start:start + BATCH])


def fill_database(engine: Any, fill: Fill) -> None:
    """Insert ``fill`` through ``engine``; refresh the tables' statistics."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SET SESSION foreign_key_checks = 0")
        cursor.execute(
            "INSERT INTO clusters (name, `binary`, disabled, "
            "race_preventer, frozen, deleted, created_at) VALUES "
            "(%s, 'cinder-volume', 0, 0, 0, 0, %s)", (CLUSTER, EPOCH))
        _insert(cursor, "services", (
            "host", "binary", "topic", "report_count", "disabled",
            "availability_zone", "cluster_name", "uuid", "deleted",
            "created_at", "updated_at"), fill.services)
        _insert(cursor, "volume_types", (
            "id", "name", "is_public", "deleted", "created_at",
            "description"), fill.volume_types)
        _insert(cursor, "volumes", VOLUME_COLUMNS, fill.volumes)
        _insert(cursor, "volume_metadata", METADATA_COLUMNS, fill.metadata)
        _insert(cursor, "volume_admin_metadata", METADATA_COLUMNS,
                fill.admin_metadata)
        connection.commit()
        cursor.execute("SET SESSION foreign_key_checks = 1")
        cursor.execute("ANALYZE TABLE volumes, volume_metadata, "
                       "volume_admin_metadata")
        cursor.fetchall()
        cursor.close()
    finally:
        connection.close()


# ---------------------------------------------------------------- timing


class Statements:
    """The statements an engine runs while this is entered."""

    def __init__(self, engine: Any) -> None:
        """Listen to ``engine``'s ``before_cursor_execute`` event."""
        self.engine = engine
        self.seen: list[tuple[str, Any]] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str,
                parameters: Any, _context: Any, _many: bool) -> None:
        self.seen.append((statement, parameters))

    def __enter__(self) -> "Statements":
        from sqlalchemy import event
        self.seen = []
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: Any) -> None:
        from sqlalchemy import event
        event.remove(self.engine, "before_cursor_execute", self._record)


@dataclasses.dataclass
class Timing:
    """One recount, timed."""

    ms: float
    """Median of :data:`RUNS` runs, in milliseconds."""
    statements: list[tuple[str, Any]]
    """What one run sent to the database."""
    figures: dict[str, int]
    """Pool -> allocated GiB it counted."""


def time_recount(engine: Any, recount: Callable[[], dict[str, int]],
                 runs: int = RUNS) -> Timing:
    """Run ``recount`` ``runs`` times: the median, the first's statements.

    No warm-up run: the median leaves a cold first run out.
    """
    times = []
    with Statements(engine) as log:
        began = time.perf_counter()
        figures = recount()
        times.append((time.perf_counter() - began) * 1000)
    for _run in range(runs - 1):
        began = time.perf_counter()
        recount()
        times.append((time.perf_counter() - began) * 1000)
    return Timing(statistics.median(times), log.seen, figures)


def analyze(engine: Any, statement: str, parameters: Any
            ) -> list[dict[str, Any]]:
    """MariaDB's ``ANALYZE`` of a statement: its plan and the rows read."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("ANALYZE " + statement, parameters)
        names = [column[0] for column in cursor.description]
        plan = [dict(zip(names, row)) for row in cursor.fetchall()]
        cursor.close()
        connection.rollback()
    finally:
        connection.close()
    return plan


def rows_read(plan: Sequence[dict[str, Any]]) -> int:
    """The rows a statement read: the sum of its plan's ``r_rows``."""
    return int(sum(float(line.get("r_rows") or 0) for line in plan))


def shorten(statement: str, width: int = 160) -> str:
    """A statement on one line, cut to ``width`` characters."""
    text = " ".join(statement.split())
    return text if len(text) <= width else text[:width - 3] + "..."


# ---------------------------------------------------------------- Cinder


def sql_api() -> Any:
    """Cinder's SQLAlchemy layer (``cinder.db.sqlalchemy.api`` before 29)."""
    from cinder.db import api
    if hasattr(api, "main_context_manager"):
        return api
    from cinder.db.sqlalchemy import api as sqlalchemy_api
    return sqlalchemy_api


def configure_cinder(config_dir: str, url: str) -> None:
    """Parse a cinder.conf for the scratch database, as a service does.

    The RPC transport is oslo.messaging's in-process fake, which the
    volume manager's constructor needs and the recount never uses.
    """
    from cinder.common import config  # noqa: F401 (registers options)
    from cinder import objects
    from cinder import rpc
    from oslo_config import cfg
    objects.register_all()
    path = os.path.join(config_dir, "cinder.conf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as conf:
        conf.write("[DEFAULT]\ntransport_url = fake:/\n"
                   "[database]\nconnection = %s\n"
                   "[backend_defaults]\nvolume_driver = "
                   "powerflex_cache_driver.driver.PowerFlexCacheDriver\n"
                   % url)
    cfg.CONF([], project="cinder", default_config_files=[path])
    if not rpc.initialized():
        rpc.init(cfg.CONF)


def volume_manager(pool: Pool) -> Any:
    """This checkout's volume manager of the service reporting ``pool``.

    Built as cinder-volume builds it (``host``, ``service_name``,
    ``cluster``); its pools' running counts start empty, as
    ``init_host`` leaves them before it counts.
    """
    from powerflex_cache_driver import manager
    service = manager.VolumeManager(
        host=pool.hosts[0], service_name=SERVICE_BACKEND,
        cluster=pool.backend if pool.clustered else None)
    service.stats["pools"] = {}
    service.stats["allocated_capacity_gb"] = 0
    return service


def cinder_summary_recount(ctxt: Any, pool: Pool,
                           names: Sequence[str]) -> dict[str, int]:
    """The recount up to now: ``get_volume_summary`` for each pool."""
    from cinder import objects
    from cinder.volume import volume_utils
    field = "cluster_name" if pool.clustered else "host"
    figures = {}
    for name in names:
        _count, size, _metadata = objects.VolumeList.get_volume_summary(
            ctxt, False,
            filters={field: volume_utils.append_host(pool.backend, name)})
        figures[name] = int(size)
    return figures


def manager_recount(service: Any, names: Sequence[str]) -> dict[str, int]:
    """The manager's recount, as its stats report runs it."""
    service._count_pools(list(names))
    return {name: service.stats["pools"][name]["allocated_capacity_gb"]
            for name in names}


# ---------------------------------------------------------------- the run


_PASSWORD = secrets.token_hex(18)
"""The scratch user's password, the same for every run of a process so
that the engine Cinder keeps for the process still logs in."""


def _repository_first() -> None:
    """Import this checkout's package, not one installed in the venv."""
    root = layout.Layout.of_repository().root
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    from cinder import objects
    objects.register_all()
    from powerflex_cache_driver import manager
    if not os.path.abspath(manager.__file__).startswith(root + os.sep):
        raise procs.CloudError(
            "powerflex_cache_driver is imported from %s, not from the "
            "checkout %s" % (manager.__file__, root))


def _drop(db: infra.MariaDB) -> None:
    db.query("DROP DATABASE IF EXISTS `{0}`;\n"
             "DROP USER IF EXISTS '{0}'@'{1}', '{0}'@'localhost';\n"
             .format(SCRATCH_DB, infra.HOST))


def run(db: infra.MariaDB, volumes: int = 100000, pools: int = 20) -> dict:
    """Fill a scratch database in ``db``, time the recounts, drop it.

    ``db`` must be running. Prints the tables and plans; returns what
    they hold: ``pools`` (one entry per pool), ``reports`` (one per
    service), ``plans``, ``fill_seconds``, ``rows`` and ``identical``
    (whether both recounts gave every pool the figure the fill planned).
    """
    _repository_first()
    _drop(db)
    config_dir = tempfile.mkdtemp(prefix="recount-conf-")
    try:
        db.create_database(SCRATCH_DB, SCRATCH_DB, _PASSWORD)
        configure_cinder(config_dir,
                         db.url(SCRATCH_DB, SCRATCH_DB, _PASSWORD))
        return _run(volumes, pools)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
        try:
            sql_api().dispose_engine()
        finally:
            _drop(db)


def _run(volumes: int, pool_count: int) -> dict:
    """Migrate, fill, time and print; the body of :func:`run`."""
    from cinder import context
    from cinder.db import migration
    api = sql_api()
    engine = api.get_engine()
    if engine.url.database != SCRATCH_DB:
        raise procs.CloudError(
            "Cinder's engine of this process is on %s already" % engine.url)
    began = time.monotonic()
    migration.db_sync(engine=engine)
    migrated = time.monotonic() - began
    pools = plan_pools(pool_count)
    began = time.monotonic()
    fill = make_rows(volumes, pools)
    made = time.monotonic() - began
    began = time.monotonic()
    fill_database(engine, fill)
    filled = time.monotonic() - began
    rows = {"volumes": len(fill.volumes), "volume_metadata":
            len(fill.metadata), "volume_admin_metadata":
            len(fill.admin_metadata)}
    print("Cinder's schema migrated in %.1f s; %s rows made in %.1f s, "
          "inserted in %.1f s." % (
              migrated, ", ".join("%d %s" % (n, table)
                                  for table, n in rows.items()),
              made, filled), flush=True)

    load_before = os.getloadavg()[0]
    ctxt = context.get_admin_context()
    managers = {}
    services = []
    for pool in pools:
        if pool.backend not in managers:
            managers[pool.backend] = volume_manager(pool)
            services.append(pool)
    ways = {
        "before": lambda pool, names: cinder_summary_recount(
            ctxt, pool, names),
        "after": lambda pool, names: manager_recount(
            managers[pool.backend], names),
    }
    result: dict[str, Any] = {
        "volumes": volumes, "pool_count": pool_count, "rows": rows,
        "fill_seconds": round(migrated + made + filled, 1),
        "pools": [], "reports": [], "plans": {}, "identical": True}
    mismatches = []
    # The plans of the largest pool counted by cluster, and by host.
    explained = {}
    for pool in pools:
        explained.setdefault(pool.clustered, pool)
    for pool in pools:
        count, gib = fill.expected[pool.name]
        entry = {"pool": pool.name, "backend": pool.backend,
                 "clustered": pool.clustered, "volumes": count,
                 "rows": fill.rows[pool.name], "gib": gib}
        for way, recount in ways.items():
            timing = time_recount(
                engine, lambda: recount(pool, [pool.name]))
            entry[way] = {"ms": timing.ms,
                          "statements": len(timing.statements)}
            if timing.figures != {pool.name: gib}:
                mismatches.append("%s %s: %s, planned %d GiB" % (
                    way, pool.name, timing.figures, gib))
            if explained[pool.clustered] is pool:
                result["plans"]["%s, pool %s alone (by %s)" % (
                    way, pool.name, "cluster" if pool.clustered
                    else "host")] = _plans(engine, timing.statements)
        result["pools"].append(entry)
        print("  %-10s %6d volumes  before %8.1f ms  after %6.1f ms" % (
            pool.name, count, entry["before"]["ms"], entry["after"]["ms"]),
            flush=True)
    for service in services:
        names = [pool.name for pool in pools
                 if pool.backend == service.backend]
        report = {"backend": service.backend, "clustered":
                  service.clustered, "pools": len(names),
                  "volumes": sum(fill.expected[name][0] for name in names)}
        for way, recount in ways.items():
            timing = time_recount(
                engine, lambda: recount(service, names))
            report[way] = {"ms": timing.ms,
                           "statements": len(timing.statements)}
            planned = {name: fill.expected[name][1] for name in names}
            if timing.figures != planned:
                mismatches.append("%s report of %s: %s, planned %s" % (
                    way, service.backend, timing.figures, planned))
            result["plans"]["%s, report of %s" % (way, service.backend)] = (
                _plans(engine, timing.statements))
        result["reports"].append(report)
    result["identical"] = not mismatches
    result["mismatches"] = mismatches
    result["load"] = (load_before, os.getloadavg()[0])
    print_result(result)
    return result


def _plans(engine: Any, statements: Sequence[tuple[str, Any]]
           ) -> list[dict[str, Any]]:
    """Each distinct statement of a run, its plan and the rows it read."""
    plans: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for statement, parameters in statements:
        if statement in seen:
            seen[statement]["times"] += 1
            continue
        plan = analyze(engine, statement, parameters)
        seen[statement] = {"statement": statement, "times": 1,
                           "plan": plan, "rows_read": rows_read(plan)}
        plans.append(seen[statement])
    return plans


def print_result(result: dict) -> None:
    """Print the tables and plans of :func:`run`'s result."""
    from tools import texttable
    print()
    print("Recount of each pool alone (%d volume rows, %d pools; ms: "
          "median of %d runs; load average %.1f, then %.1f on %d CPUs)" % (
              result["volumes"], result["pool_count"], RUNS,
              result["load"][0], result["load"][1], os.cpu_count() or 0))
    rows = []
    for entry in result["pools"]:
        rows.append([
            entry["pool"], "cluster" if entry["clustered"] else "host",
            entry["volumes"], entry["rows"], entry["gib"],
            "%.1f" % entry["before"]["ms"], entry["before"]["statements"],
            "%.1f" % entry["after"]["ms"], entry["after"]["statements"]])
    rows.append(["all pools", "", sum(e["volumes"] for e in result["pools"]),
                 sum(e["rows"] for e in result["pools"]),
                 sum(e["gib"] for e in result["pools"]),
                 "%.1f" % sum(e["before"]["ms"] for e in result["pools"]),
                 sum(e["before"]["statements"] for e in result["pools"]),
                 "%.1f" % sum(e["after"]["ms"] for e in result["pools"]),
                 sum(e["after"]["statements"] for e in result["pools"])])
    print(texttable.plain(
        ["pool", "by", "volumes", "rows", "GiB", "before ms", "stmts",
         "after ms", "stmts"], rows, indent="  "))
    print()
    print("Recount of each stats report (all the service's pools)")
    print(texttable.plain(
        ["service", "by", "pools", "volumes", "before ms", "stmts",
         "after ms", "stmts"],
        [[report["backend"], "cluster" if report["clustered"] else "host",
          report["pools"], report["volumes"],
          "%.1f" % report["before"]["ms"], report["before"]["statements"],
          "%.1f" % report["after"]["ms"], report["after"]["statements"]]
         for report in result["reports"]], indent="  "))
    for title, plans in result["plans"].items():
        print()
        print("Statements of the %s recount (MariaDB ANALYZE)" % title)
        for entry in plans:
            print("  x%d, %d rows read: %s" % (
                entry["times"], entry["rows_read"],
                shorten(entry["statement"])))
            print(texttable.plain(
                ["table", "type", "key", "key_len", "ref", "rows", "r_rows",
                 "filtered", "r_filtered", "Extra"],
                [[line.get("table"), line.get("type"), line.get("key"),
                  line.get("key_len"), line.get("ref"),
                  line.get("rows"), line.get("r_rows"),
                  line.get("filtered"), line.get("r_filtered"),
                  line.get("Extra")] for line in entry["plan"]],
                indent="    "))
    print()
    for mismatch in result["mismatches"]:
        print("MISMATCH: %s" % mismatch)
    print("Every pool: the same figure both ways, the one planned: %s" % (
        "yes" if result["identical"] else "NO"))


# ---------------------------------------------------------------- main


def _has_dependencies() -> bool:
    return all(importlib.util.find_spec(name) is not None
               for name in ("cinder", "pymysql"))


def _in_cloud_venv(argv: Sequence[str]) -> int:
    """Run this module again with the cloud's virtualenv's Python."""
    lay = layout.Layout.of_repository()
    python = lay.venv_bin("python")
    if not os.path.exists(python):
        print("recount: this Python (%s) has no Cinder or no PyMySQL, and "
              "there is no %s (tools/cloud up builds it); run it with a "
              "Python that has both" % (sys.executable, python),
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    child = subprocess.Popen(
        [python, "-m", "tools.cloudlib.recount", *argv], cwd=lay.root,
        env=env)
    previous = signal.signal(signal.SIGTERM,
                             lambda _sig, _frame: child.terminate())
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _with_own_mariadb(volumes: int, pools: int) -> dict:
    """:func:`run` on a MariaDB of its own, stopped and removed after."""
    if not infra.port_free(PORT):
        raise procs.CloudError(
            "port %d of %s is taken (see `ss -ltnp 'sport = %d'`): another "
            "recount may be running; the cloud is not up, so a MariaDB of "
            "its own is needed there" % (PORT, infra.HOST, PORT))
    state = tempfile.mkdtemp(prefix="recount-")
    table = procs.ProcessTable(state)
    db = infra.MariaDB(state, table, PORT)
    try:
        print("The cloud is not up: starting a MariaDB in %s on port %d"
              % (state, PORT), flush=True)
        db.start()
        return run(db, volumes, pools)
    finally:
        try:
            db.stop()
            table.stop_all(timeout=30)
        finally:
            shutil.rmtree(state, ignore_errors=True)


def _terminate(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``[--volumes N] [--pools P]``: see the module's documentation.

    Return 0 if both recounts gave every pool the planned figure, 1 if
    not or on an error, 2 if Cinder and PyMySQL are not to be had.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="tools/cloud recount",
        description="Time the pools' recount of the stats report on a "
                    "scratch Cinder database of a cloud's size.")
    parser.add_argument("--volumes", type=int, default=100000,
                        help="volume rows (default: 100000)")
    parser.add_argument("--pools", type=int, default=20,
                        help="pools (default: 20)")
    args = parser.parse_args(argv)
    if args.volumes < 1 or args.pools < 1:
        parser.error("--volumes and --pools must be at least 1")
    if not _has_dependencies():
        return _in_cloud_venv(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        lay = layout.Layout.of_repository()
        table = procs.ProcessTable(lay.state)
        if table.is_running("mariadb"):
            print("The cloud is up: using its MariaDB (port %d)"
                  % layout.PORTS["mariadb"], flush=True)
            result = run(infra.MariaDB(lay.state, table,
                                       layout.PORTS["mariadb"]),
                         args.volumes, args.pools)
        else:
            result = _with_own_mariadb(args.volumes, args.pools)
    except procs.CloudError as exc:
        print("recount: %s" % exc, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
