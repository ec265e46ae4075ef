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
"""A ``/dev/scini`` for machines without the PowerFlex SDC kernel module.

os-brick's ``ScaleIOConnector`` asks ``/dev/scini`` (two ioctls, in its
privsep daemon) for the host's SDC GUID and to rescan volumes. The cloud
runs where no SDC module (and no CUSE) exists, so the processes that need
it preload ``tools/sdc/scini_shim.c`` built as a shared library: it answers
those ioctls, the GUID coming from ``POWERFLEX_SDC_GUID``. The device links
themselves come from the gateway simulator (``--by-id-dir``).

Typical use::

    lib = sdc.build_shim(state_dir)
    env = dict(os.environ, **sdc.shim_env(lib, guid))
    subprocess.Popen(["cinder-volume", ...], env=env)
"""

import os
import shutil
import subprocess
import uuid

SHIM_SOURCE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "sdc", "scini_shim.c")
"""The shim's C source, ``tools/sdc/scini_shim.c``."""

SHIM_NAME = "libscini_shim.so"
GUID_ENV = "POWERFLEX_SDC_GUID"
"""The variable the shim reads the SDC GUID from."""

COMPILE_TIMEOUT_S = 120


class ShimBuildError(RuntimeError):
    """The shim could not be compiled; the message says why."""


def build_shim(out_dir: str) -> str:
    """Compile the shim into ``out_dir``; return the library's path.

    The library is written under a temporary name and renamed into place,
    so a process that already loaded a previous build keeps a whole file.

    :raises ShimBuildError: gcc is missing or the compilation failed.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ShimBuildError(
            "gcc not found on PATH: it is needed to build the /dev/scini "
            "shim (%s); install it (apt-get install gcc)" % SHIM_SOURCE)
    os.makedirs(out_dir, exist_ok=True)
    lib = os.path.join(os.path.abspath(out_dir), SHIM_NAME)
    tmp = "%s.%d.tmp" % (lib, os.getpid())
    command = [gcc, "-shared", "-fPIC", "-O2", "-o", tmp, SHIM_SOURCE,
               "-ldl"]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S, check=False)
        if done.returncode:
            raise ShimBuildError("%s: exit %d: %s" % (
                " ".join(command), done.returncode,
                (done.stderr or done.stdout).strip()))
        os.replace(tmp, lib)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ShimBuildError("%s: %s" % (" ".join(command), exc)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def shim_env(lib_path: str, guid: str) -> dict[str, str]:
    """Return the environment additions preloading the shim.

    ``LD_PRELOAD`` holds the shim alone: merge it yourself with any other
    preloaded library.

    :param lib_path: the library :func:`build_shim` returned (made
        absolute: the privsep daemon does not share the caller's working
        directory).
    :param guid: the SDC GUID ``/dev/scini`` reports, any form
        :class:`uuid.UUID` accepts; passed on in canonical form, the one
        the shim parses.
    :raises ValueError: ``guid`` is not a UUID.
    """
    return {"LD_PRELOAD": os.path.abspath(lib_path),
            GUID_ENV: str(uuid.UUID(guid))}
