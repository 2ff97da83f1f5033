"""``python workflows/submit.py …``: the same command line as ``promptci …`` (workflows/cli/main.py).

Kept because the design card promises it. It needs the project installed (``make setup``: an
editable install in .venv), as the ``promptci`` entry point does; nothing is added to ``sys.path``.
With no command and no Argo server configured (``ARGO_SERVER`` unset) it runs the pipelines locally.
"""

from __future__ import annotations

from workflows.cli.dump import dump_manifests, to_yaml
from workflows.cli.lint import lint_files
from workflows.cli.main import cli, main
from workflows.cli.pipeline import TYPES

__all__ = ["TYPES", "cli", "dump_manifests", "lint_files", "main", "to_yaml"]

if __name__ == "__main__":
    main()
