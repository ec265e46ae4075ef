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
"""Gateway login: credential check and session tokens.

``GET /api/login`` with Basic ``user:password`` returns a token; every later
request carries it as the Basic-auth *password* (the user name is ignored).
Tokens issued earlier stay valid after a new login, because Cinder refreshes
its token periodically while requests holding the old one may be in flight.
Expiry is off unless ``ttl`` is given.
"""

import base64
import hmac
import secrets
import threading
import time
from typing import Optional


def parse_basic(header: Optional[str]) -> Optional[tuple[str, str]]:
    """Return ``(user, password)`` from a Basic ``Authorization`` header."""
    if not header:
        return None
    scheme, _sep, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
        text = decoded.decode("latin-1")
    except ValueError:
        return None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password


class TokenStore:
    """Issued tokens, with optional expiry and bulk invalidation.

    :param username: the accepted login user name.
    :param password: the accepted password.
    :param ttl: token lifetime in seconds; None means tokens never expire.
    """

    def __init__(self, username: str, password: str,
                 ttl: Optional[float] = None) -> None:
        self._username = username
        self._password = password
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self.ever_issued: list[str] = []
        """Every token handed out, revoked or not (for log scans)."""

    def check_credentials(self, user: str, password: str) -> bool:
        """Return True when ``user:password`` may log in."""
        return (hmac.compare_digest(user.encode(), self._username.encode())
                and hmac.compare_digest(password.encode(),
                                        self._password.encode()))

    def issue(self) -> str:
        """Create a token like a gateway's: unpadded base64 text."""
        raw = "%s:%d:%s" % (self._username, int(time.time() * 1000),
                            secrets.token_hex(16))
        token = base64.b64encode(raw.encode()).decode().rstrip("=")
        with self._lock:
            self._tokens[token] = time.monotonic()
            self.ever_issued.append(token)
        return token

    def valid(self, token: str) -> bool:
        """Return True when ``token`` was issued, not revoked, not expired."""
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None:
                return False
            if self.ttl is not None and time.monotonic() - issued > self.ttl:
                del self._tokens[token]
                return False
            return True

    def revoke(self, token: str) -> None:
        """Invalidate one token (``/api/logout``)."""
        with self._lock:
            self._tokens.pop(token, None)

    def invalidate_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    @property
    def count(self) -> int:
        """Number of tokens currently held."""
        with self._lock:
            return len(self._tokens)
