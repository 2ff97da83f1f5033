"""The one push rule: which pushes start a pipeline for one artifact type, per Git host.

:func:`push_filter` returns the rule as an Argo Events ``EventDependencyFilter`` dict. The
Sensor embeds that dict verbatim (``workflows/events.py``) and the local receiver evaluates
the very same dict with :func:`workflows.webhooks.sensor_filter.evaluate`; the corpus test
proves both decide identically on every body of ``tests/fixtures/payloads/corpus.jsonl``.

The rule, for artifact directory ``prompts`` and branch ``main``: a push fires when

* ``ref`` is exactly ``refs/heads/main`` (tags and other branches never fire),
* ``after`` and ``before`` are commit SHAs and ``after`` is not all zeros (a deletion),
* and the payload cannot prove that ``prompts/`` was left alone, i.e. either

  - a listed commit added/modified/removed a path under ``prompts/``, or
  - the commit list cannot be trusted to be complete: missing, null, not a list, empty,
    at the host's cap (:data:`COMMIT_CAPS`), shorter than the host's total
    (``total_commits_count`` on GitLab, ``total_commits`` on Gitea; a payload without the
    total is not trusted either), the lists name no file at all (no ``"`` in their text:
    lists missing, null or empty), or (GitHub) a forced push, whose list omits the commits
    it dropped.

When the payload cannot prove anything, the pipeline's plan step decides from
``git diff base-revision..git-revision``; a type whose files did not change plans nothing.

Both implementations see the payload as JSON *text* (gjson renders arrays as text and Argo
matches regexes on it), so the regexes are written to be immune to JSON escaping: a
directory character may arrive as itself or as ``\\uXXXX`` (``/`` also as ``\\/``; GitLab and
Gitea bodies reach the Sensor unnormalised), and a path counts only when its string starts an
array element (``[`` or ``,`` right before the opening quote), so a ``"`` inside a file name
(``docs/x\\"prompts/y``) never fires the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.webhooks.sensor_filter import FilterError, evaluate, gjson_get, parse_event

__all__ = ["COMMIT_CAPS", "FilterError", "PushDecision", "decide_push", "push_filter", "SENSOR_HOSTS"]

# The hosts a Sensor dependency exists for (Bitbucket Cloud: receiver only, see docs/triggers.md).
SENSOR_HOSTS = ("github", "gitlab", "gitea")

FILE_LISTS_PATH = "[body.commits.#.added,body.commits.#.modified,body.commits.#.removed]"
# How many commits each host lists at most; a list this long may have been cut short.
# GitHub: "The array includes a maximum of 2048 commits" (webhook push payload docs);
# GitLab: 20 (lib/gitlab/data_builder/push.rb); Gitea: [ui] FEED_MAX_COMMIT_NUM, default 5.
COMMIT_CAPS = {"github": 2048, "gitlab": 20, "gitea": 5}
# Where each host reports how many commits the push really had (absent on GitHub).
TOTAL_PATHS = {"github": None, "gitlab": "body.total_commits_count", "gitea": "body.total_commits"}
SHA_REGEX = "^[0-9a-f]{40}([0-9a-f]{24})?$"
NONZERO_REGEX = "[1-9a-f]"

# Branch names and directories are embedded in regexes inside a govaluate string literal,
# which has its own backslash escaping. Restricting them to these characters means nothing
# but ``.`` needs escaping, and ``.`` is written ``[.]``.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")


def _check_name(text: str, what: str) -> str:
    if not _SAFE_NAME.match(text) or ".." in text or "//" in text or text.endswith("/"):
        raise FilterError(f"{what} {text!r} may only use letters, digits and . _ / - "
                          "(no '..' or '//'), so it can be matched literally")
    return text


def _json_char(c: str) -> str:
    """Return a regex for ``c`` as it may appear inside a JSON string: itself or ``\\uXXXX``."""
    hexdigits = "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{ord(c):04x}")
    literal = {".": "[.]", "/": "/|\\\\/"}.get(c, c)
    return f"(?:{literal}|\\\\u{hexdigits})"


def path_prefix_regex(directory: str) -> str:
    """Return a regex matching a JSON array element whose decoded string starts with ``directory/``.

    ``[\\[,]"`` anchors on an element's opening quote (inside a JSON string every ``"`` is
    preceded by a backslash); ``(?:[^"\\\\]|\\\\.)*"[,\\]]`` then requires the string to end an
    element rather than be an object key.
    """
    d = _check_name(directory.strip("/"), "artifact directory")
    chars = "".join(_json_char(c) for c in d + "/")
    return '[\\[,]"' + chars + '(?:[^"\\\\]|\\\\.)*"[,\\]]'


def _digit_class(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"[{lo}-{hi}]"


def positive_int_regex(high: int) -> str:
    """Return an alternation matching exactly the decimal numbers 1..``high`` (no leading zeros)."""
    top = str(high)
    alts = [_digit_class(1, 9) + ("[0-9]" + (f"{{{k - 1}}}" if k > 2 else "") if k > 1 else "")
            for k in range(1, len(top))]
    for i, digit in enumerate(top):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            rest = len(top) - i - 1
            tail = ("[0-9]" + (f"{{{rest}}}" if rest > 1 else "")) if rest else ""
            alts.append(top[:i] + _digit_class(low, int(digit) - 1) + tail)
    alts.append(top)
    return "|".join(alts)


def trusted_list_regex(host: str) -> tuple[str, str]:
    """Return ``(path, regex)``: the regex matches the path's text only when the commit list is complete.

    GitHub has no total, so the text is ``[n]`` and n must be 1..cap-1. GitLab and Gitea
    report the total first: ``[total,n]`` with total == n and 1 <= n < cap. Missing, null,
    empty or non-list ``commits`` and a missing total all render differently and so are
    untrusted.
    """
    cap = COMMIT_CAPS[host]
    total = TOTAL_PATHS[host]
    if total is None:
        return "[body.commits.#]", f"^\\[(?:{positive_int_regex(cap - 1)})\\]$"
    pairs = "|".join(f"{n},{n}" for n in range(cap - 1, 0, -1))
    return f"[{total},body.commits.#]", f"^\\[(?:{pairs})\\]$"


def push_filter(directory: str, branch: str = "main", host: str = "github") -> dict[str, Any]:
    """Return the Argo Events ``EventDependencyFilter`` that fires for ``host`` pushes touching ``directory``.

    The only definition of the trigger rule: the Sensor uses the dict as is, the receiver
    evaluates it. Raises FilterError for an unknown host or a branch or directory that
    cannot be matched literally.
    """
    if host not in COMMIT_CAPS:
        raise FilterError(f"no Sensor rule for host {host!r}; known: {', '.join(COMMIT_CAPS)}")
    ref = "^refs/heads/" + _check_name(branch, "branch").replace(".", "[.]") + "$"
    count_path, trusted = trusted_list_regex(host)
    data = [
        {"path": FILE_LISTS_PATH, "type": "string", "value": [path_prefix_regex(directory)]},
        {"path": count_path, "type": "string", "comparator": "!=", "value": [trusted]},
        {"path": FILE_LISTS_PATH, "type": "string", "value": ['^[^"]*$']},
    ]
    if host == "github":
        data.append({"path": "body.forced", "type": "string", "value": ["^true$"]})
    return {
        "exprs": [{
            "expr": (f"ref =~ '{ref}' && after =~ '{SHA_REGEX}' && after =~ '{NONZERO_REGEX}'"
                     f" && before =~ '{SHA_REGEX}'"),
            "fields": [{"name": "ref", "path": "body.ref"}, {"name": "after", "path": "body.after"},
                       {"name": "before", "path": "body.before"}],
        }],
        "dataLogicalOperator": "or",
        "data": data,
    }


# ------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class PushDecision:
    """Whether a push starts a run for one artifact type; ``listed`` when the payload's file list proved it."""

    artifact_type: str
    directory: str
    triggered: bool
    listed: bool
    reason: str


def _reason(event: Mapping[str, Any], host: str, directory: str, branch: str, triggered: bool,
            listed: bool) -> str:
    body = event.get("body")
    ref = gjson_get(event, "body.ref")
    if not isinstance(body, dict) or ref != f"refs/heads/{branch}":
        return f"push to {ref if isinstance(ref, str) and ref else '<no ref>'} is not refs/heads/{branch}"
    after = gjson_get(event, "body.after")
    if isinstance(after, str) and after and set(after) <= {"0"}:
        return f"branch {branch} was deleted"
    if not triggered:
        if not evaluate({"exprs": push_filter(directory, branch, host)["exprs"]}, event):
            return "after/before are not commit SHAs"
        return f"no file under {directory}/ changed"
    if listed:
        return f"files under {directory}/ changed"
    return "the payload cannot prove which files changed; plan decides from git diff"


def decide_push(host: str, body: bytes, artifact_dirs: Mapping[str, str], branch: str = "main", *,
                lists_usable: bool = True) -> list[PushDecision]:
    """Return one decision per artifact type for a push ``body`` from ``host`` (github, gitlab, gitea).

    ``lists_usable=False`` (a body over the EventSource's size cap) applies only the
    ref/SHA part of the rule, so every type fires and plan decides. Raises ValueError when
    the body is not JSON.
    """
    event = parse_event(host, body)
    out = []
    for artifact_type, directory in artifact_dirs.items():
        d = directory.strip("/")
        rule = push_filter(d, branch, host)
        if lists_usable:
            hit = evaluate(rule, event)
            listed = hit and evaluate({**rule, "data": rule["data"][:1]}, event)
        else:
            hit, listed = evaluate({"exprs": rule["exprs"]}, event), False
        reason = _reason(event, host, d, branch, hit, listed)
        if hit and not lists_usable:
            reason = "the payload is over the size cap; plan decides from git diff"
        out.append(PushDecision(artifact_type, d, hit, listed, reason))
    return out
