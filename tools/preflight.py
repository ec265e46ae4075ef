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
"""What the demo and the benchmark need, checked before anything runs.

The checks import nothing heavy: Cinder must be monkey-patched by eventlet
before its modules load (:func:`green_start`), as cinder-volume does.
"""

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from typing import Any, Optional
import warnings

EXIT_MISSING = 2
"""Exit status when something the command needs is missing."""

REQUIRED_MODULES = (
    ("cinder", "Cinder (pip install cinder==29.0.0, or run through tox)"),
    ("os_brick", "os-brick (a Cinder dependency)"),
    ("powerflex_cache_driver", "this package (pip install -e .)"),
    ("tools.beds", "the test beds (run from the source checkout's top "
                   "directory)"),
)


def _module_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def problems(extra_modules: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """Return one sentence per missing prerequisite (empty when all set)."""
    found = []
    for name, what in REQUIRED_MODULES + extra_modules:
        if _module_missing(name):
            found.append("cannot import %s: install %s" % (name, what))
    if shutil.which("qemu-img") is None:
        found.append("qemu-img is not on the PATH: install it (Debian and "
                     "Ubuntu: apt-get install qemu-utils, or run "
                     "bash tools/setup-dev.sh)")
    if os.geteuid() != 0:
        found.append("not running as root: Cinder runs qemu-img and dd on "
                     "the simulated SDC devices with root privileges "
                     "(privsep in-process), so run this command as root")
    return found


def require(command: str,
            extra_modules: tuple[tuple[str, str], ...] = ()) -> None:
    """Exit with :data:`EXIT_MISSING` and a clear message if not ready."""
    found = problems(extra_modules)
    if not found:
        return
    print("%s: cannot run:" % command, file=sys.stderr)
    for sentence in found:
        print("  - %s" % sentence, file=sys.stderr)
    sys.exit(EXIT_MISSING)


def cinder_version() -> Optional[str]:
    """Return the installed Cinder's version, or None."""
    try:
        return importlib.metadata.version("cinder")
    except importlib.metadata.PackageNotFoundError:
        return None


def quiet_library_warnings() -> None:
    """Keep Python warnings of Cinder and its libraries off the output.

    They are addressed to those libraries' developers (deprecations, an
    alembic notice on every database set-up) and would bury the report.
    """
    warnings.showwarning = _drop_warning


def _drop_warning(*_args: Any, **_kwargs: Any) -> None:
    """A ``warnings.showwarning`` that shows nothing."""


def green_start() -> None:
    """Monkey-patch the process with eventlet, as cinder-volume does.

    Must run before Cinder, requests or urllib3 are imported.
    """
    from cinder import monkey_patch
    monkey_patch.patch()


def positive_int(text: str) -> int:
    """An argparse type: a count of 1 or more (runs, rounds)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more: %s" % text)
    return value
