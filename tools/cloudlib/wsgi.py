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
"""A WSGI entry point for gunicorn serving Keystone's or Glance's API.

``CLOUD_WSGI_MODULE`` names the service's own WSGI module
(``keystone.wsgi.api`` or ``glance.wsgi.api``). The command line is reset
before that import: both services parse ``sys.argv`` with oslo.config,
which would otherwise read gunicorn's own arguments and fail.
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]
application = importlib.import_module(
    os.environ["CLOUD_WSGI_MODULE"]).application
