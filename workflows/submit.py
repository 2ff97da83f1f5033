"""``python workflows/submit.py …``: the same command line as ``promptci …`` (workflows/cli/main.py).

Kept because the design card promises it. It needs the project installed (``make setup``: an
editable install in .venv), as the ``promptci`` entry point does; nothing is added to ``sys.path``.
With no command and no Argo server configured (``ARGO_SERVER`` unset) it runs the pipelines locally.
"""

from __future__ import annotations

import sys

try:
    from workflows.cli.dump import dump_manifests, to_yaml
    from workflows.cli.lint import lint_files
    from workflows.cli.main import cli, main
    from workflows.cli.pipeline import TYPES
except ModuleNotFoundError as exc:  # run by an interpreter without the project installed: one line, exit 2
    if __name__ != "__main__":
        raise
    print(f"promptci is not installed for this Python ({exc}): run `make setup` and use .venv/bin/python, "
          "or `pip install -e .`", file=sys.stderr)
    raise SystemExit(2) from None

__all__ = ["TYPES", "cli", "dump_manifests", "lint_files", "main", "to_yaml"]

if __name__ == "__main__":
    main()
