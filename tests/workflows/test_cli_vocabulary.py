"""Every command speaks one vocabulary and shows its help; ``promptci`` and ``python workflows/submit.py`` both work.

The walk covers the ``promptci`` group (every command and subcommand) and the step commands a user
runs by hand (``python -m steps.lint|validate``, the recording authors). It reads each command's
parameters and the ``--help`` text a user sees, through click's testing runner.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from steps.guardrails.classifier import main as classifier_main
from steps.lint import main as lint_main
from steps.providers.author import main as author_main
from steps.validate import main as validate_main
from workflows.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
STEP_COMMANDS = {"steps.lint": lint_main, "steps.validate": validate_main, "steps.providers.author": author_main,
                 "steps.guardrails.classifier": classifier_main}
# What each shared concept is called, everywhere (and the spellings it replaced).
OLD_SPELLINGS = ("--repo", "--root", "--target-environment", "--repo-dir", "--environment", "--output-format")
# Commands that act on a checkout: each takes --repo-root.
WITH_REPO = {"run", "resume", "stop", "promote", "rollback", "status", "serve", "register", "config"}
WITH_ENV = {"run", "submit", "promote", "rollback", "serve"}


def _walk(cmd: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, (*path, name))


COMMANDS = [*_walk(cli, ()), *(((name,), c) for name, c in STEP_COMMANDS.items())]


def _visible_options(cmd: click.Command) -> dict[str, click.Option]:
    return {name: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            for name in (*p.opts, *p.secondary_opts)}


def test_the_walk_sees_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert names >= {"", "dump", "lint", "register", "submit", "run", "resume", "stop", "promote", "rollback",
                     "status", "serve", "config", *STEP_COMMANDS}


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) or "promptci" for p, _ in COMMANDS])
def test_every_command_uses_the_one_vocabulary(path: tuple[str, ...], cmd: click.Command) -> None:
    root = cli if path and path[0] in cli.commands else cmd
    args = [*path[1:], "--help"] if root is not cli else [*path, "--help"]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, (path, result.output)
    assert "Usage:" in result.output
    help_text = result.output
    for old in OLD_SPELLINGS:
        assert f"{old} " not in help_text and f"{old}\n" not in help_text and f"{old}," not in help_text, \
            (path, old, help_text)
    assert "table|json" not in help_text
    every = {name for p in cmd.params for name in (*p.opts, *p.secondary_opts)}
    assert not every & set(OLD_SPELLINGS), (path, every & set(OLD_SPELLINGS))  # not even as a hidden alias
    options = _visible_options(cmd)
    for name, opt in options.items():
        assert name not in OLD_SPELLINGS, (path, name)
        if opt.name == "repo_root" or "repo" in name:
            assert name == "--repo-root", (path, name)
        if opt.name == "env" or "environment" in name:
            assert name == "--env", (path, name)
        if opt.name == "config_path" or "config" in name and name not in ("--configmaps-dir",):
            assert name == "--config", (path, name)
        if name == "--format":
            assert isinstance(opt.type, click.Choice) and list(opt.type.choices) == ["text", "json"], path
            assert opt.default == "text", path
    command = " ".join(path)
    if command in WITH_REPO or command in STEP_COMMANDS:
        assert "--repo-root" in options, (command, sorted(options))
    if command in WITH_ENV:
        assert "--env" in options, (command, sorted(options))


def _script_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "ARGO_SERVER"}


def test_python_workflows_submit_py_still_works_without_a_sys_path_hack() -> None:
    tree = ast.parse((REPO / "workflows" / "submit.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
                and isinstance(n.value, ast.Name) and n.value.id == "sys"], "submit.py must not touch sys.path"
    proc = subprocess.run([sys.executable, "workflows/submit.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, env=_script_env())
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(cli.commands)
    proc = subprocess.run([sys.executable, "workflows/submit.py", "no-such-command"], cwd=REPO, capture_output=True,
                          text=True, env=_script_env())
    assert proc.returncode == 2 and "No such command" in proc.stderr and "Traceback" not in proc.stderr


def test_submit_py_without_the_project_installed_says_how_to_install_it(tmp_path: Path) -> None:
    """An interpreter that cannot import the project (here: isolated, no site-packages) gets one line and 2."""
    proc = subprocess.run([sys.executable, "-I", "-S", str(REPO / "workflows" / "submit.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "make setup" in proc.stderr


def test_the_promptci_console_script_is_installed_and_runs() -> None:
    script = shutil.which("promptci", path=str(Path(sys.executable).parent))
    assert script, "no promptci next to the interpreter: `make setup` installs the [project.scripts] entry"
    proc = subprocess.run([script, "status", "--help"], capture_output=True, text=True, env=_script_env())
    assert proc.returncode == 0 and "Usage: promptci status" in proc.stdout, proc.stderr
