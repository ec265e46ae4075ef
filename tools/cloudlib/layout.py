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
"""Where the one-machine cloud keeps its files, and the ports it listens on.

Everything the cloud writes lives under ``.cloud/`` at the repository root
(git-ignored, removed by ``tools/cloud down``), except the virtualenv that
holds the OpenStack services (``.venv-cloud/``), which is kept between runs
because building it takes minutes.
"""

import dataclasses
import json
import os
from typing import Any

HOST = "127.0.0.1"

PORTS = {
    "mariadb": 21306,
    "rabbitmq": 21672,
    "rabbitmq_dist": 21673,
    "epmd": 21369,
    "redis": 21379,
    "keystone": 21500,
    "glance": 21292,
    "cinder": 21776,
    "gateway": 21443,
}
"""Loopback ports of every service: away from the services' usual ports,
so that a system instance of any of them does not get in the way, and
below the kernel's ephemeral range (``ip_local_port_range``, 32768 and up
by default), so that no outgoing connection on the machine (the readiness
polls' own included) can be handed one of them before its service binds
it."""

REGION = "RegionOne"
CLUSTER = "cloud"
BACKEND = "powerflex"
VOLUME_HOSTS = ("cloud-vol1", "cloud-vol2")
"""The ``host`` of each cinder-volume service; both are in ``CLUSTER``."""
SDC_GUID = "5D1C0A7E-4B1F-4C2A-9E3D-00000000C10D"
"""The GUID the emulated SDC of this host answers os-brick with."""
SNAPSHOT_LIMIT = 10
"""Snapshots a vtree of the simulated array may hold (the real array: 126),
small so that tests cross it with a dozen volumes."""
REMOVAL_SECONDS = 5
"""How long a removed array volume stays in deletion on the simulated array
(rc 212 on requests naming it, its name still taken), as on a real array,
which frees a volume's capacity after answering ``removeVolume``."""
GRANULARITY_GIB = 8

DRIVERS = {
    "ours": "powerflex_cache_driver.driver.PowerFlexCacheDriver",
    "stock": "cinder.volume.drivers.dell_emc.powerflex.driver.PowerFlexDriver",
}
MANAGERS = {
    "ours": "powerflex_cache_driver.manager.VolumeManager",
    "stock": "cinder.volume.manager.VolumeManager",
}
"""``volume_manager`` for each driver, as its documentation asks."""

SERVICE_PACKAGES = (
    "cinder==29.0.0",
    "glance==33.0.0",
    "keystone==30.0.0",
    "tempest==47.0.0",
    "cinder-tempest-plugin==1.23.0",
    "python-openstackclient",
    # Glance's cinder store (cinder:// locations) talks to Cinder with it.
    "python-cinderclient",
    "PyMySQL",
    "gunicorn",
    "redis",
    # This package is built from the checkout with the virtualenv's own
    # setuptools and pbr (no build isolation): wheel is what that needs.
    "wheel",
)
"""What the services' virtualenv holds besides this package."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths of one cloud, all derived from the repository root."""

    root: str

    @classmethod
    def of_repository(cls) -> "Layout":
        """The layout of the repository holding this file."""
        here = os.path.dirname(os.path.abspath(__file__))
        return cls(os.path.dirname(os.path.dirname(here)))

    @property
    def state(self) -> str:
        """``.cloud/``: everything the running cloud writes."""
        return os.path.join(self.root, ".cloud")

    @property
    def venv(self) -> str:
        """The virtualenv of the OpenStack services (kept across runs)."""
        return os.path.join(self.root, ".venv-cloud")

    def venv_bin(self, name: str) -> str:
        """Path of a program in the services' virtualenv."""
        return os.path.join(self.venv, "bin", name)

    def path(self, *parts: str) -> str:
        """A path under ``.cloud/``."""
        return os.path.join(self.state, *parts)

    @property
    def description(self) -> str:
        """``.cloud/cloud.json``: what is running, for tools and tests."""
        return self.path("cloud.json")

    @property
    def openrc(self) -> str:
        """``.cloud/openrc``: the OpenStack client's variables."""
        return self.path("openrc")

    def read_description(self) -> dict[str, Any]:
        """Return ``cloud.json``; raise FileNotFoundError if not up."""
        with open(self.description) as handle:
            return json.load(handle)


def url(service: str, path: str = "") -> str:
    """The loopback URL of a service's API."""
    scheme = "https" if service == "gateway" else "http"
    return "%s://%s:%d%s" % (scheme, HOST, PORTS[service], path)
