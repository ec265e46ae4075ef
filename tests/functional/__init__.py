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
"""Functional tests: Cinder's real create-volume flow against the simulator.

Each test builds a cinder-volume service the way Cinder's own tests do
(SQLite database, fake RPC and notifier), loads the PowerFlex driver under
test from its class path, and sets it up over HTTPS against the PowerFlex
gateway simulator. Volumes are created through Cinder's volume API and
manager, so quotas, the image-volume cache, the internal tenant, the
create-volume taskflow, os-brick and ``qemu-img`` all run unchanged. Only the
image service and the array are fakes.
"""

try:
    from cinder import objects
except ImportError:  # pragma: no cover - Cinder is a test dependency
    objects = None
else:
    # As cinder-volume does before loading any driver module.
    objects.register_all()
