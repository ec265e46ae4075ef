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
"""The request log: one record per request the gateway received.

Records never hold credentials: the ``Authorization`` header is not kept,
the login answer (the token) is not kept, and body keys that look like
secrets are replaced by ``"***"``.
"""

import collections
import dataclasses
import threading
from typing import Any, Optional

REDACTED = "***"
_SECRET_WORDS = ("password", "passwd", "token", "secret", "authorization")


def redact(value: Any) -> Any:
    """Return ``value`` with secret-looking keys replaced, recursively."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and
                    any(w in k.lower() for w in _SECRET_WORDS)
                    else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclasses.dataclass
class Call:
    """One request.

    :ivar method: HTTP method.
    :ivar path: raw (undecoded) request path.
    :ivar op: operation name, e.g. ``setVolumeSize``; ``unknown`` when no
        route matched.
    :ivar status: HTTP status answered; None when the connection was
        dropped without an answer.
    :ivar body: parsed JSON request body (secrets redacted), or None.
    :ivar volume_id: the volume id the URL names (``Volume::{id}``).
    :ivar timestamp: ``time.time()`` when the request arrived.
    :ivar response: parsed JSON answer (None for login and drops).
    :ivar duration: seconds spent answering, injected delays included.
    """

    method: str
    path: str
    op: str
    status: Optional[int]
    body: Any
    volume_id: Optional[str]
    timestamp: float
    response: Any = None
    duration: float = 0.0


class CallLog:
    """A thread-safe list of :class:`Call` records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def add(self, call: Call) -> None:
        """Append one record."""
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[Call]:
        """A snapshot copy of every record, oldest first."""
        with self._lock:
            return list(self._calls)

    def counts(self) -> "collections.Counter[str]":
        """Return a Counter of requests by operation name."""
        return collections.Counter(c.op for c in self.calls)

    def calls_of(self, op: str) -> list[Call]:
        """Return the records of one operation."""
        return [c for c in self.calls if c.op == op]

    def reset(self) -> None:
        """Forget every record."""
        with self._lock:
            self._calls.clear()
