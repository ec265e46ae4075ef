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
"""A cinder-volume service killed in the middle of a cache miss's copy.

``tools/cloud crash-cache-miss`` runs, against the running cloud:

1. a new image and one volume from it: a cache miss, so the service
   downloads the image and copies it into a new cache volume through the
   host; the simulator holds that copy's unmap (its fault-control
   endpoint), so the service is caught with the image copied, the new
   cache volume ``creating`` and mapped to the SDC;
2. that service stopped as an operator's restart stops it (SIGTERM, then
   SIGKILL after 10 s), then started again as ``tools/cloud up`` starts
   it; Cinder's start-up clean-up must move the
   user's volume and the half-made cache volume from ``creating`` to
   ``error``, and no cache entry names the half-made volume;
3. the user deletes the volume in error and asks again (one retry): the
   new volume is available and holds the image's bytes; the create
   deleted the half-made cache volume (array volume, mapping, quota and
   row) before making the new entry;
4. everything deleted: quota usage equals the records (the project's and
   the internal tenant's), the array holds only what Cinder knows, nothing
   is mapped to the SDC, and each pool's ``allocated_capacity_gb`` equals
   the sizes Cinder records in it.

Glance serves the image twice: the killed copy never made an entry.
Exit 0 only if every check held; the figures are printed.
"""

import hashlib
import random
import signal
import time
from typing import Any

from tools.cloudlib import crash_rotation

MISS = "no image-volume cache entry for image"
"""What the service doing a cache miss logs, with the volume's id."""


class Scenario(crash_rotation.Scenario):
    """One run of the scenario (the checks of :mod:`.crash_rotation`)."""

    def run(self) -> None:
        """Run every step; checks that fail are recorded, not raised."""
        data = random.randbytes(crash_rotation.IMAGE_BYTES)
        image_digest = hashlib.sha256(data).hexdigest()
        image_id = self.admin.upload_image(
            "crash-cache-miss-%d" % time.time(), data)

        victim = self.create_caught_at_unmap(image_id, "crash-miss-victim")
        service = self.logging_service(victim, MISS)
        half_made = self.half_made(image_id)
        killed_at = self.kill(service, signal.SIGTERM)
        new_volume = self.caught(victim, half_made)
        if new_volume is None:
            return

        self.restart(service, killed_at, victim, new_volume)
        self.check(self.cache_entry(image_id) is None,
                   "a cache entry names the half-made cache volume")
        self.check_array_matches_db("after the restart")

        # The user deletes the volume in error and asks again: Glance
        # serves the image a second time (the killed copy made no entry).
        retry = self.retry(image_id, victim, new_volume, "crash-miss-retry",
                           image_digest, None, downloads=2)
        self.delete(self.demo, retry)
        self.admin.call("DELETE", "glance", "/v2/images/%s" % image_id)
        self.check_the_end()


def main(description: dict[str, Any]) -> int:
    """Run the scenario, print its figures; 0 if every check held."""
    return crash_rotation.report(Scenario(description))
