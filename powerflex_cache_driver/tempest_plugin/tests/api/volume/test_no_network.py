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
"""Tempest volume tests that skip only for want of a Neutron network.

Tempest's ``VolumesSnapshotTestJSON`` and both ``VolumesActionsTest``
classes ask for a default network (``create_default_network = True``) for
their tests that boot a server, and so skip whole without Neutron. Their
other tests need no server: snapshot CRUD, volumes from snapshots, upload
to image, bootable, read-only, reserve, reset status, force delete. These
subclasses run them without the network; the tests that need a server still
skip (``@utils.services('compute')``).

The classes are reached through their modules, not imported by name, so
that the test loader does not find Tempest's classes a second time here.
"""

from tempest.api.volume.admin import (
    test_volumes_actions as admin_test_volumes_actions)
from tempest.api.volume import test_volumes_actions
from tempest.api.volume import test_volumes_snapshots


class VolumesSnapshotNoNetworkTest(
        test_volumes_snapshots.VolumesSnapshotTestJSON):
    """``VolumesSnapshotTestJSON`` without the default network."""

    create_default_network = False


class VolumesActionsNoNetworkTest(test_volumes_actions.VolumesActionsTest):
    """``VolumesActionsTest`` without the default network."""

    create_default_network = False


class VolumesActionsAdminNoNetworkTest(
        admin_test_volumes_actions.VolumesActionsTest):
    """The admin ``VolumesActionsTest`` without the default network."""

    create_default_network = False
