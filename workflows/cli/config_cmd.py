"""``promptci config``: the trusted pipeline config as a step reads it, or every PROMPTCI_* variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from steps.exit_codes import ExitCode
from workflows.cli.options import fail, format_option, repo_root_option, trusted_config_option, trusted_ref_option


def env_table(rows: list[dict[str, Any]]) -> str:
    """Return ``show_env`` rows as aligned text: variable, value (``***`` for a set secret), where from, what for."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("variable", "value", "from", "description"):
        table.add_column(column, overflow="fold")
    for r in rows:
        value = "-" if r["value"] is None else str(r["value"])
        table.add_row(r["name"], value, "env" if r["set"] else "default", r["description"])
    console = Console(width=200, no_color=True, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    return "\n".join(line.rstrip() for line in cap.get().rstrip("\n").splitlines())


@click.command("config")
@click.option("--show-env", is_flag=True,
              help="list every PROMPTCI_* environment variable: its value (secrets masked) and what it does")
@repo_root_option()
@trusted_config_option
@trusted_ref_option
@format_option
def config_cmd(show_env: bool, repo_root: Path, config_path: Path | None, ref: str | None, fmt: str) -> None:
    """Print the trusted pipeline config as every step reads it, or with --show-env the PROMPTCI_* variables.

    A secret's value is never printed: it shows as *** when set.
    """
    from config.settings import SettingsError, get_settings
    from config.settings import show_env as env_rows

    if show_env:
        try:
            rows = env_rows(get_settings())
        except SettingsError as exc:
            fail(exc.lines, ExitCode.USAGE)
        click.echo(json.dumps(rows, indent=2) if fmt == "json" else env_table(rows))
        return
    from config.policy import PolicyError, load_trusted
    from config.profiles import render_config

    try:
        config, source, _ = load_trusted(repo_root, config_path, ref)
    except PolicyError as exc:
        fail(exc.lines, ExitCode.USAGE)
    if fmt == "json":
        click.echo(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        click.echo(f"# the trusted pipeline config, from {source}")
        click.echo(render_config(config).rstrip("\n"))


__all__ = ["config_cmd", "env_table"]
