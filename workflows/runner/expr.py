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
    """Return the truth of a ``when`` condition after substitution, as Argo's govaluate does.

    Bare words are strings (steps.go shouldExecute turns govaluate variables into
    strings), ``true``/``false`` are booleans, numbers are numbers; ``names`` maps
    identifiers to string values. Values of different types are never equal.
    """
    return _eval_tokens(expr, names or {}, strict_names=False)


def eval_expr(expr: str, names: Mapping[str, str]) -> bool:
    """Return the truth of an expr-lang boolean expression (``retryStrategy.expression``).

    As expr-lang (util/expr/argoexpr EvalBool): identifiers must be known ``names`` (else
    ExpressionError), ``and``/``or``/``not`` are spelled-out operators, and a string never
    equals a number: ``lastRetry.exitCode == 75`` is false, ``== "75"`` may be true.
    """
    return _eval_tokens(expr, names, strict_names=True)


WORD_OPS = {"and": " and ", "or": " or ", "not": " not "}


def _eval_tokens(expr: str, names: Mapping[str, str], *, strict_names: bool) -> bool:
    pieces = []
    for tok in _tokens(COND_TOKEN, expr, "condition"):
        if tok in BOOL_OPS:
            pieces.append(BOOL_OPS[tok])
        elif strict_names and tok in WORD_OPS:
            pieces.append(WORD_OPS[tok])
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
        elif strict_names:
            raise ExpressionError(f"unknown name {tok} in '{expr}'")
        else:
            pieces.append(repr(tok))
    result = _safe_eval("".join(pieces), expr)
    if strict_names and not isinstance(result, bool):
        raise ExpressionError(f"expression '{expr}' is not a boolean")
    return bool(result)


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


def _kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    return "number" if isinstance(v, int | float) else type(v).__name__


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
            # Values of different types are never equal (expr-lang runtime.Equal, govaluate reflect.DeepEqual).
            same = _kind(left) == _kind(right) and left == right
            return same if isinstance(op, ast.Eq) else not same
        if _kind(left) != _kind(right) or _kind(left) not in {"number", "str"}:
            raise ExpressionError(f"cannot order {_kind(left)} and {_kind(right)} in '{original}'")
        a, b = left, right
        return {ast.Gt: a > b, ast.Lt: a < b, ast.GtE: a >= b, ast.LtE: a <= b}[type(op)]  # type: ignore[operator]
    raise ExpressionError(f"unsupported construct in '{original}'")
