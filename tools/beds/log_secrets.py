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
"""No secret in any log record of a functional test.

:class:`NoSecretsLogged` keeps every record logged during a test, DEBUG
included, and fails the test when one of them, its message or the text
of the exception it carries, holds a secret: the gateway password, its
``user:password`` in Basic form, or any token the simulated gateway
handed out.
"""

import logging
import traceback
from typing import Callable, Iterable

import fixtures


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def record_text(record: logging.LogRecord) -> str:
    """Everything a log handler could write for ``record``."""
    try:
        message = record.getMessage()
    except Exception:
        message = "%s %r" % (record.msg, record.args)
    parts = [message]
    if record.exc_info and record.exc_info[1] is not None:
        parts.extend(traceback.format_exception(*record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


class NoSecretsLogged(fixtures.Fixture):
    """Fail the test when a log record holds a secret.

    :param secrets: called at the end of the test: the secrets to look
        for (tokens are known only once handed out).
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self.secrets = secrets
        self.found: list[str] = []

    def _setUp(self) -> None:
        root = logging.getLogger()
        handler = _Keep()
        root.addHandler(handler)
        self.addCleanup(root.removeHandler, handler)
        self.addCleanup(root.setLevel, root.level)
        root.setLevel(logging.DEBUG)
        self.handler = handler

    def leaks(self) -> list[str]:
        """The records (logger, level, where) that hold a secret."""
        secrets = sorted({s for s in self.secrets() if s}, key=len,
                         reverse=True)
        found = []
        for record in self.handler.records:
            text = record_text(record)
            for secret in secrets:
                if secret in text:
                    found.append("%s %s at %s:%d holds a secret (%d "
                                 "characters, starting %r)" % (
                                     record.name, record.levelname,
                                     record.pathname, record.lineno,
                                     len(secret), secret[:3]))
                    break
        return found
