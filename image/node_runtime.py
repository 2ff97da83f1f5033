"""The Node that promptfoo needs, and the libsql binding of this platform, installed from pins.

Stdlib only: ``make setup`` runs it with the system's python3 and the Dockerfile on the bare base.

    python3 image/node_runtime.py node DEST [--fetch]
        Make DEST/bin/node a Node that satisfies promptfoo's ``engines.node`` (read from
        package-lock.json): a link to the system's ``node`` when that one is new enough, else the
        npm registry's ``node-<os>-<cpu>`` package pinned in image/node-runtime.json, its
        integrity checked. ``--fetch`` always takes the pinned one (the step image does).

    python3 image/node_runtime.py bindings ROOT [--os OS] [--cpu CPU] [--libc LIBC] [--dry-run]
        Install into ROOT/node_modules each platform-restricted optional dependency of ROOT's
        package.json (the ``@libsql/*`` bindings) whose ``os``/``cpu``/``libc`` match this machine,
        at the version and integrity ROOT/package-lock.json pins. ``--dry-run`` only lists them.

Why ``bindings`` exists: ``npm ci --omit=optional`` keeps promptfoo's ~45 optional integrations
out (285 MB instead of 2.5 GB; playwright, onnxruntime, agent SDKs) but also drops the libsql
binding its database needs, and npm cannot omit some optional dependencies and keep others.
Pinning ``@libsql/linux-x64-gnu`` as a plain dependency (as before) breaks ``npm ci`` on every
other platform (EBADPLATFORM). So package.json lists every platform's binding as optional, the
lockfile pins them all, and this picks the machine's by npm's own rule (npm-install-checks'
``checkPlatform``: each listed value must match, ``!value`` excludes). Exit 2, one line, on any
problem.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_npm_tarball import FetchError, download, extract, fetch, verify  # noqa: E402

HERE = Path(__file__).resolve().parent
PINS = HERE / "node-runtime.json"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
# platform.machine() -> Node's process.arch
CPUS = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
        "armv6l": "arm", "i686": "ia32", "i386": "ia32"}


class SetupError(Exception):
    """A problem to report in one line (exit 2)."""


def machine() -> tuple[str, str, str | None]:
    """Return this machine as npm names it: (process.platform, process.arch, libc on Linux else None)."""
    os_name = sys.platform if sys.platform != "cygwin" else "win32"
    cpu = CPUS.get(platform.machine().lower(), platform.machine().lower())
    libc = None
    if os_name == "linux":
        libc = "glibc" if platform.libc_ver()[0] == "glibc" else "musl"
    return os_name, cpu, libc


def _allowed(values: list[str] | str | None, actual: str | None) -> bool:
    """Return whether ``actual`` passes an npm ``os``/``cpu``/``libc`` list (npm-install-checks' rule)."""
    if not values:
        return True
    values = [values] if isinstance(values, str) else values
    if actual is None:  # libc on a non-Linux machine: npm skips the check there
        return True
    if f"!{actual}" in values:
        return False
    positives = [v for v in values if not v.startswith("!")]
    return not positives or actual in positives


def platform_bindings(root: Path, os_name: str, cpu: str, libc: str | None) -> list[tuple[str, dict]]:
    """Return (name, lock entry) of the root's platform-restricted optional dependencies that fit this machine.

    Raises SetupError when the root lists such dependencies but none fits (the install would
    leave promptfoo without its database), or when one is missing from the lockfile.
    """
    manifest = json.loads((root / "package.json").read_text())
    lock = json.loads((root / "package-lock.json").read_text())["packages"]
    restricted, chosen = [], []
    for name in sorted(manifest.get("optionalDependencies", {})):
        entry = lock.get(f"node_modules/{name}")
        if entry is None:
            raise SetupError(f"package-lock.json has no entry for {name}: run `npm install --package-lock-only`")
        if not (entry.get("os") or entry.get("cpu") or entry.get("libc")):
            continue
        restricted.append(name)
        if (_allowed(entry.get("os"), os_name) and _allowed(entry.get("cpu"), cpu)
                and _allowed(entry.get("libc"), libc if os_name == "linux" else None)):
            chosen.append((name, entry))
    if restricted and not chosen:
        where = "-".join(x for x in (os_name, cpu, libc) if x)
        raise SetupError(f"package-lock.json pins none of {', '.join(restricted)} for {where}")
    return chosen


def tarball_url(name: str, version: str, resolved: str | None = None) -> str:
    """Return where the registry serves ``name@version`` (``resolved`` when the lock has it).

    The registry is npm's ``registry`` setting as npm exports it to scripts (``npm_config_registry``),
    else the public one.
    """
    if resolved:
        return resolved
    registry = (os.environ.get("npm_config_registry")  # noqa: SIM112 - npm sets it in lower case
                or os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY)
    return f"{registry.rstrip('/')}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def install_bindings(root: Path, os_name: str, cpu: str, libc: str | None, dry_run: bool = False) -> list[str]:
    """Install the bindings ``platform_bindings`` picks into ``root/node_modules``; return ``name@version`` of each.

    A binding already there at the locked version is kept; any other is replaced. Each tarball is
    verified against the lockfile's integrity before anything is written, and lands by rename.
    """
    done = []
    for name, entry in platform_bindings(root, os_name, cpu, libc):
        done.append(f"{name}@{entry['version']}")
        target = root / "node_modules" / name
        try:
            have = json.loads((target / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            have = None
        if dry_run or have == entry["version"]:
            continue
        url = tarball_url(name, entry["version"], entry.get("resolved"))
        data = download(url)
        verify(data, entry["integrity"], url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            staged = Path(tmp) / "package"
            extract(data, staged)
            if target.exists():
                shutil.rmtree(target)
            staged.rename(target)
    return done


def parse_version(text: str) -> tuple[int, int, int]:
    """Return (major, minor, patch) of ``v22.23.5`` / ``22.23.5``; raise SetupError otherwise."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not m:
        raise SetupError(f"not a Node version: {text.strip()!r}")
    return int(m[1]), int(m[2]), int(m[3])


def required_node(root: Path) -> tuple[int, int, int]:
    """Return the lowest Node promptfoo accepts: its ``engines.node`` (``>=X.Y.Z``) in the lockfile."""
    lock = json.loads((root / "package-lock.json").read_text())["packages"]
    engines = str(lock.get("node_modules/promptfoo", {}).get("engines", {}).get("node", ""))
    m = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)", engines.strip())
    if not m:
        raise SetupError(f"promptfoo's engines.node is {engines!r}; this script understands only '>=X.Y.Z'")
    return parse_version(m[1])


def node_version(node: str | Path) -> tuple[int, int, int] | None:
    """Return the version of the Node binary ``node``, or None when it does not run."""
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=True)
        return parse_version(out.stdout)
    except (OSError, subprocess.SubprocessError, SetupError):
        return None


def ensure_node(dest: Path, root: Path, *, force_fetch: bool = False, pins_path: Path = PINS) -> str:
    """Make ``dest/bin/node`` a Node promptfoo accepts; return one line saying which.

    The system's ``node`` (PATH without ``dest/bin``) is linked when new enough and not
    ``force_fetch``; otherwise the pinned package for this os-cpu is fetched (integrity-checked)
    unless ``dest`` already holds exactly that version.
    """
    need = required_node(root)
    need_s = ".".join(map(str, need))
    link = dest / "bin" / "node"
    if not force_fetch:
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                               if p and Path(p).resolve() != link.parent.resolve())
        system = shutil.which("node", path=path)
        have = node_version(system) if system else None
        if system and have and have >= need:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(system).resolve())
            return f"node: the system's {system} v{'.'.join(map(str, have))} satisfies promptfoo (>= {need_s})"
    pins = json.loads(pins_path.read_text())
    os_name, cpu, _ = machine()
    pin = pins["packages"].get(f"{os_name}-{cpu}")
    if pin is None:
        raise SetupError(f"no pinned Node package for {os_name}-{cpu} on the npm registry; install Node "
                            f">= {need_s} yourself (macOS: `brew install node@22`) and re-run `make setup`")
    version = str(pins["version"])
    if parse_version(version) < need:
        raise SetupError(f"{pins_path.name} pins Node {version}, older than promptfoo's >= {need_s}")
    if not link.is_symlink() and node_version(link) == parse_version(version):
        return f"node: {link} is the pinned v{version}"
    url = tarball_url(pin["name"], version)
    staged = dest.with_name(dest.name + ".part")
    shutil.rmtree(staged, ignore_errors=True)
    fetch(url, pin["integrity"], staged, ["bin/node"])
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)
    return f"node: fetched {pin['name']}@{version} (integrity ok) into {dest}"


def main(argv: list[str] | None = None) -> int:
    """Run a command; return the exit status (2 with one line on any problem)."""
    parser = argparse.ArgumentParser(prog="node_runtime.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    node = sub.add_parser("node", help="make DEST/bin/node a Node promptfoo accepts")
    node.add_argument("dest", type=Path)
    node.add_argument("--fetch", action="store_true", help="always take the pinned Node package")
    node.add_argument("--root", type=Path, default=HERE.parent, help="holds package-lock.json")
    node.add_argument("--pins", type=Path, default=PINS)
    bind = sub.add_parser("bindings", help="install this platform's bindings from the lockfile")
    bind.add_argument("root", type=Path)
    here = machine()
    bind.add_argument("--os", default=here[0])
    bind.add_argument("--cpu", default=here[1])
    bind.add_argument("--libc", default=here[2])
    bind.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "node":
            print(ensure_node(args.dest.absolute(), args.root, force_fetch=args.fetch, pins_path=args.pins))
        else:
            names = install_bindings(args.root, args.os, args.cpu, args.libc, dry_run=args.dry_run)
            print(f"bindings: {' '.join(names) or '(none listed)'}")
    except (SetupError, FetchError, OSError, ValueError, KeyError) as exc:
        print(f"node_runtime: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
