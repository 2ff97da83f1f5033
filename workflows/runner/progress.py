"""What a user sees of a local run: a live view on a terminal, plain lines in CI logs, a final table (rich).

* On a terminal: a live table of the nodes (status, duration, the shard's items and tests,
  attempts, message) under a bar of the eval shards: ``shards k/n``, items and tests done
  with their rates per second, and an ETA.
* Otherwise (CI logs, a pipe): one plain line per state change of a node (started, finished,
  a retry's backoff), never one per refresh; each shard that ends adds the progress line.
  A fan-out child waiting for a free slot prints nothing until it starts.
* At the end (:func:`print_summary`): the table of every node, the shard totals and the
  items passed/failed/errored/cached, tests, wall and CPU seconds, then the verdict.

The numbers, where they come from and how the ETA is computed: ``tally.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from workflows.runner.records import TERMINAL
from workflows.runner.tally import Throughput, cpu_seconds, outcomes, rate_text, shard_counts, throughput

if TYPE_CHECKING:
    from workflows.runner.records import NodeRecord, RunResult

STYLE = {"Succeeded": "green", "Failed": "red", "Error": "red", "Skipped": "yellow", "Omitted": "yellow",
         "Running": "cyan", "Pending": "dim"}
COLUMNS = ("task", "status", "duration", "items", "tests", "attempts", "CPU-s", "message")
NUMERIC = {"duration", "items", "tests", "attempts", "CPU-s"}
LOG_WIDTH = 160


def _table(nodes: Sequence[NodeRecord], title: str, now: float) -> Table:
    """Return one row per node; a shard's row has its items and tests, other nodes leave them empty."""
    table = Table(title=title)
    for col in COLUMNS:  # only the message wraps: a status or a number is never cut short
        table.add_column(col, justify="right" if col in NUMERIC else "left", no_wrap=col != "message")
    for n in nodes:
        dur = n.duration if n.finished else (now - n.started if n.started else 0.0)
        shard = shard_counts(n)
        table.add_row(n.name, f"[{STYLE.get(n.status, 'white')}]{n.status}[/]", f"{dur:.1f}s",
                      str(shard.items) if shard else "", str(shard.tests) if shard else "",
                      str(n.attempts or ""), f"{n.cpu_seconds:.1f}" if n.cpu_seconds is not None else "",
                      n.message, style="dim" if n.status == "Pending" else None)
    return table


def _bar(progress: Throughput) -> RenderableType:
    """Return the shards' bar (by tests done) with the progress line beside it."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=max(progress.tests_total, 1), completed=progress.tests_done, width=30),
                 Text(progress.line()))
    return grid


class ProgressView:
    """A live view on a terminal; one plain line per state change otherwise (CI logs)."""

    def __init__(self, run_id: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.run_id = run_id
        self.nodes: dict[str, NodeRecord] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None
        self._printed: dict[str, tuple[str, str]] = {}
        self._announced: set[str] = set()

    def start(self) -> None:
        """Start the live view (only on a terminal)."""
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             get_renderable=self._render)
            self.live.start()
        else:
            self.console.print(f"run {self.run_id}: started", highlight=False)

    def _render(self) -> RenderableType:
        with self.lock:
            nodes = list(self.nodes.values())
        now = time.time()
        table = _table(nodes, f"promptci run {self.run_id}", now)
        progress = throughput(nodes, now)
        return Group(table, _bar(progress)) if progress else table

    def update(self, node: NodeRecord) -> None:
        """Record a node's new state (called from runner threads); print a line when not live."""
        with self.lock:
            self.nodes[node.name] = node
            if self.live is None:
                self._plain(node)

    def _plain(self, node: NodeRecord) -> None:
        """Print a line for a change of phase or message; a Pending child prints nothing (the lock is held)."""
        state = (node.status, node.message)
        if node.status == "Pending" or self._printed.get(node.name) == state:
            return
        self._printed[node.name] = state
        nodes = list(self.nodes.values())
        shard = shard_counts(node)
        if shard and node.task not in self._announced:
            self._announced.add(node.task)
            first = throughput([n for n in nodes if n.task == node.task], time.time())
            if first:
                self.console.print(f"  {node.task}: {first.shards_total} shards, {first.items_total} items, "
                                   f"{first.tests_total} tests", highlight=False)
        extra = f" ({node.message})" if node.message else ""
        took = f" in {node.duration:.1f}s" if node.finished else ""
        if node.status == "Running" and shard:
            extra = f" (shard {shard.index}: {shard.items} items, {shard.tests} tests)" + extra
        line = f"  {node.name}: {node.status}{took}{extra}"
        if shard and node.status in TERMINAL:
            progress = throughput([n for n in nodes if n.task == node.task], time.time())
            if progress:
                line += f" | {progress.line()}"
        self.console.print(line, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Stop the live view."""
        if self.live is not None:
            self.live.stop()


def totals_lines(result: RunResult) -> list[str]:
    """Return the totals under the final table: shards, items by verdict, tests, wall and CPU seconds."""
    nodes = [*result.nodes, *result.unstarted]
    lines = []
    progress = throughput(nodes, result.finished)
    if progress:
        lines.append(f"shards: {progress.shards_done}/{progress.shards_total} done · items {progress.items_done} · "
                     f"tests {progress.tests_done} · {rate_text(progress.items_per_second, 'items')} · "
                     f"{rate_text(progress.tests_per_second, 'tests')}")
    verdicts = outcomes(nodes)
    if verdicts.reported or verdicts.settled_in_plan:
        text = (f"items: {verdicts.passed} passed, {verdicts.failed} failed, {verdicts.errored} errored, "
                f"{verdicts.cached} cached")
        if verdicts.in_failed_shards:
            text += f"; {verdicts.in_failed_shards} in failed shards (their logs say which failed)"
        if verdicts.settled_in_plan:
            text += f"; {verdicts.settled_in_plan} settled in plan without a run (cache hits or unpreparable)"
        lines.append(text)
    cpu = cpu_seconds(nodes)
    outside = {"the fork server's imports (shared by the steps)": result.shared_cpu_seconds,
               "the warm promptfoo an eval ran on": result.promptfoo_cpu_seconds}
    text = f"wall {result.duration_seconds:.1f}s · CPU " + (
        f"{cpu + sum(v or 0.0 for v in outside.values()):.1f}s" if cpu is not None else "not measured")
    parts = [f"{v:.1f}s {what}" for what, v in outside.items() if v and round(v, 1)]  # no "0.0s ..." part
    if cpu is not None and parts:
        text += f" (of which {', '.join(parts)})"
    lines.append(text)
    return lines


def _log_console() -> Console:
    """Return a console for stdout: the terminal's width, or LOG_WIDTH in a log (rich's 80 would cut the table)."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=LOG_WIDTH)
    return console


def print_summary(result: RunResult, console: Console | None = None) -> None:
    """Print the final table (every node, and the shards that never started), the totals, the verdict."""
    out = console or _log_console()
    out.print(_table([*result.nodes, *result.unstarted], f"promptci run {result.run_id}: {result.status}",
                     result.finished))
    for line in totals_lines(result):
        out.print(line, highlight=False, soft_wrap=True)
    verdict = "[green]succeeded[/]" if result.ok else f"[red]{result.status.lower()}[/]: {result.message}"
    out.print(f"run {result.run_id} {verdict} in {result.duration_seconds:.1f}s; logs: {result.run_dir}")
