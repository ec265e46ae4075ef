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
"""What the benchmark measures beyond time: rounds and a per-create profile.

Two parts:

* statistics over repeated rounds (``--repeat K``): the median of each
  round's ours/stock ratio, its spread (min-max, and the interquartile
  range from four rounds on) and a verdict (:func:`spread`,
  :func:`verdict`, :func:`median_summary`);
* a :class:`Profiler` attached to a benchmark's in-process Cinder,
  counting while a
  :class:`tools.probe.Probe` measures (its ``window``):

  - the database statements Cinder's engine runs (SQLAlchemy's
    ``before_cursor_execute`` event), by kind and by statement text, with
    the code that ran them (the innermost frame of this package's driver,
    else of Cinder outside its database and object layers);
  - the locks taken: Cinder's coordination locks
    (``cinder.coordination.COORDINATOR.get_lock``) and oslo.concurrency's
    (``lockutils.lock``, behind ``cinder.utils.synchronized``), with the
    time waited for each and held.

  Counters only: nothing is logged or formatted per statement; texts are
  normalized once, when the report is made.

The statistics and text helpers are pure (unit-tested in
``tests/unit/test_bench_stats.py``); the profiler needs an in-process Cinder of
:mod:`tools.harness`.
"""

import collections
import contextlib
import hashlib
import re
import statistics
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

DRIVERS = ("stock", "ours")

VERDICT_SLOWER = "ours slower beyond spread"
VERDICT_FASTER = "ours faster beyond spread"
VERDICT_WITHIN = "within spread"

VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN")
"""Statement kinds counted apart (a BEGIN is a transaction); every other
statement (SAVEPOINT, RELEASE, PRAGMA...) is ``other``."""

ATTR = "_bench_profiler"
"""The attribute of an in-process Cinder holding its :class:`Profiler`."""

OURS_PACKAGE = "powerflex_cache_driver"
CINDER_PACKAGE = "cinder"
HARNESS_DIRS = ("tools", "tests")
"""The benchmark's own code: a statement no driver or Cinder code runs
(the harness reading a volume back) is put on it."""
CINDER_PLUMBING = ("cinder/db/", "cinder/objects/", "cinder/quota.py",
                   "cinder/quota_utils.py", "cinder/utils.py",
                   "cinder/coordination.py", "cinder/context.py")
"""Cinder modules that run statements for others: a statement is put on
the Cinder code calling them."""

# -- statistics over rounds --------------------------------------------------


def _present(values: Iterable[Optional[float]]) -> list[float]:
    return [v for v in values if v is not None]


def spread(values: Sequence[Optional[float]]) -> Optional[dict[str, Any]]:
    """Median and spread of per-round values (None values are left out).

    :returns: ``{"median", "min", "max", "rounds"}``, plus ``q1`` and
        ``q3`` (quartiles, linear interpolation between the closest
        ranks, as ``statistics.quantiles(method="inclusive")``) from four
        values on; None when no value is present.
    """
    present = _present(values)
    if not present:
        return None
    out: dict[str, Any] = {"median": statistics.median(present),
                           "min": min(present), "max": max(present),
                           "rounds": len(present)}
    if len(present) >= 4:
        q1, _q2, q3 = statistics.quantiles(present, n=4, method="inclusive")
        out["q1"], out["q3"] = q1, q3
    return out


def verdict(time_spread: Optional[dict[str, Any]]) -> str:
    """The verdict on the per-round ratios of time per create, ours/stock.

    Ours is slower beyond the spread when even the smallest ratio is above
    1.00 (faster beyond it when even the largest is below 1.00); otherwise
    the difference is within the spread of the rounds. Ratios are compared
    rounded to two decimals, as the report prints them.
    """
    if time_spread is None:
        return VERDICT_WITHIN
    if round(time_spread["min"], 2) > 1.0:
        return VERDICT_SLOWER
    if round(time_spread["max"], 2) < 1.0:
        return VERDICT_FASTER
    return VERDICT_WITHIN


def ratio_spreads(round_ratios: Sequence[dict[str, Optional[float]]]
                  ) -> dict[str, Optional[dict[str, Any]]]:
    """The :func:`spread` of each ratio over the rounds."""
    keys: list[str] = []
    for ratios in round_ratios:
        keys += [k for k in ratios if k not in keys]
    return {key: spread([r.get(key) for r in round_ratios]) for key in keys}


def median_summary(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary standing for the rounds of one driver.

    Numbers are the medians over the rounds (an endpoint missing from a
    round counts 0 there); ``failed`` and ``origins`` are added up over
    the rounds; ``rounds`` is their number.
    """
    out: dict[str, Any] = {"rounds": len(summaries)}
    first = summaries[0]
    for key, value in first.items():
        if key == "origins":
            origins: collections.Counter = collections.Counter()
            for summary in summaries:
                origins.update(summary[key])
            out[key] = dict(origins.most_common())
        elif key == "failed":
            out[key] = sum(s[key] for s in summaries)
        elif isinstance(value, dict):
            names = sorted({n for s in summaries for n in s[key]})
            out[key] = {n: statistics.median(s[key].get(n, 0)
                                             for s in summaries)
                        for n in names}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(s[key] for s in summaries)
        else:
            out[key] = value
    return out


def round_orders(rounds: int) -> list[tuple[str, ...]]:
    """Which driver goes first in each round: stock, ours, ours, stock..."""
    return [DRIVERS if index % 2 == 0 else DRIVERS[::-1]
            for index in range(rounds)]


# -- statement texts and lock names ------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_ID = re.compile(r"\b[0-9a-fA-F]{16,}\b")
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?\b")
_PARAMS = re.compile(r"\((?:\s*\?\s*,)*\s*\?\s*\)")
_SPACE = re.compile(r"\s+")


def normalize_statement(sql: str) -> str:
    """A statement's text with its literals and ids replaced.

    Whitespace is collapsed, string literals become ``'?'``, ids
    (UUIDs, long hex strings) ``<id>``, numbers ``N``, and a list of
    parameters ``(?, ?, ?)`` becomes ``(?...)``, so that the same
    statement with other values or another number of values reads the
    same.
    """
    text = _SPACE.sub(" ", sql).strip()
    text = _UUID.sub("<id>", text)
    text = _STRING.sub("'?'", text)
    text = _HEX_ID.sub("<id>", text)
    text = _NUMBER.sub("N", text)
    return _PARAMS.sub("(?...)", text)


def statement_verb(sql: str) -> str:
    """SELECT, INSERT, UPDATE, DELETE or ``other``."""
    word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return word if word in VERBS else "other"


def statement_id(text: str) -> str:
    """A short stable id of a normalized statement text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def _top_level_index(text: str, keyword: str, start: int = 0) -> int:
    """Index of ``keyword`` outside parentheses, or -1."""
    depth = 0
    upper = text.upper()
    for index in range(start, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and upper.startswith(keyword, index):
            return index
    return -1


def _top_level_count(text: str, char: str) -> int:
    """How many times ``char`` occurs in ``text`` outside parentheses."""
    depth = count = 0
    for each in text:
        if each == "(":
            depth += 1
        elif each == ")":
            depth -= 1
        elif each == char and depth == 0:
            count += 1
    return count


def short_statement(text: str, width: int = 150) -> str:
    """A normalized statement shortened for a table.

    The column list of a SELECT is left out (its length said instead),
    and that of an INSERT (``…``); what is left is cut at ``width``
    characters.
    """
    verb = statement_verb(text)
    short = text
    if verb == "SELECT":
        at = _top_level_index(text, " FROM ", len("SELECT"))
        if at > 0:
            columns = 1 + _top_level_count(text[len("SELECT"):at], ",")
            short = "SELECT [%d column%s] %s" % (
                columns, "" if columns == 1 else "s", text[at + 1:])
    elif verb == "INSERT":
        at = text.find("(")
        values = _top_level_index(text, " VALUES ", max(at, 0))
        if at > 0 and values > 0:
            short = text[:at] + "(…)" + text[values:]
        elif at > 0:
            short = text[:at] + "(…)"
    if len(short) > width:
        short = short[:width - 1] + "…"
    return short.replace("|", "\\|")


def lock_kind(name: Any) -> str:
    """A lock's name with its ids replaced by ``<id>``."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    text = _UUID.sub("<id>", str(name))
    return _HEX_ID.sub("<id>", text)


# -- per-create comparison ---------------------------------------------------


def per_create(counts: dict[str, float], creates: int) -> dict[str, float]:
    """Counts divided by the number of creates (0 creates: all 0)."""
    return {key: (value / creates if creates else 0.0)
            for key, value in counts.items()}


def profile_per_create(profile: dict[str, Any]) -> dict[str, Any]:
    """One round's profile (:meth:`Profiler.result`) per create.

    :returns: ``{"statements": {kind: n}, "locks": {kind: {"taken",
        "wait_ms", "max_wait_ms", "held_ms", "max_held_ms"}}}``, each per
        create except the longest single wait and hold (``max_*``).
    """
    creates = profile["creates"]
    statements = per_create(profile["statements"], creates)
    statements["all"] = sum(profile["statements"].values()) / creates \
        if creates else 0.0
    locks = {}
    for kind, lock in profile["locks"].items():
        locks[kind] = {
            "taken": lock["count"] / creates if creates else 0.0,
            "wait_ms": 1000.0 * lock["wait_s"] / creates if creates else 0.0,
            "max_wait_ms": 1000.0 * lock["max_wait_s"],
            "held_ms": 1000.0 * lock["held_s"] / creates if creates else 0.0,
            "max_held_ms": 1000.0 * lock.get("max_held_s", 0.0),
        }
    return {"statements": statements, "locks": locks}


def median_profile(per_round: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median over rounds of :func:`profile_per_create` results.

    A lock kind or statement kind missing from a round counts 0 there;
    ``max_wait_ms`` and ``max_held_ms`` are the largest over the rounds.
    """
    kinds = sorted({k for p in per_round for k in p["statements"]})
    statements = {k: statistics.median(p["statements"].get(k, 0.0)
                                       for p in per_round) for k in kinds}
    locks: dict[str, dict[str, float]] = {}
    for kind in sorted({k for p in per_round for k in p["locks"]}):
        rows = [p["locks"].get(kind, {}) for p in per_round]
        locks[kind] = {
            field: statistics.median(r.get(field, 0.0) for r in rows)
            for field in ("taken", "wait_ms", "held_ms")}
        for field in ("max_wait_ms", "max_held_ms"):
            locks[kind][field] = max(r.get(field, 0.0) for r in rows)
    return {"statements": statements, "locks": locks}


def pooled_statements(profiles: Sequence[dict[str, Any]]
                      ) -> tuple[dict[str, float], dict[str, dict], int]:
    """Statement counts and origins over all rounds of one driver.

    :param profiles: the rounds' profiles (:meth:`Profiler.result`); a
        profile without ``origins`` adds none.
    :returns: ``(counts by statement id, {id: {origin: count}}, creates)``.
    """
    counts: collections.Counter = collections.Counter()
    origins: dict[str, collections.Counter] = {}
    creates = 0
    for profile in profiles:
        creates += profile["creates"]
        counts.update(profile["texts"])
        for sid, by_origin in profile.get("origins", {}).items():
            origins.setdefault(sid, collections.Counter()).update(by_origin)
    return dict(counts), {k: dict(v) for k, v in origins.items()}, creates


def _origins_diff(ours: dict[str, float], stock: dict[str, float]
                  ) -> dict[str, float]:
    """Per-origin excess of ours over stock, largest first (>0 only)."""
    diff = {origin: n - stock.get(origin, 0.0) for origin, n in ours.items()}
    return dict(sorted(((o, d) for o, d in diff.items() if d > 1e-9),
                       key=lambda item: (-item[1], item[0])))


def added_statements(stock: Sequence[dict[str, Any]],
                     ours: Sequence[dict[str, Any]],
                     texts: dict[str, str]) -> list[dict[str, Any]]:
    """Statements ours runs more often per create than stock, most first.

    :param stock: the rounds' profiles (:meth:`Profiler.result`) of stock.
    :param ours: the same, of ours.
    :param texts: normalized text by statement id.
    :returns: one dict per statement: ``id``, ``text``, ``verb``,
        ``stock`` and ``ours`` (per create, over all rounds), ``added``
        (their difference), ``origins`` (where ours runs it, per create,
        most first) and ``added_by_origin`` (where ours runs it more often
        than stock, by how much per create, most first).
    """
    s_counts, s_origins, s_creates = pooled_statements(stock)
    o_counts, o_origins, o_creates = pooled_statements(ours)
    s_per = per_create(s_counts, s_creates)
    o_per = per_create(o_counts, o_creates)
    out = []
    for sid, value in o_per.items():
        added = value - s_per.get(sid, 0.0)
        if added <= 1e-9:
            continue
        o_where = per_create(o_origins.get(sid, {}), o_creates)
        s_where = per_create(s_origins.get(sid, {}), s_creates)
        out.append({
            "id": sid, "text": texts.get(sid, ""),
            "verb": statement_verb(texts.get(sid, "")),
            "stock": s_per.get(sid, 0.0), "ours": value, "added": added,
            "origins": dict(sorted(o_where.items(),
                                   key=lambda item: (-item[1], item[0]))),
            "added_by_origin": _origins_diff(o_where, s_where),
        })
    out.sort(key=lambda row: (-row["added"], row["id"]))
    return out


def ours_code_paths(ours: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Statements per create run from this package's code, by function.

    Gross, over all rounds: keyed by the innermost frame of this package
    (what follows ``>`` in an origin is left out); statements Cinder runs
    on its own are not counted.
    """
    _counts, origins, creates = pooled_statements(ours)
    paths: collections.Counter = collections.Counter()
    for by_origin in origins.values():
        for origin, count in by_origin.items():
            if origin.startswith(OURS_PACKAGE + "/"):
                paths[origin.split(" > ", 1)[0]] += count
    return {path: n / creates if creates else 0.0
            for path, n in paths.most_common()}


# -- the profiler ------------------------------------------------------------


class _TimedLock:
    """A lock that tells its :class:`Profiler` how long it waited."""

    def __init__(self, lock: Any, kind: str, profiler: "Profiler") -> None:
        self._lock = lock
        self._kind = kind
        self._profiler = profiler
        self._acquired_at: Optional[float] = None

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        """Acquire the lock, counting the wait."""
        started = time.perf_counter()
        got = self._lock.acquire(*args, **kwargs)
        now = time.perf_counter()
        if got:
            self._acquired_at = now
            self._profiler.lock_taken(self._kind, now - started)
        return got

    def release(self) -> Any:
        """Release the lock, counting how long it was held."""
        result = self._lock.release()
        if self._acquired_at is not None:
            self._profiler.lock_held(self._kind,
                                     time.perf_counter() - self._acquired_at)
            self._acquired_at = None
        return result

    def __enter__(self) -> "_TimedLock":
        if not self.acquire(True):
            from tooz import coordination
            raise coordination.LockAcquireFailed(
                "Acquiring lock %s failed" % self._kind)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lock, name)


class Profiler:
    """Count statements and locks of an in-process Cinder while measured."""

    def __init__(self) -> None:
        self._depth = 0
        self._by_text: collections.Counter = collections.Counter()
        self._origins: dict[str, collections.Counter] = {}
        self._locks: dict[str, list[float]] = {}
        self._code_labels: dict[int, tuple[Any, Optional[tuple]]] = {}

    # -- installation ------------------------------------------------------

    def install(self, cinder: Any) -> None:
        """Listen to Cinder's engine(s) and wrap its locks, until cleanup."""
        setattr(cinder, ATTR, self)
        cinder.addCleanup(vars(cinder).pop, ATTR, None)
        self._listen(cinder)
        self._wrap_coordination(cinder)
        self._wrap_lockutils(cinder)

    def _listen(self, cinder: Any) -> None:
        from cinder.db import api as db_api
        from sqlalchemy import event
        facade = db_api.main_context_manager
        engines = {}
        for getter in (facade.writer.get_engine, facade.reader.get_engine):
            engine = getter()
            engines[id(engine)] = engine
        for engine in engines.values():
            event.listen(engine, "before_cursor_execute", self._statement)
            cinder.addCleanup(event.remove, engine, "before_cursor_execute",
                              self._statement)

    def _wrap_coordination(self, cinder: Any) -> None:
        from cinder import coordination
        coordinator = coordination.COORDINATOR
        original = coordinator.get_lock

        def get_lock(name: str) -> Any:
            lock = original(name)
            kind = "coordination %s" % lock_kind(coordinator.prefix + name)
            return _TimedLock(lock, kind, self)

        vars(coordinator)["get_lock"] = get_lock
        cinder.addCleanup(vars(coordinator).pop, "get_lock", None)

    def _wrap_lockutils(self, cinder: Any) -> None:
        from oslo_concurrency import lockutils
        original = lockutils.lock

        @contextlib.contextmanager
        def lock(name: str, lock_file_prefix: Optional[str] = None,
                 *args: Any, **kwargs: Any) -> Iterator[Any]:
            kind = "oslo %s" % lock_kind((lock_file_prefix or "") + name)
            started = time.perf_counter()
            with original(name, lock_file_prefix, *args, **kwargs) as sem:
                acquired = time.perf_counter()
                self.lock_taken(kind, acquired - started)
                try:
                    yield sem
                finally:
                    self.lock_held(kind, time.perf_counter() - acquired)

        lockutils.lock = lock
        cinder.addCleanup(setattr, lockutils, "lock", original)

    # -- counting ----------------------------------------------------------

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """Count what runs inside the ``with`` block."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def _statement(self, _conn: Any, _cursor: Any, statement: str,
                   *_args: Any) -> None:
        if not self._depth:
            return
        self._by_text[statement] += 1
        origin = self._origin(sys._getframe(1))
        origins = self._origins.get(statement)
        if origins is None:
            origins = self._origins[statement] = collections.Counter()
        origins[origin] += 1

    def _label(self, code: Any) -> Optional[tuple[int, str]]:
        """(rank, "package/file.py:function") of a frame's code, or None.

        Rank 0 is this package's driver, 1 Cinder outside its plumbing
        (:data:`CINDER_PLUMBING`), 2 the benchmark's harness.
        """
        path = code.co_filename.replace("\\", "/")
        at = path.rfind("/%s/" % OURS_PACKAGE)
        if at >= 0:
            return 0, "%s:%s" % (path[at + 1:], code.co_name)
        at = path.rfind("/%s/" % CINDER_PACKAGE)
        if at >= 0:
            relative = path[at + 1:]
            if relative.startswith(CINDER_PLUMBING) or "/tests/" in relative:
                return None
            return 1, "%s:%s" % (relative, code.co_name)
        for top in HARNESS_DIRS:
            at = path.rfind("/%s/" % top)
            if at >= 0 and "site-packages" not in path:
                return 2, "%s:%s" % (path[at + 1:], code.co_name)
        return None

    def _origin(self, frame: Any) -> str:
        """The code a statement comes from (see the module doc).

        The innermost frame of this package, followed (``>``) by the
        innermost Cinder frame inside it if any; else the innermost Cinder
        frame; else the innermost harness frame.
        """
        found: list[Optional[str]] = [None, None, None]
        labels = self._code_labels
        while frame is not None:
            code = frame.f_code
            # By id: hashing a code object hashes its contents. The code
            # object is kept with its label, so the id is not reused.
            known = labels.get(id(code))
            if known is None:
                known = labels[id(code)] = (code, self._label(code))
            label = known[1]
            if label is not None:
                rank, text = label
                if rank == 0:
                    inner = found[1]
                    return text if inner is None else "%s > %s" % (text,
                                                                   inner)
                if found[rank] is None:
                    found[rank] = text
            frame = frame.f_back
        return found[1] or found[2] or "other"

    def lock_taken(self, kind: str, waited: float) -> None:
        """Count one lock taken after ``waited`` seconds."""
        if not self._depth:
            return
        row = self._locks.get(kind)
        if row is None:
            row = self._locks[kind] = [0, 0.0, 0.0, 0.0, 0.0]
        row[0] += 1
        row[1] += waited
        row[2] = max(row[2], waited)

    def lock_held(self, kind: str, held: float) -> None:
        """Count the time a lock was held."""
        row = self._locks.get(kind)
        if self._depth and row is not None:
            row[3] += held
            row[4] = max(row[4], held)

    # -- the result --------------------------------------------------------

    def result(self, creates: int, texts: dict[str, str]) -> dict[str, Any]:
        """What was counted, JSON-ready.

        :param creates: the creates measured (for per-create figures).
        :param texts: the catalogue of normalized statement texts by id,
            filled with the statements seen here.
        :returns: ``{"creates", "statements": {kind: n}, "locks": {kind:
            {"count", "wait_s", "max_wait_s", "held_s", "max_held_s"}},
            "texts": {id: n},
            "origins": {id: {origin: n}}}``.
        """
        statements: collections.Counter = collections.Counter()
        counts: collections.Counter = collections.Counter()
        origins: dict[str, collections.Counter] = {}
        for raw, count in self._by_text.items():
            statements[statement_verb(raw)] += count
            text = normalize_statement(raw)
            sid = statement_id(text)
            texts.setdefault(sid, text)
            counts[sid] += count
            origins.setdefault(sid, collections.Counter()).update(
                self._origins.get(raw, {}))
        return {
            "creates": creates,
            "statements": {verb: statements.get(verb, 0)
                           for verb in VERBS + ("other",)},
            "locks": {kind: {"count": row[0], "wait_s": row[1],
                             "max_wait_s": row[2], "held_s": row[3],
                             "max_held_s": row[4]}
                      for kind, row in sorted(self._locks.items())},
            "texts": dict(sorted(counts.items())),
            "origins": {sid: dict(by.most_common())
                        for sid, by in sorted(origins.items())},
        }


def attached(cinder: Any) -> Optional[Profiler]:
    """The profiler installed in an in-process Cinder, if any."""
    return getattr(cinder, ATTR, None)


def window(cinder: Any) -> Any:
    """The profiler's window of an in-process Cinder (no-op without)."""
    profiler = attached(cinder)
    return profiler.window() if profiler is not None \
        else contextlib.nullcontext()


def installer(prepare: Callable[[Any], None], profiler: Profiler
              ) -> Callable[[Any], None]:
    """A ``prepare`` hook of the harness that also installs ``profiler``."""
    def prepare_and_install(cinder: Any) -> None:
        prepare(cinder)
        profiler.install(cinder)
    return prepare_and_install
