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
"""How mapped volumes show on the host: by-id links and loop devices.

While a volume is mapped to at least one host, ``by_id_dir`` holds a symlink
``emc-vol-<systemId>-<volumeId>`` to its backing file, which is what the SDC
kernel module shows under ``/dev/disk/by-id`` on a real host. With
``loop_devices`` the link points at a loop device over the backing file
instead (a real block device, as on a real host), attached on the first
mapping and detached on the last unmapping, on removal and by
:meth:`DevicePublisher.release`; where the machine refuses loop devices the
link points at the file, and the reason is logged once.

With ``shared_by_id_dir`` the directory is the host's own (say
``/dev/disk/by-id``, where os-brick looks): it is created, parents too,
when a link is published, and :meth:`DevicePublisher.release` removes the
links the array made and the directories it created (when empty), leaving
everything else there; :meth:`DevicePublisher.restore` publishes them
again.

Not thread-safe: the :class:`~.array.Array` calls it under its lock.
"""

import logging
import os
from typing import Iterable, Mapping, Optional

from powerflex_cache_driver.simulator import loop
from powerflex_cache_driver.simulator import model

LOG = logging.getLogger(__name__)

BY_ID_PREFIX = model.BY_ID_PREFIX


class DevicePublisher:
    """The by-id links and loop devices of one array's mapped volumes.

    :param by_id_dir: directory playing ``/dev/disk/by-id``.
    :param system_id: the array's system id (in the link names).
    :param loop_devices: publish mapped volumes as loop devices (root);
        falls back to the backing files where the machine refuses.
    :param shared: ``by_id_dir`` is the host's, not the simulator's own:
        created (parents too) on the first link rather than here, emptied
        of this array's links and removed where this array created it by
        :meth:`release`.
    """

    def __init__(self, by_id_dir: str, system_id: str,
                 loop_devices: bool = False, shared: bool = False) -> None:
        self.by_id_dir = by_id_dir
        self.system_id = system_id
        self.loop_devices = loop_devices
        self.shared = shared
        #: Why loop devices are not used (None while they work or are off).
        self.loop_refused: Optional[str] = None
        #: Volume id -> loop device of the mapped volumes.
        self.loops: dict[str, str] = {}
        #: The links this array made in by_id_dir.
        self.links: set[str] = set()
        #: Directories of by_id_dir's path this array created.
        self.made_dirs: list[str] = []
        #: True from release to restore in a shared by_id_dir: links are
        #: neither made nor kept.
        self.withdrawn = False
        if not shared:
            os.makedirs(by_id_dir, exist_ok=True)

    def link_path(self, volume_id: str) -> str:
        """Return the by-id link path of ``volume_id`` (mapped or not)."""
        return os.path.join(self.by_id_dir, "%s%s-%s" % (
            BY_ID_PREFIX, self.system_id, volume_id))

    def publish(self, volume: model.Volume) -> None:
        """Make ``volume``'s link match its mappings: there iff mapped."""
        link = self.link_path(volume.id)
        if volume.mappings:
            if not os.path.islink(link) and not self.withdrawn:
                target = self._attach_loop(volume) or volume.backing_path
                self._make_by_id_dir()
                try:
                    os.symlink(target, link)
                except FileNotFoundError:
                    # A shared directory another simulator removed between
                    # the two calls, stopping: make it again.
                    self._make_by_id_dir()
                    os.symlink(target, link)
                self.links.add(link)
        else:
            self._remove_link(link)
            self._detach_loop(volume.id)

    def refresh(self, volume_id: str) -> None:
        """Make a volume's loop device (if any) see its new size."""
        if volume_id in self.loops:
            loop.refresh(self.loops[volume_id])

    def flush(self, volume_id: str) -> None:
        """Drop a volume's loop device (if any) cache of old content."""
        if volume_id in self.loops:
            loop.flush_buffers(self.loops[volume_id])

    def _remove_link(self, link: str) -> None:
        """Remove a link; in a shared directory, only one this array made."""
        if self.shared and link not in self.links:
            return
        if os.path.lexists(link):
            os.unlink(link)
        self.links.discard(link)

    def _make_by_id_dir(self) -> None:
        """Create by_id_dir and its missing parents; remember which."""
        missing = []
        path = os.path.abspath(self.by_id_dir)
        while not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        if not missing:
            return
        os.makedirs(self.by_id_dir, exist_ok=True)
        if self.shared:
            self.made_dirs.extend(
                d for d in missing if d not in self.made_dirs)

    def _withdraw_links(self) -> None:
        """Remove this array's links and the directories it created."""
        for link in sorted(self.links):
            self._remove_link(link)
        kept = []
        # Deepest first: a parent's path is shorter than its children's.
        for path in sorted(self.made_dirs, key=len, reverse=True):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                LOG.info("Leaving %s: %s", path, exc)
                kept.append(path)
        self.made_dirs = kept

    def _attach_loop(self, volume: model.Volume) -> Optional[str]:
        """Return a loop device over ``volume``'s file, or None."""
        if not self.loop_devices or self.loop_refused is not None:
            return None
        try:
            device = loop.attach(volume.backing_path)
        except loop.Unavailable as exc:
            self.loop_refused = str(exc)
            LOG.warning("Loop devices refused, mapped volumes are published "
                        "as their backing files: %s", exc)
            return None
        self.loops[volume.id] = device
        return device

    def _detach_loop(self, volume_id: str) -> None:
        device = self.loops.pop(volume_id, None)
        if device is not None:
            loop.detach(device)

    def release(self, volumes: Mapping[str, model.Volume]) -> None:
        """Detach every loop device; links fall back to the backing files.

        In a shared ``by_id_dir`` the links go too, and the directories
        this array created (when empty); none is made until
        :meth:`restore`.

        :param volumes: the array's volumes by id.
        """
        for volume_id in list(self.loops):
            link = self.link_path(volume_id)
            self._remove_link(link)
            self._detach_loop(volume_id)
            volume = volumes.get(volume_id)
            if (volume is not None and volume.mappings and
                    not self.shared):
                os.symlink(volume.backing_path, link)
                self.links.add(link)
        if self.shared:
            self.withdrawn = True
            self._withdraw_links()

    def restore(self, volumes: Iterable[model.Volume]) -> None:
        """Publish the mapped volumes as loop devices again (on start).

        In a shared ``by_id_dir``, publish every mapped volume's link again.

        :param volumes: the array's volumes.
        """
        if self.shared:
            self.withdrawn = False
            for volume in volumes:
                if volume.mappings:
                    self.publish(volume)
            return
        if not self.loop_devices:
            return
        for volume in volumes:
            link = self.link_path(volume.id)
            if volume.mappings and volume.id not in self.loops:
                self._remove_link(link)
                self.publish(volume)
