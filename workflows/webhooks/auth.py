"""Who sent a webhook and whether it is authentic: one secret per Git host, constant-time checks.

| host | event header (push value) | proof | delivery id |
|---|---|---|---|
| GitHub | ``X-GitHub-Event`` (``push``) | ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`` | ``X-GitHub-Delivery`` |
| Gitea | ``X-Gitea-Event`` (``push``) | ``X-Gitea-Signature: <hex HMAC-SHA256>`` | ``X-Gitea-Delivery`` |
| GitLab | ``X-Gitlab-Event`` (``Push Hook``) | ``X-Gitlab-Token: <token>`` (sent in clear) | ``X-Gitlab-Event-UUID`` |
| Bitbucket Cloud | ``X-Event-Key`` (``repo:push``) | ``X-Hub-Signature: sha256=<hex HMAC>`` | ``X-Request-UUID`` |

Each host has its own secret: GitLab's token travels in every request, so if it were also
an HMAC key, whoever saw one GitLab delivery could sign GitHub, Gitea and Bitbucket
requests. :meth:`WebhookSecrets.problems` refuses equal secrets for that reason.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from config.settings import Settings


@dataclass(frozen=True)
class HostSpec:
    """The headers one Git host uses for its webhooks."""

    key: str
    event_header: str
    push_event: str
    delivery_header: str
    content_types: tuple[str, ...]


HOST_SPECS = {
    # Gitea also sends X-GitHub-Event/X-Hub-Signature-256 for compatibility: recognised first.
    "gitea": HostSpec("gitea", "x-gitea-event", "push", "x-gitea-delivery", ("application/json",)),
    "gitlab": HostSpec("gitlab", "x-gitlab-event", "Push Hook", "x-gitlab-event-uuid", ("application/json",)),
    "bitbucket": HostSpec("bitbucket", "x-event-key", "repo:push", "x-request-uuid", ("application/json",)),
    "github": HostSpec("github", "x-github-event", "push", "x-github-delivery",
                       ("application/json", "application/x-www-form-urlencoded")),
}


@dataclass(frozen=True)
class WebhookSecrets:
    """One secret per host (HMAC keys for GitHub/Gitea/Bitbucket, a token for GitLab); None = host off."""

    github: bytes | None = None
    gitlab: bytes | None = None
    gitea: bytes | None = None
    bitbucket: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSecrets:
        """Return the secrets of ``PROMPTCI_WEBHOOK_SECRET_GITHUB``, ``…_GITLAB``, ``…_GITEA``, ``…_BITBUCKET``.

        Unset or empty: that host is off.
        """
        def raw(value: SecretStr | None) -> bytes | None:
            return value.get_secret_value().encode() or None if value is not None else None

        return cls(github=raw(settings.webhook_secret_github), gitlab=raw(settings.webhook_secret_gitlab),
                   gitea=raw(settings.webhook_secret_gitea), bitbucket=raw(settings.webhook_secret_bitbucket))

    def get(self, host: str) -> bytes | None:
        value: bytes | None = getattr(self, host, None)
        return value

    def enabled(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def problems(self) -> list[str]:
        """Return why these secrets must not be used (none set, or two hosts sharing one)."""
        on = {h: self.get(h) for h in self.enabled()}
        if not on:
            return ["no webhook secret is set; set at least one of "
                    + ", ".join(f"PROMPTCI_WEBHOOK_SECRET_{f.name.upper()}" for f in fields(self))]
        out = []
        hosts = sorted(on)
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                if hmac.compare_digest(on[a] or b"", on[b] or b""):
                    out.append(f"the {a} and {b} webhook secrets are equal; give each host its own")
        return out


def identify(headers: Mapping[str, str]) -> tuple[HostSpec, str] | None:
    """Return ``(host, event)`` from the event header, or None when no known host sent it.

    ``headers`` has lower-cased names.
    """
    for spec in HOST_SPECS.values():
        if headers.get(spec.event_header):
            return spec, headers[spec.event_header]
    return None


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(host: str, headers: Mapping[str, str], body: bytes, secret: bytes | None) -> bool:
    """Return True when the request carries ``host``'s valid signature or token (constant time).

    ``headers`` has lower-cased names; a host without a secret never verifies.
    """
    if not secret:
        return False
    if host == "github":
        given, expected = headers.get("x-hub-signature-256", ""), "sha256=" + _hmac_hex(secret, body)
    elif host == "gitea":
        given, expected = headers.get("x-gitea-signature", ""), _hmac_hex(secret, body)
    elif host == "bitbucket":
        given, expected = headers.get("x-hub-signature", ""), "sha256=" + _hmac_hex(secret, body)
    elif host == "gitlab":
        given, expected = headers.get("x-gitlab-token", ""), secret.decode("utf-8", "replace")
    else:
        return False
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
