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
"""Volumes uploaded to ``cinder://`` images, and who may clone them.

``tools/cloud cinder-store`` runs, against the running cloud (either
driver):

1. both cinder-volume services restarted with the backend's
   ``image_upload_use_cinder_backend`` and
   ``image_upload_use_internal_tenant`` on (Glance always has its
   ``cinder`` store beside the file store);
2. the demo project's volume from a new image, uploaded to an image: the
   image must become ``active`` with a ``cinder://`` location naming a
   clone of the volume in the internal tenant, marked with the demo
   project as ``image_owner``, with no byte copied through a host and
   nothing written to Glance's file store;
3. a volume from that image: one array snapshot, no Glance download,
   the source's bytes;
4. the attacks, each from the project that should not get the data, or
   from the owner when the image volume is not as it was uploaded:

   * ``foreign location``: an intruder project's own image whose
     ``cinder://`` location (added by a service user, as Nova and Cinder
     add theirs) names the demo project's image volume;
   * ``private image``: the intruder asks for a volume from the demo
     project's private image;
   * ``image volume in use``: the image volume reserved by an attachment;
   * ``image volume resized``: the image volume extended after the upload;
   * ``image volume deleted``;

   each row says what the user got (status, user message) and whether
   the new volume holds the image volume's bytes or an array snapshot of
   it was made;
5. everything deleted, the services restarted with both options off;
   quota usage equals the records, the array holds only what Cinder
   knows, nothing stays mapped.

Glance cannot read a ``cinder://`` image here (its cinder store would
attach the volume to the Glance host through os-brick; the cloud gives
Glance no PowerFlex client), so a create that falls back to downloading
such an image fails: "an error", as the issue's table allows.

Exit 1 when a check fails; with this package's driver, also when any
attack's volume holds another project's bytes or cloned a volume the
asking project may not clone. With Cinder's driver, what it does is
reported, not judged.
"""

import collections
import hashlib
import math
import os
import random
import secrets
import time
from typing import Any, Optional
import uuid

from tools.cloudlib import api
from tools.cloudlib import crash_rotation
from tools.cloudlib import layout
from tools.cloudlib import observe
from tools.cloudlib import procs
from tools.cloudlib import storm
from tools.cloudlib import switch
from tools.cloudlib import switch_over

UPLOAD_OPTIONS = ("image_upload_use_cinder_backend",
                  "image_upload_use_internal_tenant")
"""The backend options the scenario turns on for its run."""
GIB = 1024 ** 3
IMAGE_SECONDS = 180


def _log(message: str) -> None:
    print("[cinder-store] %s" % message, flush=True)


class Scenario(crash_rotation.Scenario):
    """One run: the upload, the clone and the attacks."""

    def __init__(self, description: dict[str, Any]) -> None:
        super().__init__(description)
        self.driver = description.get("driver", "?")
        self.service = api.Session(description["service"])
        self.rows: list[dict[str, Any]] = []
        self.volumes: list[tuple[api.Session, str]] = []
        self.images: list[str] = []
        self.intruder: Optional[dict[str, str]] = None

    # -- helpers -------------------------------------------------------------

    def array_ops(self, since: dict[str, int]) -> dict[str, int]:
        """Changing array requests logged since ``since`` (by operation)."""
        path = self.log_path("gateway.log")
        lines = switch.new_log_lines(path, since[path])
        return dict(collections.Counter(
            call["op"] for call in switch_over.array_calls(lines)))

    def log_path(self, name: str) -> str:
        """A file under the cloud's log directory."""
        return os.path.join(self.state, "log", name)

    def mark(self) -> dict[str, int]:
        """Where the gateway's log ends now."""
        path = self.log_path("gateway.log")
        return {path: storm.Storm.size_of(path)}

    def request_volume(self, session: api.Session, name: str, size: int,
                       image_id: str, volume_type: Optional[str] = None
                       ) -> str:
        """Ask for a volume from an image; its id (not waited for).

        :raises ApiError: the API refused it.
        """
        volume = {"name": name, "size": size, "imageRef": image_id}
        if volume_type:
            volume["volume_type"] = volume_type
        volume_id = session.call("POST", "cinder", "/v3/volumes", body={
            "volume": volume})["volume"]["id"]
        self.volumes.append((session, volume_id))
        return volume_id

    def new_volume(self, session: api.Session, name: str, size: int,
                   image_id: str, volume_type: Optional[str] = None
                   ) -> tuple[Optional[str], str]:
        """Ask for a volume from an image; (its id or None, the answer)."""
        try:
            volume_id = self.request_volume(session, name, size, image_id,
                                            volume_type)
        except api.ApiError as exc:
            return None, "refused by the API: %d" % exc.status
        return volume_id, self.settled_any(volume_id)

    def settled_any(self, volume_id: str) -> str:
        """Wait until the volume is neither creating nor downloading."""
        def status() -> Optional[str]:
            current = self.volume_row(volume_id).get("status")
            return None if current in (None, "creating", "downloading") \
                else current
        return procs.wait_until(status, crash_rotation.WAIT_SECONDS,
                                "volume %s out of creating" % volume_id)

    def user_messages(self, session: api.Session, volume_id: str
                      ) -> list[str]:
        """The user messages the project sees for the volume."""
        answer = session.get("cinder", "/v3/messages")
        return sorted(message["user_message"]
                      for message in answer.get("messages", [])
                      if message.get("resource_uuid") == volume_id)

    def wait_image(self, image_id: str) -> dict[str, Any]:
        """Wait until the image is active; its record (as admin)."""
        def active() -> Optional[dict[str, Any]]:
            image = self.admin.get("glance", "/v2/images/%s" % image_id)
            if image["status"] in ("killed", "deleted"):
                raise procs.CloudError("image %s is %s"
                                       % (image_id, image["status"]))
            return image if image["status"] == "active" else None
        return procs.wait_until(active, IMAGE_SECONDS,
                                "image %s active" % image_id)

    def digest(self, volume_id: str) -> Optional[str]:
        """SHA-256 of the volume's first image-sized bytes on the array."""
        provider = self.volume_row(volume_id).get("provider_id")
        if not provider or provider == "NULL":
            return None
        try:
            return observe.array_digest(self.state, provider,
                                        crash_rotation.IMAGE_BYTES)
        except FileNotFoundError:
            return None

    # -- the intruder --------------------------------------------------------

    def make_intruder(self) -> api.Session:
        """A second project with a member user; its session."""
        suffix = "%d" % time.time()
        project = self.admin.call("POST", "keystone", "/v3/projects", body={
            "project": {"name": "intruder-%s" % suffix,
                        "domain_id": "default"}})["project"]
        password = secrets.token_hex(18)
        user = self.admin.call("POST", "keystone", "/v3/users", body={
            "user": {"name": "intruder-%s" % suffix, "password": password,
                     "domain_id": "default",
                     "default_project_id": project["id"]}})["user"]
        member = self.admin.get("keystone", "/v3/roles?name=member")[
            "roles"][0]["id"]
        self.admin.call("PUT", "keystone", "/v3/projects/%s/users/%s/roles"
                        "/%s" % (project["id"], user["id"], member))
        self.intruder = {"project_id": project["id"], "user_id": user["id"]}
        return api.Session({
            "username": user["name"], "password": password,
            "project_name": project["name"],
            "user_domain_name": "Default",
            "project_domain_name": "Default"})

    # -- the scenario --------------------------------------------------------

    def run(self) -> None:
        """Every step; the options and what was made are undone at the end."""
        self.restart_with(True)
        try:
            self.steps()
        except (api.ApiError, procs.CloudError) as exc:
            self.check(False, "the run stopped: %s" % exc)
        finally:
            self.clean_up()
            self.restart_with(False)
        self.check_the_end()
        if self.intruder:
            self.check_quota(self.intruder["project_id"], "intruder project")

    def restart_with(self, enabled: bool) -> None:
        """Restart both volume services with the upload options set."""
        value = "True" if enabled else "False"
        options = {(layout.BACKEND, name): value for name in UPLOAD_OPTIONS}
        options.update(self.extra_options(enabled))
        figures = switch.Switch().run(self.driver, options=options)
        errors = [line for service in figures["services"]
                  for line in service["errors"]]
        self.check(not errors, "errors in the volume services' logs after "
                   "the restart: %s" % errors[:3])
        _log("volume services restarted with %s in %.1f s"
             % (", ".join("%s = %s" % (option, value) for (_section, option),
                          value in sorted(options.items())),
                figures["seconds"]))

    def extra_options(self, enabled: bool) -> dict[tuple[str, str], str]:
        """More backend options for the run (none here)."""
        return {}

    def steps(self) -> None:
        """The upload, the clone and the attacks."""
        data = random.randbytes(crash_rotation.IMAGE_BYTES)
        image_digest = hashlib.sha256(data).hexdigest()
        base_image = self.admin.upload_image("cinder-store-base-%d"
                                             % time.time(), data)
        self.images.append(base_image)
        source, status = self.new_volume(self.demo, "cinder-store-source",
                                         1, base_image)
        if status != "available":
            raise procs.CloudError("the source volume is %s" % status)

        uploaded, image_volume = self.upload(source, image_digest)
        if uploaded is None:
            return
        size = self.image_gib(uploaded, image_volume)
        self.clone_from_image(uploaded, size, image_digest)

        intruder = self.make_intruder()
        self.attack("foreign location", intruder,
                    self.foreign_image(intruder, image_volume), size,
                    image_digest, may_clone=False)
        self.attack("private image", intruder, uploaded, size,
                    image_digest, may_clone=False)
        attachment = self.admin.call(
            "POST", "cinder", "/v3/attachments", body={"attachment": {
                "volume_uuid": image_volume,
                "instance_uuid": str(uuid.uuid4())}})
        try:
            self.attack("image volume in use (%s)" % self.volume_row(
                image_volume)["status"], self.demo, uploaded, size,
                image_digest, may_clone=False)
        finally:
            self.admin.call("DELETE", "cinder", "/v3/attachments/%s"
                            % attachment["attachment"]["id"])
        procs.wait_until(
            lambda: self.volume_row(image_volume)["status"] == "available",
            crash_rotation.WAIT_SECONDS, "image volume available again")
        self.admin.call("POST", "cinder",
                        "/v3/volumes/%s/action" % image_volume,
                        body={"os-extend": {"new_size": size + 8}})
        procs.wait_until(
            lambda: self.volume_row(image_volume)["status"] == "available",
            crash_rotation.WAIT_SECONDS, "image volume extended")
        # The image is its volume: cloned as it now is, its owner gets
        # the larger volume (and is charged for it).
        self.attack("image volume resized", self.demo, uploaded, size,
                    image_digest, may_clone=True)
        self.delete(self.admin, image_volume)
        self.attack("image volume deleted", self.demo, uploaded, size,
                    image_digest, may_clone=False)

    def upload(self, source: str, image_digest: str
               ) -> tuple[Optional[str], str]:
        """Upload the volume to an image; (image id, image volume id)."""
        since = self.mark()
        store_before = self.glance_store_files()
        image_id = self.demo.call(
            "POST", "cinder", "/v3/volumes/%s/action" % source,
            body={"os-volume_upload_image": {
                "image_name": "cinder-store-upload-%d" % time.time(),
                "disk_format": "raw", "container_format": "bare",
                "force": False}})["os-volume_upload_image"]["image_id"]
        self.images.append(image_id)
        image = self.wait_image(image_id)
        self.settled_source(source)
        url = image.get("direct_url") or ""
        ids = [v for v in self.sql(
            "SELECT id FROM cinder.volumes WHERE deleted = 0 AND "
            "project_id = '%s' AND id = '%s';"
            % (self.internal, url.rsplit("/", 1)[-1]))]
        self.figures["upload: image location"] = url
        self.check(url.startswith("cinder://"), "the uploaded image's "
                   "location is %r, not cinder://" % url)
        self.check(len(ids) == 1, "the image's location names no volume "
                   "of the internal tenant")
        if len(ids) != 1:
            return None, ""
        image_volume = ids[0][0]
        owner = self.sql("SELECT value FROM cinder.volume_metadata WHERE "
                         "deleted = 0 AND volume_id = '%s' AND `key` = "
                         "'image_owner';" % image_volume)
        self.check(owner == [[self.description["ids"]["demo_project_id"]]],
                   "the image volume's image_owner is %s" % owner)
        ops = self.array_ops(since)
        self.figures["upload: array calls"] = ops
        self.check(ops.get("addMappedSdc", 0) == 0, "the upload mapped a "
                   "volume to a host (a copy through the host)")
        self.check(self.glance_store_files() == store_before,
                   "the upload wrote to Glance's file store")
        self.check(self.digest(image_volume) == image_digest,
                   "the image volume does not hold the source's bytes")
        return image_id, image_volume

    def settled_source(self, source: str) -> None:
        """Wait until the uploaded volume is available again."""
        procs.wait_until(
            lambda: self.volume_row(source)["status"] == "available",
            crash_rotation.WAIT_SECONDS, "source volume available")

    def glance_store_files(self) -> list[str]:
        """The files of Glance's file store."""
        return sorted(os.listdir(os.path.join(self.state, "glance",
                                              "images")))

    def image_gib(self, image_id: str, image_volume: str) -> int:
        """The size, GiB, a volume from the image must have at least."""
        image = self.admin.get("glance", "/v2/images/%s" % image_id)
        volume_gib = int(self.sql("SELECT size FROM cinder.volumes WHERE "
                                  "id = '%s';" % image_volume)[0][0])
        image_gib = math.ceil((image.get("size") or 0) / GIB)
        self.figures["upload: image size / image volume"] = "%s B / %d GiB" \
            % (image.get("size"), volume_gib)
        return max(image_gib, image.get("min_disk") or 0, volume_gib, 1)

    def clone_from_image(self, image_id: str, size: int,
                         image_digest: str) -> None:
        """A volume from the uploaded image: one snapshot, no download."""
        since = self.mark()
        volume_id, status = self.new_volume(self.demo, "cinder-store-clone",
                                            size, image_id)
        ops = self.array_ops(since)
        self.figures["clone: status"] = status
        self.figures["clone: array calls"] = ops
        downloads = observe.glance_downloads(self.state, image_id)
        self.figures["clone: Glance downloads"] = downloads
        self.check(status == "available",
                   "the volume from the cinder:// image is %s" % status)
        self.check(ops.get("snapshotVolumes") == 1 and
                   not ops.get("addMappedSdc"),
                   "the volume from the cinder:// image was not one array "
                   "snapshot: %s" % ops)
        self.check(downloads == 0, "Glance served the cinder:// image %d "
                   "times" % downloads)
        if volume_id:
            self.check(self.digest(volume_id) == image_digest,
                       "the volume from the cinder:// image does not hold "
                       "the source's bytes")

    def foreign_image(self, intruder: api.Session, image_volume: str) -> str:
        """The intruder's image, located by a service at a foreign volume."""
        image_id = intruder.call("POST", "glance", "/v2/images", body={
            "name": "intruder-%d" % time.time(), "disk_format": "raw",
            "container_format": "bare"})["id"]
        self.images.append(image_id)
        self.service.call(
            "POST", "glance", "/v2/images/%s/locations" % image_id,
            body={"url": "cinder://%s" % image_volume},
            headers={"OpenStack-API-Version": "image 2.17"})
        self.wait_image(image_id)
        return image_id

    def attack(self, name: str, session: api.Session, image_id: str,
               size: int, image_digest: str, may_clone: bool) -> None:
        """One row of the attack table.

        ``may_clone``: whether this package's driver may clone the image
        volume (the asking project owns the image and its volume is
        available); where it may not, its volume must neither hold the
        image volume's bytes nor come from a snapshot of it.
        """
        since = self.mark()
        volume_id, outcome = self.new_volume(
            session, "cinder-store-%s" % name.split(" (")[0].replace(" ", "-"),
            size, image_id)
        ops = self.array_ops(since)
        holds = bool(volume_id) and self.digest(volume_id) == image_digest
        sizes = "-"
        if volume_id and outcome == "available":
            recorded = int(self.sql("SELECT size FROM cinder.volumes WHERE "
                                    "id = '%s';" % volume_id)[0][0])
            array = self.gateway.size_gib(volume_id)
            sizes = "%d / %d GiB" % (recorded, array)
            self.check(self.driver != "ours" or recorded == array,
                       "%s: the volume records %d GiB, the array holds %d"
                       % (name, recorded, array))
        row = {"attack": name, "outcome": outcome,
               "snapshots": ops.get("snapshotVolumes", 0),
               "holds the image volume's bytes": holds,
               "recorded / array": sizes,
               "messages": (self.user_messages(session, volume_id)
                            if volume_id else [])}
        self.rows.append(row)
        _log("%s: %s" % (name, row))
        if self.driver == "ours" and not may_clone:
            self.check(not holds and not row["snapshots"],
                       "%s: the image volume was cloned" % name)
        if self.driver == "ours" and may_clone:
            self.check(outcome == "available" and holds,
                       "%s: %s, not a clone of the image volume"
                       % (name, outcome))
        if volume_id and outcome != "available":
            # A failed create leaves its volume in error: delete it now,
            # so the next row starts clean.
            self.delete(session, volume_id)
            self.volumes.remove((session, volume_id))

    def clean_up(self) -> None:
        """Delete every volume, image and identity the run made."""
        for session, volume_id in reversed(self.volumes):
            if self.volume_row(volume_id).get("deleted") != "1":
                try:
                    self.delete(session, volume_id)
                except (api.ApiError, procs.CloudError) as exc:
                    self.check(False, "deleting %s: %s" % (volume_id, exc))
        for image_id in self.images:
            try:
                self.admin.call("DELETE", "glance", "/v2/images/%s"
                                % image_id)
            except api.ApiError:
                pass
        for volume_id, in self.sql(
                "SELECT id FROM cinder.volumes WHERE deleted = 0 AND "
                "project_id = '%s' AND display_name LIKE 'image-%%';"
                % self.internal):
            # Glance's cinder store deletes an image's volume with the
            # image: wait for that delete, or delete what is left.
            if self.volume_row(volume_id).get("status") == "deleting":
                self.wait_deleted(volume_id)
                continue
            try:
                self.delete(self.admin, volume_id)
            except api.ApiError as exc:
                # Gone meanwhile (404) is what was wanted.
                self.check(exc.status == 404, "deleting %s: %s"
                           % (volume_id, exc))
        if self.intruder:
            self.admin.call("DELETE", "keystone", "/v3/users/%s"
                            % self.intruder["user_id"])
            self.admin.call("DELETE", "keystone", "/v3/projects/%s"
                            % self.intruder["project_id"])


def main(description: dict[str, Any]) -> int:
    """Run the scenario; print the attack table; 0 if every check held."""
    scenario = Scenario(description)
    code = crash_rotation.report(scenario)
    print("\ncinder:// attacks, driver %s:" % scenario.driver)
    for row in scenario.rows:
        print("  %-34s %-24s snapshots %d  holds the bytes: %-5s  %-13s %s"
              % (row["attack"], row["outcome"], row["snapshots"],
                 row["holds the image volume's bytes"],
                 row["recorded / array"],
                 "; ".join(row["messages"]) or "-"))
    return code
