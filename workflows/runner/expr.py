"""The small parts of Argo's template language the local runner and the offline linter need.

* ``{{...}}`` variable substitution (one pass: substituted values are never re-scanned,
  exactly like Argo, so text inside a parameter stays data);
* ``depends`` expressions (``a && (b.Succeeded || c.Failed)``);
* ``when`` and ``retryStrategy.expression`` conditions (comparisons joined by ``&&``/``||``).

Conditions are tokenised and turned into a Python AST that is then walked by a tiny
evaluator which accepts only boolean operators, comparisons and constants: nothing from
a manifest is ever passed to ``eval``.

Library check: Argo evaluates these with Go's expr/govaluate; no maintained Python package
implements that grammar (simpleeval or asteval would accept far more than Argo does), so
this keeps to the few operators the templates use and rejects everything else.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

VAR_RE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
DEPENDS_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?)")
COND_TOKEN = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|&&|\|\||==|!=|>=|<=|>|<|!|\(|\)|"""
                        r"""-?\d+(?:\.\d+)?(?![\w.-])|[A-Za-z_][\w.-]*)""")
TASK_RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "Completed",
                "AnySucceeded", "AllFailed"}


class ExpressionError(ValueError):
    """An expression the runner cannot parse or does not support."""


class UnresolvedVariable(KeyError):
    """A ``{{...}}`` reference with no value in scope."""

    def __str__(self) -> str:
        return f"unresolved variable {{{{{self.args[0]}}}}}"


def substitute(text: str, scope: Mapping[str, str]) -> str:
    """Return ``text`` with every ``{{name}}`` replaced by ``scope[name]`` (one pass).

    Raises UnresolvedVariable for a name not in scope and ExpressionError for Argo
    expression tags (``{{=...}}``), which the runner does not evaluate.
    """
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("="):
            raise ExpressionError(f"expression tags ({{{{={name[1:]}}}}}) are not supported")
        if name not in scope:
            raise UnresolvedVariable(name)
        return scope[name]

    return VAR_RE.sub(repl, text)


def variables(text: str) -> list[str]:
    """Return the names of every ``{{...}}`` reference in ``text``, in order."""
    return [m.group(1) for m in VAR_RE.finditer(text)]


# Argo's boolean operators, as the Python the expression is evaluated as (by _safe_eval, never eval()).
BOOL_OPS = {"&&": " and ", "||": " or ", "!": " not "}


def depends_names(expr: str) -> list[str]:
    """Return the task names a ``depends`` expression refers to."""
    return [name for name, _ in _depends_refs(expr)]


def _depends_refs(expr: str) -> list[tuple[str, str | None]]:
    refs = []
    for tok in _tokens(DEPENDS_TOKEN, expr, "depends"):
        if tok in {"(", ")", "&&", "||", "!"}:
            continue
        name, _, result = tok.partition(".")
        if result and result not in TASK_RESULTS:
            raise ExpressionError(f"unknown task result '.{result}' in depends '{expr}'")
        refs.append((name, result or None))
    return refs


def eval_depends(expr: str, check: Callable[[str, str | None], bool]) -> bool:
    """Return the truth of a ``depends`` expression; ``check(task, result)`` answers each term.

    ``result`` is None for a bare task name (Argo: Succeeded, Skipped or Daemoned).
    """
    pieces = []
    for tok in _tokens(DEPENDS_TOKEN, expr, "depends"):
        if tok in BOOL_OPS:
            pieces.append(BOOL_OPS[tok])
        elif tok in {"(", ")"}:
            pieces.append(tok)
        else:
            name, _, result = tok.partition(".")
            pieces.append(" True " if check(name, result or None) else " False ")
    return bool(_safe_eval("".join(pieces), expr))


def eval_condition(expr: str, names: Mapping[str, str] | None = None) -> bool:
    """Return the truth of a ``when``/retry condition after substitution.

    Bare words are strings (``true``/``false`` are booleans), numbers compare as numbers;
    ``names`` maps identifiers such as ``lastRetry.exitCode`` to string values.
    """
    names = names or {}
    pieces = []
    for tok in _tokens(COND_TOKEN, expr, "condition"):
        if tok in BOOL_OPS:
            pieces.append(BOOL_OPS[tok])
        elif tok in {"==", "!=", ">=", "<=", ">", "<", "(", ")"}:
            pieces.append(f" {tok} ")
        elif tok[0] in "\"'":
            pieces.append(repr(ast.literal_eval(tok)))
        elif re.fullmatch(r"-?\d+(\.\d+)?", tok):
            pieces.append(repr(float(tok)))
        elif tok in names:
            pieces.append(repr(names[tok]))
        elif tok in {"true", "false"}:
            pieces.append(repr(tok == "true"))
        else:
            pieces.append(repr(tok))
    return bool(_safe_eval("".join(pieces), expr))


def _tokens(pattern: re.Pattern[str], expr: str, what: str) -> list[str]:
    out, pos = [], 0
    text = expr.rstrip()
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m:
            raise ExpressionError(f"cannot parse {what} '{expr}' at '{text[pos:]}'")
        out.append(m.group(1))
        pos = m.end()
    if not out:
        raise ExpressionError(f"empty {what}")
    return out


def _safe_eval(code: str, original: str) -> object:
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse '{original}'") from exc
    return _walk(tree.body, original)


def _num(v: object) -> object:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _walk(node: ast.AST, original: str) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BoolOp):
        values = [_walk(v, original) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _walk(node.operand, original)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _walk(node.left, original), _walk(node.comparators[0], original)
        op = node.ops[0]
        if isinstance(op, ast.Eq | ast.NotEq):
            same = left == right or _num(left) == _num(right)
            return same if isinstance(op, ast.Eq) else not same
        a, b = _num(left), _num(right)
        if not (isinstance(a, float) and isinstance(b, float)):
            raise ExpressionError(f"cannot order non-numbers in '{original}'")
        return {ast.Gt: a > b, ast.Lt: a < b, ast.GtE: a >= b, ast.LtE: a <= b}[type(op)]
    raise ExpressionError(f"unsupported construct in '{original}'")
