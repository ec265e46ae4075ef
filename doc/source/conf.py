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
"""Sphinx configuration of the powerflex-cache-driver documentation.

Built by ``tox -e docs`` into doc/build/html, warnings as errors.
"""

project = "powerflex-cache-driver"
copyright = "powerflex-cache-driver developers"

extensions = [
    # ``show-options``: the configuration reference, generated from the
    # options the package lists through its oslo.config.opts entry point.
    "oslo_config.sphinxext",
    # ``release-notes``: the notes under releasenotes/notes, read from git.
    "reno.sphinxext",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = []
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = "powerflex-cache-driver"
html_theme_options = {
    "description": "Cinder volume driver for Dell PowerFlex",
    "fixed_sidebar": True,
}
html_static_path = []
