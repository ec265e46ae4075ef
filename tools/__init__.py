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
"""Commands run from a source checkout, and the test beds.

``python -m tools.demo`` and ``python -m tools.bench`` drive the in-process
Cinder of the functional tests (:mod:`tools.beds`) from a command line:
Cinder's real volume manager, create-volume flow and image-volume cache
against the PowerFlex gateway simulator, once with Cinder's stock PowerFlex
driver and once with this package's driver. ``tools/cloud`` (with
:mod:`tools.cloudlib`) runs the real one-machine cloud.
"""
