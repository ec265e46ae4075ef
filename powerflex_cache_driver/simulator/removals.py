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
"""Removed volumes that stay "in deletion" for a while.

With ``removal_seconds`` a removed volume is not gone at once: until its
time is up any request naming it answers 212, its name stays taken and its
pool counts it in ``numOfVolumesInDeletion`` (and its capacity in use).
Without, a removal frees the backing file at once.

Not thread-safe: the :class:`~.array.Array` calls it under its lock.
"""

import time
from typing import Optional

from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import storage


class Removals:
    """The volumes in deletion of one array and when each one is gone.

    :param store: the backing files, freed when a removal completes.
    :param seconds: how long a removal lasts; None or 0 removes at once.
    """

    def __init__(self, store: storage.SparseStore,
                 seconds: Optional[float]) -> None:
        self.store = store
        self.seconds = seconds
        #: Volume id -> (volume, monotonic time its removal completes).
        self.pending: dict[str, tuple[model.Volume, float]] = {}

    def remove(self, volume: model.Volume) -> None:
        """Start removing ``volume``: now, or once its time is up."""
        if self.seconds:
            self.pending[volume.id] = (volume,
                                       time.monotonic() + self.seconds)
        else:
            self.store.remove(volume.backing_path)

    def purge(self, everything: bool = False) -> None:
        """Complete the removals whose time is up (or all of them)."""
        now = time.monotonic()
        for volume_id, (volume, done) in list(self.pending.items()):
            if everything or done <= now:
                del self.pending[volume_id]
                self.store.remove(volume.backing_path)

    def in_progress(self, volume_id: object) -> bool:
        """True while the removal of ``volume_id`` is not complete."""
        self.purge()
        return isinstance(volume_id, str) and volume_id in self.pending

    def by_name(self, name: str) -> Optional[model.Volume]:
        """Return the volume in deletion called ``name``, or None."""
        self.purge()
        for volume, _done in self.pending.values():
            if volume.name == name:
                return volume
        return None

    def in_pool(self, pool_id: str) -> list[model.Volume]:
        """Return the volumes in deletion of a pool (no purge first)."""
        return [v for v, _done in self.pending.values()
                if v.pool_id == pool_id]
