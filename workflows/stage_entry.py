"""The thin pod entry of a stage: it imports only the stage's body, never Hera.

Pod command (written by ``StageScriptConstructor``, workflows/stage_script.py)::

    python -P -m workflows.stage_entry MODULE:FUNCTION [--in=KWARG=NAME]... [--out=KWARG=NAME]...
        [--out-artifact=KWARG=NAME]... INPUTS_FILE

Hera's runner (``python -m hera.workflows.runner -e module:function FILE``) imports ``hera.workflows``
(about 0.8 s of a 1.1 s stage start) to read the function's annotations at run time. The constructor
reads them once, when the templates are built, and writes the mapping into the template's ``args``;
this entry keeps Hera's runner contract with that mapping (hera 7.1, hera/workflows/_runner/util.py
``_run``/``_runner``/``_map_function_annotations`` and script_annotations_util.py):

* ``INPUTS_FILE`` is the script source Argo resolved from ``{{inputs.parameters}}``: a JSON list of
  ``{"name", "value"}``; an empty file or ``null`` means no inputs; entries lacking either key are skipped.
* ``--in``: the kwarg gets the value of the input parameter named NAME, else of the one named like the
  kwarg (``get_annotated_input_param``), unparsed: the stages' inputs are all ``str`` (``_parse`` passes
  ``str`` kwargs through).
* ``--out`` / ``--out-artifact``: the kwarg gets ``Path($hera__outputs_directory/parameters/NAME)`` /
  ``Path(.../artifacts/NAME)`` (default ``/tmp/hera-outputs``, ``_get_outputs_path``), its parent
  directory created (``get_annotated_output_param``): where the template's outputs say Argo collects them.
* The function's return value is ignored (the stages return None); its ``sys.exit`` is the process's.

Where it differs on purpose, to keep the exit-code policy (steps/exit_codes.py): an input that was not
given, or a malformed command or inputs file, is one line on stderr and exit 2 (usage), where Hera's
runner raises a traceback and exits 1 (a "rejection"); an exception the stage did not handle is printed
with its traceback (a bug report needs it) and exits with ``exit_code_for`` (2, or 1/75 for
``Rejected``/``Transient``), where Python's default is 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steps.exit_codes import ExitCode, exit_code_for

OUTPUTS_DIRECTORY_ENV = "hera__outputs_directory"  # what Hera's runner reads, and the template sets
DEFAULT_OUTPUTS_DIRECTORY = "/tmp/hera-outputs"  # RunnerScriptConstructor.DEFAULT_HERA_OUTPUTS_DIRECTORY
OPTIONS = {"--in": "in", "--out": "parameters", "--out-artifact": "artifacts"}


class EntryError(Exception):
    """The command or the inputs file cannot be mapped to the stage's arguments (one line)."""


def parse_command(argv: list[str]) -> tuple[str, list[tuple[str, str, str]], Path]:
    """Return (``MODULE:FUNCTION``, ``[(kind, kwarg, name)]``, inputs file) from the entry's arguments.

    ``kind`` is ``in``, ``parameters`` (an output parameter) or ``artifacts`` (an output artifact).
    Raises EntryError on anything else: the command is generated, so a surprise is a bug, not input.
    """
    if len(argv) < 2 or ":" not in argv[0]:
        raise EntryError("usage: python -m workflows.stage_entry MODULE:FUNCTION [--in|--out|--out-artifact"
                         "=KWARG=NAME]... INPUTS_FILE")
    specs = []
    for arg in argv[1:-1]:
        option, _, mapping = arg.partition("=")
        kwarg, _, name = mapping.partition("=")
        if option not in OPTIONS or not kwarg.isidentifier() or not name:
            raise EntryError(f"stage entry: cannot read argument '{arg}' (expected --in|--out|--out-artifact"
                             "=KWARG=NAME)")
        specs.append((OPTIONS[option], kwarg, name))
    return argv[0], specs, Path(argv[-1])


def read_inputs(path: Path) -> dict[str, Any]:
    """Return the input parameters by name from the resolved ``{{inputs.parameters}}`` file (Hera's ``_run``)."""
    try:
        listed = json.loads(path.read_text() or "[]") or []
    except (OSError, ValueError) as exc:
        raise EntryError(f"stage entry: cannot read the inputs file {path}: {exc}") from exc
    if not isinstance(listed, list):
        raise EntryError(f"stage entry: the inputs file {path} is not a JSON list of parameters")
    return {str(p["name"]): p["value"] for p in listed if isinstance(p, dict) and "name" in p and "value" in p}


def stage_kwargs(specs: list[tuple[str, str, str]], inputs: dict[str, Any],
                 outputs_directory: str) -> dict[str, Any]:
    """Return the stage function's keyword arguments, as Hera's runner maps them (see the module doc).

    Output paths' parent directories are created, as Hera's runner does.
    """
    kwargs: dict[str, Any] = {}
    for kind, kwarg, name in specs:
        if kind == "in":
            if name in inputs:
                kwargs[kwarg] = inputs[name]
            elif kwarg in inputs:
                kwargs[kwarg] = inputs[kwarg]
            else:
                raise EntryError(f"stage entry: input parameter '{name}' was not given a value")
        else:
            path = Path(outputs_directory) / kind / name
            path.parent.mkdir(parents=True, exist_ok=True)
            kwargs[kwarg] = path
    return kwargs


def load_function(target: str) -> Callable[..., Any]:
    """Return the function ``MODULE:FUNCTION`` names, importing only its module."""
    module, _, name = target.partition(":")
    # __import__, not importlib.import_module: the latter bypasses the import machinery that `-X importtime`
    # reports, which is how a stage's start is measured (tests/workflows/test_stage_imports.py).
    __import__(module)
    function = getattr(sys.modules[module], name, None)
    if not callable(function):
        raise EntryError(f"stage entry: {target} is not a function")
    return function


def main(argv: list[str] | None = None) -> None:
    """Run the stage the arguments name; exit 2 with one line when they cannot be mapped."""
    try:
        target, specs, inputs_file = parse_command(sys.argv[1:] if argv is None else argv)
        kwargs = stage_kwargs(specs, read_inputs(inputs_file),
                              os.environ.get(OUTPUTS_DIRECTORY_ENV, DEFAULT_OUTPUTS_DIRECTORY))
        function = load_function(target)
    except EntryError as exc:
        print(exc, file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    try:
        function(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the stage's top level: every exception gets the policy's code
        traceback.print_exc()
        sys.exit(exit_code_for(exc))


if __name__ == "__main__":
    main()
