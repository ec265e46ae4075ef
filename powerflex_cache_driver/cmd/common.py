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
"""What the operator commands share: cinder.conf, the backends, the output.

The commands read cinder.conf the way cinder-volume does (oslo.config,
``--config-file``, default ``/etc/cinder/cinder.conf``, and
``--config-dir``), pick the backend sections whose ``volume_driver`` is
this package's (or those ``--backend`` names), talk to the array through
the driver itself (same TLS, same credentials as the service) and print a
table for people or JSON for scripts (``--format``). Their own log goes to
standard error at WARNING, never into the service's log file.
"""

import dataclasses
import json
import logging as python_logging
import os
import sys
from typing import Any, Iterable, Optional, Sequence, TextIO

from cinder.common import config as cinder_config  # noqa: F401 (options)
from cinder import context as cinder_context
from cinder.volume import configuration
from cinder.volume import driver as volume_driver
from cinder.volume import manager as volume_manager
from oslo_config import cfg
from oslo_utils import importutils
import prettytable

CONF = cfg.CONF

# cinder-volume's own options for its hosts, as ``cinder.cmd.volume``
# defines them: that module monkey-patches the process on import.
service_opts = [
    cfg.StrOpt("cluster",
               help="Name of this cluster. Used to group volume hosts that "
                    "share the same backend configurations to work in HA "
                    "Active-Active mode."),
]
backend_host_opt = cfg.StrOpt("backend_host",
                              help="Backend override of host value.")
for _opt in service_opts:
    if _opt.name not in CONF:
        CONF.register_opt(_opt)

DEFAULT_CONFIG_FILE = "/etc/cinder/cinder.conf"
"""The file read when no ``--config-file`` is given, as cinder-volume."""

OUR_DRIVERS = (
    "powerflex_cache_driver.driver.PowerFlexCacheDriver",
    "powerflex_cache_driver.driver.PowerFlexCacheNVMeDriver",
)
"""The ``volume_driver`` values that select this package."""

FORMATS = ("table", "json")

common_cli_opts = [
    cfg.MultiStrOpt("backend",
                    default=[],
                    help="A backend section of cinder.conf to work on "
                         "(repeat for more). Default: every section of "
                         "enabled_backends whose volume_driver is this "
                         "package's."),
    cfg.StrOpt("format",
               default="table",
               choices=FORMATS,
               help="table (for people) or json (for scripts)."),
]


class CommandError(Exception):
    """A command cannot run; the message says why and what to change."""


@dataclasses.dataclass
class Backend:
    """One backend section of cinder.conf served by this package."""

    name: str
    driver_path: str
    configuration: Any
    host: str
    """The volume service's host, ``<host>@<backend>``."""
    cluster: Optional[str]
    """``<cluster>@<backend>`` when the service is clustered."""

    @property
    def service(self) -> str:
        """What the backend's volumes and cache entries carry as host."""
        return self.cluster or self.host


def load_config(argv: Sequence[str], version: str = "") -> cfg.ConfigOpts:
    """Parse the command line and cinder.conf into the global CONF.

    The CLI options must be registered before (``CONF.register_cli_opts``
    and, for sub-commands, ``cfg.SubCommandOpt``).

    :raises CommandError: a configuration file or directory cannot be read.
    """
    defaults = ([DEFAULT_CONFIG_FILE]
                if os.path.exists(DEFAULT_CONFIG_FILE) else [])
    try:
        CONF(list(argv), project="cinder", version=version,
             default_config_files=defaults)
    except cfg.ConfigDirNotFoundError as error:
        raise CommandError("Cannot read the configuration directory: %s. "
                           "Give an existing one with --config-dir."
                           % error)
    except cfg.ConfigFilesNotFoundError as error:
        raise CommandError("Cannot read the configuration file(s) %s. "
                           "Give cinder.conf with --config-file."
                           % ", ".join(error.config_files))
    python_logging.basicConfig(
        level=python_logging.WARNING, stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s")
    return CONF


def _backend(conf: cfg.ConfigOpts, name: str) -> Backend:
    # The options cinder-volume reads for every backend, whatever its
    # driver (volume_backend_name, the image-volume cache...).
    config = configuration.Configuration(
        volume_manager.volume_backend_opts + volume_driver.volume_opts +
        volume_driver.image_opts + [backend_host_opt], config_group=name)
    host = "%s@%s" % (config.backend_host or conf.host, name)
    cluster = "%s@%s" % (conf.cluster, name) if conf.cluster else None
    return Backend(name=name, driver_path=config.volume_driver,
                   configuration=config, host=host, cluster=cluster)


def select_backends(conf: cfg.ConfigOpts,
                    names: Iterable[str] = ()) -> list[Backend]:
    """The backends to work on: those named, or every one of ours.

    :raises CommandError: a named backend is not in ``enabled_backends``
        or does not use this package's driver, or none does.
    """
    enabled = list(conf.enabled_backends or [])
    names = list(names)
    if not names:
        backends = [_backend(conf, name) for name in enabled]
        ours = [backend for backend in backends
                if backend.driver_path in OUR_DRIVERS]
        if not ours:
            raise CommandError(
                "No section of enabled_backends (%s) has volume_driver = "
                "%s. Set it in the backend's section, or name the "
                "section with --backend." %
                (", ".join(enabled) or "empty", OUR_DRIVERS[0]))
        return ours
    selected = []
    for name in names:
        if name not in enabled:
            raise CommandError(
                "--backend %s: no such backend in enabled_backends (%s). "
                "Name one of them." % (name, ", ".join(enabled) or "empty"))
        backend = _backend(conf, name)
        if backend.driver_path not in OUR_DRIVERS:
            raise CommandError(
                "--backend %s: its volume_driver is %s, not this package's "
                "(%s)." % (name, backend.driver_path,
                           " or ".join(OUR_DRIVERS)))
        selected.append(backend)
    return selected


def open_driver(backend: Backend) -> Any:
    """The backend's driver, set up as cinder-volume sets it up.

    Logs in to the gateway with the backend's credentials and TLS settings
    (``do_setup``); nothing is changed on the array.
    """
    driver_class = importutils.import_class(backend.driver_path)
    driver = driver_class(configuration=backend.configuration,
                          host=backend.host, cluster_name=backend.cluster,
                          is_vol_db_empty=False, active_backend_id=None)
    driver.do_setup(cinder_context.get_admin_context())
    return driver


def emit(rows: Sequence[dict], columns: Sequence[tuple[str, str]],
         fmt: str, stream: Optional[TextIO] = None) -> None:
    """Print rows as a table or as JSON.

    :param columns: (key, heading) pairs, in order; JSON keeps every key
        of the rows.
    """
    stream = stream or sys.stdout
    if fmt == "json":
        dump_json(list(rows), stream)
        return
    table = prettytable.PrettyTable([heading for _key, heading in columns])
    table.align = "l"
    for row in rows:
        table.add_row(["" if row.get(key) is None else row.get(key)
                       for key, _heading in columns])
    stream.write(table.get_string() + "\n")


def dump_json(document: Any, stream: Optional[TextIO] = None) -> None:
    """Print ``document`` as JSON (``--format json``)."""
    stream = stream or sys.stdout
    json.dump(document, stream, indent=2, sort_keys=True, default=str)
    stream.write("\n")
