"""A fan-out's aggregated outputs, built and encoded exactly as Argo's controller builds them.

Follows ``workflow/controller/operator.go`` ``processAggregateNodeOutputs``,
``aggregatedJSONValueList`` and ``tryJSONUnmarshal`` (argo-workflows v4.1):

* only Succeeded children count, sorted by loop index (``loopNodes``);
* ``tasks.X.outputs.parameters.NAME`` is a JSON list of the children's values: parsed
  when *every* value is a JSON object or array, otherwise the raw strings;
* ``tasks.X.outputs.parameters`` is the list of ``{name: value}`` maps;
* ``tasks.X.outputs.result`` is the list of the children's results, each kept as the raw
  JSON it is (``wfv1.Item`` holds a ``json.RawMessage``), compacted as ``json.Marshal``
  compacts raw messages; a result that is not JSON is an error, as in Argo;
* everything is re-encoded with Go's ``encoding/json`` rules (:func:`go_json`): map keys
  sorted, no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, numbers as float64.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class AggregateError(ValueError):
    """A child's output cannot be aggregated (Argo fails the dependent task the same way)."""


@dataclass(frozen=True)
class Child:
    """What aggregation needs of one expanded child node."""

    index: int
    phase: str
    outputs: dict[str, str]
    result: str | None


def aggregate_outputs(task: str, children: Sequence[Child]) -> dict[str, str]:
    """Return the scope entries ``tasks.<task>.outputs...`` of a finished fan-out.

    Raises AggregateError when a captured result is not JSON (operator.go returns the
    ``json.Unmarshal`` error, and the dependent task errors).
    """
    prefix = f"tasks.{task}.outputs"
    ordered = sorted((c for c in children if c.phase == "Succeeded"), key=lambda c: c.index)
    by_name: dict[str, list[str]] = {}
    param_list = []
    results = []
    for child in ordered:
        if child.outputs:
            param_list.append(dict(child.outputs))
            for name, value in child.outputs.items():
                by_name.setdefault(name, []).append(value)
        if child.result is not None:
            try:
                json.loads(child.result)
            except json.JSONDecodeError as exc:
                raise AggregateError(f"tasks.{task}: the result of {task}({child.index}) is not JSON "
                                     f"({exc.msg}); Argo cannot aggregate it") from exc
            results.append(go_compact(child.result))
    scope = {f"{prefix}.result": "[" + ",".join(results) + "]", f"{prefix}.parameters": go_json(param_list)}
    for name, values in by_name.items():
        scope[f"{prefix}.parameters.{name}"] = aggregated_value_list(values)
    return scope


def aggregated_value_list(values: Sequence[str]) -> str:
    """Return the JSON list of one output's values (operator.go aggregatedJSONValueList)."""
    parsed = []
    for value in values:
        try:
            item = json.loads(value)
        except json.JSONDecodeError:
            return go_json(list(values))
        if not isinstance(item, dict | list):
            return go_json(list(values))
        parsed.append(_go_number_tree(item))
    return go_json(parsed)


def _go_number_tree(value: Any) -> Any:
    """Return ``value`` with every number as a float, as Go's ``json.Unmarshal`` into ``any`` makes it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_go_number_tree(v) for v in value]
    return {k: _go_number_tree(v) for k, v in value.items()}


_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _HTML_UNSAFE[m.group(0)], encoded)


def _go_float(number: float) -> str:
    """Format a float64 as Go's encoding/json floatEncoder does."""
    if math.isnan(number) or math.isinf(number):
        raise AggregateError(f"unsupported value: {number}")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    text = repr(number)  # the shortest digits that round-trip, as strconv's precision -1
    if 1e-6 <= abs(number) < 1e21:  # Go: 'f' format
        return text[:-2] if text.endswith(".0") else format(Decimal(text), "f")
    return re.sub(r"e-0(\d)$", r"e-\1", text)  # Go: 'e' format, "e-07" cleaned to "e-7"


def go_compact(raw: str) -> str:
    """Return valid JSON text compacted as Go's ``json.Marshal`` compacts a ``json.RawMessage``.

    Whitespace outside strings goes; key order and number spelling stay; ``<``, ``>``,
    ``&``, U+2028 and U+2029 inside strings are escaped (encoding/json ``compact`` with escapeHTML).
    """
    out = []
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(_HTML_UNSAFE.get(ch, ch))
        elif ch in " \t\r\n":
            continue
        else:
            in_string = ch == '"'
            out.append(ch)
    return "".join(out)


def go_json(value: Any) -> str:
    """Return ``value`` encoded as Go's ``json.Marshal`` encodes the same tree."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int | float):
        return _go_float(float(value))
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_go_string(k) + ":" + go_json(value[k]) for k in sorted(value)) + "}"
    raise TypeError(f"cannot encode {type(value).__name__}")
