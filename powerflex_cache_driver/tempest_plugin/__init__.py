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
"""Tempest plugin of powerflex-cache-driver.

Tests that check, through Cinder's REST API on a real cloud, what this
package's driver promises: the image-volume cache serves every disk format
with one entry per image, volumes are recorded at the size the array holds
and quota is charged for it, and creates from an image go on succeeding
past the array's snapshots-per-vtree limit. It also brings back Tempest
tests that skip only because they ask for a Neutron network they never use.

Tempest finds it through the ``tempest.test_plugins`` entry point; the
package's own unit tests never import it (Tempest is not one of their
dependencies).
"""
