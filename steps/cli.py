"""The shared command line of the check steps (``python -m steps.lint|validate PATH...``).

Exit status: 0 clean (warnings allowed), 1 the input was rejected (one line per
problem), 2 promptci itself failed (one "promptci bug" line naming the file). A
traceback is never what a user sees.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from config.problems import EXIT_INTERNAL, Problem, Severity, exit_code, internal_problem, render

Check = Callable[..., list[Problem]]
F = Callable[..., Any]


def repo_root_option(help_text: str = "the repository root (default: current directory)", *,
                     exists: bool = True) -> Callable[[F], F]:
    """Return ``--repo-root DIR`` (default ``.``), given to the command as ``repo_root``: every command's spelling."""
    return click.option("--repo-root", "repo_root", type=click.Path(exists=exists, file_okay=False, path_type=Path),
                        default=Path("."), help=help_text)


def run_check(name: str, check: Check, paths: Sequence[Path], root: Path, fmt: str = "text") -> int:
    """Run ``check`` on ``paths``, print its problems and a summary; return the exit status.

    Checks isolate each file's crash themselves; a crash outside any one file (say, in
    the shared setup) is still caught here and reported as one line naming the paths.
    """
    try:
        problems = check(list(paths), root=root)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 2
        shown = ", ".join(str(p) for p in paths) or str(root)
        click.echo(internal_problem(shown, exc).format(), err=True)
        return EXIT_INTERNAL
    out = render(problems, fmt)
    if out:
        click.echo(out)
    if fmt == "text":
        errors = sum(1 for p in problems if p.severity is Severity.ERROR)
        bugs = sum(1 for p in problems if p.severity is Severity.INTERNAL)
        warnings = len(problems) - errors - bugs
        summary = f"{name}: {errors} error(s), {warnings} warning(s)"
        click.echo(summary + (f", {bugs} promptci bug(s): exit 2" if bugs else ""), err=True)
    return exit_code(problems)


def check_command(name: str, check: Check, help_text: str) -> click.Command:
    """Return a click command that runs ``check`` on PATHs; exit 1 on any error, 2 on a promptci bug."""

    @click.command(name=name, help=help_text + "\n\nExit status: 0 ok, 1 rejected, 2 promptci bug or usage.")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
    @repo_root_option("the repository root; paths in messages are relative to it (default: current directory)",
                      exists=False)
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="output format")
    def cmd(paths: Sequence[Path], repo_root: Path, fmt: str) -> None:
        sys.exit(run_check(name, check, paths, repo_root, fmt))

    return cmd
