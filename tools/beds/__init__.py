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
"""Test beds the tests and the commands (demo, benchmark) both stand on.

The in-process Cinder, on the PowerFlex gateway simulator:

* :mod:`~tools.beds.inprocess_cinder`: Cinder's database and quotas, a
  real volume manager and create-volume flow, the simulator, the simulated
  SDC and the image service, driven as a user would;
* :mod:`~tools.beds.driver_testcases`: the test cases building it for one
  driver (Cinder's or ours), and :func:`~tools.beds.driver_testcases.
  standalone`, the same outside a test runner;
* :mod:`~tools.beds.cinder_testcase`: Cinder's own test case;
* its parts: :mod:`~tools.beds.gateway_simulator`,
  :mod:`~tools.beds.simulated_sdc`, :mod:`~tools.beds.fake_rpc`,
  :mod:`~tools.beds.fake_image_service`, :mod:`~tools.beds.disk_images`,
  :mod:`~tools.beds.green_import_order`, :mod:`~tools.beds.log_secrets`;
* what scenarios share: :mod:`~tools.beds.scenario_images` (the disks of
  the seed and the snapshot scenarios), :mod:`~tools.beds.gateway_faults`
  (faults injected into the simulated gateway) and
  :mod:`~tools.beds.manage_command` (``powerflex-cache-manage`` against the
  in-process Cinder).

The real one-machine cloud is elsewhere: ``tools/cloud`` and
:mod:`tools.cloudlib`.
"""

try:
    from cinder import objects
except ImportError:  # pragma: no cover - Cinder is a test dependency
    objects = None
else:
    # As cinder-volume does before loading any driver module.
    objects.register_all()
