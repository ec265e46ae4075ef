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
"""Unit tests: our drivers against a PowerFlex gateway mocked in-process."""

try:
    from cinder import objects
except ImportError:  # the simulator's own tests do not need Cinder
    objects = None
else:
    # As cinder-volume does before loading any driver module.
    objects.register_all()
