"""Building a promptfoo config for one eval branch, and running promptfoo as a child process.

promptfoo is the pinned npm install next to this package (``make setup``: ``npm ci
--omit=optional`` at the repo root plus this platform's libsql binding), or at
``$PROMPTCI_PROMPTFOO_HOME`` (the step image sets ``/opt/promptci``: a pod finds it in the
image, never in the checkout). It runs as ``node <entry>``: the entry is the ``bin`` of the
installed package's package.json, and node is the one ``make setup`` chose (``.node/bin/node``
beside the install: the system's when it satisfies promptfoo's ``engines.node``, else the pinned
npm-registry Node 22) or, in the image, ``node`` on PATH. Not ``npx``: its resolution cost
0.5-0.9 s per call (bench/bench_promptfoo_start.py measures both). Its state (config dir with
``promptfoo.db``, cache) lives in a state dir beside the branch's outputs, never in them;
telemetry, update checks, sharing and remote generation are off, and the one "telemetry
disabled" POST promptfoo still sends is routed to a dead local proxy unless the user configured
a proxy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from steps import promptfoo_warm
from steps.atomic import atomic_write
from steps.promptfoo_order import put_in_test_order
from steps.user_cache import user_cache_dir

PINNED_VERSION = "0.123.1"
# Holds package.json and node_modules/: the repo root in development; in the step image the locked
# install at $PROMPTCI_PROMPTFOO_HOME (the Dockerfile sets /opt/promptci), never the checkout under test.
REPO_ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ".node"  # under the home: where `make setup` puts (or links) the Node promptfoo runs on
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once
LOOPBACK = ("127.0.0.1", "localhost")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
OUTPUTS = {"results": "results.json", "html": "report.html", "junit": "results.junit.xml"}
TAIL = 2000


class PromptfooMissing(Exception):
    """promptfoo is not installed where promptci expects it."""


@dataclass
class PreparedTest:
    """One golden test ready for promptfoo: rendered messages plus its assertions."""

    index: int
    description: str
    vars: dict[str, Any]
    messages: list[dict[str, str]]
    assertions: list[dict[str, Any]]


@dataclass
class ProcessResult:
    """How the promptfoo process ended."""

    returncode: int | None
    duration_s: float
    timed_out: bool
    stdout_tail: str
    stderr_tail: str


def promptfoo_home() -> Path:
    """Return the directory holding the pinned install: ``$PROMPTCI_PROMPTFOO_HOME`` or the repo root."""
    from config.settings import get_settings  # not at import: see steps/promptfoo_warm.warm_for_run

    return get_settings().promptfoo_home or REPO_ROOT


def _manifest(home: Path) -> dict[str, Any]:
    """Return the installed promptfoo's package.json; raise PromptfooMissing when absent or unreadable.

    Parsed once per file version (path, mtime, size): the plan asks for every item, 200 reads of it for a
    200-prompt run; a reinstall is seen at the next call.
    """
    path = home / "node_modules" / "promptfoo" / "package.json"
    try:
        st = path.stat()
        return dict(_parsed_manifest(str(path), st.st_mtime_ns, st.st_size))
    except (OSError, ValueError) as exc:
        raise PromptfooMissing(f"promptfoo is not installed in {home}/node_modules; run `make setup`") from exc


@lru_cache(maxsize=8)
def _parsed_manifest(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Return the package.json at ``path`` (one version of it: ``mtime_ns`` and ``size`` key the cache)."""
    del mtime_ns, size
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "version" not in data:
        raise ValueError("no version")
    return data


def installed_version(home: Path | None = None) -> str:
    """Return the version of the installed promptfoo; raise PromptfooMissing when absent."""
    return str(_manifest(home or promptfoo_home())["version"])


def entry_script(home: Path | None = None) -> Path:
    """Return promptfoo's CLI entry: the ``bin.promptfoo`` of the installed package.json (it moves between versions).

    Raises PromptfooMissing when the package or its entry file is missing.
    """
    home = home or promptfoo_home()
    pkg = home / "node_modules" / "promptfoo"
    bin_ = _manifest(home).get("bin")
    rel = bin_.get("promptfoo") if isinstance(bin_, dict) else bin_
    entry = pkg / str(rel or "")
    if not rel or not entry.is_file():
        raise PromptfooMissing(f"{pkg}/package.json names no runnable bin.promptfoo ({rel!r}); run `make setup`")
    return entry


def node_binary(home: Path | None = None, *, checked: bool = True) -> Path:
    """Return the Node that runs promptfoo: ``<home>/.node/bin/node`` (``make setup``'s) or ``node`` on PATH.

    Raises PromptfooMissing when neither exists, or (``checked``) when it is older than the installed
    promptfoo's ``engines.node`` (promptfoo would refuse to start; say so here, with the fix). Unchecked
    saves running ``node --version`` for a caller whose every use is checked later (the warm shim: the
    eval that takes it resolves the command checked first).
    """
    home = home or promptfoo_home()
    local = home / NODE_DIR / "bin" / "node"
    found = str(local) if local.is_file() else shutil.which("node")
    if found is None:
        raise PromptfooMissing(f"no Node found ({local} or node on PATH); run `make setup`")
    if not checked:
        return Path(found)
    engines = str(_manifest(home).get("engines", {}).get("node", ""))
    problem = _node_problem(found, engines)
    if problem:
        raise PromptfooMissing(f"{found}: {problem}; run `make setup`")
    return Path(found)


@lru_cache(maxsize=8)
def _node_problem(node: str, engines: str) -> str | None:
    """Return why ``node`` cannot run a promptfoo needing ``engines`` (``>=X.Y.Z``), or None (cached per process)."""
    need = re.fullmatch(r">=\s*v?(\d+)\.(\d+)\.(\d+)", engines.strip())
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"does not run: {exc}"
    have = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    if not have:
        return f"says it is {out.strip()!r}, not a Node version"
    if need and tuple(map(int, have.groups())) < tuple(map(int, need.groups())):
        return f"is Node {out.strip()}, promptfoo needs {engines}"
    return None


def messages_prompt(messages: list[dict[str, str]]) -> str:
    """Return the prompt promptfoo sends: the rendered chat messages as JSON, braces escaped (see escaped_json)."""
    return escaped_json(messages)


def escaped_json(value: Any) -> str:
    """Return ``value`` as JSON with every brace inside a string escaped, safe from promptfoo's Nunjucks.

    promptfoo renders Nunjucks in variable values too, so ``{{`` or ``{%`` in a
    prompt or variable would be expanded. Escaping every brace inside JSON
    strings as ``\\u007b``/``\\u007d`` keeps the text literal (Nunjucks sees
    no tag) and providers decode it back to the original characters.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    out = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            elif ch in "{}":
                out.append("\\u007b" if ch == "{" else "\\u007d")
                continue
        elif ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out)


def build_config(*, description: str, tests: list[PreparedTest], provider: dict[str, Any],
                 grader: dict[str, Any]) -> dict[str, Any]:
    """Return a promptfoo config (as a dict) for one branch.

    The prompt is a single variable holding the pre-rendered messages (we
    render with ``steps.render`` so every stage sees the same text). The grader
    is always set explicitly: otherwise promptfoo probes cloud metadata
    endpoints and then fails on a missing OpenAI key. Each test carries its
    index and user variables as metadata so results can be mapped back.
    """
    return {
        "description": description,
        "prompts": [{"raw": "{{ promptci_messages }}", "label": "promptci"}],
        "providers": [provider],
        "defaultTest": {"options": {"provider": grader}},
        "tests": [{
            "description": t.description,
            "vars": {"promptci_messages": messages_prompt(t.messages)},
            "assert": t.assertions,
            "metadata": {"promptci_index": t.index, "promptci_vars": t.vars},
        } for t in tests],
        "sharing": False,
    }


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temp file + rename): no half-written config."""
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False))


def state_dir(work_dir: Path) -> Path:
    """Return where promptfoo keeps its state for a run writing to ``work_dir``: outside it, in the temp dir.

    promptfoo's config dir holds ``promptfoo.db`` (every eval it ran, for its web viewer: ~356 KB
    per branch) and its cache; none of it is a result, and ``work_dir`` is the branch's reports
    artifact. One directory per work dir (a hash of its path), emptied before and removed after
    each ``run_promptfoo``.
    """
    digest = hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"promptci-promptfoo-{digest}"


def promptfoo_env(work_dir: Path, no_proxy: list[str] | None = None,
                  base: dict[str, str] | None = None, *, state: Path | None = None) -> dict[str, str]:
    """Return the environment for promptfoo: state in ``state`` (default ``state_dir(work_dir)``), no
    telemetry, a dead proxy, no process env in templates.

    The dead proxy catches the telemetry POST; ``no_proxy`` lists the hosts a
    live provider must still reach directly. A user-configured proxy is kept.
    ``PROMPTFOO_DISABLE_TEMPLATE_ENV_VARS``: promptfoo's Nunjucks ``env`` global is empty (render.js
    ``getNunjucksEngine``), so no template can copy a variable (a secret) into a prompt or report, and
    the engines promptfoo builds at import time do not snapshot the env (steps/promptfoo_warm.py).
    """
    env = dict(os.environ if base is None else base)
    state = state or state_dir(work_dir)
    env.update({
        "PROMPTFOO_CONFIG_DIR": str(state / "config"),
        "PROMPTFOO_CACHE_PATH": str(state / "cache"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "PROMPTFOO_DISABLE_PYTHON_PROVIDER_WARNING": "1",
        "PROMPTFOO_DISABLE_TEMPLATE_ENV_VARS": "1",
        "NO_COLOR": "1",
    })
    if not any(env.get(v) for v in PROXY_VARS):
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = DEAD_PROXY
        env["NO_PROXY"] = ",".join(no_proxy or [])
        env.pop("no_proxy", None)
    elif loopback := [h for h in no_proxy or [] if h in LOOPBACK]:
        # A user proxy stays for every remote host, but a proxy cannot reach this machine's
        # 127.0.0.1 (the local model, ollama): those always go direct.
        have = [h for h in (env.get("NO_PROXY") or env.get("no_proxy") or "").split(",") if h.strip()]
        env["NO_PROXY"] = env["no_proxy"] = ",".join(dict.fromkeys(have + loopback))
    return env


def use_compile_cache(env: dict[str, str]) -> None:
    """Point ``env``'s promptfoo processes at Node's on-disk compile cache in the user's cache dir.

    Node (>= 22.1) keeps the code it compiled under ``NODE_COMPILE_CACHE`` and reuses it when a file's content
    is unchanged: ~0.3 s / 0.4 CPU-s of the ~2.5 s promptfoo start, every start after the first. Local runs
    only (``promptci run`` calls this): a pod starts once with an empty disk, where writing the cache would
    only add to its start. A NODE_COMPILE_CACHE the user set wins; an unwritable directory just means no cache.
    """
    env.setdefault("NODE_COMPILE_CACHE", str(user_cache_dir(env) / "node-compile-cache"))


def command(home: Path | None = None) -> list[str]:
    """Return the promptfoo command: ``$PROMPTCI_PROMPTFOO_CMD`` (split like a shell would) or ``default_command``."""
    from config.settings import get_settings

    override = get_settings().promptfoo_cmd
    if override:
        return shlex.split(override)
    return default_command(home)


def default_command(home: Path | None = None, *, checked: bool = True) -> list[str]:
    """Return ``[node, entry]`` of the pinned install (no npx); raise PromptfooMissing when it is not usable
    (``checked``: also when its Node is too old, see :func:`node_binary`)."""
    return [str(node_binary(home, checked=checked)), str(entry_script(home))]


def default_jobs() -> int:
    """Return promptfoo's ``-j``: ``$PROMPTCI_EVAL_JOBS`` or 8 (passed explicitly, never left to defaults)."""
    from config.settings import get_settings

    return max(1, get_settings().eval_jobs)


def run_promptfoo(config_path: Path, work_dir: Path, *, jobs: int, repeat: int, no_cache: bool,
                  timeout_s: float, env: dict[str, str], home: Path | None = None) -> ProcessResult:
    """Run ``promptfoo eval`` on ``config_path`` with outputs in ``work_dir``; return how it ended.

    The child runs in its own process group, and on timeout the whole group
    (node and any provider workers) is killed. promptfoo's state (``state_dir``)
    starts empty and is removed afterwards. Raises PromptfooMissing when the
    pinned install or its Node is not usable. The exit code is not a
    verdict: promptfoo exits 100 for failures and errors alike, so callers
    decide from results.json.
    """
    args = [*command(home), "eval", "-c", str(config_path),
            *(x for name in OUTPUTS.values() for x in ("-o", str(work_dir / name))),
            "-j", str(jobs), "--repeat", str(repeat), "--no-table", "--no-progress-bar", "--no-share", "--no-write"]
    if no_cache:
        args.append("--no-cache")
    state = state_dir(work_dir)
    start = time.monotonic()
    with open(work_dir / "promptfoo.stdout.log", "w+b") as out, \
            open(work_dir / "promptfoo.stderr.log", "w+b") as err:
        # The run's warm promptfoo when there is one and it takes the job (the same command); else cold.
        warm = promptfoo_warm.run_warm(args[:2], args[2:], work_dir, lambda s: _moved_state(env, state, s),
                                       timeout_s, out, err)
        if warm is not None:
            returncode, timed_out = warm.returncode, warm.timed_out
        else:
            returncode, timed_out = _run_cold(args, work_dir, env, timeout_s, state, out, err)
        duration = time.monotonic() - start
        put_in_test_order(work_dir / OUTPUTS["results"], work_dir / OUTPUTS["junit"])  # --no-write's order
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return ProcessResult(returncode, duration, timed_out, stdout[-TAIL:], stderr[-TAIL:])


def _run_cold(args: list[str], work_dir: Path, env: dict[str, str], timeout_s: float, state: Path,
              out: IO[bytes], err: IO[bytes]) -> tuple[int | None, bool]:
    """Run ``args`` as a child in its own session; return (exit code, whether the timeout killed it)."""
    shutil.rmtree(state, ignore_errors=True)
    with removed(state):
        proc = subprocess.Popen(args, cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt...): never leave promptfoo behind
                kill_group(proc)
    return proc.returncode, timed_out


def _moved_state(env: dict[str, str], state: Path, moved: Path) -> dict[str, str]:
    """Return ``env`` with promptfoo's state dirs under ``moved`` where they were under ``state``."""
    out = dict(env)
    for var, sub in (("PROMPTFOO_CONFIG_DIR", "config"), ("PROMPTFOO_CACHE_PATH", "cache")):
        if out.get(var) == str(state / sub):
            out[var] = str(moved / sub)
    return out


@contextlib.contextmanager
def removed(path: Path) -> Iterator[None]:
    """Remove the directory ``path`` when the block ends, however it ends."""
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGKILL the process group of ``proc`` (it leads its own session), reap it, and wait for the group to go.

    Children orphaned by the kill are reaped by init; waiting (bounded) for the
    group to empty means no promptfoo worker outlives the branch.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
