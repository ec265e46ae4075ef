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
"""Keystone's projects, users and catalog for the one-machine cloud.

Runs with the services' virtualenv (it uses keystoneclient), after
``keystone-manage bootstrap`` made the admin user and the identity
endpoint::

    .venv-cloud/bin/python -m tools.cloudlib.identity < request.json

The request (on standard input, so that no password shows in a process
list) holds the Keystone URL, the admin password and the passwords to give
the users this creates. It prints a JSON object of the ids Cinder's
configuration needs.
"""

import json
import sys
from typing import Any

from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

DOMAIN = "default"


def _project(keystone: Any, name: str, description: str) -> Any:
    found = keystone.projects.list(name=name, domain=DOMAIN)
    if found:
        return found[0]
    return keystone.projects.create(name, DOMAIN, description=description)


def _user(keystone: Any, name: str, password: str, project: Any,
          role: Any) -> Any:
    found = keystone.users.list(name=name, domain=DOMAIN)
    user = found[0] if found else keystone.users.create(
        name, domain=DOMAIN, password=password, default_project=project)
    keystone.roles.grant(role, user=user, project=project)
    return user


def _service(keystone: Any, name: str, kind: str, urls: dict[str, str],
             region: str) -> None:
    if keystone.services.list(type=kind):
        return
    service = keystone.services.create(name, type=kind)
    for interface in ("public", "internal", "admin"):
        keystone.endpoints.create(service, urls[kind], interface=interface,
                                  region=region)


def provision(request: dict[str, Any]) -> dict[str, str]:
    """Create what the cloud needs beyond the admin user; return the ids."""
    auth = v3.Password(auth_url=request["keystone_url"], username="admin",
                       password=request["admin_password"],
                       project_name="admin", user_domain_id=DOMAIN,
                       project_domain_id=DOMAIN)
    keystone = ks_client.Client(session=ks_session.Session(auth=auth))
    roles = {role.name: role for role in keystone.roles.list()}
    service = _project(keystone, "service", "OpenStack services")
    for name in ("glance", "cinder"):
        _user(keystone, name, request["passwords"][name], service,
              roles["admin"])
        _user(keystone, name, request["passwords"][name], service,
              roles["service"])
    demo = _project(keystone, "demo", "A user project")
    demo_user = _user(keystone, "demo", request["passwords"]["demo"], demo,
                      roles["member"])
    internal = _project(keystone, "cinder-internal",
                        "Cinder's internal tenant (image-volume cache)")
    internal_user = _user(keystone, "cinder-internal",
                          request["passwords"]["cinder-internal"], internal,
                          roles["member"])
    urls = request["urls"]
    _service(keystone, "glance", "image", urls, request["region"])
    _service(keystone, "cinder", "block-storage", urls, request["region"])
    _service(keystone, "cinderv3", "volumev3", urls, request["region"])
    return {"demo_project_id": demo.id, "demo_user_id": demo_user.id,
            "internal_project_id": internal.id,
            "internal_user_id": internal_user.id}


def main() -> int:
    """Read the request from stdin, provision, print the ids as JSON."""
    print(json.dumps(provision(json.load(sys.stdin))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
