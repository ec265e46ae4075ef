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
"""Fault injection keyed by operation name.

Operation names are those of the request log (``createVolume``,
``setVolumeSize``, ``snapshotVolumes``...). A rule applies to the next
``times`` requests of its operation (``None`` = every request until
:meth:`FaultInjector.clear`):

* :meth:`~FaultInjector.fail` answers an error envelope instead of running
  the operation (nothing changes on the array);
* :meth:`~FaultInjector.delay` sleeps before answering, which also provokes
  client read timeouts (the operation still runs, as on a slow array);
* :meth:`~FaultInjector.drop` closes the connection without an answer,
  before running the operation or, with ``after=True``, after it ran;
* :meth:`~FaultInjector.invalidate_tokens` revokes every issued token.

A per-operation latency table (seconds, default 0) adds a steady delay to
every request of an operation, for benchmarks.
"""

import dataclasses
import threading
from typing import Callable, Optional

from powerflex_cache_driver.simulator import errors


@dataclasses.dataclass
class _Rule:
    kind: str
    remaining: Optional[int]
    error: Optional[errors.ApiError] = None
    seconds: float = 0.0
    after: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """Delay and drop decisions for one request (taken on arrival)."""

    delay: float = 0.0
    drop_before: bool = False
    drop_after: bool = False


class FaultInjector:
    """Thread-safe fault rules and latency table.

    :param latency: optional ``{op: seconds}`` steady latency table.
    :param invalidate: callback revoking every token (set by the gateway).
    """

    def __init__(self, latency: Optional[dict[str, float]] = None,
                 invalidate: Optional[Callable[[], None]] = None) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, list[_Rule]] = {}
        self.latency: dict[str, float] = dict(latency or {})
        self._invalidate = invalidate

    def _add(self, op: str, rule: _Rule) -> None:
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError("times must be None or at least 1")
        with self._lock:
            self._rules.setdefault(op, []).append(rule)

    def fail(self, op: str, error_code: int, http_status: int = 500,
             times: Optional[int] = 1, details_rc: Optional[int] = None,
             message: Optional[str] = None) -> None:
        """Answer the next ``times`` ``op`` requests with an error.

        :param error_code: top-level ``errorCode``.
        :param http_status: HTTP status and ``httpStatusCode``.
        :param details_rc: when given, the answer is "Error with details"
            whose ``details[0].rc`` is this code.
        :param message: ``message`` (or the detail's ``errorMessage``).
        """
        if details_rc is not None:
            error = errors.with_details(details_rc, message, http_status,
                                        error_code)
        else:
            error = errors.ApiError(http_status, error_code, message)
        self._add(op, _Rule("fail", times, error=error))

    def delay(self, op: str, seconds: float,
              times: Optional[int] = None) -> None:
        """Delay the answer of ``op`` requests by ``seconds``."""
        self._add(op, _Rule("delay", times, seconds=float(seconds)))

    def drop(self, op: str, times: Optional[int] = 1,
             after: bool = False) -> None:
        """Close the connection of ``op`` requests without answering.

        :param after: run the operation first, then drop the answer (the
            client cannot tell whether the array acted).
        """
        self._add(op, _Rule("drop", times, after=after))

    def invalidate_tokens(self) -> None:
        """Revoke every token issued so far (clients then get 401)."""
        if self._invalidate is not None:
            self._invalidate()

    def clear(self) -> None:
        """Remove every fail, delay and drop rule (latency table stays)."""
        with self._lock:
            self._rules.clear()

    def pending(self, op: Optional[str] = None) -> int:
        """Return how many rules are still armed (for ``op`` or all)."""
        with self._lock:
            if op is not None:
                return len(self._rules.get(op, []))
            return sum(len(r) for r in self._rules.values())

    def armed(self) -> dict[str, int]:
        """Return ``{op: rules still armed}`` for every armed operation."""
        with self._lock:
            return {op: len(rules) for op, rules in self._rules.items()}

    def _consume(self, op: str, rule: _Rule) -> None:
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining == 0:
                self._rules[op].remove(rule)
                if not self._rules[op]:
                    del self._rules[op]

    def plan(self, op: str) -> Plan:
        """Consume the delay and drop rules matching one ``op`` request."""
        delay = self.latency.get(op, 0.0)
        drop: Optional[_Rule] = None
        with self._lock:
            for rule in list(self._rules.get(op, [])):
                if rule.kind == "delay":
                    delay += rule.seconds
                    self._consume(op, rule)
                elif rule.kind == "drop" and drop is None:
                    drop = rule
                    self._consume(op, rule)
        return Plan(delay, drop is not None and not drop.after,
                    drop is not None and drop.after)

    def take_error(self, op: str) -> Optional[errors.ApiError]:
        """Consume the first fail rule of ``op``; return its error.

        The server calls this once the request is authenticated, so a
        request refused with 401 does not use up an injected failure.
        """
        with self._lock:
            for rule in list(self._rules.get(op, [])):
                if rule.kind == "fail":
                    self._consume(op, rule)
                    return rule.error
        return None
