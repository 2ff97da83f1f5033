"""One problem found in one file, and how problems are printed.

Every stage reports bad input the same way: one line per problem naming the
file, the line and column, and the field, so a user can jump straight to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from steps.exit_codes import ExitCode, outcome_code


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    # promptci itself failed on this file: not the user's fault, and told apart by exit code 2.
    INTERNAL = "internal"


EXIT_OK, EXIT_REJECTED, EXIT_INTERNAL = ExitCode.OK, ExitCode.REJECTED, ExitCode.USAGE


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
        sev = {Severity.ERROR: "", Severity.WARNING: "warning: ",
               Severity.INTERNAL: "promptci bug: "}[self.severity]
        field = self.field or "<file>"
        return f"{self.path}:{self.line}:{self.col}: {field}: {sev}{self.message}"


def has_errors(problems: Iterable[Problem]) -> bool:
    """Return True when any problem is an error or an internal error (warnings never fail a stage)."""
    return any(p.severity is not Severity.WARNING for p in problems)


def exit_code(problems: Iterable[Problem]) -> ExitCode:
    """Return the exit status for a check: 2 if promptci failed on any file, 1 on any error, else 0.

    CI can then tell "the tool broke" (2, report it) from "your file is wrong" (1).
    """
    severities = {p.severity for p in problems}
    return outcome_code(ok=Severity.ERROR not in severities, internal=Severity.INTERNAL in severities)


def internal_problem(path: str, exc: BaseException) -> Problem:
    """Return the one line that reports promptci crashing on ``path`` (a bug, never the user's input)."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return Problem(path, 1, 1, "", f"{type(exc).__name__}{': ' + detail if detail else ''} "
                                   "(this is a bug in promptci, not in your file; please report it)",
                   Severity.INTERNAL)


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
