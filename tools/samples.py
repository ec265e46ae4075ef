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
"""One benchmark measurement per create, and their summary."""

import collections
import dataclasses
import math
from typing import Any, Optional, Sequence, Union


@dataclasses.dataclass
class Sample:
    """What one create cost (JSON-ready)."""

    index: int
    requested_gib: int
    seconds: float
    calls: dict[str, int]
    extends: list[int]
    redundant_extends: int
    downloads: int
    bytes_copied: int
    failed: bool
    origin: str

    @classmethod
    def from_create(cls, index: int, created: Any) -> "Sample":
        """Build from a :class:`tools.probe.Create`."""
        totals = created.totals
        return cls(index=index, requested_gib=created.requested_gib,
                   seconds=round(totals.seconds, 6),
                   calls=dict(sorted(totals.calls.items())),
                   extends=totals.extend_targets,
                   redundant_extends=sum(1 for r in totals.resizes
                                         if r.redundant),
                   downloads=totals.downloads,
                   bytes_copied=totals.bytes_copied,
                   failed=created.failure is not None,
                   origin=created.origin)


@dataclasses.dataclass
class Measured:
    """A scenario's samples, and costs that belong to no single create.

    Concurrent creates share the array requests, downloads and copies of
    their window: ``shared`` then holds them (the keys of a
    :class:`Sample`: ``calls``, ``extends``, ``redundant_extends``,
    ``downloads``, ``bytes_copied``) and the samples carry only times.
    """

    samples: list[Sample]
    shared: Optional[dict[str, Any]] = None


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of non-empty values."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(result: Union[Measured, Sequence[Sample]]
              ) -> dict[str, Any]:
    """Mean and p95 time per create, and per-create costs."""
    if not isinstance(result, Measured):
        result = Measured(list(result))
    samples = result.samples
    if result.shared is not None:
        shared = dict(result.shared, index=0, requested_gib=0, seconds=0.0,
                      failed=False, origin="")
        costs = [Sample(**shared)]
    else:
        costs = list(samples)
    count = len(samples)
    times = [s.seconds for s in samples]
    calls: collections.Counter = collections.Counter()
    for sample in costs:
        calls.update(sample.calls)
    origins = collections.Counter(s.origin for s in samples)
    return {
        "creates": count,
        "failed": sum(1 for s in samples if s.failed),
        "mean_s": sum(times) / count,
        "p95_s": percentile(times, 95),
        "max_s": max(times),
        "total_s": sum(times),
        "calls_per_create": sum(calls.values()) / count,
        "calls_per_create_by_endpoint": {
            op: n / count for op, n in sorted(calls.items())},
        "extends": sum(len(s.extends) for s in costs),
        "redundant_extends": sum(s.redundant_extends for s in costs),
        "downloads": sum(s.downloads for s in costs),
        "bytes_copied": sum(s.bytes_copied for s in costs),
        "origins": dict(origins.most_common()),
    }


RATIO_KEYS = ("mean_s", "p95_s", "max_s", "calls_per_create", "extends",
              "downloads", "bytes_copied")


def ratios(stock: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """ours / stock for the headline numbers (None when stock is 0)."""
    out: dict[str, Any] = {}
    for key in RATIO_KEYS:
        base = stock[key]
        out[key] = (ours[key] / base) if base else None
    return out
