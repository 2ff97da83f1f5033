"""The shared command line of the check steps (``python -m steps.lint|validate PATH...``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from config.problems import Problem, has_errors, render

Check = Callable[..., list[Problem]]


def check_command(name: str, check: Check, help_text: str) -> click.Command:
    """Return a click command that runs ``check`` on PATHs and exits 1 on any error."""

    @click.command(name=name, help=help_text)
    @click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
                  show_default=True, help="Repository root; paths in messages are relative to it.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="Output format.")
    def cmd(paths: Sequence[Path], root: Path, fmt: str) -> None:
        problems = check(list(paths), root=root)
        out = render(problems, fmt)
        if out:
            click.echo(out)
        errors = sum(1 for p in problems if p.severity == "error")
        if fmt == "text":
            click.echo(f"{name}: {errors} error(s), {len(problems) - errors} warning(s)", err=True)
        sys.exit(1 if has_errors(problems) else 0)

    return cmd
