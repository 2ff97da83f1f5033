"""Where promptci keeps what it can rebuild, per user: ``$XDG_CACHE_HOME/promptci`` (``~/.cache/promptci``).

Compiled templates (workflows/template_cache.py) and Node's compiled promptfoo code (steps/promptfoo.py) live
here: both depend on promptci's code and installs, not on the repository evaluated, so a new checkout finds them.
Deleting the directory only makes the next run slower.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return promptci's per-user cache directory under ``env`` (default ``os.environ``); it may not exist yet."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "promptci"
