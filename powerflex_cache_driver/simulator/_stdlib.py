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
"""Unpatched ``socketserver`` and ``http.server`` modules.

Importing Cinder imports eventlet's green ``BaseHTTPServer``, which leaves
in ``sys.modules["http.server"]`` a copy of ``http.server`` built on a green
``socketserver`` (green ``threading`` and ``socket``), even though nothing
is monkey-patched. A server built on that copy blocks in eventlet's hub as
soon as a plain thread waits on one of its green locks (``shutdown()``
never returns). The simulator therefore builds on private copies of the
two modules loaded from the standard library's source over the real
``socket``, ``threading`` and ``selectors`` modules.
"""

import importlib.util
import selectors
import socket
import sys
import threading
import types

_REAL = {"socket": socket, "threading": threading, "selectors": selectors}
_cache: dict[str, types.ModuleType] = {}


def _is_clean(module: types.ModuleType) -> bool:
    return all(getattr(module, name, real) is real
               for name, real in _REAL.items())


def _load_private(name: str, origin: str,
                  overrides: dict[str, types.ModuleType]
                  ) -> types.ModuleType:
    """Execute the stdlib source ``origin`` as a private module."""
    spec = importlib.util.spec_from_file_location(
        "_powerflex_sim_" + name.replace(".", "_"), origin)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ImportError("cannot load a private copy of %s" % name)
    module = importlib.util.module_from_spec(spec)
    saved = {key: sys.modules.get(key) for key in overrides}
    sys.modules.update(overrides)
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


def socketserver() -> types.ModuleType:
    """Return a ``socketserver`` module using the real threading/socket."""
    if "socketserver" not in _cache:
        import socketserver as imported
        module = imported
        if not _is_clean(imported):
            module = _load_private("socketserver", imported.__file__,
                                   dict(_REAL))
        _cache["socketserver"] = module
    return _cache["socketserver"]


def http_server() -> types.ModuleType:
    """Return an ``http.server`` module built on :func:`socketserver`."""
    if "http.server" not in _cache:
        from http import server as imported
        clean = socketserver()
        module = imported
        if (not _is_clean(imported) or
                getattr(imported, "socketserver", clean) is not clean):
            overrides = dict(_REAL, socketserver=clean)
            module = _load_private("http.server", imported.__file__,
                                   overrides)
        _cache["http.server"] = module
    return _cache["http.server"]
