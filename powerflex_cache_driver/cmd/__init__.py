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
"""Operator commands: powerflex-cache-status, powerflex-cache-manage."""

import warnings

# Importing Cinder imports eventlet, which warns on standard error that it
# is deprecated: nothing an operator of these commands can act on.
warnings.filterwarnings("ignore", message="\nEventlet is deprecated")

from cinder import objects  # noqa: E402

# As cinder-volume does before it loads a driver: the driver's modules
# import Cinder's volume manager, which needs Cinder's objects.
objects.register_all()
