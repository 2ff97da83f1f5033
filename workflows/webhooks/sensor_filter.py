"""Argo Events' dependency filter in Python: the event data a Sensor sees, gjson paths, regexes, ``=~``.

Only the subset :mod:`workflows.webhooks.trigger_filter` generates is implemented, and
anything else raises :class:`FilterError`, so the receiver can never silently decide
differently from a Sensor. Agreement is not asserted, it is measured: the corpus test
(tests/workflows/test_trigger_corpus.py) runs every body through Argo Events' own filter
code (``../shared/tools/sensor-filter-oracle``, argo-events v1.9.11) and through
:func:`evaluate`, and requires identical decisions.

What the Sensor sees depends on the EventSource (argo-events v1.9.11):

* ``github`` (pkg/eventsources/sources/github/start.go, ``parseValidateRequest``) unmarshals
  the body into ``map[string]interface{}`` and marshals it again: duplicate keys keep the
  *last* value, keys are sorted, numbers become float64 printed the Go way (``3.0`` -> ``3``);
* ``gitlab`` (gitlab/start.go ``HandleRoute``) and the generic ``webhook`` (webhook/start.go
  ``GetBody``) embed the raw bytes: gjson reads the *first* of duplicate keys and number
  text is kept as sent (``3.0`` stays ``3.0``).

In both cases ``json.Marshal`` compacts the body and escapes ``<``, ``>``, ``&``; the rule's
regexes are written so that no JSON escape changes a decision, which is what lets this
module render strings with :func:`json.dumps` instead of byte-for-byte like Go.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# Hosts whose EventSource re-marshals the body (the rest embed it raw).
REMARSHALLING_HOSTS = frozenset({"github"})


class FilterError(ValueError):
    """A filter (or a branch/directory for one) this module cannot evaluate or express exactly."""


class JsonNumber(str):
    """A JSON number kept as the text gjson would print for it (``raw`` or Go-formatted)."""


class _Missing:
    """gjson's "does not exist" result."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# ------------------------------------------------------------------ the event data


def go_float_text(text: str) -> str:
    """Return how Go's ``encoding/json`` prints the float64 that ``text`` parses to.

    Go (encode.go ``floatEncoder``) uses the shortest round-trip digits, fixed notation
    unless ``abs < 1e-6 or abs >= 1e21``, and shortens ``e-07`` to ``e-7``.
    """
    f = float(text)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range for float64")
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        out = repr(f)
        return re.sub(r"e([+-])0(\d)$", r"e\1\2", out)
    return format(Decimal(repr(f)).normalize(), "f")


def parse_event(host: str, body: bytes) -> dict[str, Any]:
    """Return the event data a v1.9.11 EventSource of ``host`` hands the Sensor: ``{"body": ...}``.

    Raises ValueError when the body is not JSON (the EventSource then refuses the request,
    so nothing fires).
    """
    remarshal = host in REMARSHALLING_HOSTS

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if remarshal:  # Go map: last duplicate wins, keys sorted by their UTF-8 bytes
            merged = dict(items)
            return {k: merged[k] for k in sorted(merged, key=lambda k: k.encode("utf-8", "surrogatepass"))}
        out: dict[str, Any] = {}
        for k, v in items:  # gjson on raw bytes: the first duplicate wins
            out.setdefault(k, v)
        return out

    def number(text: str) -> JsonNumber:
        return JsonNumber(go_float_text(text) if remarshal else text)

    text = body.decode("utf-8")
    return {"body": json.loads(text, object_pairs_hook=pairs, parse_int=number, parse_float=number,
                               parse_constant=_no_constant)}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ------------------------------------------------------------------ gjson subset

_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _check_path(path: str) -> list[str]:
    parts = path.split(".")
    if not all(p == "#" or _KEY.match(p) for p in parts):
        raise FilterError(f"gjson path {path!r} uses syntax this evaluator does not implement")
    return parts


def _get(value: Any, parts: list[str]) -> Any:
    """Return the value at a dotted gjson path (keys, ``#`` count, ``#.key`` map) or MISSING."""
    for i, part in enumerate(parts):
        if part == "#":
            if not isinstance(value, list):
                return MISSING
            rest = parts[i + 1:]
            if not rest:
                return JsonNumber(str(len(value)))
            return [m for item in value if (m := _get(item, rest)) is not MISSING]
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def gjson_get(data: Any, path: str) -> Any:
    """Return what gjson returns for ``path`` (dotted path, or ``[p1,p2]`` multipath), else MISSING.

    A multipath always exists and lists only the sub-paths that do (gjson v1.19 behaviour,
    checked by the corpus: a missing ``commits`` gives ``[]``).
    """
    if path.startswith("[") and path.endswith("]"):
        results = [_get(data, _check_path(p.strip())) for p in path[1:-1].split(",")]
        return [r for r in results if r is not MISSING]
    return _get(data, _check_path(path))


def render(value: Any) -> str:
    """Return compact JSON text for ``value`` with numbers as gjson prints them."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + render(v) for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def result_string(value: Any) -> str:
    """Return gjson ``Result.String()``: a string's value, ``""`` for null, JSON text otherwise."""
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        return value
    return "" if value is None else render(value)


# ------------------------------------------------------------------ regexes

_GO_ONLY = re.compile(r"\\[zApPQE]|\(\?[A-Za-z]|\[\[:")


def go_regex(pattern: str) -> re.Pattern[str]:
    """Return a Python regex matching exactly what Go's RE2 ``pattern`` matches, for the subset used.

    The one difference that matters here: Go's ``$`` (no ``m`` flag) matches only at the
    end of the text, Python's also before a final newline, so ``refs/heads/main\\n`` would
    pass in Python and fail in a Sensor. ``$`` is therefore only accepted as the last
    character and becomes ``\\Z``. Go-only syntax raises FilterError.
    """
    if _GO_ONLY.search(pattern) or "$" in pattern[:-1]:
        raise FilterError(f"regex {pattern!r} uses syntax whose Go and Python meanings may differ")
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


# ------------------------------------------------------------------ evaluation

_EXPR_TERM = re.compile(r"^\s*(\w+)\s*=~\s*'([^'\\]*)'\s*$")


def _expr_matches(e: Mapping[str, Any], event: Any) -> bool:
    """Return a govaluate ``&&`` of ``name =~ 'regex'`` terms over the expression's fields.

    A missing field path makes Argo fail the filter (filter.go ``filterExpr``); a field
    that is not a string makes govaluate's ``=~`` fail: both mean "no trigger".
    """
    fields: dict[str, str] = {}
    for f in e["fields"]:
        value = gjson_get(event, f["path"])
        if value is MISSING:
            return False
        if not isinstance(value, str) or isinstance(value, JsonNumber):
            return False
        fields[f["name"]] = value
    for term in e["expr"].split("&&"):
        m = _EXPR_TERM.match(term)
        if not m or m.group(1) not in fields:
            raise FilterError(f"expression term {term.strip()!r} is not supported by this evaluator")
        if go_regex(m.group(2)).search(fields[m.group(1)]) is None:
            return False
    return True


def _data_matches(f: Mapping[str, Any], event: Any) -> bool:
    """Return one string data filter's verdict (filter.go ``filterData``, JSONTypeString)."""
    if f.get("type") != "string" or f.get("template") or f.get("comparator", "=") not in ("=", "!=", ""):
        raise FilterError(f"data filter {f!r} is not supported by this evaluator")
    value = gjson_get(event, f["path"])
    if value is MISSING or not f.get("value"):
        return False
    text = result_string(value)
    hits = [go_regex(v).search(text) is not None for v in f["value"]]
    return not all(hits) if f.get("comparator") == "!=" else any(hits)


def evaluate(filters: Mapping[str, Any], event: Any) -> bool:
    """Return whether an Argo Events dependency with ``filters`` accepts ``event``.

    Exprs are ANDed (the default ``exprLogicalOperator``), data filters are combined by
    ``dataLogicalOperator``, and the two groups are ANDed (``filtersLogicalOperator: and``),
    as pkg/sensors/dependencies/filter.go does. With ``!=``, Argo passes a data filter
    when *some* value does not match, hence ``not all``.
    """
    unknown = set(filters) - {"exprs", "data", "dataLogicalOperator"}
    if unknown:
        raise FilterError(f"filter keys {sorted(unknown)} are not supported by this evaluator")
    if not all(_expr_matches(e, event) for e in filters.get("exprs", [])):
        return False
    data = filters.get("data", [])
    if not data:
        return True
    results = (_data_matches(f, event) for f in data)
    return any(results) if filters.get("dataLogicalOperator", "and") == "or" else all(results)
