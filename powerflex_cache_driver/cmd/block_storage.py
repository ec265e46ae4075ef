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
"""The Block Storage (and Image) API, for the changes the commands make.

``powerflex-cache-manage`` reads Cinder's database and the array, but every
change goes through Cinder's API as an admin, so that the scheduler, the
quotas, the locks and the driver's rules apply. Credentials come from the
``OS_*`` environment variables or from a cloud of ``clouds.yaml``
(:func:`session_from_env`); the endpoints from the service catalog.
No password or token is ever put in a message.
"""

import os
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
import yaml

VOLUME_SERVICE_TYPES = ("volumev3", "block-storage")
"""Catalog types tried, in order, for Cinder's v3 API."""

IMAGE_SERVICE_TYPE = "image"

BASE_MICROVERSION = "3.0"
MESSAGES_MICROVERSION = "3.3"
"""The first microversion with the user messages API."""

CLOUDS_YAML_PATHS = (
    "clouds.yaml",
    "~/.config/openstack/clouds.yaml",
    "/etc/openstack/clouds.yaml",
)
"""Where ``clouds.yaml`` is looked for, in order (as openstacksdk)."""

ENV_AUTH_OPTIONS = {
    "OS_AUTH_URL": "auth_url",
    "OS_USERNAME": "username",
    "OS_USER_ID": "user_id",
    "OS_PASSWORD": "password",
    "OS_PROJECT_NAME": "project_name",
    "OS_PROJECT_ID": "project_id",
    "OS_TENANT_NAME": "project_name",
    "OS_TENANT_ID": "project_id",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
    "OS_PROJECT_DOMAIN_ID": "project_domain_id",
    "OS_DOMAIN_NAME": "domain_name",
    "OS_DOMAIN_ID": "domain_id",
    "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
    "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
    "OS_TOKEN": "token",
    "OS_SYSTEM_SCOPE": "system_scope",
}
"""``OS_*`` variables and the keystoneauth option each one sets."""

FAILED_STATUSES = ("error", "error_deleting", "error_extending",
                   "error_restoring", "error_managing")


class ApiError(Exception):
    """The API refused a request, or could not be reached."""

    def __init__(self, message: str, status_code: Optional[int] = None):
        super().__init__(message)
        self.status_code = status_code


class NotFound(ApiError):
    """404: no such volume or image."""


class OverQuota(ApiError):
    """413: the project has no quota room for the request."""


class CredentialsError(Exception):
    """No usable credentials in the environment or clouds.yaml."""


class WaitTimeout(ApiError):
    """A volume did not reach the status waited for in time."""


# -- credentials -------------------------------------------------------------


def _find_clouds_yaml(paths: Iterable[str]) -> Optional[str]:
    for path in paths:
        path = os.path.expanduser(path)
        if os.path.isfile(path):
            return path
    return None


def load_cloud(name: str, environ: Mapping[str, str],
               paths: Iterable[str] = CLOUDS_YAML_PATHS) -> dict:
    """The entry ``name`` of the first ``clouds.yaml`` found.

    ``OS_CLIENT_CONFIG_FILE`` names a file to read first.

    :raises CredentialsError: no file, or no such cloud in it.
    """
    paths = list(paths)
    if environ.get("OS_CLIENT_CONFIG_FILE"):
        paths.insert(0, environ["OS_CLIENT_CONFIG_FILE"])
    path = _find_clouds_yaml(paths)
    if path is None:
        raise CredentialsError(
            "--os-cloud %s: no clouds.yaml in %s. Write one there, or set "
            "the OS_* variables instead." % (name, ", ".join(paths)))
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CredentialsError("Cannot read %s (%s). Fix the file or set "
                               "the OS_* variables instead."
                               % (path, type(error).__name__))
    cloud = (document.get("clouds") or {}).get(name)
    if not isinstance(cloud, dict):
        raise CredentialsError(
            "--os-cloud %s: %s has no such cloud (it has: %s). Name one of "
            "them." % (name, path,
                       ", ".join(sorted(document.get("clouds") or {}))
                       or "none"))
    return cloud


def _cloud_from_env(environ: Mapping[str, str]) -> dict:
    """The ``OS_*`` variables as a clouds.yaml entry."""
    auth = {option: environ[variable]
            for variable, option in ENV_AUTH_OPTIONS.items()
            if environ.get(variable)}
    cloud: dict[str, Any] = {"auth": auth}
    for variable, key in (("OS_AUTH_TYPE", "auth_type"),
                          ("OS_REGION_NAME", "region_name"),
                          ("OS_INTERFACE", "interface"),
                          ("OS_ENDPOINT_TYPE", "interface"),
                          ("OS_CACERT", "cacert"),
                          ("OS_CERT", "cert"),
                          ("OS_KEY", "key")):
        if environ.get(variable):
            cloud.setdefault(key, environ[variable])
    if environ.get("OS_INSECURE", "").lower() in ("1", "true", "yes"):
        cloud["verify"] = False
    return cloud


def _auth_type(cloud: dict) -> str:
    auth = cloud.get("auth") or {}
    if cloud.get("auth_type"):
        return str(cloud["auth_type"])
    if auth.get("application_credential_secret"):
        return "v3applicationcredential"
    if auth.get("token") and not auth.get("password"):
        return "v3token"
    return "password"


def _auth_plugin(cloud: dict) -> Any:
    """The keystoneauth plugin a clouds.yaml entry describes."""
    auth = dict(cloud.get("auth") or {})
    if not auth.get("auth_url"):
        raise CredentialsError(
            "No Keystone URL: set OS_AUTH_URL (and OS_USERNAME, OS_PASSWORD, "
            "OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME) "
            "for an admin, or name a cloud of clouds.yaml with --os-cloud.")
    auth_type = _auth_type(cloud)
    try:
        loader = loading.get_plugin_loader(auth_type)
    except ks_exceptions.NoMatchingPlugin:
        raise CredentialsError("Unknown auth_type %s. Use password, "
                               "v3applicationcredential or v3token."
                               % auth_type)
    known = {opt.dest for opt in loader.get_options()}
    unknown = sorted(set(auth) - known)
    if unknown:
        raise CredentialsError("auth_type %s takes no %s. Remove it from "
                               "the credentials." % (auth_type,
                                                     ", ".join(unknown)))
    try:
        return loader.load_from_options(**auth)
    except ks_exceptions.MissingRequiredOptions as error:
        names = ", ".join(opt.dest for opt in error.options)
        raise CredentialsError("The credentials lack %s. Set them (OS_* "
                               "variables or clouds.yaml)." % names)


def _verify(cloud: dict) -> Any:
    if cloud.get("verify") in (False, "false", "False"):
        return False
    return cloud.get("cacert") or True


def session_from_env(os_cloud: Optional[str] = None,
                     environ: Optional[Mapping[str, str]] = None,
                     paths: Iterable[str] = CLOUDS_YAML_PATHS
                     ) -> ks_session.Session:
    """A keystoneauth Session for the admin the environment names.

    ``os_cloud`` (or ``OS_CLOUD``) selects a cloud of ``clouds.yaml``;
    otherwise the ``OS_*`` variables are used. The session carries the
    cloud's ``region_name`` and ``interface`` as ``session.cloud``.

    :raises CredentialsError: the credentials are missing or incomplete.
    """
    environ = os.environ if environ is None else environ
    name = os_cloud or environ.get("OS_CLOUD")
    cloud = (load_cloud(name, environ, paths) if name
             else _cloud_from_env(environ))
    cert = cloud.get("cert")
    if cert and cloud.get("key"):
        cert = (cert, cloud["key"])
    session = ks_session.Session(auth=_auth_plugin(cloud),
                                 verify=_verify(cloud), cert=cert,
                                 user_agent="powerflex-cache-manage")
    session.cloud = {"region_name": cloud.get("region_name"),
                     "interface": cloud.get("interface") or "public"}
    return session


def have_credentials(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the environment names a cloud or a Keystone URL."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("OS_CLOUD") or environ.get("OS_AUTH_URL"))


# -- the API -----------------------------------------------------------------


def _error_message(response: Any) -> str:
    """The message of an OpenStack API error body, or the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
        if body.get("message"):
            return str(body["message"])
    return "HTTP %s %s" % (response.status_code, response.reason or "")


def raise_for_status(response: Any, what: str) -> None:
    """Raise the :class:`ApiError` an answer means, if any."""
    code = response.status_code
    if code < 400:
        return
    message = "%s: %s" % (what, _error_message(response))
    if code == 404:
        raise NotFound(message, code)
    if code == 413:
        raise OverQuota(message, code)
    raise ApiError(message, code)


def volume_base_url(endpoint: str, project_id: str) -> str:
    """The ``.../v3/{project_id}`` URL of a catalog's volume endpoint.

    Catalogs hold it as ``.../v3/{project_id}`` (the substituted form),
    ``.../v3`` or the unversioned root.
    """
    url = endpoint.rstrip("/")
    if url.endswith("/" + project_id):
        return url
    if not url.endswith("/v3"):
        url += "/v3"
    return "%s/%s" % (url, project_id)


def image_base_url(endpoint: str) -> str:
    """The ``.../v2`` URL of a catalog's image endpoint."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/v2") else url + "/v2"


class BlockStorage:
    """The few Block Storage and Image API calls the commands make.

    :param session: an admin's keystoneauth Session.
    :param sleep: waits between polls (tests pass a fake).
    """

    def __init__(self, session: ks_session.Session,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 interval: float = 2.0) -> None:
        self.session = session
        self.sleep = sleep
        self.clock = clock
        self.interval = interval
        self._volume_url: Optional[str] = None
        self._image_url: Optional[str] = None

    # -- endpoints ----------------------------------------------------------

    def _endpoint(self, service_type: str) -> Optional[str]:
        cloud = getattr(self.session, "cloud", {}) or {}
        try:
            return self.session.get_endpoint(
                service_type=service_type,
                interface=cloud.get("interface") or "public",
                region_name=cloud.get("region_name"))
        except ks_exceptions.EndpointNotFound:
            return None

    @property
    def project_id(self) -> str:
        """The admin's project (where warming volumes are made)."""
        project_id = self.session.get_project_id()
        if not project_id:
            raise ApiError("The credentials are not scoped to a project. "
                           "Set OS_PROJECT_NAME (or project_name in "
                           "clouds.yaml).")
        return project_id

    @property
    def volume_url(self) -> str:
        """``.../v3/{project_id}`` of the Block Storage API."""
        if self._volume_url is None:
            for service_type in VOLUME_SERVICE_TYPES:
                endpoint = self._endpoint(service_type)
                if endpoint:
                    self._volume_url = volume_base_url(endpoint,
                                                       self.project_id)
                    break
            else:
                raise ApiError("The service catalog has no Block Storage "
                               "v3 endpoint (volumev3). Check OS_REGION_NAME "
                               "and OS_INTERFACE.")
        return self._volume_url

    @property
    def image_url(self) -> str:
        """``.../v2`` of the Image API."""
        if self._image_url is None:
            endpoint = self._endpoint(IMAGE_SERVICE_TYPE)
            if not endpoint:
                raise ApiError("The service catalog has no image endpoint. "
                               "Check OS_REGION_NAME and OS_INTERFACE.")
            self._image_url = image_base_url(endpoint)
        return self._image_url

    # -- requests -----------------------------------------------------------

    def _request(self, method: str, url: str, what: str,
                 microversion: str = BASE_MICROVERSION,
                 **kwargs: Any) -> Any:
        headers = {"OpenStack-API-Version": "volume %s" % microversion,
                   "Accept": "application/json"}
        try:
            response = self.session.request(url, method, headers=headers,
                                            raise_exc=False, **kwargs)
        except ks_exceptions.ClientException as error:
            raise ApiError("%s: %s" % (what, type(error).__name__))
        raise_for_status(response, what)
        return response

    def _volume(self, method: str, path: str, what: str,
                **kwargs: Any) -> Any:
        return self._request(method, self.volume_url + path, what, **kwargs)

    def create_volume(self, size: int, image_ref: Optional[str] = None,
                      volume_type: Optional[str] = None,
                      name: Optional[str] = None) -> dict:
        """``POST /volumes``; the new volume."""
        body: dict[str, Any] = {"size": int(size)}
        for key, value in (("imageRef", image_ref),
                           ("volume_type", volume_type), ("name", name)):
            if value is not None:
                body[key] = value
        response = self._volume("POST", "/volumes", "Create volume",
                                json={"volume": body})
        return response.json()["volume"]

    def get_volume(self, volume_id: str) -> dict:
        """``GET /volumes/{id}``.

        :raises NotFound: no such volume (deleted).
        """
        response = self._volume("GET", "/volumes/%s" % volume_id,
                                "Show volume %s" % volume_id)
        return response.json()["volume"]

    def delete_volume(self, volume_id: str) -> None:
        """``DELETE /volumes/{id}`` (Cinder evicts a cache entry's)."""
        self._volume("DELETE", "/volumes/%s" % volume_id,
                     "Delete volume %s" % volume_id)

    def extend_volume(self, volume_id: str, new_size: int) -> None:
        """``os-extend`` to ``new_size`` GiB.

        :raises OverQuota: the project has no room for it.
        """
        self._volume("POST", "/volumes/%s/action" % volume_id,
                     "Extend volume %s" % volume_id,
                     json={"os-extend": {"new_size": int(new_size)}})

    def list_messages(self, resource_id: str) -> list[str]:
        """The user messages about a resource, newest last."""
        response = self._volume(
            "GET", "/messages?resource_uuid=%s" % resource_id,
            "List messages of %s" % resource_id,
            microversion=MESSAGES_MICROVERSION)
        messages = sorted(response.json().get("messages", []),
                          key=lambda m: m.get("created_at") or "")
        return [m.get("user_message") or "" for m in messages]

    def get_image(self, image_id: str) -> dict:
        """``GET /v2/images/{id}`` of the Image API."""
        response = self._request("GET",
                                 "%s/images/%s" % (self.image_url, image_id),
                                 "Show image %s" % image_id)
        return response.json()

    # -- waiting ------------------------------------------------------------

    def wait_for_status(self, volume_id: str, statuses: Iterable[str],
                        timeout: float = 600.0) -> dict:
        """Poll a volume until its status is one of ``statuses``.

        A failed status (``error``...) ends the wait too; the caller
        looks at the status returned.

        :raises WaitTimeout: none came within ``timeout`` seconds.
        """
        wanted = set(statuses) | set(FAILED_STATUSES)
        deadline = self.clock() + timeout
        while True:
            volume = self.get_volume(volume_id)
            if volume.get("status") in wanted:
                return volume
            if self.clock() >= deadline:
                raise WaitTimeout("Volume %s is still %s after %d s."
                                  % (volume_id, volume.get("status"),
                                     timeout))
            self.sleep(self.interval)

    def wait_gone(self, volume_id: str, timeout: float = 600.0) -> None:
        """Poll until the volume is deleted.

        :raises ApiError: it ended in ``error_deleting``.
        :raises WaitTimeout: it is still there after ``timeout``.
        """
        deadline = self.clock() + timeout
        while True:
            try:
                volume = self.get_volume(volume_id)
            except NotFound:
                return
            if volume.get("status") == "error_deleting":
                raise ApiError("Volume %s could not be deleted "
                               "(error_deleting)." % volume_id)
            if self.clock() >= deadline:
                raise WaitTimeout("Volume %s is still %s after %d s."
                                  % (volume_id, volume.get("status"),
                                     timeout))
            self.sleep(self.interval)
