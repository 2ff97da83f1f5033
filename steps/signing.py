"""HMAC signatures over the pipeline's own records (plan, eval records, baselines).

Why: promote decides on what eval measured. If it read a results file anyone can write,
``"status": "passed"`` by hand would ship a failing prompt. Eval and plan sign what they
store with a key only the pipeline's service accounts hold; promote refuses a record that
is unsigned or whose bytes changed. The standard library's ``hmac`` (HMAC-SHA256) over a
canonical JSON form (sorted keys, no spaces) is all this needs.

The key: ``$PROMPTCI_SIGNING_KEY`` (on a cluster, from the Secret ``promptci-signing``),
else the file ``$PROMPTCI_SIGNING_KEY_FILE``, else ``.promptci/signing.key`` under the
source checkout, which the first local writer creates (mode 0600). Readers never create it,
and nothing creates it in a pod (the Secret must be mounted there).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from config.settings import get_settings

KEY_ENV = "PROMPTCI_SIGNING_KEY"
KEY_FILE_ENV = "PROMPTCI_SIGNING_KEY_FILE"
LOCAL_KEY_FILE = ".promptci/signing.key"
ALGORITHM = "hmac-sha256"
SIGNATURE = "signature"
MIN_KEY_BYTES = 16


class SignatureError(Exception):
    """A record is unsigned, altered, of the wrong kind, or no key is available."""


def _read_key_file(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise SignatureError(f"signing key {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def _create_key_file(path: Path) -> bytes:
    """Create ``path`` with a fresh random key, atomically: concurrent creators all end up with one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        with contextlib.suppress(FileExistsError):  # another writer created it first: use theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _read_key_file(path)


def signing_key(repo_root: Path, *, create: bool = False) -> bytes:
    """Return the signing key (see module doc). ``create``: make the local key file when there is none.

    Raises SignatureError when there is no key (a reader must not invent one) or it is too short.
    """
    settings = get_settings()
    value = settings.signing_key.get_secret_value() if settings.signing_key is not None else ""
    if value:
        if len(value) < MIN_KEY_BYTES:
            raise SignatureError(f"${KEY_ENV} is shorter than {MIN_KEY_BYTES} bytes")
        return value.encode()
    explicit = settings.signing_key_file
    path = explicit or repo_root / LOCAL_KEY_FILE
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        if create and not explicit and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return _create_key_file(path)  # never in a pod: each would sign with its own key
        raise SignatureError(f"no signing key: set ${KEY_ENV} (a Secret) or ${KEY_FILE_ENV}; {path} "
                             "does not exist") from None


def canonical(payload: dict[str, Any]) -> bytes:
    """Return the bytes that are signed: ``payload`` without its signature, sorted keys, no spaces."""
    body = {k: v for k, v in payload.items() if k != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature_of(payload: dict[str, Any], key: bytes) -> str:
    """Return ``hmac-sha256:<hex>`` over the canonical form of ``payload``."""
    return f"{ALGORITHM}:{hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()}"


def sign(payload: dict[str, Any], key: bytes) -> bytes:
    """Return ``payload`` with its signature, as the JSON bytes to store."""
    signed = {**payload, SIGNATURE: signature_of(payload, key)}
    return json.dumps(signed, indent=2, sort_keys=True, ensure_ascii=False).encode()


def verify(data: bytes, key: bytes, what: str, kind: str) -> dict[str, Any]:
    """Return the payload stored in ``data`` after checking its kind and signature.

    Raises SignatureError naming ``what`` when it is not JSON, of another kind, unsigned or altered.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"{what} is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise SignatureError(f"{what} is not a {kind} (unsigned data written by something else)")
    got = doc.get(SIGNATURE)
    if not isinstance(got, str) or not got:
        raise SignatureError(f"{what} is unsigned")
    if not hmac.compare_digest(got, signature_of(doc, key)):
        raise SignatureError(f"{what} was altered or signed with another key (signature mismatch)")
    return doc
