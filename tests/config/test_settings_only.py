"""Every PROMPTCI_* variable is read through config/settings.py, nowhere else (an AST walk of the code).

A read is ``X.get(NAME)``, ``X[NAME]`` (loaded, not assigned), ``os.getenv(NAME)`` or ``NAME in X``,
where NAME is a ``PROMPTCI_*`` string: a literal, a module constant holding one (``KEY_ENV``,
``lifecycle.TOKEN_ENV``), an f-string or a sum starting with one, or an ``a or b`` with one of them.
Writing a variable into a child process's environment (``env[NAME] = ...``, ``env.pop(NAME)``) is
not a read. Text in comments and docstrings is never looked at, so it cannot fool the walk.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "config" / "settings.py"
PREFIX = "PROMPTCI_"


def _sources() -> list[Path]:
    return sorted(p for folder in ("steps", "workflows", "config") for p in (ROOT / folder).rglob("*.py")
                  if "node_modules" not in p.parts)


def _constants(trees: dict[Path, ast.Module]) -> set[str]:
    """Return the names of module-level constants (anywhere in the code) whose value starts with PROMPTCI_."""
    names = set()
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and node.value.value.startswith(PREFIX):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _is_promptci(node: ast.AST | None, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.startswith(PREFIX)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.Attribute):
        return node.attr in constants
    if isinstance(node, ast.JoinedStr):
        return bool(node.values) and _is_promptci(node.values[0], constants)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_promptci(node.left, constants)
    if isinstance(node, ast.BoolOp | ast.IfExp):
        parts = node.values if isinstance(node, ast.BoolOp) else [node.body, node.orelse]
        return any(_is_promptci(v, constants) for v in parts)
    return False


def reads(tree: ast.Module, constants: set[str]) -> list[tuple[int, str]]:
    """Return (line, what) for every read of a PROMPTCI_* variable in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_promptci(node.args[0], constants):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"get", "getenv", "setdefault"} \
                    or isinstance(func, ast.Name) and func.id == "getenv":
                found.append((node.lineno, ast.unparse(node)))
        elif _subscript_or_membership(node, constants):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _subscript_or_membership(node: ast.AST, constants: set[str]) -> bool:
    """Return True for ``X[NAME]`` (loaded) and ``NAME in X`` / ``NAME not in X``."""
    if isinstance(node, ast.Subscript):
        return isinstance(node.ctx, ast.Load) and _is_promptci(node.slice, constants)
    if isinstance(node, ast.Compare):
        return _is_promptci(node.left, constants) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
    return False





def test_promptci_variables_are_read_only_in_config_settings() -> None:
    trees = {p: ast.parse(p.read_text(), str(p)) for p in _sources()}
    constants = _constants(trees)
    offenders = [f"{p.relative_to(ROOT)}:{line}: {what}" for p, tree in trees.items() if p != SETTINGS
                 for line, what in reads(tree, constants)]
    assert not offenders, "read PROMPTCI_* through config.settings.get_settings():\n" + "\n".join(offenders)


def test_the_walk_finds_each_kind_of_read() -> None:
    code = '''
import os
from workflows.runner import lifecycle
KEY_ENV = "PROMPTCI_SIGNING_KEY"
a = os.environ.get("PROMPTCI_STORE_KIND", "local")
b = os.environ[KEY_ENV]
c = os.getenv(f"PROMPTCI_WEBHOOK_SECRET_{host}")
d = env.get(lifecycle.TOKEN_ENV)
e = "PROMPTCI_RECORD" in os.environ
f = env.get(entry.api_base_env or KEY_ENV)
g = env.get(PREFIX_ENV + "GITHUB")
os.environ["PROMPTCI_RUN_ID"] = "written, not read"
env.pop(KEY_ENV, None)
h = [k for k in os.environ if k != "PROMPTCI_CONFIG"]
i = "docstrings naming PROMPTCI_X are text"
'''
    tree = ast.parse(code)
    constants = _constants({Path("x.py"): tree}) | {"TOKEN_ENV", "PREFIX_ENV"}
    assert [line for line, _ in reads(tree, constants)] == [5, 6, 7, 8, 9, 10, 11]
