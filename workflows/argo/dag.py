"""DAG dependency rules as Argo's validator applies them (argo-workflows v4.1.2).

* :func:`task_dependencies` is ``workflow/common/ancestry.go GetTaskDependencies`` (its two
  regular expressions, applied to ``depends`` or to the expansion of ``dependencies``);
* :func:`task_result_problems` is ``ancestry.go ValidateTaskResults``;
* :func:`find_cycle` is ``validate.go verifyNoCycles``; :func:`ancestors` is ``GetTaskAncestry``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TASK_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
TASK_RESULT = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)")
TASK_RESULTS = ("Succeeded", "Failed", "Skipped", "Omitted", "Errored", "Daemoned", "AnySucceeded", "AllFailed")
ITEMS_RESULTS = ("AnySucceeded", "AllFailed")
PARAM = re.compile(r"{{[-a-zA-Z0-9]+(\.[-a-zA-Z0-9_]+)*}}")  # validate.go paramRegex


def _depends_logic(task: Mapping[str, Any]) -> str:
    """``getTaskDependsLogic``: ``depends``, or ``dependencies`` joined (their expansion names the same tasks)."""
    if task.get("depends"):
        return str(task["depends"])
    return " && ".join(f"({d}.Succeeded)" for d in task.get("dependencies") or [])


def task_dependencies(task: Mapping[str, Any], tasks: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """Return ``{task name: items-based}`` for every task ``task`` depends on, in order of mention.

    Items-based (``.AnySucceeded``/``.AllFailed``) takes precedence, as in ``GetTaskDependencies``.
    """
    out: dict[str, bool] = {}
    for m in TASK_NAME.finditer(_depends_logic(task)):
        if m.group(1):
            name, result = m.group(1).split(".", 1)
            out[name] = out.get(name, False) or result in ITEMS_RESULTS
        else:
            out.setdefault(m.group(2), False)
    return out


def task_result_problems(task: Mapping[str, Any]) -> list[str]:
    """Return ``ValidateTaskResults``' message for each ``x.Result`` of ``depends`` Argo does not know."""
    out = []
    for m in TASK_RESULT.finditer(str(task.get("depends") or "")):
        name, result = m.group(1).split(".", 1)
        if result not in TASK_RESULTS:
            out.append(f"task result '{result}' for task '{name}' is invalid")
    return out


def has_items(task: Mapping[str, Any]) -> bool:
    """Return True when the task fans out (withItems, withParam or withSequence)."""
    return bool(task.get("withItems") or task.get("withParam") or task.get("withSequence") is not None)


def is_parameter(text: str) -> bool:
    """``validate.go isParameter``: the text holds a ``{{...}}`` parameter reference."""
    return PARAM.search(text) is not None


def ancestors(name: str, graph: Mapping[str, list[str]]) -> set[str]:
    """Return every task ``name`` depends on, directly or not."""
    out: set[str] = set()
    stack = list(graph.get(name, []))
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack += graph.get(d, [])
    return out


def find_cycle(order: list[str], graph: Mapping[str, list[str]]) -> list[str] | None:
    """``verifyNoCycles``: return the path Argo prints ("a->b->...->a"), as a list, or None."""
    visited: set[str] = set()

    def helper(name: str, cycle: list[str]) -> list[str] | None:
        if name in visited:
            return None
        for dep in graph.get(name, []):
            if dep in cycle:
                return [*cycle, dep]
            found = helper(dep, [*cycle, dep])
            if found:
                return found
        visited.add(name)
        return None

    for name in order:
        found = helper(name, [])
        if found:
            return found
    return None
