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
"""The migration of a whole VTree to another storage pool (migrateVTree).

What the array refuses between pools of different data layouts or zero
padding settings, and how the members change on arrival (volume type
conversion, compression). The move is synchronous; the
:class:`~.array.Array` pauses it instead when told to.
"""

from typing import Optional

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model

CONVERSIONS = ("NoConversion", "ThickToThin", "ThinToThick")


def check(source: model.StoragePool, dest: model.StoragePool,
          members: list[model.Volume], conversion: str) -> None:
    """Raise the array's error if ``members`` may not move to ``dest``."""
    if conversion not in CONVERSIONS:
        raise errors.invalid_request(
            "volTypeConversion should get one of the following values: "
            "NoConversion, ThickToThin, ThinToThick")
    if source.data_layout != dest.data_layout and len(members) > 1:
        raise errors.array_error(
            errors.ILLEGAL, "V-Trees with multiple volumes, or V-Trees "
            "that are included in a snapshot policy, may not be migrated "
            "between Storage Pools with different data layouts.")
    if (source.data_layout == model.MEDIUM and
            dest.data_layout == model.FINE and
            not source.zero_padding_enabled):
        raise errors.array_error(
            errors.ILLEGAL, "Migration from a Medium Granularity Storage "
            "Pool to a Fine Granularity one requires zero padding.")
    if (source.data_layout == model.MEDIUM and
            dest.data_layout == model.MEDIUM and
            source.zero_padding_enabled != dest.zero_padding_enabled):
        raise errors.array_error(
            errors.ILLEGAL, "You cannot migrate a V-Tree between Storage "
            "Pools with different zero-padding settings.")
    if dest.data_layout == model.FINE and (
            conversion == "ThinToThick" or
            (conversion == "NoConversion" and
             any(m.volume_type == model.THICK for m in members))):
        raise errors.array_error(
            errors.ILLEGAL, "Thick volumes are not supported in a Fine "
            "Granularity Storage Pool")


def move(vtree: model.VTree, members: list[model.Volume],
         dest: model.StoragePool, conversion: str,
         compression: Optional[str]) -> None:
    """Move ``vtree`` and its ``members`` to ``dest`` (checked before)."""
    for member in members:
        member.pool_id = dest.id
        kind = member.volume_type
        if conversion == "ThickToThin" and kind == model.THICK:
            member.volume_type = model.THIN
        elif conversion == "ThinToThick" and kind == model.THIN:
            member.volume_type = model.THICK
        if dest.data_layout == model.FINE and compression:
            member.compression_method = compression
        elif dest.data_layout != model.FINE:
            member.compression_method = "NotApplicable"
    vtree.pool_id = dest.id
