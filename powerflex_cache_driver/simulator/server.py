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
"""The HTTPS front end of the simulated gateway.

A :class:`GatewayServer` is a threading HTTP/1.1 server whose connections
are wrapped in TLS in their own thread (a stalled handshake never blocks
the accept loop). For every request the handler:

1. resolves the operation from the raw path (:mod:`.handlers`);
2. applies the operation's latency and injected delays, and drops the
   connection when a drop rule says so (:mod:`.faults`);
3. checks the Basic-auth token (``login`` checks the credentials instead);
4. answers an injected error, or runs the operation;
5. answers JSON: 200 on success, the error envelope otherwise; except a
   401, which is the gateway's non-JSON error page as on a real gateway
   (:data:`~.errors.UNAUTHORIZED_HTML`) unless the simulator was made
   with ``json_401``;
6. appends a record without credentials to the request log.
"""

import json
import logging
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Optional, Protocol

from powerflex_cache_driver.simulator import _stdlib
from powerflex_cache_driver.simulator import array as sim_array
from powerflex_cache_driver.simulator import auth
from powerflex_cache_driver.simulator import calllog
from powerflex_cache_driver.simulator import control
from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import faults as faults_mod
from powerflex_cache_driver.simulator import handlers

LOG = logging.getLogger(__name__)
http_server = _stdlib.http_server()
socketserver = _stdlib.socketserver()
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 120.0


class Served(Protocol):
    """What a :class:`GatewayServer` serves, and all it uses of it.

    :class:`~powerflex_cache_driver.simulator.gateway.GatewaySimulator` is
    one; the server knows it by this description only, so the gateway
    module imports this one and never the other way round.
    """

    #: The stateful array the requests act on.
    array: sim_array.Array
    #: The login tokens.
    tokens: auth.TokenStore
    #: Latency, injected errors and dropped connections.
    faults: faults_mod.FaultInjector
    #: The request log.
    log: calllog.CallLog
    #: Answer 401 with the JSON envelope rather than the HTML page.
    json_401: bool


class GatewayRequestHandler(http_server.BaseHTTPRequestHandler):
    """Answers one connection's requests for a :class:`GatewayServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "PowerFlexGatewaySimulator/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    # Headers and body go out in two writes; without TCP_NODELAY the second
    # waits for the client's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    server: "GatewayServer"

    def log_message(self, format: str, *args: Any) -> None:
        """Send http.server's messages to logging at debug level."""
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        """Answer a GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        """Answer a POST."""
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        """Answer a PUT (no such endpoint: 405 or 404)."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        """Answer a DELETE (no such endpoint: 405 or 404)."""
        self._dispatch("DELETE")

    # ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_BODY:
            self.close_connection = True
            raise errors.invalid_request("bad Content-Length")
        return self.rfile.read(size)

    def _dispatch(self, method: str) -> None:
        sim = self.server.gateway
        started = time.time()
        clock = time.monotonic()
        raw_path = self.path
        if control.is_control_path(raw_path):
            self._control(method)
            return
        route, params, path_known = handlers.resolve(method, raw_path)
        op = route.op if route else "unknown"
        body: Any = None
        body_error: Optional[errors.ApiError] = None
        try:
            raw = self._read_body()
            if raw.strip():
                body = json.loads(raw.decode("utf-8"))
            elif method == "POST":
                body = {}
        except errors.ApiError as exc:
            body_error = exc
        except ValueError:
            body_error = errors.invalid_request("malformed JSON body")
        record = calllog.Call(
            method=method, path=raw_path, op=op, status=None,
            body=calllog.redact(body),
            volume_id=(handlers.unquote(params["volume_id"])
                       if "volume_id" in params else None),
            timestamp=started)
        plan = sim.faults.plan(op)
        if plan.delay > 0:
            time.sleep(plan.delay)
        dropped = plan.drop_before
        if not dropped:
            status, payload = self._answer(route, params, path_known, body,
                                           body_error)
            dropped = plan.drop_after
            if not dropped:
                record.status = status
                record.response = None if op == "login" else payload
        # Record before answering: a client that got its answer finds its
        # request in the log.
        record.duration = time.monotonic() - clock
        sim.log.add(record)
        LOG.debug("%s %s -> %s (%s)", method, raw_path, record.status, op)
        if dropped:
            self.close_connection = True
            self.server.drop(self.connection)
        elif status == 401 and not sim.json_401:
            self._send_unauthorized()
        else:
            self._send_json(status, payload)

    def _send_unauthorized(self) -> None:
        """Answer 401 as the gateway's web container does: an HTML page.

        No REST envelope: a client that decodes every answer as JSON (as
        Cinder's REST client does on GET) fails to decode it.
        """
        data = errors.UNAUTHORIZED_HTML.encode("utf-8")
        try:
            self.send_response(401)
            self.send_header("WWW-Authenticate",
                             'Basic realm="PowerFlex Gateway"')
            self.send_header("Content-Type", "text/html;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:  # the client went away
            LOG.debug("could not answer %s: %s", self.path, exc)
            self.close_connection = True

    def _control(self, method: str) -> None:
        """Answer a fault-control request (:mod:`.control`)."""
        sim = self.server.gateway
        try:
            credentials = auth.parse_basic(self.headers.get("Authorization"))
            if credentials is None or not sim.tokens.check_credentials(
                    *credentials):
                raise errors.unauthorized()
            raw = self._read_body()
            try:
                body = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except ValueError:
                raise errors.invalid_request("malformed JSON body")
            status, payload = control.answer(sim.faults, method, self.path,
                                             body)
        except errors.ApiError as exc:
            status, payload = exc.http_status, exc.body()
        LOG.debug("%s %s -> %s (control)", method, self.path, status)
        self._send_json(status, payload)

    def _authorized_token(self) -> Optional[str]:
        credentials = auth.parse_basic(self.headers.get("Authorization"))
        if credentials is None:
            return None
        token = credentials[1]
        return token if self.server.gateway.tokens.valid(token) else None

    def _answer(self, route: Optional[handlers.Route],
                params: dict[str, str], path_known: bool, body: Any,
                body_error: Optional[errors.ApiError]) -> tuple[int, Any]:
        sim = self.server.gateway
        try:
            if route is None:
                if path_known:
                    raise errors.ApiError(405, errors.ILLEGAL,
                                          "Method not allowed")
                raise errors.not_found("Not found: %s" % self.path)
            if route.op == "login":
                return self._login()
            token = self._authorized_token()
            if token is None:
                raise errors.unauthorized()
            injected = sim.faults.take_error(route.op)
            if injected is not None:
                raise injected
            if body_error is not None:
                raise body_error
            request = handlers.Request(array=sim.array, tokens=sim.tokens,
                                       params=params, body=body, token=token)
            return 200, route.handler(request)
        except errors.ApiError as exc:
            return exc.http_status, exc.body()
        except Exception as exc:  # a simulator bug: still answer JSON
            LOG.exception("simulator error on %s %s", self.command,
                          self.path)
            return 500, errors.ApiError(
                500, errors.ILLEGAL,
                "Internal simulator error: %s" % exc).body()

    def _login(self) -> tuple[int, Any]:
        sim = self.server.gateway
        credentials = auth.parse_basic(self.headers.get("Authorization"))
        if credentials is None or not sim.tokens.check_credentials(
                *credentials):
            raise errors.unauthorized()
        injected = sim.faults.take_error("login")
        if injected is not None:
            raise injected
        return 200, sim.tokens.issue()

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:  # the client went away (e.g. read timeout)
            LOG.debug("could not answer %s: %s", self.path, exc)
            self.close_connection = True


class GatewayServer(http_server.ThreadingHTTPServer):
    """Threading HTTPS server bound to one :class:`GatewaySimulator`.

    :param address: ``(host, port)``; port 0 picks a free port.
    :param context: server-side TLS context.
    :param sim: what to serve: the simulator providing array, tokens,
        faults and log.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext,
                 sim: Served) -> None:
        self.ssl_context = context
        self.gateway = sim
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        super().__init__(address, GatewayRequestHandler)

    def serve(self) -> None:
        """Accept connections until :meth:`stop` (no polling interval)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _events in selector.select():
                    if key.fileobj is self.socket:
                        self._handle_request_noblock()

    def stop(self) -> None:
        """Make :meth:`serve` return (from another thread)."""
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pair."""
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        """Bind without a (slow, pointless) ``socket.getfqdn`` lookup."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Wrap the connection in TLS (in the connection's thread)."""
        request.settimeout(IDLE_TIMEOUT)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:
            LOG.debug("TLS handshake with %s failed: %s", client_address,
                      exc)
            return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except OSError as exc:
            LOG.debug("connection with %s ended: %s", client_address, exc)
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def drop(self, conn: socket.socket) -> None:
        """Close ``conn`` at TCP level, without any TLS close_notify."""
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log unexpected connection errors quietly."""
        LOG.debug("error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open client connection (used by stop)."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            self.drop(conn)
