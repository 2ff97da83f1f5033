"""The fault suite's figures: faults injected, how many failed closed, how many were consistent
after a re-run. Printed at the end of the session (and kept in the notes of issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class FaultFigures:
    rows: list[tuple[str, str, tuple[object, ...], bool, bool]] = field(default_factory=list)

    def record(self, name: str, kind: str, codes: tuple[object, ...], fail_closed: bool, consistent: bool) -> None:
        self.rows.append((name, kind, codes, fail_closed, consistent))

    def lines(self) -> list[str]:
        n = len(self.rows)
        closed = sum(r[3] for r in self.rows)
        consistent = sum(r[4] for r in self.rows)
        out = [f"faults injected: {n}, failed closed: {closed}/{n}, consistent after re-run: {consistent}/{n}"]
        out += [f"  {'ok ' if r[3] and r[4] else 'BAD'} {r[1]:<6} attempts {'/'.join(map(str, r[2])):<12} {r[0]}"
                for r in self.rows]
        return out


_FIGURES = FaultFigures()


@pytest.fixture
def fault_figures() -> Iterator[FaultFigures]:
    yield _FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES.rows:
        terminalreporter.section("fault injection (tests/faults)")
        for line in _FIGURES.lines():
            terminalreporter.write_line(line)
