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
"""``tools/cloud scan-logs``: no password or token in any log of the cloud.

Every service runs with ``debug = True``. The scan reads every file under
``.cloud/log/`` and looks for:

* every password of the cloud: the gateway's, the Keystone users', and
  every password the services' configuration files under ``.cloud/etc/``
  hold (``*password*`` options, and the passwords in URLs: the database,
  RabbitMQ and Redis);
* the gateway's password in ``Authorization: Basic`` form;
* tokens: Keystone's Fernet tokens (``gAAAAA...``) and the gateway's
  (base64 text starting with its user name and a colon).

A hit prints the file, the line number and what kind of secret it is,
never the secret; any hit makes the command exit 1.
"""

import base64
import configparser
import os
import re
import sys
from typing import Any, Iterator, TextIO
import urllib.parse

FERNET = re.compile(r"gAAAAA[A-Za-z0-9_\-]{60,}")
"""A Keystone Fernet token (its version byte and timestamp, base64)."""


def _config_passwords(etc_dir: str) -> Iterator[tuple[str, str]]:
    """(where, password) for every password in the config files."""
    for folder, _dirs, files in os.walk(etc_dir):
        for name in files:
            if not name.endswith((".conf", ".ini")):
                continue
            path = os.path.join(folder, name)
            parser = configparser.RawConfigParser(strict=False,
                                                  interpolation=None)
            try:
                parser.read(path)
            except configparser.Error:
                continue
            defaults = parser.defaults()
            items = [("DEFAULT", option, value)
                     for option, value in defaults.items()]
            items += [(section, option, value)
                      for section in parser.sections()
                      for option, value in parser.items(section)
                      if defaults.get(option) != value]
            for section, option, value in items:
                where = "%s [%s] %s" % (name, section, option)
                if (option == "password" or option.endswith("_password")) \
                        and value:
                    yield where, value
                if "://" in (value or ""):
                    password = urllib.parse.urlsplit(value).password
                    if password:
                        yield where, password


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization: Basic`` value of ``user:password``."""
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def secrets_of(description: dict[str, Any], state_dir: str
               ) -> dict[str, str]:
    """Secret -> what it is, for the cloud described."""
    gateway = description["gateway"]
    found = {gateway["password"]: "gateway password",
             basic_auth(gateway["user"], gateway["password"]):
                 "gateway Basic auth"}
    for user in ("admin", "demo"):
        found[description[user]["password"]] = "Keystone %s password" % user
    etc_dir = os.path.join(state_dir, "etc")
    for where, password in _config_passwords(etc_dir):
        found.setdefault(password, "password of %s" % where)
    return found


def _gateway_token(user: str) -> re.Pattern:
    """Tokens of the gateway: base64 of ``user:<ms>:<hex>``."""
    head = ("%s:" % user).encode()
    whole = head[:len(head) - len(head) % 3]
    prefix = base64.b64encode(whole).decode() if whole else ""
    return re.compile(re.escape(prefix) + r"[A-Za-z0-9+/]{40,}")


def scan(description: dict[str, Any], out: TextIO = sys.stdout) -> int:
    """Scan the logs; print each hit; return how many there were."""
    state_dir = description["state_dir"]
    secrets = secrets_of(description, state_dir)
    patterns = {"Keystone token": FERNET,
                "gateway token": _gateway_token(description["gateway"]
                                                ["user"])}
    hits = 0
    files = 0
    for folder, _dirs, names in os.walk(os.path.join(state_dir, "log")):
        for name in sorted(names):
            path = os.path.join(folder, name)
            files += 1
            with open(path, errors="replace") as log:
                for number, line in enumerate(log, 1):
                    kinds = [kind for secret, kind in secrets.items()
                             if secret in line]
                    kinds += [kind for kind, pattern in patterns.items()
                              if pattern.search(line)]
                    for kind in kinds:
                        hits += 1
                        out.write("%s:%d: %s\n" % (
                            os.path.relpath(path, state_dir), number, kind))
    out.write("Scanned %d log files for %d passwords and 2 token forms: "
              "%d hits.\n" % (files, len(secrets), hits))
    return hits


def main(description: dict[str, Any]) -> int:
    """Run the scan; 1 when a secret was found."""
    return 1 if scan(description) else 0
