"""``python workflows/submit.py …``: the same command line as ``promptci …`` (workflows/cli/main.py).

Kept because the design card promises it. It needs the project installed (``make setup``: an
editable install in .venv), as the ``promptci`` entry point does; nothing is added to ``sys.path``.
With no command and no Argo server configured (``ARGO_SERVER`` unset) it runs the pipelines locally.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from workflows.cli.main import cli, main
except ModuleNotFoundError as exc:  # run by an interpreter without the project installed: one line, exit 2
    if __name__ != "__main__":
        raise
    print(f"promptci is not installed for this Python ({exc}): run `make setup` and use .venv/bin/python, "
          "or `pip install -e .`", file=sys.stderr)
    raise SystemExit(2) from None

_REEXPORTED = {"dump_manifests": "workflows.cli.dump", "to_yaml": "workflows.cli.dump",
               "lint_files": "workflows.cli.lint", "TYPES": "workflows.cli.pipeline"}


def __getattr__(name: str) -> Any:
    """Return the re-exported helpers on first use (PEP 562): a command run through this file imports only
    its own module (``dump`` alone costs ~0.4 s of imports ``run`` does not need)."""
    if name in _REEXPORTED:
        import importlib

        return getattr(importlib.import_module(_REEXPORTED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TYPES", "cli", "dump_manifests", "lint_files", "main", "to_yaml"]  # noqa: F822 - via __getattr__

if __name__ == "__main__":
    main()
