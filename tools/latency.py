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
"""Per-endpoint latency the benchmark adds to the gateway simulator.

The defaults are ASSUMPTIONS, not measurements: no public Dell document or
benchmark we know of gives the response time of each PowerFlex gateway
REST endpoint. They only set an order of magnitude so that the number of
array requests shows in the time per create:

* a read (every ``GET``: volume, SDC, pool, vtree, statistics queries) is
  answered by the gateway from the MDM's in-memory state: a few
  milliseconds, 5 ms here;
* a change goes through the MDM cluster (metadata committed on the
  cluster before the answer): tens of milliseconds. 50 ms for
  ``createVolume`` and ``snapshotVolumes``, 30 ms for ``setVolumeSize``
  and ``removeVolume``, 20 ms for mapping and unmapping a volume to an
  SDC, 10 ms for ``login``; other changes 20 ms.

Override them with ``--latency op=seconds`` (repeatable), a JSON file
``{"op": seconds}`` (``--latency-file``), or ``--no-latency``. Operation
names are those of the simulator's request log
(:mod:`powerflex_cache_driver.simulator`).
"""

import json
from typing import Iterable, Optional

from powerflex_cache_driver.simulator import handlers

READ_SECONDS = 0.005
"""Assumed latency of every ``GET``."""

CHANGE_SECONDS = 0.020
"""Assumed latency of a change without its own entry below."""

CHANGES = {
    "createVolume": 0.050,
    "snapshotVolumes": 0.050,
    "setVolumeSize": 0.030,
    "removeVolume": 0.030,
    "addMappedSdc": 0.020,
    "removeMappedSdc": 0.020,
    "login": 0.010,
}
"""Assumed latency of the changes the create-volume paths send."""


def operations() -> dict[str, str]:
    """Every operation the simulator routes, with its HTTP method."""
    return {route.op: route.method for route in handlers.ROUTES}


def defaults() -> dict[str, float]:
    """The default table: reads, then changes (see the module doc)."""
    table = {}
    for op, method in sorted(operations().items()):
        if op in CHANGES:
            table[op] = CHANGES[op]
        elif method == "GET":
            table[op] = READ_SECONDS
        else:
            table[op] = CHANGE_SECONDS
    return table


def build(overrides: Iterable[str] = (), path: Optional[str] = None,
          disabled: bool = False) -> dict[str, float]:
    """Return the latency table for a run.

    :param overrides: ``op=seconds`` strings, applied last.
    :param path: a JSON object ``{"op": seconds}`` applied over the
        defaults.
    :param disabled: start from zero latency everywhere.
    :raises ValueError: on an unknown operation or a bad number.
    """
    known = operations()
    table = {op: 0.0 for op in known} if disabled else defaults()
    updates: dict[str, float] = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
        if not isinstance(loaded, dict):
            raise ValueError("%s: expected a JSON object {op: seconds}"
                             % path)
        updates.update(loaded)
    for item in overrides:
        op, sep, value = item.partition("=")
        if not sep:
            raise ValueError("--latency %r: expected op=seconds" % item)
        updates[op.strip()] = value
    for op, value in updates.items():
        if op not in known:
            raise ValueError("unknown operation %r; known: %s"
                             % (op, ", ".join(sorted(known))))
        seconds = float(value)
        if seconds < 0:
            raise ValueError("latency of %s must not be negative" % op)
        table[op] = seconds
    return table
