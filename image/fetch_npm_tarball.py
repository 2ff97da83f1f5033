"""Fetch one npm registry tarball, verify its ``dist.integrity`` and extract chosen paths.

Used by the Dockerfile (stdlib only: it runs on the bare base image) to take npm from the ``npm``
package, and by ``node_runtime.py`` (Node from ``node-linux-<arch>``, the libsql binding of this
platform), so nothing is taken from a second registry and every byte is checked against a pin. Usage::

    python3 fetch_npm_tarball.py URL sha512-BASE64 DEST [PREFIX ...]

Extracts members under ``package/<PREFIX>`` (all of ``package/`` when none is given) into DEST,
with the ``package/`` component stripped. Exits 2 with one line on a bad download or digest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath


class FetchError(Exception):
    """A download failed or its bytes do not match the pinned integrity."""


def download(url: str, timeout_s: float = 120) -> bytes:
    """Return the body of ``url``; raise FetchError (one line) when it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - a pinned https registry URL
            return bytes(resp.read())
    except OSError as exc:
        raise FetchError(f"{url}: {exc}") from exc


def verify(data: bytes, integrity: str, what: str) -> None:
    """Raise FetchError unless ``data`` hashes to the SRI string ``integrity`` (``sha512-BASE64``)."""
    algo, _, digest = integrity.partition("-")
    if algo not in ("sha512", "sha384", "sha256", "sha1") or not digest:
        raise FetchError(f"{what}: unsupported integrity {integrity!r}")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != digest:
        raise FetchError(f"{what}: {algo} is {got}, expected {digest}")


def extract(data: bytes, dest: Path, prefixes: list[str] | None = None) -> None:
    """Extract the ``package/`` members of the tarball ``data`` (only under ``prefixes`` if given) into ``dest``.

    Members outside ``package/`` or with ``..`` are skipped; file modes keep only the executable bit.
    """
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.parts[:1] != ("package",) or ".." in path.parts or path.is_absolute():
                continue
            rel = PurePosixPath(*path.parts[1:])
            if prefixes and not any(rel == PurePosixPath(p) or PurePosixPath(p) in rel.parents for p in prefixes):
                continue
            target = dest / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)


def fetch(url: str, integrity: str, dest: Path, prefixes: list[str] | None = None) -> None:
    """Download ``url``, verify it against ``integrity`` and extract it into ``dest``; raise FetchError."""
    data = download(url)
    verify(data, integrity, url)
    extract(data, dest, prefixes)


def main(url: str, integrity: str, dest: str, prefixes: list[str]) -> int:
    """Download, verify and extract; return the exit status."""
    try:
        fetch(url, integrity, Path(dest), prefixes)
    except FetchError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 2
    print(f"fetch: {url}: integrity ok, extracted into {dest}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
