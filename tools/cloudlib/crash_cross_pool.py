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
"""A cinder-volume service killed in the middle of a copy across pools.

``tools/cloud crash-cross-pool`` runs, against the running cloud with this
package's driver:

1. both volume services restarted serving two storage pools
   (``powerflex_storage_pools = PD1:SP1,PD1:SP2``) with uploads to
   ``cinder://`` images on (as ``tools/cloud cinder-store``), and two
   volume types that place a volume in one pool each (``pool_name``);
2. a volume of the default type from a new image, in SP1 (a blank volume
   in SP2 leaves that pool less room), uploaded to an image: its
   ``cinder://`` volume is in SP1 (Glance's cinder store takes a location
   only for a volume of its type, the default one);
3. a volume from that image placed in SP2: an array snapshot would stay in
   SP1, so the driver makes the volume in SP2 and copies the image volume
   into it through the host; the simulator holds that copy's first unmap,
   and the service is stopped as an operator's restart stops it (SIGTERM,
   then SIGKILL after 10 s) with both volumes mapped to the host;
4. the service started again: Cinder's start-up clean-up must turn the
   user's volume to ``error``; Cinder never learnt the id of its array
   volume, which the killed copy left mapped to the host;
5. the user deletes the volume in error: the delete must remove the
   volume's mapping the killed copy left and its array volume (found by
   its name); then asks again (one retry, whose copy also removes the
   source's mapping the killed copy left): the new volume is
   ``available`` in SP2, records what the array holds and holds the
   image's bytes;
6. everything deleted and the services restarted with one pool and the
   upload options off: the end checks of ``crash-rotation`` (quota usage
   against the records, the array against the database, no mapping,
   allocated capacity per pool).

Exit 0 only if every check held; the figures are printed.
"""

import hashlib
import random
import signal
import time
from typing import Any, Optional
import urllib.error

from tools.cloudlib import api
from tools.cloudlib import cinder_store
from tools.cloudlib import cloud
from tools.cloudlib import crash_rotation
from tools.cloudlib import layout
from tools.cloudlib import procs

POOLS = ("PD1:SP1", "PD1:SP2")
COPYING = "copying through this host"
"""What the service logs, with the volume's id, before a copy across
pools."""
BLANK_GIB = 64
"""A blank volume in SP2, so that the scheduler puts the source in SP1."""


class Scenario(cinder_store.Scenario):
    """One run: the upload, the caught copy, the restart and the retry."""

    def __init__(self, description: dict[str, Any]) -> None:
        super().__init__(description)
        self.types: dict[str, str] = {}
        self.size = crash_rotation.SIZE_GIB
        self.volume_type = ""

    def extra_options(self, enabled: bool) -> dict[tuple[str, str], str]:
        """Two pools for the run, one again after it."""
        pools = ",".join(POOLS) if enabled else POOLS[0]
        return {(layout.BACKEND, "powerflex_storage_pools"): pools}

    def create(self, image_id: str, name: str) -> str:
        """Ask for the volume of the current size and type (not waited)."""
        return self.request_volume(self.demo, name, self.size, image_id,
                                   self.volume_type)

    def make_types(self) -> None:
        """A volume type per pool, public, placing volumes by pool name."""
        for pool in POOLS:
            name = "cross-pool-%s-%d" % (pool.split(":")[1].lower(),
                                         time.time())
            answer = self.admin.call("POST", "cinder", "/v3/types", body={
                "volume_type": {
                    "name": name, "os-volume-type-access:is_public": True,
                    "extra_specs": {"volume_backend_name": layout.BACKEND,
                                    "pool_name": pool}}})
            self.types[pool] = answer["volume_type"]["id"]

    def steps(self) -> None:
        """The upload, the caught copy, the restart and the retry."""
        if self.driver != "ours":
            raise procs.CloudError("crash-cross-pool runs this package's "
                                   "driver (the cloud runs %s)"
                                   % self.driver)
        self.make_types()
        data = random.randbytes(crash_rotation.IMAGE_BYTES)
        image_digest = hashlib.sha256(data).hexdigest()
        base_image = self.admin.upload_image("cross-pool-base-%d"
                                             % time.time(), data)
        self.images.append(base_image)
        # Glance takes a cinder:// location only for a volume of its
        # store's type (here the default type), and the image volume has
        # the source's type: the source has the default type, and lands
        # in SP1 because a blank volume in SP2 leaves SP2 less room.
        blank = self.demo.call("POST", "cinder", "/v3/volumes", body={
            "volume": {"name": "cross-pool-blank", "size": BLANK_GIB,
                       "volume_type": self.types[POOLS[1]]}})["volume"]["id"]
        self.volumes.append((self.demo, blank))
        if self.settled_any(blank) != "available":
            raise procs.CloudError("the blank volume in SP2 is not "
                                   "available")
        source, status = self.new_volume(self.demo, "cross-pool-source", 1,
                                         base_image)
        if status != "available":
            raise procs.CloudError("the source volume is %s" % status)
        if self.pool_of(source) != POOLS[0]:
            raise procs.CloudError("the source volume is in %s, not %s"
                                   % (self.pool_of(source), POOLS[0]))
        uploaded, image_volume = self.upload(source, image_digest)
        if uploaded is None:
            return
        self.check(self.pool_of(image_volume) == POOLS[0],
                   "the image volume is in %s, not %s"
                   % (self.pool_of(image_volume), POOLS[0]))
        self.size = self.image_gib(uploaded, image_volume)
        self.volume_type = self.types[POOLS[1]]

        victim = self.create_caught_at_unmap(uploaded, "cross-pool-victim")
        service = self.logging_service(victim, COPYING)
        self.check(self.volume_row(victim)["status"] == "creating",
                   "the user's volume was not creating at the kill")
        mapped = self.mapped()
        self.figures["mapped_at_kill"] = len(mapped)
        killed_at = self.kill(service, signal.SIGTERM)

        cloud.Cloud().start_volume_service(service)
        status = self.settled_any(victim)
        self.figures["after_restart"] = status
        self.figures["cleanup_seconds"] = round(
            time.monotonic() - killed_at, 1)
        self.check(status == "error", "the user's volume is %s after the "
                   "restart, not error" % status)
        self.figures["mapped_after_restart"] = len(self.mapped())
        # The killed copy made the array volume before Cinder learnt its
        # id: the user's delete must find it by name and remove it.
        array_id = self.array_id_by_name(victim)
        self.figures["victim's array volume recorded"] = \
            self.volume_row(victim)["provider_id"] not in (None, "NULL")
        self.delete(self.demo, victim)
        self.volumes.remove((self.demo, victim))
        self.check(array_id is None or array_id not in self.gateway.volumes(),
                   "the deleted volume's array volume %s is left" % array_id)
        # The delete removes the deleted volume's mappings; the source's,
        # which the killed copy also left, goes with the next copy of it
        # (the retry), and the end checks that nothing stays mapped.
        self.figures["mapped_after_delete"] = len(self.mapped())
        self.check_array_matches_db("after the delete")

        retried, status = self.new_volume(self.demo, "cross-pool-retry",
                                          self.size, uploaded,
                                          self.volume_type)
        self.figures["retry"] = status
        self.check(status == "available",
                   "the retried volume is %s" % status)
        if retried and status == "available":
            self.check(self.pool_of(retried) == POOLS[1],
                       "the retried volume is in %s, not %s"
                       % (self.pool_of(retried), POOLS[1]))
            self.check(self.digest(retried) == image_digest,
                       "the retried volume does not hold the image's bytes")
            recorded = int(self.sql("SELECT size FROM cinder.volumes WHERE "
                                    "id = '%s';" % retried)[0][0])
            array = self.gateway.size_gib(retried)
            self.figures["retry: recorded / array GiB"] = (recorded, array)
            self.check(recorded == array, "the retried volume records %d "
                       "GiB, the array holds %d" % (recorded, array))

    def array_id_by_name(self, volume_id: str) -> Optional[str]:
        """The array volume named after a Cinder volume, if any."""
        try:
            return self.gateway.array_id(volume_id)
        except urllib.error.HTTPError:
            return None

    def pool_of(self, volume_id: str) -> str:
        """The pool (``PD:SP``) Cinder records for the volume."""
        host = self.sql("SELECT host FROM cinder.volumes WHERE id = '%s';"
                        % volume_id)[0][0]
        return host.rpartition("#")[2]

    def clean_up(self) -> None:
        """Delete what the run made, the volume types last."""
        super().clean_up()
        for type_id in self.types.values():
            try:
                self.admin.call("DELETE", "cinder", "/v3/types/%s" % type_id)
            except api.ApiError as exc:
                self.check(False, "deleting volume type %s: %s"
                           % (type_id, exc))


def main(description: dict[str, Any]) -> int:
    """Run the scenario, print its figures; 0 if every check held."""
    return crash_rotation.report(Scenario(description))
