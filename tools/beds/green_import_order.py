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
"""Undo the effects of modules imported before eventlet's monkey-patching.

Cinder's test base class monkey-patches the process with eventlet, as
cinder-volume runs by default. cinder-volume imports ``cinder`` (and so
patches) before anything else; a test process may not: pytest loads
requests-mock's plugin, which imports ``requests`` and ``urllib3``, and
the standard library's ``selectors`` and ``socketserver`` may already be
loaded. Two things then break, and :class:`GreenImportOrderFixture` sets
them as a correctly ordered process has them, for the duration of a test:

* ``urllib3`` builds its TLS contexts from the ``ssl.SSLContext`` it
  imported: the original class, whose ``minimum_version`` setter recurses
  once eventlet has replaced ``ssl.SSLContext`` (a ``RecursionError`` on
  the driver's first HTTPS request). It is given eventlet's class.
* ``socketserver`` (under the simulator's HTTPS server) picked the
  stdlib's ``PollSelector``, whose ``poll()`` never yields to eventlet's
  hub: the server's green thread then starves every other one, Cinder
  included. It is given eventlet's green ``SelectSelector``.

In a process that is not monkey-patched the fixture changes nothing.
"""

import ssl
from typing import Any

import fixtures

from powerflex_cache_driver.simulator import server as sim_server


def _patched(module: str) -> bool:
    try:
        import eventlet
    except ImportError:  # pragma: no cover - Cinder depends on eventlet
        return False
    return eventlet.patcher.is_monkey_patched(module)


class GreenImportOrderFixture(fixtures.Fixture):
    """Give early-imported modules eventlet's green classes."""

    def _setUp(self) -> None:
        if _patched("socket"):
            from urllib3.util import ssl_ as urllib3_ssl
            if urllib3_ssl.SSLContext is not ssl.SSLContext:
                self.useFixture(fixtures.MonkeyPatch(
                    "urllib3.util.ssl_.SSLContext", ssl.SSLContext))
        if _patched("select"):
            from eventlet.green import selectors as green_selectors
            self._set_server_selector(green_selectors.SelectSelector)

    def _set_server_selector(self, selector: Any) -> None:
        # The globals of the socketserver module serve_forever() runs in:
        # the stdlib module or the simulator's private copy of it.
        server_globals = sim_server.GatewayServer.serve_forever.__globals__
        saved = server_globals["_ServerSelector"]
        server_globals["_ServerSelector"] = selector
        self.addCleanup(server_globals.__setitem__, "_ServerSelector", saved)
