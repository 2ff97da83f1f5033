"""promptci's per-user cache dir, and Node's compile cache that local runs keep there (and pods don't)."""

from __future__ import annotations

from pathlib import Path

from steps.promptfoo import promptfoo_env, use_compile_cache
from steps.user_cache import user_cache_dir


def test_the_cache_dir_follows_xdg_then_home(tmp_path: Path) -> None:
    assert user_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "x"), "HOME": "/h"}) == tmp_path / "x" / "promptci"
    assert user_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "promptci"


def test_local_runs_use_nodes_compile_cache_and_a_users_own_setting_wins(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    use_compile_cache(env)
    assert env["NODE_COMPILE_CACHE"] == str(tmp_path / "promptci" / "node-compile-cache")
    mine = {"XDG_CACHE_HOME": str(tmp_path), "NODE_COMPILE_CACHE": "/elsewhere"}
    use_compile_cache(mine)
    assert mine["NODE_COMPILE_CACHE"] == "/elsewhere"
    # the run's setting reaches promptfoo through the step's environment ...
    assert promptfoo_env(tmp_path / "w", base=env)["NODE_COMPILE_CACHE"] == env["NODE_COMPILE_CACHE"]
    # ... and a pod, which starts promptfoo once on an empty disk, gets none
    assert "NODE_COMPILE_CACHE" not in promptfoo_env(tmp_path / "w", base={"HOME": str(tmp_path)})
