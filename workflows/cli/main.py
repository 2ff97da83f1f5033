"""``promptci``: the command group, and the one place its exit code is decided.

``main()`` is the console entry point (``[project.scripts] promptci``; ``python workflows/submit.py``
calls it too). Every command ends through it, so the exit-code policy (steps/exit_codes.py) holds
for all of them: 0 ok, 1 rejected, 2 usage or internal error, 75 transient. An exception no command
expected is one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from steps.exit_codes import ExitCode, exit_code_for

HELP = {"help_option_names": ["-h", "--help"]}


@click.group(invoke_without_command=True, context_settings=HELP)
@click.version_option(package_name="promptci", prog_name="promptci")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """promptci: CI/CD for prompts, model configs, RAG configs and guardrail policies, on Argo Workflows.

    Run the pipelines locally (`run`), or dump, lint, register and submit their WorkflowTemplates on
    an Argo Server; promote, roll back and inspect environments; receive webhooks (`serve`).
    With no command and no Argo server configured (ARGO_SERVER unset), runs the pipelines locally.

    Exit codes: 0 ok, 1 rejected by a check or gate, 2 usage or internal error, 75 transient (retry).
    """
    if ctx.invoked_subcommand is None:
        from workflows.cli.run import run_cmd

        if os.environ.get("ARGO_SERVER"):
            click.echo(ctx.get_help())
            click.echo("\nARGO_SERVER is set: choose `submit` (on Argo) or `run` (locally).", err=True)
            ctx.exit(ExitCode.USAGE)
        ctx.invoke(run_cmd)


COMMANDS = {
    "dump": "workflows.cli.dump:dump_cmd", "lint": "workflows.cli.lint:lint_cmd",
    "register": "workflows.cli.register:register_cmd", "submit": "workflows.cli.submit:submit_cmd",
    "run": "workflows.cli.run:run_cmd", "resume": "workflows.cli.control:resume_cmd",
    "stop": "workflows.cli.control:stop_cmd", "promote": "workflows.cli.promote:promote_cmd",
    "rollback": "workflows.cli.promote:rollback_cmd", "status": "workflows.cli.promote:status_cmd",
    "serve": "workflows.cli.serve:serve", "config": "workflows.cli.config_cmd:config_cmd",
}
"""Every command, by name: ``MODULE:ATTRIBUTE`` (one module per command, under workflows/cli/)."""


class LazyCommands(dict[str, Any]):
    """The group's commands, each module imported when its command is first looked up.

    ``promptci run`` then imports the run command only, not what ``promote``, ``dump`` or ``serve`` need
    (about 0.4 CPU-s). Every name is listed from the start, so ``--help`` and ``cli.commands`` see them all.
    """

    def __init__(self, targets: dict[str, str]) -> None:
        super().__init__(dict.fromkeys(targets))
        self._targets = dict(targets)

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if value is None and name in self._targets:
            module, _, attribute = self._targets.pop(name).partition(":")
            value = getattr(importlib.import_module(module), attribute)
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default  # noqa: SIM401 - self.get is this method

    def values(self) -> Any:
        return [self[name] for name in self]

    def items(self) -> Any:
        return [(name, self[name]) for name in self]


cli.commands = LazyCommands(COMMANDS)


def error_lines(exc: BaseException) -> list[str]:
    """Return what the user sees for an exception that ended a command: its own lines, else one line.

    Bad configuration (pipeline config, policy, ``PROMPTCI_*`` settings) lists its problems, one
    line each; anything else is one line naming the exception, said to be a promptci bug.
    """
    from config.pipeline import ConfigError
    from config.policy import PolicyError
    from config.settings import SettingsError

    if isinstance(exc, ConfigError):
        return [p.format() for p in exc.problems]
    if isinstance(exc, PolicyError | SettingsError):
        return list(exc.lines)
    first = (str(exc).splitlines() or [""])[0][:300]
    return [f"promptci: {type(exc).__name__}{': ' + first if first else ''} "
            "(an internal error: please report it)"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``promptci`` command line and exit with the policy's code (steps/exit_codes.py)."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="promptci", standalone_mode=False)
        code = exit_code_for(SystemExit(rv if isinstance(rv, int) else None))
    except click.ClickException as exc:
        exc.show()
        code = exit_code_for(exc)
    except click.Abort:
        click.echo("promptci: aborted", err=True)
        code = ExitCode.USAGE
    except SystemExit as exc:
        if isinstance(exc.code, str):
            click.echo(exc.code, err=True)
        code = exit_code_for(exc)
    except KeyboardInterrupt:
        click.echo("promptci: interrupted", err=True)
        code = ExitCode.USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 2, never a traceback
        for line in error_lines(exc):
            click.echo(line, err=True)
        code = exit_code_for(exc)
    sys.stdout.flush()
    sys.exit(int(code))


__all__ = ["cli", "error_lines", "main"]
