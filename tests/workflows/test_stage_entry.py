"""The thin stage entry maps a pod's inputs and outputs exactly as Hera's runner does, for every stage.

Each stage's compiled template is run twice on the same inputs file, with the stage's body replaced by a
recorder (tests/workflows/stage_probe.py): once with the command Hera's own ``RunnerScriptConstructor``
writes (``python -m hera.workflows.runner -e workflows.stages:<stage>``, hera 7.1's
hera/workflows/_runner/util.py), once with the template's thin entry. The calls, stdout, exit codes and
the files under the outputs directory must be the same, and they must be where the template tells Argo
to collect them.
"""

# No ``from __future__ import annotations``: the stages defined here are read by Hera as objects.
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from hera.workflows import Parameter, Script, WorkflowTemplate, script
from hera.workflows.script import RunnerScriptConstructor

from config.artifacts import ArtifactType
from workflows import stages
from workflows.runner.executors import PROJECT_ROOT
from workflows.stage_script import StageScriptConstructor, runs
from workflows.templates import OUTPUTS_DIR, PipelineSettings, build_template

PROBE = Path(__file__).with_name("stage_probe.py")


def stage_templates() -> dict[str, dict[str, Any]]:
    """Return the compiled script templates of the prompt pipeline, by stage name."""
    spec = build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()["spec"]
    return {t["name"]: t for t in spec["templates"] if "script" in t}


def hera_runner_args(function: Any) -> list[str]:
    """Return the args Hera's own runner constructor writes for ``function`` (its real transform)."""
    with WorkflowTemplate(name="hera-only"):
        hera_script = Script(name="s", source=function, image="python:3.11", constructor=RunnerScriptConstructor())
    return list(hera_script.args or [])


def run_probe(tmp: Path, label: str, body_module: str, args: list[str], inputs: Path) -> dict[str, Any]:
    """Run ``args`` through the probe; return exit code, stdout, stderr, the recorded calls and output files."""
    outputs = tmp / label / "outputs"
    record = tmp / label / "record.jsonl"
    record.parent.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "hera__outputs_directory": str(outputs)}
    proc = subprocess.run([sys.executable, "-P", str(PROBE), str(record), body_module, "--", *args, str(inputs)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=120, check=False)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    text = json.dumps(calls).replace(str(outputs), "<outputs>")
    files = {str(p.relative_to(outputs)): p.read_text() for p in sorted(outputs.rglob("*")) if p.is_file()} \
        if outputs.exists() else {}
    return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "calls": json.loads(text),
            "files": files}


@pytest.mark.parametrize("stage", sorted(stages.STAGES))
def test_the_thin_entry_maps_inputs_and_outputs_like_heras_runner(stage: str, tmp_path: Path) -> None:
    tpl = stage_templates()[stage]
    args = tpl["script"]["args"]
    assert args[:2] == ["-m", "workflows.stage_entry"] and tpl["script"]["source"] == "{{inputs.parameters}}"
    body_module = args[2].split(":")[0]
    names = [p["name"] for p in tpl["inputs"].get("parameters", [])]
    # What Argo writes for {{inputs.parameters}}: every input, plus what both must ignore.
    given = [{"name": n, "value": f"{n}: {{{{not expanded}}}} ünï \"quoted\""} for n in names]
    given += [{"name": "not-an-input", "value": "x"}, {"name": "no-value"}]
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(given))

    hera = run_probe(tmp_path, "hera", body_module, hera_runner_args(stages.STAGES[stage].wrapped_function), inputs)
    entry = run_probe(tmp_path, "entry", body_module, args, inputs)

    assert hera["code"] == 0, hera["stderr"]
    assert entry == hera
    assert len(entry["calls"]) == 1 and entry["calls"][0]["function"] == args[2].split(":")[1]
    received = entry["calls"][0]["kwargs"]
    assert sorted(v["value"] for v in received.values() if v["type"] == "str") == sorted(g["value"] for g in given[:-2])
    assert all(v["parent_exists"] for v in received.values() if v["type"] == "Path")
    # The outputs land where the template tells Argo to collect them, and nowhere else.
    declared = [p["valueFrom"]["path"] for p in tpl.get("outputs", {}).get("parameters", [])]
    declared += [a["path"] + "/report.txt" for a in tpl.get("outputs", {}).get("artifacts", [])]
    assert sorted(str(Path(p).relative_to(OUTPUTS_DIR)) for p in declared) == sorted(entry["files"])
    env = {e["name"]: e.get("value") for e in tpl["script"].get("env", [])}
    assert env["hera__outputs_directory"] == OUTPUTS_DIR if declared else True


def test_an_input_that_was_not_given_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Hera's runner raises (a traceback, exit 1: it would read as a rejection); the entry says which input."""
    tpl = stage_templates()["validate"]
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps([{"name": "artifact-path", "value": "prompts"}]))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "hera__outputs_directory": str(tmp_path / "out")}

    entry = subprocess.run([sys.executable, "-P", *tpl["script"]["args"], str(inputs)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=False)
    hera = subprocess.run([sys.executable, "-P", *hera_runner_args(stages.validate.wrapped_function), str(inputs)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)

    assert (entry.returncode, entry.stderr) == (2, "stage entry: input parameter 'artifact-type' was not given "
                                                   "a value\n")
    assert hera.returncode == 1 and "RuntimeError: Parameter artifact-type was not given a value" in hera.stderr


@pytest.mark.parametrize("content", ["{not json", '{"name": "x"}'])
def test_a_malformed_inputs_file_is_one_line_and_exit_2(content: str, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.json"
    inputs.write_text(content)
    proc = subprocess.run([sys.executable, "-P", *stage_templates()["lint"]["script"]["args"], str(inputs)],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("stage entry: ") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("kind", "code"), [("transient", 75), ("bug", 2)])
def test_an_exception_the_stage_did_not_handle_exits_with_the_policys_code(kind: str, code: int,
                                                                          tmp_path: Path) -> None:
    """Python's default for an uncaught exception is 1, which reads as "rejected": the entry applies
    steps/exit_codes.py instead (a bug is 2, a ``Transient`` 75 so retryStrategy retries it)."""
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps([{"name": "kind", "value": kind}]))
    proc = subprocess.run([sys.executable, "-P", "-m", "workflows.stage_entry", "tests.workflows.stage_probe:fail",
                           "--in=kind=kind", str(inputs)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" in proc.stderr  # a bug report needs where it happened


def test_a_signature_the_entry_cannot_map_fails_when_the_template_is_built() -> None:
    """An ``int`` input would be JSON-parsed by Hera's runner and passed as a str by the entry: refused."""
    def body(count: int) -> None:
        """A body."""

    @script(constructor="runner")
    @runs(body)
    def stage(count: Annotated[int, Parameter(name="count")]) -> None:
        """A stage the thin entry cannot map."""

    with WorkflowTemplate(name="x"), pytest.raises(ValueError, match="'count'.*str input parameter"):
        Script(name="s", source=stage.wrapped_function, image="python:3.11", constructor=StageScriptConstructor())


def test_a_body_that_drifts_from_its_signature_fails_at_import() -> None:
    def body(artifact_path: str, extra: str) -> None:
        """A body with one argument too many."""

    with pytest.raises(TypeError, match="extra"):
        @runs(body)
        def lint(artifact_path: Annotated[str, Parameter(name="artifact-path")]) -> None:
            """The stage."""
