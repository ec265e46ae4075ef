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
"""Granularity arithmetic and extend decisions.

Pure functions with no Cinder import, so the size policy can be read and
tested on its own:

* an extend is sent to the array only when the requested size rounded up to
  the array granularity exceeds the array (physical) size, and its target is
  that rounded size;
* what is known before asking the array (the rounded database size of the
  source) is a lower bound of the physical size; when that bound already
  covers the request no REST call is needed at all.
"""

import dataclasses
import enum

MIRRORING_GRANULARITY_GIB = 8
"""Allocation granularity of Mirroring systems (MG and FG pools)."""

EC_GRANULARITY_GIB = 1
"""Allocation granularity of PowerFlex 5 erasure-coded systems."""


def granularity(erasure_coded: bool) -> int:
    """Return the array allocation granularity in GiB."""
    return EC_GRANULARITY_GIB if erasure_coded else MIRRORING_GRANULARITY_GIB


def round_up(size_gib: int, gran_gib: int) -> int:
    """Round ``size_gib`` up to a multiple of ``gran_gib``.

    Equivalent to Cinder's ``round_to_num_gran`` for whole GiB sizes.
    """
    if size_gib < 0 or gran_gib <= 0:
        raise ValueError("size %r and granularity %r must be positive"
                         % (size_gib, gran_gib))
    return -(-size_gib // gran_gib) * gran_gib


def is_aligned(size_gib: int, gran_gib: int) -> bool:
    """Tell whether the array can hold ``size_gib`` without rounding."""
    return size_gib % gran_gib == 0


class Action(enum.Enum):
    """What the driver does about an array size."""

    SKIP = "skip"
    """The array size already covers the request: send nothing."""

    EXTEND = "extend"
    """Send ``setVolumeSize`` with the plan's target."""

    READ_ARRAY_SIZE = "read-array-size"
    """Only a lower bound is known and it does not cover the request: read
    the real array size (one GET) and plan again."""


@dataclasses.dataclass(frozen=True)
class ExtendPlan:
    """An extend decision for one array volume."""

    requested_gib: int
    target_gib: int
    known_gib: int
    known_is_exact: bool
    action: Action

    def describe(self) -> str:
        """Say the decision in words an operator understands."""
        known = ("array size %d GiB" % self.known_gib if self.known_is_exact
                 else "array size at least %d GiB" % self.known_gib)
        if self.action is Action.SKIP:
            return ("%s already covers requested %d GiB; no extend"
                    % (known, self.requested_gib))
        if self.action is Action.EXTEND:
            return ("%s is below requested %d GiB; extend to %d GiB"
                    % (known, self.requested_gib, self.target_gib))
        return ("%s does not prove requested %d GiB is covered; reading "
                "the array size" % (known, self.requested_gib))


def plan_extend(requested_gib: int, known_gib: int, gran_gib: int,
                known_is_exact: bool, read_allowed: bool = True
                ) -> ExtendPlan:
    """Decide whether an array volume must be extended.

    :param requested_gib: the size Cinder asks for (``volume.size``).
    :param known_gib: the array size if ``known_is_exact``, else a lower
        bound of it (the rounded database size of the source).
    :param gran_gib: the array allocation granularity.
    :param known_is_exact: whether ``known_gib`` was read from the array.
    :param read_allowed: whether the array size may be read when a lower
        bound does not settle the decision; if not, the extend is planned
        at once.
    """
    target = round_up(requested_gib, gran_gib)
    if known_gib >= target:
        action = Action.SKIP
    elif known_is_exact or not read_allowed:
        action = Action.EXTEND
    else:
        action = Action.READ_ARRAY_SIZE
    return ExtendPlan(requested_gib=requested_gib, target_gib=target,
                      known_gib=known_gib, known_is_exact=known_is_exact,
                      action=action)


def lower_bound_from_db(db_size_gib: int, gran_gib: int) -> int:
    """Lower bound of the array size of a volume whose DB size is known.

    The array rounds every size up to its granularity and a snapshot or
    clone has the physical size of its source, so a volume (or snapshot of a
    volume) of database size ``s`` holds at least ``round_up(s)`` GiB.
    """
    return round_up(db_size_gib, gran_gib)
