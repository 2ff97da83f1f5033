"""Bitbucket Cloud ``repo:push``: the receiver's rule (there is no Sensor for it, see below).

A Bitbucket Cloud push lists branch changes, not files: ``push.changes[]`` with ``new``
(``type`` branch or tag, ``name``, ``target.hash``) and ``old`` (null for a new branch;
``new`` is null for a deletion). With no file lists the payload can never prove that an
artifact directory was left alone, so a push to the watched branch fires every type and the
plan step decides from ``git diff``.

Why no cluster EventSource: argo-events v1.9.11's ``bitbucket`` EventSource checks no
signature at all (pkg/eventsources/sources/bitbucket/start.go ``HandleRoute`` reads the body
and dispatches it), and the generic ``webhook`` EventSource can only check an
``Authorization: Bearer`` header (pkg/eventsources/common/webhook/webhook.go
``startServer``), which Bitbucket Cloud cannot send. Deploying either would let anyone start
runs, so Bitbucket Cloud is supported by ``serve`` only, which verifies ``X-Hub-Signature``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from workflows.webhooks.sensor_filter import go_regex
from workflows.webhooks.trigger_filter import NONZERO_REGEX, SHA_REGEX, PushDecision

ZERO_SHA = "0" * 40


def _change_for(payload: Any, branch: str) -> tuple[dict[str, Any] | None, str]:
    """Return the ``push.changes[]`` entry for ``branch`` (or None) and a reason when there is none."""
    changes = payload.get("push", {}).get("changes") if isinstance(payload, dict) else None
    if not isinstance(changes, list):
        return None, "no push.changes in the payload"
    deleted = False
    for change in changes:
        if not isinstance(change, dict):
            continue
        new, old = change.get("new"), change.get("old")
        if new is None and isinstance(old, dict) and old.get("type") == "branch" and old.get("name") == branch:
            deleted = True
        if isinstance(new, dict) and new.get("type") == "branch" and new.get("name") == branch:
            return change, ""
    return None, f"branch {branch} was deleted" if deleted else f"no change to branch {branch}"


def bitbucket_revisions(payload: Any, branch: str) -> tuple[str, str] | None:
    """Return ``(before, after)`` of the push to ``branch`` (before all zeros for a new branch), or None."""
    change, _ = _change_for(payload, branch)
    if change is None:
        return None
    after = (change["new"].get("target") or {}).get("hash")
    old = change.get("old")
    before = (old.get("target") or {}).get("hash") if isinstance(old, dict) else ZERO_SHA
    if not all(isinstance(v, str) and go_regex(SHA_REGEX).search(v) for v in (after, before)):
        return None
    assert isinstance(after, str) and isinstance(before, str)
    if not go_regex(NONZERO_REGEX).search(after):
        return None
    return before, after


def decide_bitbucket_push(body: bytes, artifact_dirs: Mapping[str, str], branch: str = "main") -> list[PushDecision]:
    """Return one decision per artifact type for a Bitbucket Cloud ``repo:push`` body.

    Every type fires for a push to ``branch`` with valid commit hashes (no file lists: plan
    decides); nothing fires otherwise. Raises ValueError when the body is not JSON.
    """
    payload = json.loads(body.decode("utf-8"))
    change, why = _change_for(payload, branch)
    revs = bitbucket_revisions(payload, branch)
    if change is not None and revs is None:
        why = "the change's commit hashes are not SHAs"
    fired = revs is not None
    reason = "Bitbucket lists no files; plan decides from git diff" if fired else why
    return [PushDecision(t, d.strip("/"), fired, False, reason) for t, d in artifact_dirs.items()]
