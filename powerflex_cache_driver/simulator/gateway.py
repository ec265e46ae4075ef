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
"""The simulated PowerFlex gateway: array, HTTPS server, faults and log.

Typical use in a test::

    with GatewaySimulator(tmpdir) as sim:
        # san_ip=sim.host, powerflex_rest_server_port=sim.port,
        # driver_ssl_cert_verify=True, driver_ssl_cert_path=sim.ca_cert_path
        ...
        assert sim.counts()["setVolumeSize"] == 0
"""

import collections
import os
import ssl
import threading
from typing import Any, Iterable, Optional

from powerflex_cache_driver.simulator import array as sim_array
from powerflex_cache_driver.simulator import auth
from powerflex_cache_driver.simulator import calllog
from powerflex_cache_driver.simulator import faults as faults_mod
from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import server
from powerflex_cache_driver.simulator import tls

DEFAULT_SDC_GUID = "0C4E8A9B-0000-4000-8000-00000000A001"
DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "Simulat0r!"
BACKEND_CONFIG_FILE = "cinder-backend.conf"


class GatewaySimulator:
    """A stateful PowerFlex gateway served over HTTPS on loopback.

    :param workdir: directory for certificates, backing files (sparse),
        the ``by-id`` directory and the backend configuration hint file.
    :param gen_type: ``"Mirroring"`` (PowerFlex 3.x/4.x) or ``"EC"``
        (PowerFlex 5).
    :param version: gateway version; default ``"4.5"``, ``"5.0"`` for EC.
    :param username: accepted login user.
    :param password: accepted login password (never logged or recorded).
    :param protection_domain: protection domain name.
    :param pools: storage pool names (or mappings, see
        :class:`~powerflex_cache_driver.simulator.array.Array`).
    :param sdc_guids: one SDC per GUID.
    :param nvme_host_nqns: one NVMe host per NQN.
    :param snapshot_limit: snapshots per VTree (None: 126, or 1022 on EC).
    :param latency: ``{op: seconds}`` steady latency table.
    :param strict_size: refuse (500/225) ``setVolumeSize`` sizes that are
        not a multiple of the granularity, as the array does (default);
        False rounds them up instead.
    :param removal_seconds: keep a removed volume "in deletion" this long
        (rc 212 on requests naming it, its name taken, counted in
        ``numOfVolumesInDeletion``), as a real array does while it frees
        the volume's capacity; None (default) removes at once.
    :param json_401: answer 401s with the JSON error envelope instead of
        the gateway's non-JSON error page (the default, as a real gateway).
    :param host: address to bind, ``127.0.0.1`` by default.
    :param port: port to bind, 0 (any free port) by default.
    :param token_ttl: token lifetime in seconds; None (default) = no expiry.
    :param loop_devices: publish mapped volumes as Linux loop devices over
        their backing files, real block devices as an SDC shows (root;
        where the machine refuses, the files, and
        ``array.loop_refused`` says why). Detached on unmapping and by
        :meth:`stop`.
    :param by_id_dir: directory for the ``emc-vol-<systemId>-<volumeId>``
        links of mapped volumes instead of ``<workdir>/by-id``: typically
        ``/dev/disk/by-id``, where os-brick's ScaleIO connector looks.
        Created (parents too) when needed; the links exist while the
        simulator serves: :meth:`stop` removes them and the directories it
        created (when empty), and nothing else there.
    """

    def __init__(self, workdir: "os.PathLike[str] | str",
                 gen_type: str = model.MIRRORING,
                 version: Optional[str] = None,
                 username: str = DEFAULT_USERNAME,
                 password: str = DEFAULT_PASSWORD,
                 protection_domain: str = "PD1",
                 pools: Iterable[model.PoolSpec] = ("SP1", "SP2"),
                 sdc_guids: Iterable[str] = (DEFAULT_SDC_GUID,),
                 nvme_host_nqns: Iterable[str] = (),
                 snapshot_limit: Optional[int] = None,
                 latency: Optional[dict[str, float]] = None,
                 strict_size: bool = True,
                 host: str = "127.0.0.1", port: int = 0,
                 token_ttl: Optional[float] = None,
                 loop_devices: bool = False,
                 by_id_dir: "Optional[os.PathLike[str] | str]" = None,
                 removal_seconds: Optional[float] = None,
                 json_401: bool = False
                 ) -> None:
        self.workdir = os.path.abspath(os.fspath(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        is_ec = gen_type.lower() == "ec"
        self.username = username
        self.host = host
        self.port = port
        tls_dir = os.path.join(self.workdir, "tls")
        os.makedirs(tls_dir, exist_ok=True)
        self._certs = tls.generate(tls_dir)
        self.ca_cert_path: str = self._certs.ca_cert
        shared = by_id_dir is not None
        self.by_id_dir = (os.path.abspath(os.fspath(by_id_dir))
                          if by_id_dir is not None
                          else os.path.join(self.workdir, "by-id"))
        self.array = sim_array.Array(
            self.workdir, self.by_id_dir, gen_type=gen_type,
            version=version or ("5.0" if is_ec else "4.5"),
            protection_domain=protection_domain, pools=pools,
            sdc_guids=sdc_guids, nvme_host_nqns=nvme_host_nqns,
            snapshot_limit=snapshot_limit, strict_size=strict_size,
            loop_devices=loop_devices, shared_by_id_dir=shared,
            removal_seconds=removal_seconds)
        self.json_401 = json_401
        self.tokens = auth.TokenStore(username, password, token_ttl)
        self.faults = faults_mod.FaultInjector(latency,
                                               self.tokens.invalidate_all)
        self.log = calllog.CallLog()
        self._server: Optional[server.GatewayServer] = None
        self._thread: Optional[threading.Thread] = None
        self._backend_password = password

    def __repr__(self) -> str:
        return "<GatewaySimulator %s %s %s>" % (
            self.array.gen_type, self.array.version,
            self.url if self._server else "stopped")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "GatewaySimulator":
        """Start serving in a background thread; return self."""
        if self._server is not None:
            return self
        self.array.restore_devices()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._certs.server_cert,
                                self._certs.server_key)
        self._server = server.GatewayServer((self.host, self.port), context,
                                            self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve, name="powerflex-sim-%d" % self.port,
            daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and the listening socket.

        Loop devices are detached too (mapped volumes' links point at their
        backing files until the next :meth:`start`; with a ``by_id_dir``
        of the caller's, the links go until the next :meth:`start`, and so
        do the directories the simulator created for them).
        """
        self.array.release_devices()
        srv, thread = self._server, self._thread
        if srv is None:
            return
        srv.stop()
        if thread is not None:
            thread.join()
        srv.close_connections()
        srv.server_close()
        self._server = self._thread = None

    def __enter__(self) -> "GatewaySimulator":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server thread serves."""
        return self._server is not None

    # ------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``https://host:port`` of the gateway."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "https://%s:%d" % (host, self.port)

    @property
    def system_id(self) -> str:
        """The 16-hex system id (also the MDM id of by-id names)."""
        return self.array.system_id

    @property
    def protection_domain_id(self) -> str:
        """Id of the protection domain."""
        return self.array.protection_domain.id

    @property
    def pool_ids(self) -> dict[str, str]:
        """Pool name -> pool id."""
        with self.array.lock:
            return {p.name: p.id for p in self.array.pools.values()}

    @property
    def sdc_ids(self) -> dict[str, str]:
        """SDC GUID -> SDC id."""
        with self.array.lock:
            return {h.guid: h.id for h in self.array.hosts.values()
                    if h.guid}

    @property
    def nvme_host_ids(self) -> dict[str, str]:
        """NVMe host NQN -> host id."""
        with self.array.lock:
            return {h.nqn: h.id for h in self.array.hosts.values()
                    if h.nqn}

    def device_path(self, volume_id: str) -> str:
        """Path of the ``emc-vol-<systemId>-<volumeId>`` link of a volume.

        The link exists while the volume is mapped to at least one host.
        """
        return self.array.device_path(volume_id)

    # ------------------------------------------------------------ log

    @property
    def calls(self) -> list[calllog.Call]:
        """Every request received, oldest first."""
        return self.log.calls

    def counts(self) -> "collections.Counter[str]":
        """Requests by operation name."""
        return self.log.counts()

    def calls_of(self, op: str) -> list[calllog.Call]:
        """The requests of one operation."""
        return self.log.calls_of(op)

    def reset_calls(self) -> None:
        """Forget the recorded requests."""
        self.log.reset()

    # ------------------------------------------------------------ config

    def backend_options(self, pools: Optional[Iterable[str]] = None
                        ) -> dict[str, Any]:
        """Return the cinder.conf backend options pointing at this gateway.

        The password is included: keep the result out of logs.
        """
        names = list(pools) if pools is not None else list(self.pool_ids)
        pd = self.array.protection_domain.name
        return {
            "san_ip": self.host,
            "powerflex_rest_server_port": self.port,
            "san_login": self.username,
            "san_password": self._backend_password,
            "driver_ssl_cert_verify": True,
            "driver_ssl_cert_path": self.ca_cert_path,
            "powerflex_storage_pools": ",".join(
                "%s:%s" % (pd, name) for name in names),
        }

    def write_backend_config(self, section: str = "powerflex",
                             path: Optional[str] = None) -> str:
        """Write a cinder.conf backend section (mode 0600); return its path.

        The file holds the password, which is why it is the place to read
        credentials from instead of any log.
        """
        path = path or os.path.join(self.workdir, BACKEND_CONFIG_FILE)
        lines = ["[%s]" % section,
                 "volume_backend_name = %s" % section,
                 "volume_driver = powerflex_cache_driver.driver."
                 "PowerFlexCacheDriver"]
        for key, value in self.backend_options().items():
            lines.append("%s = %s" % (key, value))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return path
