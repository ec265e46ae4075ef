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
"""The configuration files of Keystone, Glance and Cinder in the cloud.

Each function returns the sections of one file as ``{section: {option:
value}}``; :func:`write` writes them (mode 0600: they hold passwords).
The Cinder backend section is the install guide's configuration example
with the simulated gateway's address, credentials and CA certificate.
"""

import configparser
import os
from typing import Any

from tools.cloudlib import layout

Sections = dict[str, dict[str, Any]]


def write(path: str, sections: Sections) -> str:
    """Write an ini file readable by its owner only; return its path."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for section, options in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            parser.set(section, key, str(value))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    return path


def _authtoken(user: str, password: str) -> dict[str, Any]:
    return {
        "www_authenticate_uri": layout.url("keystone"),
        "auth_url": layout.url("keystone"),
        "auth_type": "password",
        "username": user,
        "password": password,
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "service_token_roles_required": True,
    }


def keystone(lay: layout.Layout, database: str) -> Sections:
    """keystone.conf."""
    return {
        "DEFAULT": {"log_file": lay.path("log", "keystone-app.log")},
        "database": {"connection": database},
        "token": {"provider": "fernet"},
        # Tempest makes hundreds of users; bcrypt's default 12 rounds cost
        # half a second per password here (a test cloud, not a secret).
        "identity": {"password_hash_rounds": 4},
        "fernet_tokens": {"key_repository": lay.path("keystone", "fernet")},
        "fernet_receipts": {
            "key_repository": lay.path("keystone", "fernet-receipts")},
        "credential": {"key_repository": lay.path("keystone", "credential")},
    }


def glance(lay: layout.Layout, database: str, password: str) -> Sections:
    """glance-api.conf: file store, no image cache of its own.

    Beside the file store (the default), a ``cinder`` store, as operators
    without Ceph give Glance one: it takes the ``cinder://`` locations of
    volumes Cinder uploads with ``image_upload_use_cinder_backend``. It
    looks volumes up as the glance service user; it cannot read them (that
    would attach them to this host through os-brick, and the cloud gives
    Glance no PowerFlex client). Glance does not read a location's data to
    hash it (``do_secure_hash``).
    """
    return {
        "DEFAULT": {
            "log_file": lay.path("log", "glance-app.log"),
            "enabled_backends": "fs:file,cinder:cinder",
            "show_image_direct_url": True,
            "show_multiple_locations": False,
            "do_secure_hash": False,
        },
        "database": {"connection": database},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": lay.path("glance", "images")},
        "cinder": {
            "cinder_store_auth_address": layout.url("keystone", "/v3"),
            "cinder_store_user_name": "glance",
            "cinder_store_password": password,
            "cinder_store_project_name": "service",
            "cinder_os_region_name": layout.REGION,
        },
        "os_glance_staging_store": {
            "filesystem_store_datadir": lay.path("glance", "staging")},
        "os_glance_tasks_store": {
            "filesystem_store_datadir": lay.path("glance", "tasks")},
        "keystone_authtoken": _authtoken("glance", password),
        "paste_deploy": {"flavor": "keystone"},
        "oslo_concurrency": {"lock_path": lay.path("lock", "glance")},
    }


def cinder(lay: layout.Layout, *, database: str, transport: str,
           coordination: str, password: str, driver: str,
           internal_project: str, internal_user: str,
           backend: dict[str, Any]) -> Sections:
    """cinder.conf shared by the API, the scheduler and both volume services.

    ``backend`` is the simulated gateway's part of the backend section
    (address, port, credentials, CA certificate, pools).
    """
    venv_etc = os.path.join(lay.venv, "etc", "cinder")
    powerflex = {
        "volume_backend_name": layout.BACKEND,
        "volume_driver": layout.DRIVERS[driver],
        "image_volume_cache_enabled": True,
        "image_volume_cache_max_size_gb": 500,
        "image_volume_cache_max_count": 50,
    }
    powerflex.update(backend)
    # The install guide's example backs the backend with one pool: with two,
    # the scheduler spreads volumes over both and Cinder keeps one cache
    # entry (and downloads the image once) per pool.
    powerflex["powerflex_storage_pools"] = "PD1:SP1"
    return {
        "DEFAULT": {
            "state_path": lay.path("cinder"),
            "log_dir": lay.path("log"),
            "debug": True,
            "transport_url": transport,
            "auth_strategy": "keystone",
            "enabled_backends": layout.BACKEND,
            "volume_manager": layout.MANAGERS[driver],
            "default_volume_type": layout.BACKEND,
            "cluster": layout.CLUSTER,
            "glance_api_servers": layout.url("glance"),
            "allowed_direct_url_schemes": "cinder",
            "osapi_volume_listen": layout.HOST,
            "osapi_volume_listen_port": layout.PORTS["cinder"],
            "osapi_volume_workers": 1,
            "my_ip": layout.HOST,
            "rootwrap_config": lay.path("etc", "cinder", "rootwrap.conf"),
            "api_paste_config": os.path.join(venv_etc, "api-paste.ini"),
            "resource_query_filters_file": os.path.join(
                venv_etc, "resource_filters.json"),
            "image_conversion_dir": lay.path("cinder", "conversion"),
            "cinder_internal_tenant_project_id": internal_project,
            "cinder_internal_tenant_user_id": internal_user,
            "volume_name_template": "volume-%s",
            # Room for the active/active run and Tempest's plugin, which
            # create more volumes than Cinder's default quota allows.
            "quota_volumes": 200,
            "quota_snapshots": 200,
            "quota_gigabytes": 20000,
        },
        "database": {"connection": database},
        "coordination": {"backend_url": coordination},
        "keystone_authtoken": _authtoken("cinder", password),
        # Glance's API for adding an image location asks for the service
        # role: Cinder registers an uploaded volume's cinder:// location
        # as its service user.
        "glance": {
            "auth_type": "password",
            "auth_url": layout.url("keystone", "/v3"),
            "username": "cinder",
            "password": password,
            "project_name": "service",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "oslo_concurrency": {"lock_path": lay.path("lock", "cinder")},
        "oslo_messaging_notifications": {"driver": "noop"},
        layout.BACKEND: powerflex,
    }


def volume_host(lay: layout.Layout, host: str) -> Sections:
    """What differs between the two volume services: host and log file."""
    return {"DEFAULT": {"host": host,
                        "log_file": lay.path("log", "%s.log" % host)}}


def rootwrap(lay: layout.Layout) -> tuple[Sections, str]:
    """rootwrap.conf, and the extra filter file the cloud needs.

    Cinder's own filters (copied from its package) allow ``privsep-helper``
    only with a configuration file under ``/etc``; the cloud's
    configuration lives under ``.cloud/etc``, so one more filter allows it
    there (the services run as root already; rootwrap is kept so that the
    commands go the way they go in a deployment).
    """
    conf = {"DEFAULT": {
        "filters_path": lay.path("etc", "cinder", "rootwrap.d"),
        "exec_dirs": ",".join([os.path.join(lay.venv, "bin"), "/sbin",
                               "/usr/sbin", "/bin", "/usr/bin",
                               "/usr/local/bin", "/usr/local/sbin"]),
        "use_syslog": False,
    }}
    extra = ("[Filters]\n"
             "privsep-helper-cloud: CommandFilter, privsep-helper, root\n")
    return conf, extra
