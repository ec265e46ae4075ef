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

* the array holds every volume at its size rounded up to the granularity
  (8 GiB on Mirroring systems, 1 GiB on erasure-coded ones), and a snapshot
  or clone holds its source's array size;
* what Cinder records covers what the array holds, so the rounded recorded
  size of a volume is its array size (a lower bound for a volume grown on
  the array behind Cinder's back);
* an extend is sent only when the requested size rounded up exceeds the
  array size, and its target is that rounded size.
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


def clone_array_size(source_recorded_gib: int, requested_gib: int,
                     gran_gib: int) -> int:
    """Array size of a clone of a source recorded at ``source_recorded_gib``.

    The clone starts at its source's array size and is extended to the
    rounded requested size when that is larger.
    """
    return max(round_up(source_recorded_gib, gran_gib),
               round_up(requested_gib, gran_gib))


class Action(enum.Enum):
    """What the driver does about an array size."""

    SKIP = "skip"
    """The array size already covers the request: send nothing."""

    EXTEND = "extend"
    """Send ``setVolumeSize`` with the plan's target."""


@dataclasses.dataclass(frozen=True)
class ExtendPlan:
    """An extend decision for one array volume."""

    requested_gib: int
    target_gib: int
    array_gib: int
    action: Action

    def describe(self) -> str:
        """Say the decision in words an operator understands."""
        if self.action is Action.SKIP:
            return ("array size %d GiB already covers requested %d GiB, "
                    "no extend" % (self.array_gib, self.requested_gib))
        return ("array size %d GiB is below requested %d GiB, extend to "
                "%d GiB" % (self.array_gib, self.requested_gib,
                            self.target_gib))


def plan_extend(requested_gib: int, array_gib: int,
                gran_gib: int) -> ExtendPlan:
    """Decide whether an array volume must be extended.

    :param requested_gib: the size Cinder asks for.
    :param array_gib: the array size known from the recorded size (the
        rounded recorded size of the volume or of the clone's source).
    :param gran_gib: the array allocation granularity.
    """
    target = round_up(requested_gib, gran_gib)
    action = Action.SKIP if array_gib >= target else Action.EXTEND
    return ExtendPlan(requested_gib=requested_gib, target_gib=target,
                      array_gib=array_gib, action=action)
