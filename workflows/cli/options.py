"""The one vocabulary of every ``promptci`` command: each shared option is declared here, once.

``--repo-root DIR`` the source checkout, ``--env ENV`` the target environment, ``--config FILE``
the trusted pipeline config, ``--trusted-ref REF`` where it is read from without ``--config``,
``--format text|json`` the output, ``-p key=value`` a workflow parameter, and the Argo Server's
connection options. ``tests/workflows/test_cli_vocabulary.py`` walks every command's ``--help``
and fails on any other spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from steps.cli import repo_root_option
from steps.exit_codes import ExitCode

F = Callable[..., Any]


def fail(lines: Iterable[str], code: int = ExitCode.REJECTED) -> NoReturn:
    """Print ``lines`` on stderr and end the command with ``code`` (the wrapper keeps it if it is the policy's)."""
    for line in lines:
        click.echo(line, err=True)
    raise SystemExit(code)


def env_option(help_text: str, required: bool = False) -> Callable[[F], F]:
    """Return ``--env ENV`` (an environment of promotion.chain), given to the command as ``env``."""
    return click.option("--env", "env", required=required, default=None, metavar="ENV", help=help_text)


def _config(help_text: str) -> Callable[[F], F]:
    return click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help=help_text)


config_option = _config("pipeline config (default: config/pipeline.yaml)")
trusted_config_option = _config("the trusted pipeline config: the policy and its gates (default: "
                                "config/pipeline.yaml at --trusted-ref)")

trusted_ref_option = click.option(
    "--trusted-ref", "ref", default=None, metavar="REF",
    help="git ref the trusted policy is read from without --config [env PROMPTCI_TRUSTED_REF; default origin/main, "
         "else main]")

format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                             show_default=True, help="output format")

params_option = click.option("-p", "--parameter", "params", multiple=True, metavar="KEY=VALUE",
                             help="workflow parameter (repeatable)")


def parse_params(values: Iterable[str], env: str | None = None) -> dict[str, str]:
    """Return ``-p key=value`` pairs as a dict, with ``--env`` as ``target-environment``.

    Raises click.BadParameter (exit 2) for a value without ``=``, or ``--env`` together with
    ``-p target-environment=``.
    """
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{v}' is not key=value", param_hint="-p")
        out[key.strip()] = value
    if env is not None:
        if "target-environment" in out and out["target-environment"] != env:
            raise click.BadParameter("give the environment once: --env or -p target-environment=",
                                     param_hint="--env")
        out["target-environment"] = env
    return out


def argo_options(f: F) -> F:
    """Add the Argo Server connection options (``host``, ``namespace``, ``token``, ``insecure``) to ``f``."""
    for opt in reversed([
        click.option("--argo-server", "host", help="Argo Server URL [env ARGO_SERVER]"),
        click.option("--namespace", "-n", help="namespace [env ARGO_NAMESPACE, default argo]"),
        click.option("--token", help="bearer token [env ARGO_TOKEN]; prefer the env var, it is never printed"),
        click.option("--insecure-skip-verify", "insecure", is_flag=True,
                     help="do not verify the server's TLS certificate [env ARGO_INSECURE_SKIP_VERIFY]"),
    ]):
        f = opt(f)
    return f


def argo_target(host: str | None, namespace: str | None, token: str | None, insecure: bool) -> Any:
    """Return the ArgoTarget of the connection options; exit 2 when there is no server."""
    from workflows.argo.client import ArgoConfigError, ArgoTarget

    try:
        return ArgoTarget.resolve(host, namespace, token, True if insecure else None)
    except ArgoConfigError as exc:
        fail([str(exc)], ExitCode.USAGE)


__all__ = ["argo_options", "argo_target", "config_option", "env_option", "fail", "format_option",
           "params_option", "parse_params", "repo_root_option", "trusted_config_option",
           "trusted_ref_option"]
