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
"""Where a volume came from and why it was (not) extended, in words.

Both are read from evidence a create left behind (a
:class:`tools.probe.Totals`): the INFO lines of this package's driver
(logger ``powerflex_cache_driver``) and of Cinder's create-volume flow,
image downloads, and the array requests. Cinder's stock driver logs no
decision, so for it the explanation comes from the request log and the
array sizes the probe saw.
"""

import re
from typing import Any

DOWNLOAD = "download"
CINDER_CACHE_CLONE = "cache clone via Cinder"
CLONE_IMAGE_CACHE = "clone_image cache clone"
CLONE_IMAGE_DIRECT = "clone_image direct clone (cinder://)"
CINDER_DIRECT = "direct clone via Cinder (cinder://)"
ROTATION = "rotation copy (vtree full) + clone_image cache clone"
FROM_SNAPSHOT = "clone of a snapshot"
EMPTY = "empty volume"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                   r"[0-9a-f]{12}")

_ROTATION_LINE = "is full; copying it into a new cache volume"
_CACHE_LINE = "from image-volume cache entry"
_DIRECT_LINE = "(cinder:// location)"
_CINDER_DIRECT_LINE = "Will clone a volume from the image volume"
_DECISION_WORDS = ("no extend", "extend to", "refused the extend",
                   "Cinder records")


def _seen(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


def classify(totals: Any, from_image: bool, from_snapshot: bool,
             new_cache_entry: bool) -> str:
    """Name the path a create took (one of this module's constants)."""
    lines = totals.lines
    if from_snapshot:
        return FROM_SNAPSHOT
    if not from_image:
        return EMPTY
    if _seen(lines, _ROTATION_LINE):
        return ROTATION
    if _seen(lines, _CACHE_LINE):
        return CLONE_IMAGE_CACHE
    if _seen(lines, _DIRECT_LINE):
        return CLONE_IMAGE_DIRECT
    if _seen(lines, _CINDER_DIRECT_LINE):
        return CINDER_DIRECT
    if totals.downloads:
        note = " (cache miss, new cache entry)" if new_cache_entry else ""
        if totals.calls.get("snapshotVolumes") and not new_cache_entry:
            note = " (cache clone failed)"
        return DOWNLOAD + note
    if totals.calls.get("snapshotVolumes"):
        return CINDER_CACHE_CLONE
    return "unknown"


def failure_context(totals: Any) -> str:
    """Say what the array and Cinder did around a failed create."""
    parts = []
    if totals.calls.get("snapshotVolumes"):
        parts.append("snapshotVolumes refused by the array"
                     if _seen(totals.lines, "FAILED") else "snapshotVolumes")
    parts.append("%d image download(s)" % totals.downloads)
    parts.append("Cinder evicted the cache entry and does not retry inside "
                 "the create flow; a filter scheduler allowing retries "
                 "would reschedule the request, this harness's does not")
    return "; ".join(parts)


def shorten(line: str) -> str:
    """Shorten the UUIDs of a log line to their first 8 characters."""
    return _UUID.sub(lambda m: m.group(0)[:8], line)


def explain_extends(totals: Any, volume: Any, requested: int,
                    array_gib: int) -> list[str]:
    """Say why ``setVolumeSize`` was or was not sent for one create."""
    decisions = [shorten(line) for line in totals.lines
                 if any(word in line for word in _DECISION_WORDS)
                 and volume.id in line]
    if decisions:
        return ["log: %s" % line for line in decisions]
    if not totals.resizes:
        return ["REST log: no setVolumeSize; the new array volume already "
                "holds %d GiB for requested %d GiB (this driver logs no "
                "decision)" % (array_gib, requested)]
    return ["REST log: setVolumeSize %d GiB sent to a %d GiB volume: %s"
            % (r.target_gib, r.before_gib,
               "redundant (already that size)" if r.redundant
               else "needed") for r in totals.resizes]
