"""Issue 13's bad-input table: every case gets one clear problem line, never a traceback or a silent pass.

For each case this records (``record_property``: visible in ``--junitxml``) the exit status, the
problem line and the CPU time, and asserts: the exit status expected (1 rejected, 0 only where a
warning is printed), the expected ``path:line:col: field: message`` fragment, no traceback, no
``0:0`` position, and under 1 s of CPU per case. CPU time rather than wall time: the budget is
about promptci's work, not about how busy the shared machine is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import config.formats.dotprompt  # noqa: F401 - the runtimes' imports are not part of a case's CPU budget
import config.formats.prompty  # noqa: F401
from steps.artifact_files import load_artifact
from steps.cli import run_check
from steps.datasets import _read_dataset
from steps.lint import lint_paths
from steps.validate import validate_paths
from tests.steps.bad_inputs import CASES, Case

CHECKS = {"lint": lint_paths, "validate": validate_paths}


def test_the_table_is_big_enough_and_covers_every_class():
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    prefixes = {c.id.split(":")[0].split("-")[0] for c in CASES}
    for cls in ("tag", "jsonl", "pipeline", "unsupported", "fifo", "symlink", "csv", "override", "gh", "utf16le",
                "id", "semver", "jinja", "prompty", "dotprompt"):
        assert cls in prefixes, cls


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   record_property) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    for name, content in case.files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "prompts").mkdir(exist_ok=True)
    if case.setup:
        case.setup(root)
    if "pipeline" in case.extra:
        cfg = root / "config" / "pipeline.yaml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(case.extra["pipeline"])  # validate reads the repository's own config
    load_artifact.cache_clear()  # type: ignore[attr-defined]
    _read_dataset.cache_clear()  # type: ignore[attr-defined]
    target = Path(case.target) if case.target.startswith("/") else root / case.target

    cpu = time.process_time()
    rc = run_check(case.cmd, CHECKS[case.cmd], [target], root)
    cpu = time.process_time() - cpu

    out = capsys.readouterr()
    lines = out.out.splitlines()
    hit = next((line for line in lines if case.expect in line), None)
    record_property("exit", rc)
    record_property("line", hit or "")
    record_property("cpu_s", round(cpu, 3))
    assert "Traceback" not in out.out + out.err
    assert "promptci bug" not in out.out + out.err
    assert hit is not None, f"expected a line with {case.expect!r}; got:\n{out.out}{out.err}"
    assert rc == case.exit, (rc, out.out)
    if case.exit == 0:
        assert "warning:" in hit, "a case that exits 0 must still say something"
    assert not any(":0:0:" in line for line in lines), out.out
    assert cpu < 1.0, f"{case.id} took {cpu:.2f}s of CPU"


@pytest.mark.parametrize("version", ["1.0.0-rc.1+build.5", "2.0.0-alpha", "0.0.1+20260101", "10.20.30"])
def test_valid_semver_is_accepted(version: str, tmp_path: Path) -> None:
    """The ``semver`` library decides: pre-release and build metadata are fine, leading zeros are not."""
    from tests.steps.bad_inputs import DATASET, GOOD

    (tmp_path / "prompts").mkdir()
    (tmp_path / "evals" / "p").mkdir(parents=True)
    (tmp_path / "prompts" / "p.yaml").write_text(GOOD.replace("version: 1.0.0", f"version: {version}"))
    (tmp_path / "evals" / "p" / "golden.yaml").write_text(DATASET)
    load_artifact.cache_clear()  # type: ignore[attr-defined]
    assert lint_paths([tmp_path / "prompts"], root=tmp_path) == []
