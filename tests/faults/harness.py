"""The world a fault is injected into: a git source repo, a bare GitOps remote with hooks, an S3
store (moto) behind a fault proxy, and the promote step run as the pipeline runs it.

The step is the real CLI in a subprocess (``python -m workflows.submit promote --run-id``),
so exit codes and SIGKILL are real. It is retried exactly as the template's
``retryStrategy`` says: the same expression (``TRANSIENT_RETRY_EXPRESSION``), evaluated
by the local runner's evaluator, with the promote stage's retry limit. Faults are armed
through real interfaces: the store proxy (tests/faults/proxy.py) and git hooks of the remote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from steps.gitops.configmaps import KUSTOMIZATION, ArtifactConfigMap, parse_configmap
from steps.promotion.baselines import live_datasets
from steps.records import RecordError, content_record_key, decode_record
from steps.stores.s3store import S3Store
from steps.stores.store import baseline_key
from tests.faults.proxy import FaultProxy
from tests.steps.promote_helpers import Run, run_for, write_prompt
from workflows.runner.expr import eval_condition
from workflows.templates import TRANSIENT_RETRY_EXPRESSION, PipelineSettings

PROJECT = Path(__file__).resolve().parents[2]
KEY = "fault-suite-signing-key-0123456789"
RETRIES = PipelineSettings().stage("promote").retries
CHAIN = ["dev", "staging"]
_HOOK = """#!/bin/sh
d="{dir}"
action=$(cat "$d/{hook}.action" 2>/dev/null)
case "$action" in
  kill) rm -f "$d/{hook}.action"; kill -9 "$(cat "$d/promote.pid")"; exit {kill_exit} ;;
  store-down) rm -f "$d/{hook}.action"; touch "$d/store-down"; exit 0 ;;
  decline) echo "push declined by the remote's policy" >&2; exit 1 ;;
esac
exit 0
"""


@dataclass
class Attempt:
    """One run of the promote step, as Argo would see it."""

    code: int | None
    status: str
    output: str

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


@dataclass
class World:
    tmp: Path
    s3_url: str
    prefix: str
    proxy: FaultProxy = field(init=False)
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.src = self.tmp / "src"
        self.src.mkdir()
        self.faults = self.tmp / "faults"
        self.faults.mkdir()
        self.proxy = FaultProxy(self.s3_url, down_flag=self.faults / "store-down")
        self.remote = self.tmp / "gitops.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        for hook, kill_exit in (("pre-receive", 1), ("post-receive", 0)):
            path = self.remote / "hooks" / hook
            path.write_text(_HOOK.format(dir=self.faults, hook=hook, kill_exit=kill_exit))
            path.chmod(0o755)
        self.config_path = self.tmp / "trusted.yaml"
        self.write_config()
        self.store = S3Store("promptci", self.prefix, endpoint_url=self.s3_url, region="us-east-1")
        os.environ["PROMPTCI_SIGNING_KEY"] = KEY

    def write_config(self, repo_url: str | None = None, **defaults: Any) -> None:
        """Write the trusted policy (passed with --config, as the mounted ConfigMap would be)."""
        self.config_path.write_text(yaml.safe_dump({
            "defaults": {"eval": {"min_pass_rate": 0.8, "max_regression": 0.1, **defaults}},
            "promotion": {"chain": CHAIN},
            "gitops": {"repo_url": repo_url or str(self.remote), "branch": "main", "path": "environments",
                       "max_push_attempts": 3},
            "store": {"kind": "s3", "bucket": "promptci", "prefix": self.prefix, "endpoint_url": self.proxy.url,
                      "region": "us-east-1"}}))

    # ---------------------------------------------------------------- the step

    def run(self, aid: str, version: str, **kw: Any) -> Run:
        """Commit ``version`` of ``aid`` and store its run's signed plan and records (two datasets)."""
        write_prompt(self.src, aid, version)
        kw.setdefault("datasets", ("golden", "edge"))
        return run_for(self.src, aid, self.store, **kw)

    def _cli(self, *args: str) -> subprocess.Popen[str]:
        env_vars = {**os.environ, "PYTHONPATH": str(PROJECT), "PROMPTCI_S3_ATTEMPTS": "2",
                    "PROMPTCI_SIGNING_KEY": KEY}
        env_vars.pop("PROMPTCI_CONFIG", None)
        return subprocess.Popen([sys.executable, "-m", "workflows.submit", *args, "--repo-root", str(self.src),
                                 "--config", str(self.config_path)],
                                cwd=PROJECT, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def rollback(self, aid: str, env: str) -> subprocess.CompletedProcess[str]:
        """Roll ``aid`` back in ``env`` by hand, through the CLI."""
        proc = self._cli("rollback", aid, "--env", env)
        out, _ = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out)

    def promote_once(self, run: Run, env: str = "dev", *extra: str) -> Attempt:
        proc = self._cli("promote", "--run-id", run.run_id, "--env", env, "--source-revision", run.revision,
                         *extra)
        (self.faults / "promote.pid").write_text(str(proc.pid))
        self.proxy.pid = proc.pid
        out, _ = proc.communicate(timeout=300)
        # A pod killed by a signal is an Error; a non-zero exit is Failed (Argo's node phases).
        status = "Succeeded" if proc.returncode == 0 else "Error" if proc.returncode < 0 else "Failed"
        attempt = Attempt(proc.returncode, status, out)
        self.attempts.append(attempt)
        return attempt

    def promote(self, run: Run, env: str = "dev", *extra: str) -> list[Attempt]:
        """Run the step and retry it as the template's retryStrategy does; return every attempt."""
        attempts = [self.promote_once(run, env, *extra)]
        while len(attempts) <= RETRIES and attempts[-1].status != "Succeeded" and eval_condition(
                TRANSIENT_RETRY_EXPRESSION, {"lastRetry.status": attempts[-1].status,
                                             "lastRetry.exitCode": str(attempts[-1].code)}):
            attempts.append(self.promote_once(run, env, *extra))
        return attempts

    # ---------------------------------------------------------------- faults

    def arm_hook(self, hook: str, action: str) -> None:
        (self.faults / f"{hook}.action").write_text(action)

    def heal(self) -> None:
        """Remove every fault: the store is back, hooks are quiet, the config points at the remote."""
        for f in self.faults.glob("*.action"):
            f.unlink()
        (self.faults / "store-down").unlink(missing_ok=True)
        self.proxy.mode = "up"
        self.proxy.triggers.clear()
        self.write_config()

    # ---------------------------------------------------------------- state

    def head(self) -> str:
        return subprocess.run(["git", "rev-parse", "--verify", "-q", "main"], cwd=self.remote, capture_output=True,
                              text=True).stdout.strip()

    def live(self, env: str) -> dict[str, ArtifactConfigMap]:
        """Return what git has live in ``env`` (the source of truth), by artifact id."""
        if not self.head():
            return {}
        listing = subprocess.run(["git", "ls-tree", "--name-only", f"main:environments/{env}"], cwd=self.remote,
                                 capture_output=True, text=True).stdout.split()
        out = {}
        for name in listing:
            if name != KUSTOMIZATION:
                text = subprocess.run(["git", "show", f"main:environments/{env}/{name}"], cwd=self.remote,
                                      capture_output=True, text=True, check=True).stdout
                cm = parse_configmap(text, name)
                out[cm.artifact_id] = cm
        return out

    def baselines(self) -> dict[str, bytes | None]:
        """Return every env baseline pointer's bytes (to compare before and after a fault)."""
        return {k: self.store.get_bytes(k) for k in self.store.list_keys("baselines/")}

    def inconsistencies(self) -> list[str]:
        """Return every way the store disagrees with git: a live artifact × dataset whose baseline is
        missing, unsigned or of other content, or whose content record is missing."""
        problems = []
        for env in CHAIN:
            for aid, cm in self.live(env).items():
                for ds in live_datasets(cm):
                    key = baseline_key(env, aid, ds)
                    data = self.store.get_bytes(key)
                    try:
                        got = decode_record(data, KEY.encode(), key).content_hash if data else None
                    except RecordError as exc:
                        got = f"unreadable ({exc})"
                    if got != cm.content_hash:
                        problems.append(f"{key} holds {got} but {env} has {cm.content_hash} live")
                    if self.store.get_bytes(content_record_key(aid, ds, cm.content_hash)) is None:
                        problems.append(f"no content record for live {env}/{aid}/{ds}")
        return problems
