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
"""The seed scenario, end to end with the ``openstack`` client.

``tools/cloud seed`` runs, as the non-admin project, what the contributor
guide's cloud page (doc/source/contributor/cloud.rst) shows: an image upload,
three 60 GiB volumes from it (a cache miss, then hits), a 62 GiB one, a clone,
a volume from a snapshot and an extend. After each step it prints what
``openstack volume show`` says, the size of the array volume (asked of the
gateway's REST API) and the project's ``gigabytes`` usage from ``openstack
quota show --usage``; then it deletes what it made. Run it once with
``tools/cloud up`` and once with ``tools/cloud up --driver stock`` to compare.
"""

import json
import os
import subprocess
import tempfile
import time
from typing import Any

from tools.cloudlib import observe
from tools.cloudlib import procs

IMAGE_MIB = 64
STEPS = (
    # (what, kind, name, openstack arguments)
    ("60 GiB from the image (cache miss)", "volume", "v1",
     ["volume", "create", "--image", "seed-image", "--size", "60", "v1"]),
    ("60 GiB from the image (cache hit)", "volume", "v2",
     ["volume", "create", "--image", "seed-image", "--size", "60", "v2"]),
    ("62 GiB from the image (cache hit)", "volume", "v3",
     ["volume", "create", "--image", "seed-image", "--size", "62", "v3"]),
    ("clone of v1", "volume", "c1",
     ["volume", "create", "--source", "v1", "c1"]),
    ("snapshot of v1", "volume snapshot", "v1-snap",
     ["volume", "snapshot", "create", "--volume", "v1", "v1-snap"]),
    ("volume from the snapshot", "volume", "s1",
     ["volume", "create", "--snapshot", "v1-snap", "s1"]),
    ("extend v2 to 70 GiB", "volume", "v2",
     ["volume", "set", "--size", "70", "v2"]),
)


class Openstack:
    """The ``openstack`` client of the cloud's virtualenv, as one project."""

    def __init__(self, description: dict[str, Any], who: str) -> None:
        creds = description[who]
        self.command = os.path.join(description["venv"], "bin", "openstack")
        self.env = dict(
            os.environ, OS_AUTH_URL=description["keystone_url"],
            OS_IDENTITY_API_VERSION="3", OS_USERNAME=creds["username"],
            OS_PASSWORD=creds["password"],
            OS_PROJECT_NAME=creds["project_name"],
            OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
            OS_REGION_NAME=description["region"])

    def __call__(self, *args: str) -> Any:
        """Run the client; return its JSON output (None if it prints none)."""
        argv = [self.command, *args]
        if args[:2] != ("volume", "set"):
            argv += ["-f", "json"]
        done = subprocess.run(argv, capture_output=True, text=True,
                              env=self.env, check=False, timeout=600)
        if done.returncode:
            raise procs.CloudError("openstack %s: %s" % (
                " ".join(args), done.stderr.strip()[-1000:]))
        out = done.stdout.strip()
        return json.loads(out) if out.startswith(("{", "[")) else None


def _wait(client: Openstack, name: str, kind: str) -> dict:
    deadline = time.monotonic() + 300
    while True:
        shown = client(*kind.split(), "show", name)
        if shown["status"] in ("available", "error", "error_extending"):
            return shown
        if time.monotonic() > deadline:
            raise procs.CloudError("%s %s still %s" % (kind, name,
                                                       shown["status"]))
        time.sleep(1)


def _usage(admin: Openstack, project: str) -> int:
    quota = admin("quota", "show", "--usage", project)
    for row in quota if isinstance(quota, list) else []:
        if row.get("Resource") == "gigabytes":
            return int(row["In Use"])
    raise procs.CloudError("no gigabytes usage in %s" % quota)


def run(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the steps; return one row per step."""
    demo = Openstack(description, "demo")
    admin = Openstack(description, "admin")
    gateway = observe.Gateway(description["gateway"])
    project = description["demo"]["project_name"]
    rows = []
    with tempfile.NamedTemporaryFile(suffix=".raw") as image:
        image.truncate(IMAGE_MIB * 1024 * 1024)
        image.write(os.urandom(1024 * 1024))
        image.flush()
        demo("image", "create", "--disk-format", "raw",
             "--container-format", "bare", "--file", image.name,
             "seed-image")
    made: list[tuple[str, str]] = []
    try:
        for what, kind, name, args in STEPS:
            demo(*args)
            if (kind, name) not in made:
                made.append((kind, name))
            shown = _wait(demo, name, kind)
            rows.append({
                "step": what, "command": "openstack " + " ".join(args),
                "status": shown["status"], "size": shown["size"],
                "array": gateway.size_gib(shown["id"]),
                "usage": _usage(admin, project)})
    finally:
        for kind, name in reversed(made):
            subprocess.run([demo.command, *kind.split(), "delete", name],
                           env=demo.env, capture_output=True, check=False)
            if kind == "volume snapshot":
                time.sleep(3)
        subprocess.run([demo.command, "image", "delete", "seed-image"],
                       env=demo.env, capture_output=True, check=False)
    return rows


def main(description: dict[str, Any]) -> int:
    """Print the scenario as a table (reStructuredText); 0 on success."""
    rows = run(description)
    print("driver: %s" % description["driver"])
    header = ("step", "volume show: size", "array GiB", "project usage GiB")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join([row["step"], "%s (%s)" % (row["size"],
                                                    row["status"]),
                          str(row["array"]), str(row["usage"])]))
    return 0
