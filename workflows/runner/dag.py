"""Argo's DAG rules as pure functions: when a task runs, and what phase the DAG ends in.

Each function names the argo-workflows (v4.1) source it follows; tests pin them:

* :func:`depends_satisfied`: ``workflow/controller/dag.go`` ``evaluateDependsLogic`` with
  ``workflow/common/ancestry.go`` ``expandDependency`` (a bare name or a ``dependencies``
  entry means ``X.Succeeded || X.Skipped || X.Daemoned``); ``AnySucceeded``/``AllFailed``
  look at a fan-out's children and are false for any other task.
* :func:`leaf_tasks`: ``dag.go`` ``findLeafTaskNames`` (the targets when ``dag.target`` is unset).
* :func:`assess_dag_phase`: ``dag.go`` ``assessDAGPhase`` with ``phase_node.go``: a
  breadth-first walk from the root tasks in which a Skipped or Omitted node inherits the
  phase of the branch above it; the DAG fails only through its leaf tasks, and
  ``dag.failFast`` only decides whether it fails before every leaf has a phase.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workflows.runner.expr import ExpressionError, eval_depends

FULFILLED = {"Succeeded", "Failed", "Error", "Skipped", "Omitted"}
COMPLETED = {"Succeeded", "Failed", "Error"}  # types.go NodePhase.Completed: Skipped/Omitted are not
FAILED_OR_ERROR = {"Failed", "Error"}
BARE_DEPENDENCY = ("Succeeded", "Skipped", "Daemoned")  # ancestry.go expandDependency


@dataclass
class TaskNode:
    """The node of one DAG task: its phase and, for a fan-out (TaskGroup), its children's phases."""

    phase: str
    children: list[str] | None = None
    """Phases of the expanded children in loop-index order; None for a task that is not a fan-out
    (or whose fan-out was empty: Argo makes that a plain Skipped node)."""


def task_results(node: TaskNode) -> dict[str, bool]:
    """Return the ``TaskResults`` Argo evaluates ``depends`` against (dag.go evaluateDependsLogic)."""
    children = node.children or []
    group = node.children is not None
    return {
        "Succeeded": node.phase == "Succeeded", "Failed": node.phase == "Failed",
        "Errored": node.phase == "Error", "Skipped": node.phase == "Skipped",
        "Omitted": node.phase == "Omitted", "Daemoned": False,
        "AnySucceeded": group and any(p == "Succeeded" for p in children),
        "AllFailed": group and bool(children) and all(p == "Failed" for p in children),
    }


def depends_expression(task: Mapping[str, object]) -> str:
    """Return the task's ``depends`` logic; ``dependencies: [a, b]`` is ``a && b`` (ancestry.go getTaskDependsLogic)."""
    if task.get("depends"):
        return str(task["depends"])
    deps = task.get("dependencies") or []
    return " && ".join(str(d) for d in deps) if isinstance(deps, list) else ""


def depends_satisfied(expr: str, nodes: Mapping[str, TaskNode]) -> bool:
    """Return whether a task whose dependencies are all fulfilled runs (else it is Omitted).

    Raises ExpressionError for a result Argo does not define (``.Completed``): Argo
    marks such a task Error ("unable to evaluate expression").
    """
    def check(name: str, result: str | None) -> bool:
        results = task_results(nodes[name])
        if result is None:
            return any(results[r] for r in BARE_DEPENDENCY)
        if result not in results:
            raise ExpressionError(f"unable to evaluate expression '{expr}': "
                                  f"task result '{result}' for task '{name}' is invalid")
        return results[result]

    return eval_depends(expr, check)


def leaf_tasks(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Return the tasks no other task depends on, sorted (dag.go findLeafTaskNames)."""
    needed = {d for ds in deps.values() for d in ds}
    return sorted(name for name in deps if name not in needed)


def assess_dag_phase(deps: Mapping[str, Sequence[str]], nodes: Mapping[str, TaskNode], *, fail_fast: bool,
                     shutdown: bool = False) -> str:
    """Return the DAG's phase: Running, Succeeded, Failed or Error (dag.go assessDAGPhase).

    ``deps`` maps every task to the tasks it depends on; ``nodes`` holds the tasks that
    have a node (started, finished, skipped or omitted). The walk starts at the root
    tasks with the branch phase Succeeded; a node that is not fulfilled means Running; a
    completed node sets its branch's phase, a Skipped/Omitted one inherits it. A leaf's
    phase prefers Failed/Error over Succeeded when reached by several branches.
    """
    if shutdown:
        return "Failed"
    targets = leaf_tasks(deps)
    target_phase = dict.fromkeys(targets, "")
    dependents = {t: [d for d in sorted(deps) if t in deps[d] and d in nodes] for t in nodes}
    queue: deque[tuple[str, int | None, str]] = deque()  # (task, child index of a fan-out, branch phase)
    seen: set[tuple[str, int | None, str]] = set()

    def add(task: str, child: int | None, phase: str) -> None:
        if (task, child, phase) not in seen:  # phase_node.go uniquePhaseNodeQueue: once per node and phase
            seen.add((task, child, phase))
            queue.append((task, child, phase))

    for root in sorted(t for t, ds in deps.items() if not ds and t in nodes):
        add(root, None, "Succeeded")
    while queue:
        task, child, branch = queue.popleft()
        node = nodes[task]
        phase = node.phase if child is None else (node.children or [])[child]
        if phase not in FULFILLED:
            return "Running"
        if phase in COMPLETED:
            branch = phase
        if child is None and task in target_phase and target_phase[task] not in FAILED_OR_ERROR:
            target_phase[task] = branch
        if child is None and node.children:
            # A fan-out (TaskGroup): its children, and below each child the dependents
            # (operator.go getOutboundNodes of a TaskGroup is its children).
            for i in range(len(node.children)):
                add(task, i, branch)
            continue
        for dependent in dependents[task]:
            add(dependent, None, branch)

    result = "Succeeded"
    for target in targets:
        phase = target_phase[target]
        if phase == "":
            result = "Running"
            if not fail_fast:
                break
        elif phase in FAILED_OR_ERROR:
            result = phase
            if fail_fast:
                break
    return result
