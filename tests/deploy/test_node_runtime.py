"""Node 22 and the per-platform libsql binding: what `make setup` and the image install (image/node_runtime.py).

The lockfile carries the bindings of every platform as optional dependencies (so `npm ci` never
fails with EBADPLATFORM on macOS or arm64); `node_runtime.py bindings` installs the one(s) whose
os/cpu match, verified against the lockfile's integrity. The linux-x64 path is checked on the real
install: the binding is there and libsql opens a database under the Node that runs promptfoo.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = json.loads((REPO / "package-lock.json").read_text())["packages"]
MANIFEST = json.loads((REPO / "package.json").read_text())


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("node_runtime", REPO / "image" / "node_runtime.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nr = _load()


SUPPORTED = [("linux", "x64"), ("linux", "arm64"), ("darwin", "arm64"), ("darwin", "x64")]


@pytest.mark.parametrize("os_name, cpu", SUPPORTED)
def test_npm_ci_installs_on_each_supported_platform(os_name: str, cpu: str) -> None:
    """A non-optional package whose os/cpu exclude a platform fails `npm ci` there (EBADPLATFORM), as the
    old hard pin of @libsql/linux-x64-gnu did on macOS and arm64; optional ones are skipped by npm."""
    hard = [k for k, v in LOCK.items() if k and not v.get("optional")
            and not (nr._allowed(v.get("os"), os_name) and nr._allowed(v.get("cpu"), cpu))]
    assert hard == [], f"these would fail `npm ci` on {os_name}-{cpu} (EBADPLATFORM): {hard}"
    assert not [d for d in MANIFEST["dependencies"] if d.startswith("@libsql/")]
    assert not [d for d in MANIFEST["dependencies"] if d.startswith("@libsql/")]


def test_the_root_pins_exactly_the_bindings_libsql_loads() -> None:
    """The root's optional bindings are libsql's own list at libsql's version, each locked with an integrity."""
    libsql = LOCK["node_modules/libsql"]
    ours = {k: v for k, v in MANIFEST["optionalDependencies"].items() if k.startswith("@libsql/")}
    assert ours == libsql["optionalDependencies"]
    for name, version in ours.items():
        entry = LOCK[f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-"), name


@pytest.mark.parametrize("where, expected", [
    (("linux", "x64", "glibc"), ["@libsql/linux-x64-gnu", "@libsql/linux-x64-musl"]),
    (("linux", "arm64", "glibc"), ["@libsql/linux-arm64-gnu", "@libsql/linux-arm64-musl"]),
    (("darwin", "arm64", None), ["@libsql/darwin-arm64"]),
    (("darwin", "x64", None), ["@libsql/darwin-x64"]),
    (("win32", "x64", None), ["@libsql/win32-x64-msvc"]),
])
def test_each_platform_gets_its_own_binding_from_the_lockfile(where: tuple[str, str, str | None],
                                                               expected: list[str]) -> None:
    assert [name for name, _ in nr.platform_bindings(REPO, *where)] == expected


def test_a_platform_with_no_binding_fails_with_one_line() -> None:
    with pytest.raises(nr.SetupError, match=r"pins none of .*@libsql/linux-x64-gnu.* for linux-ppc64-glibc"):
        nr.platform_bindings(REPO, "linux", "ppc64", "glibc")


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="the linux-x64 install")
def test_the_linux_x64_install_has_its_binding_and_libsql_opens_a_database() -> None:
    from steps.promptfoo import node_binary

    entry = LOCK["node_modules/@libsql/linux-x64-gnu"]
    installed = json.loads((REPO / "node_modules/@libsql/linux-x64-gnu/package.json").read_text())
    assert installed["version"] == entry["version"]
    assert not (REPO / "node_modules/@libsql/darwin-arm64").exists()  # only this platform's
    script = ("const D = require(process.argv[1]); const db = new D(':memory:');"
              "console.log(db.prepare('select 41 + 1 as x').get().x)")
    out = subprocess.run([str(node_binary(REPO)), "-e", script, str(REPO / "node_modules" / "libsql")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _fake_root(tmp: Path, tgz: bytes, integrity: str) -> Path:
    """A project whose one binding is served from a file: URL, locked with ``integrity``."""
    (tmp / "binding.tgz").write_bytes(tgz)
    (tmp / "package.json").write_text(json.dumps({"optionalDependencies": {"@x/linux-x64": "1.0.0"}}))
    (tmp / "package-lock.json").write_text(json.dumps({"packages": {"node_modules/@x/linux-x64": {
        "version": "1.0.0", "integrity": integrity, "resolved": (tmp / "binding.tgz").as_uri(),
        "os": ["linux"], "cpu": ["x64"], "optional": True}}}))
    return tmp


def test_a_binding_is_installed_only_when_its_bytes_match_the_lockfile(tmp_path: Path) -> None:
    tgz = _tarball({"package.json": b'{"name": "@x/linux-x64", "version": "1.0.0"}'})
    root = _fake_root(tmp_path, tgz, _sri(tgz))
    assert nr.install_bindings(root, "linux", "x64", "glibc") == ["@x/linux-x64@1.0.0"]
    assert json.loads((root / "node_modules/@x/linux-x64/package.json").read_text())["version"] == "1.0.0"

    (tmp_path / "bad").mkdir()
    bad = _fake_root(tmp_path / "bad", tgz, _sri(tgz + b"tampered"))
    with pytest.raises(nr.FetchError, match="sha512 is .* expected"):
        nr.install_bindings(bad, "linux", "x64", "glibc")
    assert not (bad / "node_modules/@x/linux-x64").exists()  # nothing unverified is written


def _fake_node(path: Path, version: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho v{version}\n")
    path.chmod(0o755)


@pytest.fixture
def node_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A file: registry serving a pinned node-<os>-<cpu>@22.99.0 whose bin/node prints its version."""
    os_name, cpu, _ = nr.machine()
    tgz = _tarball({"bin/node": b"#!/bin/sh\necho v22.99.0\n", "README.md": b"not extracted"})
    name = f"node-{os_name}-{cpu}"
    (tmp_path / "reg" / name / "-").mkdir(parents=True)
    (tmp_path / "reg" / name / "-" / f"{name}-22.99.0.tgz").write_bytes(tgz)
    monkeypatch.setenv("npm_config_registry", (tmp_path / "reg").as_uri())
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"version": "22.99.0", "packages": {f"{os_name}-{cpu}": {
        "name": name, "integrity": _sri(tgz)}}}))
    return pins, tmp_path / "bin"


def test_an_old_system_node_is_replaced_by_the_pinned_package(node_registry: tuple[Path, Path],
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pins, sysbin = node_registry
    _fake_node(sysbin / "node", "20.20.2")
    monkeypatch.setenv("PATH", f"{sysbin}{os.pathsep}/usr/bin:/bin")
    line = nr.ensure_node(tmp_path / ".node", REPO, pins_path=pins)
    assert "fetched" in line and "integrity ok" in line
    assert nr.node_version(tmp_path / ".node/bin/node") == (22, 99, 0)
    assert not (tmp_path / ".node/README.md").exists()  # bin/node only
    assert "is the pinned v22.99.0" in nr.ensure_node(tmp_path / ".node", REPO, pins_path=pins)  # kept


def test_a_new_enough_system_node_is_linked_not_downloaded(node_registry: tuple[Path, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pins, sysbin = node_registry
    _fake_node(sysbin / "node", "22.22.0")
    monkeypatch.setenv("PATH", f"{sysbin}{os.pathsep}/usr/bin:/bin")
    line = nr.ensure_node(tmp_path / ".node", REPO, pins_path=pins)
    assert "satisfies promptfoo" in line
    assert (tmp_path / ".node/bin/node").resolve() == (sysbin / "node").resolve()


def test_a_tampered_node_package_is_refused(node_registry: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    pins, sysbin = node_registry
    data = json.loads(pins.read_text())
    entry = next(iter(data["packages"].values()))
    entry["integrity"] = _sri(b"something else")
    pins.write_text(json.dumps(data))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert nr.main(["node", str(tmp_path / ".node"), "--pins", str(pins)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha512 is" in err[0]
    assert not (tmp_path / ".node").exists()


def test_the_pinned_node_satisfies_the_pinned_promptfoo() -> None:
    pins = json.loads((REPO / "image" / "node-runtime.json").read_text())
    assert nr.parse_version(pins["version"]) >= nr.required_node(REPO) >= (22, 0, 0)
    assert "linux-x64" in pins["packages"]
