"""The container executor: each attempt of a script node runs in its own container, as its pod would.

``python workflows/submit.py run --executor container`` runs every node of the compiled template
with rootful Podman from the step image the template names, the way Argo's pod runs it:

* **source**: the ``git`` input artifact is a fresh clone of its ``repo`` at its ``revision`` into an
  empty directory of this attempt, made by the runner (uid 0), not by the step's user: what
  argoexec's init container leaves (its image runs as root, or 8737 for argoexec-nonroot).
* **script**: the resolved source is mounted at ``/argo/staging/script`` and passed as the last
  argument (``common.ExecutorScriptSourcePath`` in Argo's workflow/common/common.go).
* **environment**: only the template's ``env``, its ``envFrom`` Secrets read from the *secrets dir*
  (``<secrets-dir>/<secret name>/<key>``, one file per key, as a Secret volume lays them out), and
  what Argo adds to every container (``ARGO_CONTAINER_NAME``, ``ARGO_WORKFLOW_NAME``, ``ARGO_NODE_ID``,
  workflow/controller/workflowpod.go). Nothing comes from the runner's own environment.
* **volumes**: the template's ``configMap`` volumes come from the *ConfigMaps dir*
  (``<configmaps-dir>/<name>/<key>``), ``secret`` volumes from the secrets dir, ``emptyDir`` is a
  fresh directory; mounted read-only where Kubernetes does.
* ``workingDir``, ``securityContext`` (user, group, non-root check, privilege escalation,
  capabilities), ``resources.limits`` (memory, CPU) and ``activeDeadlineSeconds`` are applied.
* **network**: ``--network=host``. The only things nodes share are what a cluster shares: the S3
  store, the GitOps remote, the Pushgateway, reached over loopback. No disk is shared.
* **outputs** are copied from the container's filesystem after it exits (``podman cp``), then the
  container is removed. Every container carries the labels ``promptci.run`` and ``promptci.runner``
  (lifecycle.py) so an interrupted run leaves none behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from typing import Any

from workflows.runner import lifecycle
from workflows.runner.executors import (
    PROJECT_ROOT,
    StepRequest,
    StepResult,
    collect_outputs,
    script_result,
    step_phase,
)

SCRIPT_PATH = "/argo/staging/script"
CONTAINERS_CONF = PROJECT_ROOT / "image" / "containers.conf"
DEFAULT_CONFIGMAPS_DIR = Path(".promptci/cluster/configmaps")
DEFAULT_SECRETS_DIR = Path(".promptci/cluster/secrets")
PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}
SECURITY_KEYS = {"runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation", "capabilities",
                 "privileged"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
PODMAN_TIMEOUT = 300
# `podman run` exits with the container's code, or with these when podman itself (125) or the
# container's command (126, 127) failed: only then is the container inspected to tell which.
PODMAN_OWN_CODES = {125, 126, 127}


class StepSetupError(Exception):
    """The pod could not be set up (a missing ConfigMap, a bad securityContext...): the node errors."""


def memory_limit(quantity: str) -> str:
    """Return a Kubernetes memory quantity (``512Mi``, ``1G``, ``1000``) in podman's ``--memory`` form."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?", quantity.strip())
    if not m:
        raise StepSetupError(f"resources.limits.memory '{quantity}' is not a quantity")
    number, unit = float(m.group(1)), m.group(2) or ""
    scale = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "K": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}[unit]
    return str(int(number * scale))


def cpu_limit(quantity: str) -> str:
    """Return a Kubernetes CPU quantity (``500m``, ``2``) as podman's ``--cpus`` (``0.5``, ``2``)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m)?", quantity.strip())
    if not m:
        raise StepSetupError(f"resources.limits.cpu '{quantity}' is not a quantity")
    return f"{float(m.group(1)) / (1000 if m.group(2) else 1):g}"


def read_object_dir(root: Path, name: str, kind: str, optional: bool) -> dict[str, str] | None:
    """Return ``{key: value}`` of the ConfigMap/Secret ``name`` laid out as ``root/name/<key>`` files.

    None when it is absent and ``optional``; raises StepSetupError when it is absent and required
    (a pod would not start).
    """
    folder = root / name
    if not folder.is_dir():
        if optional:
            return None
        raise StepSetupError(f"{kind} '{name}' not found (expected the directory {folder})")
    return {f.name: f.read_text() for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")}


def _podman_env() -> dict[str, str]:
    """Return the environment podman itself runs with (the project's engine settings unless set)."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    env[lifecycle.TOKEN_ENV] = lifecycle.runner_token()
    return env


def podman(*args: str, timeout: float = PODMAN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the project's engine settings; return the completed process."""
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=timeout,
                          env=_podman_env())


def common_root(paths: list[str]) -> PurePosixPath | None:
    """Return the deepest directory holding every path, or None when that is shallower than two levels."""
    if not paths:
        return None
    parts = [PurePosixPath(p).parts for p in paths]
    shared = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        shared.append(level[0])
    root = PurePosixPath(*shared) if shared else None
    if root is not None and str(root) in paths:  # a single declared file: copy its directory
        root = root.parent
    return root if root is not None and len(root.parts) >= 3 else None


class ContainerExecutor:
    """Run each attempt in its own Podman container (see the module docstring for the mapping)."""

    applies = {"script": frozenset({"image", "imagePullPolicy", "resources", "envFrom", "securityContext",
                                    "volumeMounts"}),
               "template": frozenset({"volumes"})}
    uses_containers = True

    def __init__(self, configmaps_dir: Path = DEFAULT_CONFIGMAPS_DIR, secrets_dir: Path = DEFAULT_SECRETS_DIR):
        self.configmaps_dir = configmaps_dir.resolve()
        self.secrets_dir = secrets_dir.resolve()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled = False
        self._image_users: dict[str, str] = {}
        self._remover = ThreadPoolExecutor(max_workers=2, thread_name_prefix="podman-rm")
        self._removals: list[Future[None]] = []
        self.token = lifecycle.runner_token()

    # -- the Executor interface ---------------------------------------------------------------

    def cancel(self) -> None:
        """Kill and remove every container this executor still runs."""
        with self._lock:
            self._cancelled = True
            names = list(self._running)
        if names:
            lifecycle.remove_containers(names)

    def close(self) -> None:
        """Wait until every container of the run is removed (the scheduler calls it when the run ends)."""
        with self._lock:
            pending, self._removals = self._removals, []
        wait(pending)

    def run(self, request: StepRequest) -> StepResult:
        """Run one attempt in a container; return what its pod would report."""
        attempt_dir = request.attempt_dir
        attempt_dir.mkdir(parents=True, exist_ok=True)
        stdout, stderr = attempt_dir / "stdout.txt", attempt_dir / "stderr.txt"
        started = time.time()
        name = self._name(request)
        try:
            argv, secret_env = self._podman_run_args(request, name)
        except (StepSetupError, subprocess.SubprocessError, OSError) as exc:
            stderr.write_text(f"{exc}\n")
            stdout.touch()
            return StepResult(phase="Error", message=f"cannot start the step's container: {exc}", exit_code=None,
                              outputs={}, result=None, stdout_path=stdout, stderr_path=stderr,
                              started=started, finished=time.time())
        timeout = request.active_deadline_seconds
        try:
            code, deadline_hit, note = self._run_container(argv, secret_env, name, stdout, stderr, timeout)
            finished = time.time()
            outputs_root = attempt_dir / "fs"
            if code is not None:
                self._copy_outputs(request.template, name, outputs_root)
        finally:
            with self._lock:
                self._running.pop(name, None)
                # Removed off the node's critical path; close() (end of run) waits for every removal.
                self._removals.append(self._remover.submit(lifecycle.remove_containers, [name]))
        if code is None:
            return StepResult(phase="Error", message=note, exit_code=None, outputs={}, result=None,
                              stdout_path=stdout, stderr_path=stderr, started=started, finished=finished)
        result = script_result(stdout.read_bytes()) if request.capture_result else None
        outputs, missing = collect_outputs(request.template,
                                           lambda p: outputs_root / PurePosixPath(p).relative_to("/"))
        cancelled = request.context.cancelled
        phase, message = step_phase(code, deadline_hit=deadline_hit, timeout=timeout,
                                    cancelled=cancelled.reason if cancelled.is_set() else None, missing=missing)
        if note and phase != "Succeeded":
            message = f"{message} ({note})"
        return StepResult(phase=phase, message=message, exit_code=code, outputs=outputs, result=result,
                          stdout_path=stdout, stderr_path=stderr, started=started, finished=finished,
                          extra={"container": name, "image": request.template["script"].get("image")})

    # -- building the pod ------------------------------------------------------------------

    def _name(self, request: StepRequest) -> str:
        raw = f"promptci-{request.context.run_id}-{request.node}-{request.attempt_dir.name}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)[:200]

    def _podman_run_args(self, request: StepRequest, name: str) -> tuple[list[str], dict[str, str]]:
        """Return (``podman run`` argv, secret env passed by name) for the attempt; clones the source."""
        tpl, ctx, attempt_dir = request.template, request.context, request.attempt_dir
        script = tpl["script"]
        image = script.get("image")
        if not image:
            raise StepSetupError("the script template names no image")
        source = attempt_dir / "script"
        source.write_text(script.get("source", ""))
        source.chmod(0o644)
        args = ["run", "--name", name, "--network=host", "--label", f"{lifecycle.RUN_LABEL}={ctx.run_id}",
                "--label", f"{lifecycle.RUNNER_LABEL}={self.token}",
                f"--pull={PULL.get(script.get('imagePullPolicy', 'IfNotPresent'), 'missing')}",
                "-v", f"{source}:{SCRIPT_PATH}:ro"]
        for art in (tpl.get("inputs") or {}).get("artifacts", []):
            if "git" in art:
                clone = attempt_dir / "artifacts" / art["name"]
                self._clone(art["git"], clone)
                args += ["-v", f"{clone}:{art['path']}"]
        args += self._volume_args(tpl, attempt_dir, ctx.volumes)
        args += self._security_args(script.get("securityContext") or {}, image)
        limits = (script.get("resources") or {}).get("limits") or {}
        if limits.get("memory"):
            args += ["--memory", memory_limit(str(limits["memory"]))]
        if limits.get("cpu"):
            args += ["--cpus", cpu_limit(str(limits["cpu"]))]
        if script.get("workingDir"):
            args += ["-w", script["workingDir"]]
        secret_env: dict[str, str] = {}
        for src in script.get("envFrom", []):
            ref = src.get("secretRef") or src.get("configMapRef")
            if ref is None:
                raise StepSetupError(f"envFrom entry {src} is neither a secretRef nor a configMapRef")
            kind, root = ("Secret", self.secrets_dir) if "secretRef" in src else ("ConfigMap", self.configmaps_dir)
            values = read_object_dir(root, ref["name"], kind, bool(ref.get("optional")))
            for key, value in (values or {}).items():
                if not ENV_NAME.fullmatch(src.get("prefix", "") + key):
                    raise StepSetupError(f"{kind} '{ref['name']}': key '{key}' is not a valid environment name")
                secret_env[src.get("prefix", "") + key] = value
        plain = {"ARGO_CONTAINER_NAME": "main", "ARGO_WORKFLOW_NAME": ctx.run_id,
                 "ARGO_NODE_ID": f"{ctx.run_id}-{request.node}"}
        for e in script.get("env", []):  # env wins over envFrom, as in Kubernetes
            plain[e["name"]] = str(e.get("value", ""))
            secret_env.pop(e["name"], None)
        for key in secret_env:  # values travel in podman's environment, never on its command line
            args += ["-e", key]
        for key, value in plain.items():
            args += ["-e", f"{key}={value}"]
        command = list(script.get("command", [])) + list(script.get("args", [])) + [SCRIPT_PATH]
        return [*args, image, *command], secret_env

    def _clone(self, git: Mapping[str, Any], dest: Path) -> None:
        """Clone ``git.repo`` at ``git.revision`` into the empty ``dest`` (what argoexec's init does)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        clone = subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(git["repo"]), str(dest)],
                               capture_output=True, text=True, check=False, env=env, timeout=PODMAN_TIMEOUT)
        if clone.returncode != 0:
            raise StepSetupError(f"git artifact: cannot clone {git['repo']}: {clone.stderr.strip()}")
        revision = str(git.get("revision") or "HEAD")
        checkout = subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", revision],
                                  capture_output=True, text=True, check=False, env=env, timeout=PODMAN_TIMEOUT)
        if checkout.returncode != 0:
            raise StepSetupError(f"git artifact: cannot check out '{revision}': {checkout.stderr.strip()}")

    def _volume_args(self, tpl: Mapping[str, Any], attempt_dir: Path, shared: Mapping[str, Path]) -> list[str]:
        """Return the ``-v`` options for the script's volumeMounts: ``spec.volumes`` (``shared``: the
        ConfigMaps the scheduler materialized, e.g. the trusted policy) and the template's own
        ConfigMap, Secret and emptyDir volumes."""
        volumes = {v["name"]: v for v in tpl.get("volumes", [])}
        args: list[str] = []
        for mount in tpl["script"].get("volumeMounts", []):
            vol = volumes.get(mount["name"])
            if vol is None and mount["name"] in shared:  # spec.volumes: the scheduler wrote their data
                args += ["-v", f"{shared[mount['name']]}:{mount['mountPath']}:ro"]
                continue
            if vol is None:
                raise StepSetupError(f"volumeMount '{mount['name']}' names no volume of the template")
            host = attempt_dir / "volumes" / mount["name"]
            read_only = True
            if "configMap" in vol or "secret" in vol:
                ref = vol.get("configMap") or vol["secret"]
                kind, root = ("ConfigMap", self.configmaps_dir) if "configMap" in vol else ("Secret", self.secrets_dir)
                obj = ref.get("name") or ref.get("secretName")
                values = read_object_dir(root, obj, kind, bool(ref.get("optional")))
                items = {i["key"]: i["path"] for i in ref.get("items", [])} or {k: k for k in values or {}}
                host.mkdir(parents=True, exist_ok=True)
                for key, rel in items.items():
                    if values is not None and key not in values:
                        raise StepSetupError(f"{kind} '{obj}' has no key '{key}'")
                    target = host / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text((values or {}).get(key, ""))
                    target.chmod(0o644)
            elif "emptyDir" in vol:
                host.mkdir(parents=True, exist_ok=True)
                host.chmod(0o777)
                read_only = bool(mount.get("readOnly"))
            else:
                raise StepSetupError(f"volume '{mount['name']}': only configMap, secret and emptyDir volumes "
                                     "are supported by the container executor")
            source = host / mount["subPath"] if mount.get("subPath") else host
            args += ["-v", f"{source}:{mount['mountPath']}" + (":ro" if read_only or mount.get("readOnly") else "")]
        return args

    def _security_args(self, ctx: Mapping[str, Any], image: str) -> list[str]:
        """Return the podman options for a container ``securityContext``; refuse what it cannot apply."""
        unknown = sorted(set(ctx) - SECURITY_KEYS)
        if unknown:
            raise StepSetupError(f"securityContext: {', '.join(unknown)} not supported by the container executor")
        args: list[str] = []
        user = ctx.get("runAsUser")
        if user is not None:
            args += ["--user", f"{user}:{ctx['runAsGroup']}" if ctx.get("runAsGroup") is not None else str(user)]
        elif ctx.get("runAsGroup") is not None:
            raise StepSetupError("securityContext: runAsGroup without runAsUser is not supported")
        if ctx.get("runAsNonRoot"):
            effective = str(user) if user is not None else self._image_user(image)
            name = effective.split(":", 1)[0]
            if not name.isdigit():  # the kubelet's own refusals, word for word
                raise StepSetupError(f"container has runAsNonRoot and image has non-numeric user ({name or 'root'}), "
                                     "cannot verify user is non-root")
            if int(name) == 0:
                raise StepSetupError("container has runAsNonRoot and image will run as root")
        if ctx.get("allowPrivilegeEscalation") is False:
            args.append("--security-opt=no-new-privileges")
        if ctx.get("privileged"):
            args.append("--privileged")
        caps = ctx.get("capabilities") or {}
        args += [f"--cap-drop={c}" for c in caps.get("drop", [])] + [f"--cap-add={c}" for c in caps.get("add", [])]
        return args

    def _image_user(self, image: str) -> str:
        """Return the image's configured user (``''`` for root), asking podman once per image."""
        if image not in self._image_users:
            out = podman("image", "inspect", "--format", "{{.Config.User}}", image)
            if out.returncode != 0:
                raise StepSetupError(f"image {image} is not available: {out.stderr.strip()} (run `make image`)")
            self._image_users[image] = out.stdout.strip()
        return self._image_users[image]

    # -- running -----------------------------------------------------------------------------

    def _run_container(self, argv: list[str], secret_env: dict[str, str], name: str, stdout: Path, stderr: Path,
                       timeout: float | None) -> tuple[int | None, bool, str]:
        """Run the container to its end; return (exit code or None if it never ran, deadline hit, note)."""
        env = {**_podman_env(), **secret_env}
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            with self._lock:
                if self._cancelled:
                    return None, False, "cancelled before the container started"
                proc = subprocess.Popen([*lifecycle.pdeathsig_prefix(), "podman", *argv], env=env, stdout=out,
                                        stderr=err, stdin=subprocess.DEVNULL)
                self._running[name] = proc
            deadline_hit = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                deadline_hit = True
                podman("kill", name)
                proc.wait()
        if proc.returncode not in PODMAN_OWN_CODES and not self._cancelled:
            return proc.returncode, deadline_hit, ""  # the container's own exit code (one podman call saved)
        state = podman("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.StartedAt}}",
                       name)
        if state.returncode != 0 and self._cancelled:
            return None, deadline_hit, "cancelled: the run was interrupted"
        if state.returncode != 0:  # the container was never created: podman's own error is in stderr
            tail = stderr.read_text(errors="replace").strip().splitlines()[-1:] or ["no container"]
            return None, deadline_hit, f"cannot start the step's container: {tail[0]}"
        code_text, oom, started_at = (state.stdout.split(" ", 2) + ["", ""])[:3]
        if started_at.startswith("0001-01-01"):
            tail = stderr.read_text(errors="replace").strip().splitlines()[-1:] or ["not started"]
            return None, deadline_hit, f"the step's container did not start: {tail[0]}"
        return int(code_text), deadline_hit, "OOMKilled" if oom.strip() == "true" else ""

    def _copy_outputs(self, tpl: Mapping[str, Any], name: str, root: Path) -> None:
        """Copy the declared output paths out of the stopped container into ``root`` (missing ones: skipped)."""
        outputs = tpl.get("outputs") or {}
        paths = [p["valueFrom"]["path"] for p in outputs.get("parameters", [])]
        paths += [a["path"] for a in outputs.get("artifacts", [])]
        shared = common_root(paths)
        for path in [str(shared)] if shared else paths:
            dest = root / PurePosixPath(path).relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            podman("cp", f"{name}:{path}", str(dest))
