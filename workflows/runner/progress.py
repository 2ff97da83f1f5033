"""The local runner's live progress view and final summary table (rich)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from workflows.runner.records import NodeRecord, RunResult

STYLE = {"Succeeded": "green", "Failed": "red", "Error": "red", "Skipped": "yellow", "Omitted": "yellow",
         "Running": "cyan", "Pending": "dim"}


def _table(nodes: list[NodeRecord], title: str) -> Table:
    table = Table(title=title)
    for col in ("task", "status", "duration", "attempts", "message"):
        table.add_column(col, justify="right" if col in {"duration", "attempts"} else "left")
    now = time.time()
    for n in nodes:
        dur = n.duration if n.finished else (now - n.started if n.started else 0.0)
        table.add_row(n.name, f"[{STYLE.get(n.status, 'white')}]{n.status}[/]", f"{dur:.1f}s",
                      str(n.attempts or ""), n.message)
    return table


class ProgressView:
    """A live table on a terminal; one plain line per state change otherwise (CI logs)."""

    def __init__(self, run_id: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.run_id = run_id
        self.nodes: dict[str, NodeRecord] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def start(self) -> None:
        """Start the live view (only on a terminal)."""
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             get_renderable=self._render)
            self.live.start()
        else:
            self.console.print(f"run {self.run_id}: started")

    def _render(self) -> Table:
        with self.lock:
            return _table(list(self.nodes.values()), f"promptci run {self.run_id}")

    def update(self, node: NodeRecord) -> None:
        """Record a node's new state (called from runner threads)."""
        with self.lock:
            self.nodes[node.name] = node
        if self.live is None:
            extra = f" ({node.message})" if node.message else ""
            took = f" in {node.duration:.1f}s" if node.finished else ""
            self.console.print(f"  {node.name}: {node.status}{took}{extra}", highlight=False)

    def stop(self) -> None:
        """Stop the live view."""
        if self.live is not None:
            self.live.stop()


def print_summary(result: RunResult, console: Console | None = None) -> None:
    """Print the final table of task, status and duration, then the verdict and run directory."""
    out = console or Console()
    out.print(_table(result.nodes, f"promptci run {result.run_id}: {result.status}"))
    verdict = "[green]succeeded[/]" if result.ok else f"[red]{result.status.lower()}[/]: {result.message}"
    out.print(f"run {result.run_id} {verdict} in {result.duration_seconds:.1f}s; logs: {result.run_dir}")
