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
"""This host's record of the volumes its copies hold mapped.

A host-assisted copy maps two volumes to this host's SDC and unmaps them
afterwards. A volume can be held by several copies at once (two creates
copying one full cache entry, two clones of one source, in one
cinder-volume service or in two that share this host's SDC), and it can be
mapped here already by something that is not a copy (Cinder attaching it
for a backup, an instance on this host). The array's answers alone cannot
tell these apart, so each volume's mapping has a record here, kept in a
file beside Cinder's lock files (``[oslo_concurrency] lock_path``) and
changed only under an inter-process lock for that volume:

* ``volume_id``: the Cinder volume;
* ``ours``: a copy made the mapping; only then may a copy remove it;
* ``holders``: the copies using the mapping now, by process (its pid and
  start time) and copy. The last holder of a mapping that is ``ours``
  unmaps it. A holder whose process is gone (the service was killed
  mid-copy) holds nothing: the next copy of the volume, or the first copy
  after the service starts again (:func:`stale_records`), removes what it
  left.
"""

import contextlib
import functools
import json
import os
import uuid
from typing import Iterator, Optional

from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

DIRECTORY = "powerflex-cache-mappings"
"""The records' directory, under ``[oslo_concurrency] lock_path``."""

_LOCK_PREFIX = "powerflex-cache-map-"


def _start_time(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (clock ticks since boot).

    It tells a process from a later one that reuses its pid. None when
    there is no such process.
    """
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Field 22 of proc(5); fields[0] is field 3 (the state).
    return fields[19]


@functools.cache
def _boot_id() -> Optional[str]:
    """This boot of the host (it does not change while a process runs)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as source:
            return source.read().strip()
    except OSError:
        return None


@functools.cache
def _pid_namespace() -> Optional[str]:
    """This process's pid namespace (fixed for its life)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def this_process() -> dict:
    """This process, as a holder records it.

    Its pid and start time, the host's boot and the pid namespace they
    are counted in.
    """
    return {"pid": os.getpid(), "start": _start_time(os.getpid()),
            "boot": _boot_id(), "pid_ns": _pid_namespace()}


def _alive(process: dict) -> bool:
    """Whether the holder's process may still run.

    A process of an earlier boot is gone; one of another pid namespace (a
    service in another container sharing the lock path) cannot be looked
    up from here, so it is taken as running: only its own service's
    copies remove what it holds.
    """
    if process.get("boot") != _boot_id():
        return False
    if process.get("pid_ns") != _pid_namespace():
        return True
    return (process.get("start") is not None and
            _start_time(process.get("pid", -1)) == process["start"])


def _directory() -> str:
    lock_path = CONF.oslo_concurrency.lock_path
    if not lock_path:
        raise cfg.RequiredOptError("lock_path",
                                   cfg.OptGroup("oslo_concurrency"))
    return os.path.join(lock_path, DIRECTORY)


def check_configured() -> None:
    """Make sure the records have a place.

    :raises oslo_config.cfg.RequiredOptError: ``[oslo_concurrency]
        lock_path`` is not set.
    """
    _directory()


class Record:
    """The mapping of one volume to this host's SDC, as copies hold it."""

    def __init__(self, key: str, data: dict) -> None:
        self.key = key
        self.volume_id: Optional[str] = data.get("volume_id")
        self.ours: bool = bool(data.get("ours"))
        self.holders: dict[str, dict] = dict(data.get("holders") or {})

    def live_holders(self) -> list[str]:
        """The copies holding the mapping whose process still runs."""
        return [copy for copy, process in self.holders.items()
                if _alive(process)]

    def drop_dead_holders(self) -> list[str]:
        """Forget the holders whose process is gone; return them."""
        dead = [copy for copy, process in self.holders.items()
                if not _alive(process)]
        for copy in dead:
            del self.holders[copy]
        return dead

    def to_dict(self) -> dict:
        """The record as stored."""
        return {"volume_id": self.volume_id, "ours": self.ours,
                "holders": self.holders}


def _path(key: str) -> str:
    return os.path.join(_directory(), key + ".json")


def _load(key: str) -> Record:
    try:
        with open(_path(key)) as stored:
            return Record(key, json.load(stored))
    except FileNotFoundError:
        return Record(key, {})
    except (OSError, ValueError):
        # A torn write (the host lost power while writing): the record
        # cannot say the mapping is ours, so nothing will unmap it.
        LOG.warning("Mapping record %s is unreadable; starting a new one.",
                    _path(key), exc_info=True)
        return Record(key, {})


def save(record: Record) -> None:
    """Store ``record``; a record that says nothing is removed.

    :func:`locked` saves when its block ends; call it earlier for what
    must be on disk before the array is asked: a process killed during
    the request leaves a record saying what it may have done.
    """
    path = _path(record.key)
    if not record.ours and not record.holders:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    fileutils.ensure_tree(os.path.dirname(path))
    temporary = "%s.%s" % (path, uuid.uuid4().hex)
    try:
        with open(temporary, "w") as stored:
            json.dump(record.to_dict(), stored)
            stored.flush()
            os.fsync(stored.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def key_of(sdc_id: str, provider_id: str) -> str:
    """The record key of array volume ``provider_id`` on SDC ``sdc_id``."""
    return "%s-%s" % (sdc_id, provider_id)


@contextlib.contextmanager
def locked(key: str) -> Iterator[Record]:
    """The record of ``key``, locked against every process of this host.

    What the block changes in the record is stored when it ends, even
    when it raises.
    """
    with lockutils.lock(_LOCK_PREFIX + key, external=True,
                        lock_path=os.path.dirname(_directory())):
        record = _load(key)
        try:
            yield record
        finally:
            save(record)


def stale_records() -> list[Record]:
    """The records no live copy holds (to sweep), as read now."""
    try:
        names = os.listdir(_directory())
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        if not name.endswith(".json"):
            # Not a record: a write in progress, or one cut short.
            continue
        record = _load(name[:-len(".json")])
        if not record.live_holders():
            records.append(record)
    return records


def forget(provider_id: str) -> int:
    """Drop the records of array volume ``provider_id``, now removed.

    The array unmapped it from every SDC before removing it (Cinder's
    driver unmaps first); a record no live copy holds would otherwise
    stay until the next sweep, and name a mapping that is gone. A record
    a copy still holds is kept.

    :returns: how many records were dropped.
    """
    try:
        names = os.listdir(_directory())
    except FileNotFoundError:
        return 0
    dropped = 0
    for name in names:
        key = name[:-len(".json")]
        if not name.endswith(".json") or provider_id_of(key) != provider_id:
            continue
        with locked(key) as record:
            if record.live_holders() or not (record.ours or record.holders):
                continue
            record.ours = False
            record.holders.clear()
            dropped += 1
    return dropped


def provider_id_of(key: str) -> str:
    """The array volume id in record key ``key``."""
    return key.split("-", 1)[1]


def sdc_id_of(key: str) -> str:
    """The SDC id in record key ``key``."""
    return key.split("-", 1)[0]


def left_by_copy(provider_id: str) -> bool:
    """Whether a record says a copy made a mapping of ``provider_id`` here."""
    try:
        names = os.listdir(_directory())
    except FileNotFoundError:
        return False
    return any(_load(name[:-5]).ours for name in names
               if name.endswith(".json") and
               provider_id_of(name[:-5]) == provider_id)
