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
"""Plain-text and Markdown tables, and human units."""

from typing import Sequence

from oslo_utils import units


def plain(headers: Sequence[str], rows: Sequence[Sequence[str]],
          indent: str = "") -> str:
    """Render a left-aligned text table with a rule under the headers."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        return (indent + "  ".join(str(c).ljust(w)
                                   for c, w in zip(cells, widths))).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" for _h in headers) + "|"]
    out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return "\n".join(out)


def rst(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a reStructuredText simple table (for the documentation)."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
    out = [rule, line(cells[0]), rule]
    out.extend(line(row) for row in cells[1:])
    out.append(rule)
    return "\n".join(out)


def size(num_bytes: float) -> str:
    """Say a byte count in B, KiB, MiB or GiB."""
    for unit, scale in (("GiB", units.Gi), ("MiB", units.Mi),
                        ("KiB", units.Ki)):
        if num_bytes >= scale:
            return "%.1f %s" % (num_bytes / scale, unit)
    return "%d B" % num_bytes
