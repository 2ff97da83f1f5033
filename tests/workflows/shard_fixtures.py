"""A template shaped like the sharded pipeline (seam-16.md), for the runner's progress tests.

validate writes ``shards`` (a JSON list of ShardRefs) and ``count``; eval fans out with
``withParam`` and takes its ShardRef as the input ``shard``; each shard sleeps, then writes its
items' BranchResult-like verdicts as the output ``result``. Item ``i`` of shard ``s`` fails
when ``"s.i"`` is in $FIXTURE_FAIL_ITEMS, errors when it is in $FIXTURE_ERROR_ITEMS.
"""

# No ``from __future__ import annotations``: Hera reads the real annotation objects.
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import DAG, Parameter, Script, WorkflowTemplate, script
from hera.workflows.script import RunnerScriptConstructor


@script(constructor="runner")
def plan_shards(sizes: str, cached: str, shards: Annotated[Path, Parameter(name="shards", output=True)],
                count: Annotated[Path, Parameter(name="count", output=True)]) -> None:
    """Write one ShardRef per entry of ``sizes`` (``items:tests,...``) and ``count`` (shard items + cached)."""
    refs = []
    for i, size in enumerate(s for s in sizes.split(",") if s):
        items, tests = size.split(":")
        refs.append({"index": i, "items": int(items), "tests": int(tests)})
    shards.write_text(json.dumps(refs))
    count.write_text(str(sum(r["items"] for r in refs) + int(cached)))


@script(constructor="runner")
def run_shard(shard: str, seconds: str, result: Annotated[Path, Parameter(name="result", output=True)]) -> None:
    """Sleep ``seconds``, then write one verdict per item of the shard (failing/erroring items on request)."""
    ref = json.loads(shard)
    time.sleep(float(seconds))
    fail = os.environ.get("FIXTURE_FAIL_ITEMS", "").split(",")
    error = os.environ.get("FIXTURE_ERROR_ITEMS", "").split(",")
    out = []
    for i in range(ref["items"]):
        key = f"{ref['index']}.{i}"
        status = "failed" if key in fail else "error" if key in error else "passed"
        out.append({"artifact_id": f"p{key}", "dataset": "d", "status": status, "cached": False})
    result.write_text(json.dumps(out))


@script(constructor="runner")
def run_shard_by_exit_code(shard: str, seconds: str) -> None:
    """Like the real eval shard: no per-item output; exit 1 when an item of the shard fails."""
    import sys

    ref = json.loads(shard)
    time.sleep(float(seconds))
    fail = os.environ.get("FIXTURE_FAIL_ITEMS", "").split(",")
    if any(f"{ref['index']}.{i}" in fail for i in range(ref["items"])):
        sys.exit(1)


def _s(fn: Any, name: str) -> Script:
    return Script(name=name, source=fn.wrapped_function, image="python:3.11",
                  constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"), command=["python"])


def sharded_template(sizes: str, *, cached: int = 0, seconds: float = 0.0, parallelism: int | None = None,
                     verdicts: bool = True) -> dict[str, Any]:
    """Return a compiled template: validate (plans the shards) → eval (one node per shard).

    Without ``verdicts`` a shard writes no ``result`` and says how its items did by its exit code only.
    """
    with WorkflowTemplate(name="fixture-sharded", entrypoint="main", parallelism=parallelism) as wt:
        plan, shard = _s(plan_shards, "validate"), _s(run_shard if verdicts else run_shard_by_exit_code, "eval")
        with DAG(name="main"):
            plan(name="validate", arguments={"sizes": sizes, "cached": str(cached)})
            shard(name="eval", depends="validate", with_param="{{tasks.validate.outputs.parameters.shards}}",
                  arguments={"shard": "{{item}}", "seconds": str(seconds)})
    return wt.to_dict()


@script(constructor="runner")
def burn(seconds: str) -> None:
    """Burn ``seconds`` of CPU in a child process it waits for, then print this process's own CPU seconds."""
    import subprocess
    import sys

    loop = f"import time\nt=time.process_time()\nwhile time.process_time()-t<{float(seconds)}: pass"
    subprocess.run([sys.executable, "-c", loop], check=True)
    print(time.process_time())


def burn_template(seconds: float) -> dict[str, Any]:
    """Return a one-step template whose step burns ``seconds`` of CPU in a child process."""
    with WorkflowTemplate(name="fixture-burn", entrypoint="main") as wt:
        b = _s(burn, "burn")
        with DAG(name="main"):
            b(name="burn", arguments={"seconds": str(seconds)})
    return wt.to_dict()
