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
"""``powerflex-cache-manage``: the image-volume cache and the volumes.

::

    powerflex-cache-manage [--config-file F] [--config-dir D]
        [--backend B] [--format table|json] CATEGORY ACTION [options]

    cache list [--backend B] [--format json] [--os-cloud NAME]
    cache warm IMAGE [--volume-type TYPE ...] [--backend B] [--os-cloud NAME]
    cache evict IMAGE|--all [--backend B] [--os-cloud NAME]
    volumes reconcile [--project P] [--fix] [--backend B] [--os-cloud NAME]

Looking is free: Cinder's database is read through Cinder's DB API and
objects, the array through the driver's REST client. Every change goes
through Cinder's Block Storage API as an admin (``OS_*`` variables or
``--os-cloud``/``OS_CLOUD``), never into Cinder's database. Exit status:
0 ok, 1 something left to do (or a warning), 2 failure.
"""

import dataclasses
import math
import sys
import time
from typing import Any, Callable, Iterable, Optional, Sequence, TextIO

from cinder import context as cinder_context
from cinder import exception
from cinder.volume import volume_types
from oslo_config import cfg
from oslo_utils import units

from powerflex_cache_driver import cache_entries
from powerflex_cache_driver.cmd import block_storage
from powerflex_cache_driver.cmd import cache_report
from powerflex_cache_driver.cmd import common
from powerflex_cache_driver.cmd import reconcile as reconcile_mod

CONF = common.CONF

OK, LEFT_TO_DO, FAILURE = 0, 1, 2

DEFAULT_TIMEOUT = 600.0


# -- cache list --------------------------------------------------------------

ENTRY_COLUMNS = (
    ("image_id", "Image"),
    ("image_name", "Name"),
    ("volume_id", "Entry volume"),
    ("service", "Host/cluster"),
    ("recorded_gib", "Recorded GiB"),
    ("array_gib", "Array GiB"),
    ("virtual_size", "Image virtual size"),
    ("vtree", "Vtree"),
    ("last_used", "Last used"),
    ("flags", "Flags"),
)

HALF_MADE_COLUMNS = (
    ("volume_id", "Half-made cache volume"),
    ("image_id", "Image"),
    ("backend", "Backend"),
    ("status", "Status"),
    ("recorded_gib", "Recorded GiB"),
)


def _gib_text(size: Optional[int]) -> str:
    if size is None:
        return ""
    return "%.2f GiB" % (size / units.Gi)


def _vtree_text(report: cache_report.EntryReport) -> str:
    if report.vtree_snapshots is None:
        return ""
    limit = report.vtree_snapshot_limit
    text = "%d/%s snapshots" % (report.vtree_snapshots,
                                limit if limit is not None else "?")
    if report.vtree_volume_limit is not None:
        text += ", %d/%d volumes" % (report.vtree_volumes,
                                     report.vtree_volume_limit)
    return text


def _entry_row(report: cache_report.EntryReport) -> dict:
    """A cache entry as a table row and as JSON."""
    row = dataclasses.asdict(report)
    virtual = _gib_text(report.virtual_size_bytes)
    row["virtual_size"] = ("%s (%s)" % (virtual, report.virtual_size_source)
                           if virtual else "")
    row["vtree"] = _vtree_text(report)
    row["last_used"] = (report.last_used.strftime("%Y-%m-%d %H:%M:%S")
                        if report.last_used else "")
    row["flags"] = ", ".join(report.flags)
    return row


def _json_entry(report: cache_report.EntryReport) -> dict:
    row = dataclasses.asdict(report)
    for key in ("last_used", "image_updated_at"):
        if row[key] is not None:
            row[key] = row[key].isoformat()
    return row


def cache_list(backends: Sequence[common.Backend],
               images: Optional[Any] = None,
               open_driver: Callable[[common.Backend], Any] =
               common.open_driver
               ) -> tuple[list, list]:
    """The cache entries and half-made cache volumes of the backends."""
    ctx = cinder_context.get_admin_context()
    entries, half = [], []
    for backend in backends:
        found, left = cache_report.backend_report(
            ctx, backend, open_driver(backend), images)
        entries.extend(found)
        half.extend(left)
    return entries, half


def print_cache_list(entries: list, half: list, fmt: str,
                     out: TextIO) -> int:
    """Print ``cache list``; return its exit status."""
    status = OK if not half and not any(e.flags for e in entries) \
        else LEFT_TO_DO
    if fmt == "json":
        common.dump_json(
            {"entries": [_json_entry(e) for e in entries],
             "half_made": [dataclasses.asdict(h) for h in half]}, out)
        return status
    common.emit([_entry_row(e) for e in entries], ENTRY_COLUMNS, fmt, out)
    if half:
        common.emit([dataclasses.asdict(h) for h in half],
                    HALF_MADE_COLUMNS, fmt, out)
    for report in entries:
        for flag, fix in zip(report.flags, report.fixes):
            out.write("Entry %s (image %s): %s. %s\n"
                      % (report.volume_id, report.image_id, flag, fix))
    for volume in half:
        out.write("Volume %s (image %s): half-made, %s. %s\n"
                  % (volume.volume_id, volume.image_id, volume.status,
                     volume.fix))
    return status


def run_cache_list(backends: Sequence[common.Backend], fmt: str,
                   out: TextIO, images: Optional[Any] = None,
                   open_driver: Callable[[common.Backend], Any] =
                   common.open_driver) -> int:
    """``cache list``: read, print; the exit status."""
    entries, half = cache_list(backends, images, open_driver)
    return print_cache_list(entries, half, fmt, out)


# -- cache warm --------------------------------------------------------------

WARM_COLUMNS = (
    ("image_id", "Image"),
    ("volume_type", "Volume type"),
    ("backend", "Backend"),
    ("result", "Result"),
    ("entry_volume_id", "Entry volume"),
    ("downloaded", "Downloaded"),
    ("seconds", "Seconds"),
    ("message", "Message"),
)


@dataclasses.dataclass
class WarmRow:
    """What ``cache warm`` did for one volume type."""

    image_id: str
    volume_type: str
    backend: str
    result: str = "failed"
    entry_volume_id: Optional[str] = None
    downloaded: bool = False
    seconds: float = 0.0
    warming_volume_id: Optional[str] = None
    message: str = ""


def warm_size_gib(image: dict) -> int:
    """The smallest volume the image fits in: its size in GiB, at least 1.

    The virtual size (or the file size when Glance has none), and at least
    the image's ``min_disk``.
    """
    size = image.get("virtual_size") or image.get("size") or 0
    gib = max(1, math.ceil(int(size) / units.Gi))
    return max(gib, int(image.get("min_disk") or 0))


def _backend_name_of(backend: common.Backend) -> Optional[str]:
    return backend.configuration.safe_get("volume_backend_name")


def _targets_of(vtype: dict, backends: Sequence[common.Backend]) -> list:
    wanted = (vtype.get("extra_specs") or {}).get("volume_backend_name")
    if not wanted:
        return list(backends)
    return [b for b in backends if _backend_name_of(b) == wanted]


def warm_types(ctx: Any, backends: Sequence[common.Backend],
               names: Iterable[str] = ()) -> list[tuple[str, list]]:
    """The volume types to warm with, and the backends each lands on.

    By default the types whose ``volume_backend_name`` is a selected
    backend's, else the default type.

    :raises common.CommandError: a named type does not exist or lands on
        none of the backends.
    """
    names = list(names)
    if names:
        return [_named_type(ctx, name, backends) for name in names]
    chosen = []
    for name, vtype in sorted(volume_types.get_all_types(ctx).items()):
        wanted = (vtype.get("extra_specs") or {}).get("volume_backend_name")
        targets = [b for b in backends if _backend_name_of(b) == wanted]
        if wanted and targets:
            chosen.append((name, targets))
    if chosen:
        return chosen
    default = volume_types.get_default_volume_type(ctx)
    return [(default["name"], _targets_of(default, backends))]


def _named_type(ctx: Any, name: str,
                backends: Sequence[common.Backend]) -> tuple[str, list]:
    try:
        vtype = volume_types.get_volume_type_by_name(ctx, name)
    except exception.VolumeTypeNotFoundByName:
        raise common.CommandError("--volume-type %s: no such volume type. "
                                  "Name one of `openstack volume type "
                                  "list`." % name)
    targets = _targets_of(vtype, backends)
    if not targets:
        raise common.CommandError(
            "--volume-type %s places volumes on volume_backend_name %s, "
            "none of the selected backends. Select its backend with "
            "--backend." % (name, vtype["extra_specs"]
                            ["volume_backend_name"]))
    return name, targets


def fresh_entry(ctx: Any, backends: Sequence[common.Backend],
                image: dict) -> Optional[Any]:
    """A fresh entry of the image on one of the backends, if any.

    Fresh as the driver and Cinder's cache judge it: the image's
    ``updated_at`` is the one the entry recorded.
    """
    for backend in backends:
        for entry in cache_report.entries_of(ctx, backend, image["id"]):
            if cache_entries.entry_is_fresh(entry, image):
                return entry
    return None


def _warming_failed(api: Any, row: WarmRow, volume: dict) -> None:
    messages = api.list_messages(volume["id"])
    row.message = ("The warming volume ended %s: %s. Fix that and warm "
                   "again." % (volume.get("status"),
                               messages[-1] if messages
                               else "no user message"))


def _warm_one(ctx: Any, api: Any, image: dict, type_name: str,
              targets: list, row: WarmRow, timeout: float) -> None:
    """Create a volume from the image, wait, delete it; fill ``row``."""
    started = time.monotonic()
    try:
        volume = api.create_volume(
            warm_size_gib(image), image_ref=image["id"],
            volume_type=type_name, name="powerflex-cache-warm")
    except block_storage.OverQuota as error:
        row.message = ("%s. Give project %s room for the warming volume "
                       "(openstack quota set --gigabytes)."
                       % (error, api.project_id))
        return
    row.warming_volume_id = volume["id"]
    try:
        volume = api.wait_for_status(volume["id"], ("available",), timeout)
        if volume.get("status") != "available":
            _warming_failed(api, row, volume)
        api.delete_volume(volume["id"])
        api.wait_gone(volume["id"], timeout)
    except block_storage.WaitTimeout as error:
        row.message = ("%s Delete the warming volume once it is settled "
                       "(openstack volume delete %s), then warm again "
                       "with a longer --timeout." % (error, volume["id"]))
        return
    row.seconds = round(time.monotonic() - started, 1)
    if row.message:
        return
    entry = fresh_entry(ctx, targets, image)
    if entry is None:
        row.result = "no entry"
        row.message = ("The volume was made but no cache entry: check "
                       "image_volume_cache_max_size_gb/_count and the "
                       "cinder-volume log.")
        return
    row.result = "warmed"
    row.entry_volume_id = entry["volume_id"]
    row.downloaded = True


def cache_warm(backends: Sequence[common.Backend], api: Any, image_id: str,
               type_names: Iterable[str] = (),
               timeout: float = DEFAULT_TIMEOUT) -> list[WarmRow]:
    """Make sure a fresh entry of the image exists per volume type.

    :param api: a :class:`block_storage.BlockStorage` (or the same
        methods).
    """
    ctx = cinder_context.get_admin_context()
    try:
        image = api.get_image(image_id)
    except block_storage.NotFound:
        raise common.CommandError("Image %s: the image service has no such "
                                  "image. Give an image id." % image_id)
    rows = []
    for type_name, targets in warm_types(ctx, backends, type_names):
        row = WarmRow(image_id=image_id, volume_type=type_name,
                      backend=", ".join(b.name for b in targets))
        entry = fresh_entry(ctx, targets, image)
        if entry is not None:
            row.result = "fresh"
            row.entry_volume_id = entry["volume_id"]
        else:
            _warm_one(ctx, api, image, type_name, targets, row, timeout)
        rows.append(row)
    return rows


def _status_of(results: Iterable[str], ok: Iterable[str]) -> int:
    results = list(results)
    ok = set(ok)
    if any(result == "failed" for result in results):
        return FAILURE
    return OK if all(result in ok for result in results) else LEFT_TO_DO


def print_rows(rows: list, columns: Sequence[tuple[str, str]], key: str,
               fmt: str, out: TextIO) -> None:
    """Print dataclass rows as a table, or as ``{key: [...]}`` JSON."""
    data = [dataclasses.asdict(row) for row in rows]
    if fmt == "json":
        common.dump_json({key: data}, out)
        return
    for row in data:
        for name, value in row.items():
            if isinstance(value, bool):
                row[name] = "yes" if value else "no"
    common.emit(data, columns, fmt, out)


def run_cache_warm(backends: Sequence[common.Backend], api: Any,
                   image_id: str, type_names: Iterable[str], fmt: str,
                   out: TextIO, timeout: float = DEFAULT_TIMEOUT) -> int:
    """``cache warm``: warm, print; the exit status."""
    rows = cache_warm(backends, api, image_id, type_names, timeout)
    print_rows(rows, WARM_COLUMNS, "warm", fmt, out)
    return _status_of((row.result for row in rows), ("warmed", "fresh"))


# -- cache evict -------------------------------------------------------------

EVICT_COLUMNS = (
    ("image_id", "Image"),
    ("volume_id", "Entry volume"),
    ("backend", "Backend"),
    ("result", "Result"),
    ("seconds", "Seconds"),
    ("message", "Message"),
)


@dataclasses.dataclass
class EvictRow:
    """What ``cache evict`` did for one entry."""

    image_id: str
    volume_id: str
    backend: str
    result: str = "failed"
    seconds: float = 0.0
    message: str = ""


def _evict_one(api: Any, row: EvictRow, timeout: float) -> None:
    started = time.monotonic()
    try:
        api.delete_volume(row.volume_id)
        api.wait_gone(row.volume_id, timeout)
    except block_storage.NotFound:
        row.result = "left"
        row.message = ("The entry's volume is gone already; the next "
                       "create of the image on this backend replaces the "
                       "entry.")
        return
    except block_storage.ApiError as error:
        row.message = ("%s. Look at the volume (openstack volume show %s) "
                       "and evict again." % (error, row.volume_id))
        return
    row.result = "evicted"
    row.seconds = round(time.monotonic() - started, 1)


def cache_evict(backends: Sequence[common.Backend], api: Any,
                image_id: Optional[str] = None,
                timeout: float = DEFAULT_TIMEOUT) -> list[EvictRow]:
    """Delete the entries' volumes through the API (which evicts them).

    :param image_id: the image whose entries go; None for every entry.
    """
    ctx = cinder_context.get_admin_context()
    rows = []
    for backend in backends:
        for entry in cache_report.entries_of(ctx, backend, image_id):
            row = EvictRow(image_id=entry["image_id"],
                           volume_id=entry["volume_id"],
                           backend=backend.name)
            _evict_one(api, row, timeout)
            rows.append(row)
    return rows


def run_cache_evict(backends: Sequence[common.Backend], api: Any,
                    image_id: Optional[str], fmt: str, out: TextIO,
                    timeout: float = DEFAULT_TIMEOUT) -> int:
    """``cache evict``: evict, print; the exit status."""
    rows = cache_evict(backends, api, image_id, timeout)
    print_rows(rows, EVICT_COLUMNS, "evicted", fmt, out)
    if not rows and fmt != "json":
        out.write("No cache entry to evict.\n")
    return _status_of((row.result for row in rows), ("evicted",))


# -- volumes reconcile -------------------------------------------------------

VOLUME_COLUMNS = (
    ("volume_id", "Volume"),
    ("project_id", "Project"),
    ("status", "Status"),
    ("recorded_gib", "Recorded GiB"),
    ("array_gib", "Array GiB"),
    ("note", "Note"),
    ("action", "Action"),
    ("reason", "Reason"),
)

PROJECT_COLUMNS = (
    ("project_id", "Project"),
    ("usage_gib", "Usage GiB"),
    ("records_gib", "Records GiB"),
    ("difference_gib", "Difference GiB"),
)


def _array_reader(backend: common.Backend) -> cache_report.ArrayReader:
    return cache_report.ArrayReader(common.open_driver(backend)
                                    .primary_client)


def print_reconcile(report: reconcile_mod.Report, fmt: str,
                    out: TextIO) -> int:
    """Print ``volumes reconcile``; return its exit status."""
    if fmt == "json":
        common.dump_json(report.as_dict(), out)
        return report.exit_code
    rows = []
    for row in report.volumes:
        data = row.as_dict()
        data["note"] = "cache entry" if row.cache_entry else ""
        rows.append(data)
    common.emit(rows, VOLUME_COLUMNS, fmt, out)
    common.emit([p.as_dict() for p in report.projects], PROJECT_COLUMNS,
                fmt, out)
    for row in report.volumes:
        if row.command:
            out.write("Volume %s: %s: %s\n" % (row.volume_id, row.action,
                                               row.command))
    for project in report.projects:
        if project.synced_from_gib is not None:
            out.write("Project %s: usage synced from %d GiB to its records "
                      "(%d GiB) with cinder-manage quota sync.\n"
                      % (project.project_id, project.synced_from_gib,
                         project.records_gib))
        if project.command:
            out.write("Project %s: usage differs from its records by %d "
                      "GiB: %s\n" % (project.project_id,
                                     project.difference_gib,
                                     project.command))
    if not report.volumes:
        out.write("Every volume records at least its array size.\n")
    return report.exit_code


def run_reconcile(backends: Sequence[common.Backend], api: Optional[Any],
                  fix: bool, project_id: Optional[str], fmt: str,
                  out: TextIO, timeout: float = DEFAULT_TIMEOUT,
                  array_for: Callable[[common.Backend], Any] =
                  _array_reader) -> int:
    """``volumes reconcile``: find, fix, print; the exit status."""
    report = reconcile_mod.reconcile(backends, array_for, api, fix,
                                     project_id, timeout)
    return print_reconcile(report, fmt, out)


# -- the command line --------------------------------------------------------

def _common_action_args(parser: Any, api: bool = True) -> None:
    """Options accepted after the action too."""
    parser.add_argument("--backend", dest="action_backend",
                        metavar="BACKEND", action="append", default=[],
                        help="A backend section of cinder.conf (repeat "
                             "for more).")
    parser.add_argument("--format", dest="action_format",
                        choices=common.FORMATS, default=None,
                        help="table (for people) or json (for scripts).")
    parser.add_argument("--os-cloud", dest="os_cloud", default=None,
                        metavar="NAME",
                        help="A cloud of clouds.yaml for the admin "
                             "credentials (default: OS_CLOUD, else the "
                             "OS_* variables).")
    if api:
        parser.add_argument("--timeout", type=float,
                            default=DEFAULT_TIMEOUT,
                            help="Seconds to wait for each volume.")


def _cache_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser("cache", help="The image-volume cache.")
    actions = parser.add_subparsers(dest="action")
    actions.required = True
    listing = actions.add_parser("list", help="List the cache entries.")
    _common_action_args(listing, api=False)
    warm = actions.add_parser("warm", help="Make a fresh cache entry.")
    warm.add_argument("image", help="The image id.")
    warm.add_argument("--volume-type", dest="volume_type", action="append",
                      metavar="TYPE", default=[],
                      help="A volume type (repeat for more).")
    _common_action_args(warm)
    evict = actions.add_parser("evict", help="Remove cache entries.")
    evict.add_argument("image", nargs="?", default=None,
                       help="The image id.")
    evict.add_argument("--all", dest="all", action="store_true",
                       help="Every entry of the backend.")
    _common_action_args(evict)


def _volumes_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser("volumes", help="The backend's volumes.")
    actions = parser.add_subparsers(dest="action")
    actions.required = True
    rec = actions.add_parser("reconcile", help="Volumes recorded below "
                                               "their array size.")
    rec.add_argument("--project", default=None, help="One project id.")
    rec.add_argument("--fix", action="store_true",
                     help="Extend available volumes to their array size "
                          "through the Block Storage API.")
    _common_action_args(rec)


def add_command_parsers(subparsers: Any) -> None:
    """The categories and their actions (oslo.config sub-commands)."""
    _cache_parsers(subparsers)
    _volumes_parsers(subparsers)


category_opt = cfg.SubCommandOpt("category", title="Command categories",
                                 help="cache or volumes",
                                 handler=add_command_parsers)


def register_cli_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``--backend``, ``--format`` and the sub-commands."""
    conf.register_cli_opts(common.common_cli_opts)
    conf.register_cli_opt(category_opt)


def _api(args: Any) -> block_storage.BlockStorage:
    try:
        session = block_storage.session_from_env(args.os_cloud)
    except block_storage.CredentialsError as error:
        raise common.CommandError(str(error))
    return block_storage.BlockStorage(session)


def _images_for_list(args: Any) -> Optional[Any]:
    """The Image API for names, when credentials are there; else None."""
    if not (args.os_cloud or block_storage.have_credentials()):
        return None
    try:
        return _api(args)
    except common.CommandError as error:
        sys.stderr.write("Image names left out: %s\n" % error)
        return None


def _dispatch(args: Any, backends: list, fmt: str, out: TextIO) -> int:
    """Run the action the command line names."""
    name, action = args.name, args.action
    if (name, action) == ("cache", "list"):
        return run_cache_list(backends, fmt, out, _images_for_list(args))
    if (name, action) == ("cache", "warm"):
        return run_cache_warm(backends, _api(args), args.image,
                              args.volume_type, fmt, out, args.timeout)
    if (name, action) == ("cache", "evict"):
        if bool(args.image) == bool(args.all):
            raise common.CommandError("cache evict: give an image id or "
                                      "--all (not both).")
        return run_cache_evict(backends, _api(args), args.image, fmt, out,
                               args.timeout)
    api = _api(args) if args.fix else None
    return run_reconcile(backends, api, args.fix, args.project, fmt, out,
                         args.timeout)


def _report_error(message: str, fmt: str, out: TextIO) -> int:
    sys.stderr.write("ERROR: %s\n" % message)
    if fmt == "json":
        common.dump_json({"error": message}, out)
    return FAILURE


def main(argv: Optional[Sequence[str]] = None,
         out: Optional[TextIO] = None) -> int:
    """Parse the command line and cinder.conf, run the action."""
    argv = sys.argv[1:] if argv is None else list(argv)
    out = out or sys.stdout
    register_cli_opts(CONF)
    fmt = "table"
    try:
        common.load_config(argv)
        args = CONF.category
        fmt = args.action_format or CONF.format
        backends = common.select_backends(
            CONF, list(CONF.backend) + list(args.action_backend))
        return _dispatch(args, backends, fmt, out)
    except common.CommandError as error:
        return _report_error(str(error), fmt, out)
    except block_storage.ApiError as error:
        return _report_error("%s. Check the credentials and the API "
                             "endpoints, then run the command again."
                             % error, fmt, out)
    except exception.CinderException as error:
        return _report_error("%s. Check the backend's gateway settings "
                             "(san_ip, san_login) and that the gateway "
                             "answers, then run the command again."
                             % error, fmt, out)


if __name__ == "__main__":
    sys.exit(main())
