"""The one push filter: which pushes start a pipeline for one artifact type.

:func:`push_filter` returns the rule as an Argo Events ``EventDependencyFilter``
dict. The Sensor embeds that dict verbatim (``workflows/events.py``) and the
local receiver evaluates the very same dict with :func:`evaluate`, which
implements the Argo Events semantics of the subset used here (gjson paths,
regex data filters, number comparators, ``=~`` expressions). There is no second
description of the rule to drift.

The rule, for artifact directory ``prompts`` and branch ``main``:

* ``body.ref`` is exactly ``refs/heads/main`` (so tag pushes never match);
* ``body.after`` has a non-zero hex digit (a branch deletion's ``after`` is all zeros);
* and either some listed commit added/modified/removed a file under ``prompts/``,
  or the payload's file lists cannot be trusted: the commit list is empty or has
  20+ entries (GitHub and GitLab list at most 20 commits). The pipeline's plan
  step recomputes the changed files from ``base-revision..git-revision`` with
  git, so firing conservatively costs one cheap no-op run, never a missed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Argo Events evaluates the file filter below over this gjson multipath: a JSON
# array text such as [["prompts/a.yaml"],[],[]]. Each value is an unanchored
# regex over that text, so the directory is anchored on the opening quote.
FILE_LISTS_PATH = "[body.commits.#.added,body.commits.#.modified,body.commits.#.removed]"
COMMIT_COUNT_PATH = "body.commits.#"
# GitHub (and GitLab) list at most 20 commits; with that many the lists may be cut short.
MAX_LISTED_COMMITS = 20
NONZERO_SHA_REGEX = "[1-9a-fA-F]"

# Branch names and directories are embedded in regexes inside a govaluate string
# literal, which has its own (lossy) backslash escaping. Restricting them to
# these characters lets ``.`` be written as ``[.]`` and nothing else need escaping.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")


class FilterError(ValueError):
    """A branch or directory cannot be expressed safely as a filter."""


def _literal_regex(text: str, what: str) -> str:
    """Return a regex matching ``text`` literally, valid in Go RE2, Python and govaluate strings."""
    if not _SAFE_NAME.match(text) or ".." in text or "//" in text:
        raise FilterError(f"{what} {text!r} may only use letters, digits and . _ / - "
                          "(no '..' or '//'), so it can be matched literally")
    return text.replace(".", "[.]")


def push_filter(directory: str, branch: str = "main") -> dict[str, Any]:
    """Return the Argo Events ``EventDependencyFilter`` that fires for pushes touching ``directory``.

    This is the only definition of the trigger rule: the Sensor uses the dict as
    is, and the receiver runs it through :func:`evaluate`. Raises FilterError for
    a branch or directory that cannot be matched literally.
    """
    dir_regex = _literal_regex(directory.strip("/"), "artifact directory")
    ref_regex = "^refs/heads/" + _literal_regex(branch, "branch") + "$"
    return {
        "exprs": [{
            "expr": f"ref =~ '{ref_regex}' && after =~ '{NONZERO_SHA_REGEX}'",
            "fields": [{"name": "ref", "path": "body.ref"}, {"name": "after", "path": "body.after"}],
        }],
        "dataLogicalOperator": "or",
        "data": [
            {"path": FILE_LISTS_PATH, "type": "string", "value": ['"' + dir_regex + "/"]},
            {"path": COMMIT_COUNT_PATH, "type": "number", "comparator": ">=",
             "value": [str(MAX_LISTED_COMMITS)]},
            {"path": COMMIT_COUNT_PATH, "type": "number", "comparator": "<=", "value": ["0"]},
        ],
    }


# ------------------------------------------------------------------ evaluation


class _Missing:
    """gjson's "does not exist" result."""


MISSING = _Missing()


def _split_path(path: str) -> list[str]:
    return path.split(".")


def _get(value: Any, parts: list[str]) -> Any:
    """Return the value at a gjson dotted path (supporting ``#`` count and ``#.key`` map)."""
    for i, part in enumerate(parts):
        if part == "#":
            if not isinstance(value, list):
                return MISSING
            rest = parts[i + 1:]
            if not rest:
                return len(value)
            mapped = [_get(item, rest) for item in value]
            return [m for m in mapped if m is not MISSING]
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def gjson_get(data: Any, path: str) -> Any:
    """Return what gjson returns for ``path`` (a dotted path or a ``[p1,p2]`` multipath), or MISSING.

    A multipath yields a list with one entry per sub-path that exists, as gjson does.
    """
    if path.startswith("[") and path.endswith("]"):
        results = [_get(data, _split_path(p.strip())) for p in path[1:-1].split(",")]
        return [r for r in results if r is not MISSING]
    return _get(data, _split_path(path))


def _as_text(value: Any) -> str:
    """Return gjson's ``Result.String()``: raw JSON for arrays/objects, the value for scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "" if value is None else str(value)


_COMPARE = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "!=": lambda a, b: a != b, "=": lambda a, b: a == b,
    "": lambda a, b: a == b,
}


def _data_filter_matches(f: Mapping[str, Any], event: Any) -> bool:
    value = gjson_get(event, f["path"])
    if value is MISSING:
        return False
    comparator = f.get("comparator", "")
    if f["type"] == "number":
        try:
            actual = float(value)
        except (TypeError, ValueError):
            return False
        return any(_COMPARE[comparator](actual, float(v)) for v in f["value"])
    if f["type"] == "string":
        text = _as_text(value)
        hits = [re.search(v, text) is not None for v in f["value"]]
        return not any(hits) if comparator == "!=" else any(hits)
    raise FilterError(f"data filter type {f['type']!r} is not supported by this evaluator")


_EXPR_TERM = re.compile(r"^\s*(\w+)\s*=~\s*'([^']*)'\s*$")


def _expr_matches(e: Mapping[str, Any], event: Any) -> bool:
    fields = {}
    for field in e["fields"]:
        value = gjson_get(event, field["path"])
        if value is MISSING:  # Argo fails an expr whose field path does not exist
            return False
        fields[field["name"]] = _as_text(value)
    for term in e["expr"].split("&&"):
        m = _EXPR_TERM.match(term)
        if not m:
            raise FilterError(f"expression term {term.strip()!r} is not supported by this evaluator")
        if re.search(m.group(2), fields[m.group(1)]) is None:
            return False
    return True


def evaluate(filters: Mapping[str, Any], event: Any) -> bool:
    """Return whether an Argo Events dependency with ``filters`` would accept ``event``.

    ``event`` is the event data as the EventSource emits it (``{"body": payload, ...}``).
    Covers exactly what :func:`push_filter` generates: ``exprs`` made of ``&&``-joined
    ``name =~ 'regex'`` terms, and string/number ``data`` filters; the groups are ANDed
    (Argo's default ``filtersLogicalOperator``). Raises FilterError on anything else, so
    the receiver can never silently disagree with the Sensor.
    """
    exprs_ok = all(_expr_matches(e, event) for e in filters.get("exprs", []))
    data = filters.get("data", [])
    results = [_data_filter_matches(f, event) for f in data]
    if filters.get("dataLogicalOperator", "and") == "or":
        data_ok = any(results) if data else True
    else:
        data_ok = all(results)
    return exprs_ok and data_ok


@dataclass(frozen=True)
class PushDecision:
    """Whether a push starts a run for one artifact type, and a one-line reason why (not)."""

    artifact_type: str
    directory: str
    triggered: bool
    reason: str


def _reason(payload: Mapping[str, Any], directory: str, branch: str, triggered: bool) -> str:
    ref = str(payload.get("ref", ""))
    after = str(payload.get("after", ""))
    commits = payload.get("commits")
    if ref != f"refs/heads/{branch}":
        return f"push to {ref or '<no ref>'} is not refs/heads/{branch}"
    if not re.search(NONZERO_SHA_REGEX, after):
        return f"branch {branch} was deleted"
    if triggered:
        if not isinstance(commits, list) or not commits:
            return "commit list is empty or missing; the plan step recomputes changes with git"
        if len(commits) >= MAX_LISTED_COMMITS:
            return f"{len(commits)} commits listed (may be truncated); the plan step recomputes changes"
        return f"files under {directory}/ changed"
    return f"no file under {directory}/ changed"


def decide_push(payload: Mapping[str, Any], artifact_dirs: Mapping[str, str],
                branch: str = "main") -> list[PushDecision]:
    """Return one decision per artifact type for a push ``payload`` (GitHub, GitLab or Gitea body).

    A payload without a ``commits`` key is treated as one with an empty list, i.e.
    conservatively triggered: some senders (Bitbucket) never list files.
    """
    body = dict(payload)
    if not isinstance(body.get("commits"), list):
        body["commits"] = []
    event = {"body": body}
    out = []
    for artifact_type, directory in artifact_dirs.items():
        d = directory.strip("/")
        hit = evaluate(push_filter(d, branch), event)
        out.append(PushDecision(artifact_type, d, hit, _reason(body, d, branch, hit)))
    return out
