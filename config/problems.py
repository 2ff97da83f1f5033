"""One problem found in one file, and how problems are printed.

Every stage reports bad input the same way: one line per problem naming the
file, the line and column, and the field, so a user can jump straight to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """A single finding. ``line``/``col`` are 1-based; 0 means "whole file"."""

    path: str
    line: int
    col: int
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def format(self) -> str:
        """Return the ``path:line:col: field: message`` line users and editors parse."""
        sev = "" if self.severity is Severity.ERROR else f"{self.severity.value}: "
        field = self.field or "<file>"
        return f"{self.path}:{self.line}:{self.col}: {field}: {sev}{self.message}"


def has_errors(problems: Iterable[Problem]) -> bool:
    """Return True when any problem is an error (warnings never fail a stage)."""
    return any(p.severity is Severity.ERROR for p in problems)


def render(problems: Iterable[Problem], fmt: str = "text") -> str:
    """Return problems as text lines (sorted by file and position) or a JSON array."""
    ordered = sorted(problems)
    if fmt == "json":
        return json.dumps([asdict(p) for p in ordered], indent=2)
    return "\n".join(p.format() for p in ordered)


def dotted(loc: Iterable[str | int]) -> str:
    """Return a field path such as ``messages[1].role`` from a location tuple."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
