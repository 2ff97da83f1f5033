"""Run a stage's pod command with its body replaced by a recorder (a driver for test_stage_entry.py).

``python tests/workflows/stage_probe.py RECORD BODY_MODULE -- COMMAND_ARGS...`` replaces every function
of ``BODY_MODULE`` (a stage body module) by a recorder with the same signature, then runs
``COMMAND_ARGS`` (``-m MODULE ARGS...``) as ``python -m`` would. The recorder appends to RECORD what it
was called with (each keyword argument's type and value, and whether an output's parent directory
exists) and writes something to every output path, as a stage does. So Hera's own runner
(``-m hera.workflows.runner -e workflows.stages:<stage>``, which calls the body through ``@runs``)
and the thin entry (``-m workflows.stage_entry <body> ...``) can be compared on the same inputs.
"""

from __future__ import annotations

import importlib
import inspect
import json
import runpy
import sys
import types
from pathlib import Path
from typing import Any


def recorder(record: Path, name: str, signature: inspect.Signature) -> Any:
    """Return a stand-in for the body ``name``: it records its call to ``record`` and writes its outputs."""
    def call(**kwargs: Any) -> None:
        seen: dict[str, Any] = {}
        for key, value in kwargs.items():
            if isinstance(value, Path):
                seen[key] = {"type": "Path", "value": str(value), "parent_exists": value.parent.is_dir()}
                if "/artifacts/" in str(value):
                    value.mkdir(parents=True, exist_ok=True)
                    (value / "report.txt").write_text(f"{name}:{key}")
                else:
                    value.write_text(f"{name}:{key}")
            else:
                seen[key] = {"type": type(value).__name__, "value": value}
        with record.open("a") as out:
            out.write(json.dumps({"function": name, "kwargs": seen}) + "\n")
        print(f"{name} called")

    call.__signature__ = signature  # type: ignore[attr-defined]  # what @runs checks the stage against
    call.__name__ = call.__qualname__ = name
    return call


def replace_module(module_name: str, record: Path) -> None:
    """Put a module of recorders in place of ``module_name``, for ``import`` and ``from … import`` alike."""
    real = importlib.import_module(module_name)
    fake = types.ModuleType(module_name)
    for name, fn in vars(real).items():
        if inspect.isfunction(fn) and fn.__module__ == module_name:
            fake.__dict__[name] = recorder(record, name, inspect.signature(fn))
            fake.__dict__[name].__module__ = module_name
    sys.modules[module_name] = fake
    parent, _, leaf = module_name.rpartition(".")
    setattr(sys.modules[parent], leaf, fake)


def main() -> None:
    """Replace the body module, then run the command as ``python -m`` would."""
    record, module_name, dash, flag, run_module, *args = sys.argv[1:]
    assert dash == "--" and flag == "-m", sys.argv
    replace_module(module_name, Path(record))
    sys.argv = [run_module, *args]
    runpy.run_module(run_module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()


def fail(kind: str) -> None:
    """A stage body that raises: ``transient`` (steps.exit_codes.Transient) or anything else (a bug)."""
    from steps.exit_codes import Transient

    raise Transient("the store is away") if kind == "transient" else RuntimeError("a bug in the stage")
