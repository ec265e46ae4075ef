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
"""``powerflex-cache-status check``: a preflight before cinder-volume starts.

::

    powerflex-cache-status [--config-file F] [--config-dir D]
                           [--backend NAME ...] [--format table|json] check

Reads cinder.conf as cinder-volume does and, for every backend of this
package (or those named), checks the gateway through the driver's own REST
client (same TLS, same credentials), the storage pools, the image-volume
cache settings, then the service-wide settings. Built on oslo.upgradecheck:
each check returns a :class:`~oslo_upgradecheck.upgradecheck.Result`, the
table is oslo.upgradecheck's and the exit status too: 0 when every check
succeeds, 1 on a warning, 2 on a failure (or when the command cannot run).
Every warning and failure says what is wrong and the fix, naming the option
and its section. No password, token or coordination URL is ever printed.
"""

import dataclasses
import importlib.metadata as importlib_metadata
import logging as python_logging
import os
import re
import sys
from typing import Any, Callable, Optional, Sequence
import urllib.parse
import warnings

from cinder import coordination  # noqa: F401 ([coordination] options)
from cinder.volume import driver as volume_driver
from cinder.volume.drivers.dell_emc.powerflex import driver as stock
from cinder.volume.drivers.san import san
from keystoneauth1 import loading
from keystoneauth1 import session
from oslo_config import cfg
from oslo_upgradecheck import upgradecheck
from oslo_utils import importutils
import requests

from powerflex_cache_driver.cmd import common
from powerflex_cache_driver import compat
from powerflex_cache_driver import host_mappings
from powerflex_cache_driver import manager
from powerflex_cache_driver import sizing

CONF = common.CONF
Code = upgradecheck.Code
Result = upgradecheck.Result

SUPPORTED_CINDER = (25, 29)
"""The Cinder major releases this package supports (see tox.ini)."""

MAX_SNAPS_IN_VTREE = 126
"""Snapshots a PowerFlex vtree holds (Cinder's ``MAX_SNAPS_IN_VTREE``)."""

VTREE_SIZE = "powerflex_max_image_cache_vtree_size"

RESULT_NAMES = {Code.SUCCESS: "Success", Code.WARNING: "Warning",
                Code.FAILURE: "Failure"}

LAYOUTS = {"MediumGranularity": "medium granularity",
           "FineGranularity": "fine granularity",
           "ErasureCoding": "erasure-coded"}

QUIET_LOGGERS = ("cinder", "powerflex_cache_driver", "urllib3",
                 "keystoneauth")
"""Loggers silenced while checking: every problem they would log is said
in a check's details instead."""


@dataclasses.dataclass
class Gateway:
    """What the checks of one backend learnt about its gateway."""

    driver: Any = None
    blocked: Optional[str] = None
    """Why the array cannot be asked: the details of a "not checked"."""
    pools: dict[str, dict] = dataclasses.field(default_factory=dict)
    """``pd:pool`` -> the pool's properties, for the pools found."""
    erasure_coded: Optional[bool] = None


def _ok(details: str) -> Result:
    return Result(Code.SUCCESS, details)


def _warn(details: str) -> Result:
    return Result(Code.WARNING, details)


def _fail(details: str) -> Result:
    return Result(Code.FAILURE, details)


def check_cinder_release() -> Result:
    """Check 10: the installed Cinder is a release this package supports."""
    low, high = SUPPORTED_CINDER
    try:
        version = importlib_metadata.version("cinder")
    except importlib_metadata.PackageNotFoundError:
        return _fail("Cinder is not installed in this Python environment: "
                     "run this command with the cinder-volume virtualenv's "
                     "Python.")
    match = re.match(r"(\d+)\.", version)
    major = int(match.group(1)) if match else 0
    if not low <= major <= high:
        return _fail("Cinder %s is not a release this package supports "
                     "(%d.x to %d.x): install Cinder %d to %d, or the "
                     "powerflex-cache-driver release made for Cinder %s."
                     % (version, low, high, low, high, version))
    return _ok("Cinder %s (supported: %d.x to %d.x)." % (version, low, high))


class StatusCommands(upgradecheck.UpgradeCommands):
    """The checks of ``powerflex-cache-status check``.

    Checks 1 to 7 run for each backend, in that order (the array checks
    use what the gateway checks found), then checks 8 to 11 once.
    """

    display_title = "powerflex-cache-status check"

    def __init__(self, conf: cfg.ConfigOpts,
                 backends: Sequence[common.Backend]) -> None:
        super().__init__()
        self.conf = conf
        self.backends = list(backends)
        self.gateways = {b.name: Gateway() for b in self.backends}
        self.secrets = self._secrets()
        checks: list[tuple[str, Any]] = []
        self.rows: list[tuple[str, Optional[str]]] = []
        for backend in self.backends:
            for title, method in self.BACKEND_CHECKS:
                checks.append(("%s (%s)" % (title, backend.name),
                               (self._guarded(method),
                                {"backend": backend})))
                self.rows.append((title, backend.name))
        for title, method in self.SERVICE_CHECKS:
            checks.append((title, self._guarded(method)))
            self.rows.append((title, None))
        self._upgrade_checks = tuple(checks)

    # -- plumbing -------------------------------------------------------

    def _secrets(self) -> list[str]:
        url = self.conf.coordination.backend_url or ""
        found = [os.environ.get("OS_PASSWORD"), url,
                 urllib.parse.urlsplit(url).password]
        for backend in self.backends:
            # Registered here as the driver registers them: the driver may
            # never be set up.
            backend.configuration.append_config_values(san.san_opts)
            backend.configuration.append_config_values(
                volume_driver.volume_opts)
            found.append(backend.configuration.safe_get("san_password"))
            for device in (backend.configuration.safe_get(
                    "replication_device") or []):
                found.append(device.get("san_password"))
        return sorted({s for s in found if s}, key=len, reverse=True)

    def scrub(self, text: Optional[str]) -> Optional[str]:
        """``text`` with every configured secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***") if text else text
        return text

    @staticmethod
    def _guarded(method: Callable[..., Result]) -> Callable[..., Result]:
        """Run a check; a failure of the check itself is a Failure row."""
        def run(self: "StatusCommands", **kwargs: Any) -> Result:
            try:
                result = method(self, **kwargs)
            except Exception as error:
                result = _fail("The check could not run (%s: %s); fix what "
                               "it says and run the check again."
                               % (type(error).__name__, error))
            return Result(result.code, self.scrub(result.details))
        return run

    def run_checks(self) -> list[dict[str, Any]]:
        """Run every check; return the JSON rows."""
        rows = []
        for (title, backend), (_name, func) in zip(self.rows,
                                                   self._upgrade_checks):
            if isinstance(func, tuple):
                result = func[0](self, **func[1])
            else:
                result = func(self)
            rows.append({"check": title, "backend": backend,
                         "result": RESULT_NAMES[result.code],
                         "details": result.details})
        return rows

    def _client(self, backend: common.Backend) -> Any:
        return self.gateways[backend.name].driver.primary_client

    @staticmethod
    def _timeout(client: Any) -> tuple[float, float]:
        return (client.rest_api_connect_timeout,
                client.rest_api_read_timeout)

    def _not_checked(self, backend: common.Backend) -> Optional[Result]:
        blocked = self.gateways[backend.name].blocked
        return _warn("Not checked: %s." % blocked) if blocked else None

    # -- 1. the gateway answers over HTTPS ---------------------------------

    def check_gateway_tls(self, backend: common.Backend) -> Result:
        """The gateway answers and its certificate verifies."""
        gateway = self.gateways[backend.name]
        section = backend.name
        see = "see check 'Gateway TLS (%s)'" % section
        try:
            gateway.driver = common.open_driver(backend)
        except Exception as error:
            gateway.blocked = "the driver could not be set up (%s)" % see
            return _fail("The driver refuses the settings of [%s]: %s Fix "
                         "san_ip, san_login, san_password, "
                         "driver_ssl_cert_verify and driver_ssl_cert_path "
                         "there." % (section, error))
        client = self._client(backend)
        verify = client._get_verify_cert()
        address = "https://%s:%s" % (client.rest_ip, client.rest_port)
        gateway.blocked = "the gateway did not answer (%s)" % see
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # InsecureRequestWarning
                requests.get(client.base_url + "/version", verify=verify,
                             timeout=self._timeout(client))
        except requests.exceptions.SSLError as error:
            reason = re.search(r"certificate verify failed: ([^(')\]]+)",
                               str(error))
            return _fail("The certificate of the gateway at %s does not "
                         "verify against driver_ssl_cert_path = %s in [%s] "
                         "(%s): set driver_ssl_cert_path to the CA file "
                         "that signed the gateway's certificate."
                         % (address, verify, section,
                            reason.group(1).strip() if reason
                            else "TLS handshake failed"))
        except requests.exceptions.Timeout:
            return _fail("The gateway at %s did not answer within %s s: "
                         "check san_ip and powerflex_rest_server_port in "
                         "[%s] and that the gateway is up and reachable "
                         "from this host."
                         % (address, max(self._timeout(client)), section))
        except requests.exceptions.ConnectionError:
            return _fail("The gateway at %s is unreachable (connection "
                         "refused or no route): check san_ip and "
                         "powerflex_rest_server_port in [%s] and that the "
                         "gateway is up." % (address, section))
        except OSError as error:
            return _fail("driver_ssl_cert_path = %s in [%s] cannot be read "
                         "(%s): set it to the gateway's CA file."
                         % (verify, section, error))
        gateway.blocked = None
        if not verify:
            return _warn("driver_ssl_cert_verify is False in [%s]: the "
                         "gateway at %s is not authenticated, so whoever is "
                         "on the path can read the gateway password; set "
                         "driver_ssl_cert_verify = True and "
                         "driver_ssl_cert_path to the gateway's CA file."
                         % (section, address))
        return _ok("The gateway at %s answers over HTTPS; its certificate "
                   "verifies against %s." % (address, verify))

    # -- 2. the credentials log in ---------------------------------------

    def check_login(self, backend: common.Backend) -> Result:
        """san_login / san_password log in to the gateway."""
        gateway = self.gateways[backend.name]
        if gateway.blocked:
            return self._not_checked(backend)
        client = self._client(backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = requests.get(
                client.base_url + "/login",
                auth=(client.rest_username, client.rest_password),
                verify=client._get_verify_cert(),
                timeout=self._timeout(client))
        if answer.status_code != 200:
            gateway.blocked = ("the gateway refused the login (see check "
                               "'Gateway login (%s)')" % backend.name)
            if answer.status_code in (401, 403):
                return _fail("The gateway refused san_login = %s with the "
                             "san_password of [%s] (HTTP %d): set the "
                             "gateway user's name and password there."
                             % (client.rest_username, backend.name,
                                answer.status_code))
            return _fail("The gateway answered the login of san_login = %s "
                         "with HTTP %d: check the gateway, san_ip and "
                         "powerflex_rest_server_port in [%s]."
                         % (client.rest_username, answer.status_code,
                            backend.name))
        version = client.query_rest_api_version(fromcache=False)
        return _ok("Logged in as %s; gateway REST API %s."
                   % (client.rest_username, version))

    # -- 3. the storage pools exist --------------------------------------

    def check_pools(self, backend: common.Backend) -> Result:
        """Every powerflex_storage_pools entry names a pool of the array."""
        gateway = self.gateways[backend.name]
        if gateway.blocked:
            return self._not_checked(backend)
        entries = gateway.driver.storage_pools or []
        if not entries:
            return _fail("powerflex_storage_pools is empty in [%s]: set it "
                         "to the pools the backend uses, as "
                         "protection_domain:pool entries separated by "
                         "commas." % backend.name)
        client = self._client(backend)
        missing = []
        for entry in entries:
            pd, _sep, pool = entry.partition(":")
            if not pd or not pool or ":" in pool:
                missing.append("%s (not protection_domain:pool)" % entry)
                continue
            try:
                gateway.pools[entry] = client.get_storage_pool_properties(
                    pd, pool)
            except Exception as error:
                missing.append("%s (%s)" % (entry, str(error).rstrip(".")))
        if missing:
            return _fail("powerflex_storage_pools in [%s] names pools the "
                         "array does not have: %s; correct those entries "
                         "to existing protection_domain:pool names."
                         % (backend.name, "; ".join(missing)))
        return _ok("Found %s." % ", ".join(entries))

    # -- 4. zero padding ---------------------------------------------------

    def check_zero_padding(self, backend: common.Backend) -> Result:
        """Every pool pads new volumes with zeros."""
        gateway = self.gateways[backend.name]
        if gateway.blocked:
            return self._not_checked(backend)
        if not gateway.pools:
            return _warn("Not checked: no pool of powerflex_storage_pools "
                         "was found (see check 'Storage pools (%s)')."
                         % backend.name)
        unpadded = [name for name, props in gateway.pools.items()
                    if not props.get("zeroPaddingEnabled")]
        if unpadded:
            return _warn("Pool(s) %s of powerflex_storage_pools in [%s] "
                         "have zero padding off, so a new volume there can "
                         "show data of deleted volumes and every copy "
                         "through this host (cross-pool clones, cache "
                         "rotations) must write every block instead of "
                         "skipping zeros: enable zero padding on the pool "
                         "(PowerFlex allows it only while the pool has no "
                         "devices) or use padded pools."
                         % (", ".join(unpadded), backend.name))
        return _ok("Zero padding is on in %s: copies through this host "
                   "skip zero blocks." % ", ".join(gateway.pools))

    # -- 5. generation and granularity -----------------------------------

    def check_granularity(self, backend: common.Backend) -> Result:
        """The system's generation and so the allocation granularity."""
        gateway = self.gateways[backend.name]
        if gateway.blocked:
            return self._not_checked(backend)
        client = self._client(backend)
        first = (gateway.driver.storage_pools or [":"])[0]
        pd = first.partition(":")[0]
        try:
            domain = client._get_protection_domain_properties(pd)
        except Exception:
            return _warn("Not checked: protection domain %r of "
                         "powerflex_storage_pools in [%s] was not found "
                         "(see check 'Storage pools (%s)')."
                         % (pd, backend.name, backend.name))
        array_ec = str(domain.get("genType", "Mirroring")).lower() == "ec"
        if hasattr(client, "init_powerflex_gen_type"):
            client.init_powerflex_gen_type(pd)
        ec = compat.is_erasure_coded(client)
        version = client.query_rest_api_version()
        if array_ec and not ec:
            return _fail("The array behind [%s] is a PowerFlex %s "
                         "erasure-coded system, which the PowerFlex driver "
                         "of Cinder %s does not support: use Cinder 29 or "
                         "later with this backend."
                         % (backend.name, version,
                            importlib_metadata.version("cinder")))
        gateway.erasure_coded = ec
        layouts = sorted({LAYOUTS.get(props.get("dataLayout"),
                                      str(props.get("dataLayout")))
                          for props in gateway.pools.values()})
        return _ok("PowerFlex %s, %s, %s pools: volumes are allocated in "
                   "%d GiB steps."
                   % (version, "erasure-coded" if ec else "Mirroring",
                      " and ".join(layouts) or "unknown",
                      sizing.granularity(ec)))

    # -- 6. the image-volume cache ---------------------------------------

    def check_image_cache(self, backend: common.Backend) -> Result:
        """The cache is on for the backend and the internal tenant set."""
        if not backend.configuration.safe_get("image_volume_cache_enabled"):
            return _warn("image_volume_cache_enabled is False in [%s]: "
                         "volumes from images are downloaded from Glance "
                         "each time instead of cloned on the array from a "
                         "cache entry; set image_volume_cache_enabled = "
                         "True in [%s]." % (backend.name, backend.name))
        project = self.conf.cinder_internal_tenant_project_id
        user = self.conf.cinder_internal_tenant_user_id
        if not project or not user:
            unset = [name for name, value in (
                ("cinder_internal_tenant_project_id", project),
                ("cinder_internal_tenant_user_id", user)) if not value]
            return _warn("%s not set in [DEFAULT], so the image-volume "
                         "cache of [%s] stays off (its volumes belong to "
                         "the internal tenant): set "
                         "cinder_internal_tenant_project_id and "
                         "cinder_internal_tenant_user_id in [DEFAULT]."
                         % (" and ".join(unset)
                            + (" is" if len(unset) == 1 else " are"),
                            backend.name))
        if os.environ.get("OS_AUTH_URL"):
            problem = self._keystone_project_problem(project)
            if problem:
                return _warn(problem)
            return _ok("The cache is on; internal tenant project %s "
                       "exists in Keystone." % project)
        return _ok("The cache is on; internal tenant project %s, user %s "
                   "(no OS_AUTH_URL: the project was not looked up in "
                   "Keystone)." % (project, user))

    @staticmethod
    def _keystone_project_problem(project: str) -> Optional[str]:
        """Why Keystone does not confirm the project, or None."""
        env = os.environ.get
        try:
            auth = loading.get_plugin_loader("password").load_from_options(
                auth_url=env("OS_AUTH_URL"), username=env("OS_USERNAME"),
                password=env("OS_PASSWORD"),
                project_name=env("OS_PROJECT_NAME"),
                user_domain_name=env("OS_USER_DOMAIN_NAME", "Default"),
                project_domain_name=env("OS_PROJECT_DOMAIN_NAME",
                                        "Default"))
            sess = session.Session(auth=auth, verify=env("OS_CACERT", True),
                                   timeout=10)
            answer = sess.get("/projects/%s" % project, raise_exc=False,
                              endpoint_filter={
                                  "service_type": "identity",
                                  "interface": env("OS_INTERFACE",
                                                   "public"),
                                  "version": (3, 0)})
        except Exception as error:  # any reason Keystone cannot answer
            return ("Keystone could not be asked whether internal tenant "
                    "project %s exists (%s): check the OS_* variables of "
                    "this shell, or ignore this if the project is known to "
                    "exist." % (project, type(error).__name__))
        if answer.status_code == 404:
            return ("cinder_internal_tenant_project_id = %s in [DEFAULT] "
                    "is not a Keystone project: set it to the id of the "
                    "project that owns the image-volume cache." % project)
        if answer.status_code != 200:
            return ("Keystone answered HTTP %d when asked for internal "
                    "tenant project %s: use OS_* credentials allowed to "
                    "read projects, or ignore this if the project is known "
                    "to exist." % (answer.status_code, project))
        return None

    # -- 7. cache entries against the vtree limit ---------------------------

    def check_vtree_limit(self, backend: common.Backend) -> Result:
        """Cache rotation settings against the 126 snapshots of a vtree."""
        config = backend.configuration
        config.append_config_values(stock.powerflex_opts)
        section = backend.name
        known = any(opt.name == VTREE_SIZE for opt in stock.powerflex_opts)
        if not known:
            # Read it raw: this release ignores it.
            CONF.register_opt(cfg.StrOpt(VTREE_SIZE), group=section)
            if CONF[section][VTREE_SIZE] not in (None, "", "0"):
                return _warn("%s is set in [%s] but Cinder %s does not "
                             "know it (it appeared in 28.0.0) and ignores "
                             "it: cache entries are replaced only when the "
                             "array refuses a snapshot (%d per vtree); "
                             "remove the option or upgrade Cinder."
                             % (VTREE_SIZE, section,
                                importlib_metadata.version("cinder"),
                                MAX_SNAPS_IN_VTREE))
            size = 0
        else:
            try:
                size = config.safe_get(VTREE_SIZE) or 0
            except ValueError:
                return _fail("%s in [%s] is not a number from 0 to %d "
                             "(the array holds %d snapshots per vtree), so "
                             "cinder-volume will not start: set it to %d or "
                             "less, or 0 for the array's limit."
                             % (VTREE_SIZE, section, MAX_SNAPS_IN_VTREE,
                                MAX_SNAPS_IN_VTREE, MAX_SNAPS_IN_VTREE))
        max_count = config.safe_get("image_volume_cache_max_count") or 0
        count = ("at most %d entries (image_volume_cache_max_count)"
                 % max_count if max_count > 0
                 else "any number of entries (image_volume_cache_max_count "
                      "= 0)")
        if size == 1:
            return _warn("%s = 1 in [%s] counts the cache entry itself, so "
                         "every clone of an entry first copies it through "
                         "this host into a new vtree: set it to 0 (the "
                         "array's %d snapshots) or a value above 1."
                         % (VTREE_SIZE, section, MAX_SNAPS_IN_VTREE))
        clones = size - 1 if size else MAX_SNAPS_IN_VTREE
        limit = ("%s = %d" % (VTREE_SIZE, size) if size
                 else "the array's %d snapshots per vtree"
                 % MAX_SNAPS_IN_VTREE)
        return _ok("Each cache entry serves %d clones (%s) before it is "
                   "copied into a new vtree; the cache holds %s, one vtree "
                   "each." % (clones, limit, count))

    # -- 8. to 11.: the service ------------------------------------------

    def check_volume_manager(self) -> Result:
        """volume_manager is this package's."""
        chosen = self.conf.volume_manager
        try:
            chosen_class = importutils.import_class(chosen)
        except (ImportError, ValueError) as error:
            return _fail("volume_manager = %s in [DEFAULT] cannot be "
                         "imported (%s), so cinder-volume will not start: "
                         "set volume_manager = %s." %
                         (chosen, error, manager.CLASS_PATH))
        if not issubclass(chosen_class, manager.VolumeManager):
            return _warn("volume_manager is %s in [DEFAULT]: the pools' "
                         "allocated_capacity_gb then reads below what "
                         "Cinder records (this driver records array sizes "
                         "and makes cache volumes itself) and extends "
                         "record the requested size, not the array's; set "
                         "volume_manager = %s in [DEFAULT]."
                         % (chosen, manager.CLASS_PATH))
        return _ok("volume_manager is %s." % chosen)

    def check_coordination(self) -> Result:
        """Active/active (cluster) has a shared coordination backend."""
        cluster = self.conf.cluster
        url = self.conf.coordination.backend_url or ""
        scheme = url.partition("://")[0] or "none"
        if not cluster:
            return _ok("Not clustered (no cluster in [DEFAULT]); locks are "
                       "taken through the %s coordination backend."
                       % scheme)
        if not url or scheme == "file":
            return _fail("cluster = %s is set in [DEFAULT] (active/active) "
                         "but [coordination] backend_url is %s, which the "
                         "other services of the cluster do not share, so "
                         "two of them can rotate the same cache entry at "
                         "once: set backend_url in [coordination] to a "
                         "tooz backend every service reaches (redis://, "
                         "etcd3+http://, ...)."
                         % (cluster, "a file:// lock (the default)" if url
                            else "empty"))
        return _ok("Cluster %s coordinates through a %s:// backend."
                   % (cluster, scheme))

    def check_lock_path(self) -> Result:
        """``[oslo_concurrency] lock_path`` is set and writable."""
        lock_path = self.conf.oslo_concurrency.lock_path
        if not lock_path:
            return _fail("lock_path is not set in [oslo_concurrency]: "
                         "cinder-volume's locks and this driver's record of "
                         "the volumes its copies map to this host live "
                         "there; set it to a directory every cinder-volume "
                         "service of this host shares (for instance "
                         "/var/lib/cinder/tmp).")
        if not os.access(lock_path, os.W_OK | os.X_OK):
            return _fail("lock_path = %s in [oslo_concurrency] is not a "
                         "directory this user can write: create it, owned "
                         "by the user cinder-volume runs as." % lock_path)
        left = sorted(host_mappings.provider_id_of(record.key)
                      for record in host_mappings.stale_records()
                      if record.ours)
        if left:
            return _warn("lock_path = %s; %d array volumes are mapped to "
                         "this host by copies whose service ended mid-copy "
                         "(%s): the first copy after cinder-volume starts "
                         "unmaps them." % (lock_path, len(left),
                                           ", ".join(left)))
        return _ok("lock_path = %s; no volume is left mapped to this host "
                   "by a copy." % lock_path)

    def check_release(self) -> Result:
        """The installed Cinder is supported."""
        return check_cinder_release()

    BACKEND_CHECKS = (
        ("Gateway TLS", check_gateway_tls),
        ("Gateway login", check_login),
        ("Storage pools", check_pools),
        ("Zero padding", check_zero_padding),
        ("Granularity", check_granularity),
        ("Image-volume cache", check_image_cache),
        ("Cache vtree limit", check_vtree_limit),
    )
    SERVICE_CHECKS = (
        ("Volume manager", check_volume_manager),
        ("Coordination", check_coordination),
        ("Lock path", check_lock_path),
        ("Cinder release", check_release),
    )


def _add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="Check cinder.conf, the gateway and the array before "
                      "(re)starting cinder-volume.")
    parser.set_defaults(action="check")


command_opt = cfg.SubCommandOpt("command", title="Commands",
                                handler=_add_parsers)


def _register_cli() -> None:
    CONF.register_cli_opts(common.common_cli_opts)
    CONF.register_cli_opt(command_opt)


def _package_version() -> str:
    try:
        return importlib_metadata.version("powerflex-cache-driver")
    except importlib_metadata.PackageNotFoundError:
        return ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``powerflex-cache-status``; return the exit status.

    0 when every check succeeds, 1 when one warns, 2 when one fails or the
    command cannot run (the reason is one line on standard error).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _register_cli()
    try:
        conf = common.load_config(argv, version=_package_version())
        backends = common.select_backends(conf, conf.backend)
        commands = StatusCommands(conf, backends)
        saved = {}
        for name in QUIET_LOGGERS:
            logger = python_logging.getLogger(name)
            saved[name] = logger.level
            logger.setLevel(python_logging.CRITICAL)
        try:
            if conf.format == "json":
                rows = commands.run_checks()
                common.emit(rows, (), "json")
                codes = {name: code for code, name in RESULT_NAMES.items()}
                return max((int(codes[row["result"]]) for row in rows),
                           default=0)
            return int(commands.check())
        finally:
            for name, level in saved.items():
                python_logging.getLogger(name).setLevel(level)
    except common.CommandError as error:
        print(str(error), file=sys.stderr)
        return int(Code.FAILURE)
    finally:
        CONF.reset()


if __name__ == "__main__":
    sys.exit(main())
