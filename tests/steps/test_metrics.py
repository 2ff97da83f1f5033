"""Local-runner metrics: pushed to a real Pushgateway, or an atomic node_exporter textfile."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from steps import metric_names as names
from steps.metrics import MetricsError, record_pipeline_run

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
STAGES = {"lint": "succeeded", "validate": "succeeded", "eval": "failed", "promote": "skipped"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """Start a real Pushgateway on 127.0.0.1 and return its URL; stop it by PID afterwards."""
    binary = shutil.which("prometheus-pushgateway") or PUSHGATEWAY
    if not os.access(binary, os.X_OK):
        message = f"{PUSHGATEWAY} is missing: apt-get install -y prometheus-pushgateway"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pushgateway did not become ready: {(tmp_path / 'pushgateway.log').read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()  # this process only, by its PID
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return {(sample name, labels): value} from Prometheus text exposition (``le`` as "30.0")."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: str(float(v)) if k == "le" else v for k, v in s.labels.items()}
            out[(s.name, frozenset(labels.items()))] = s.value
    return out


def helps(text: str) -> dict[str, str]:
    return {f.name: f.documentation for f in text_string_to_metric_families(text)}


def test_push_to_a_real_pushgateway_and_read_back(pushgateway: str, tmp_path: Path) -> None:
    where = record_pipeline_run(artifact_type="prompt", result="failed", duration_seconds=42.5,
                                stage_results=STAGES, run_dir=tmp_path / "run", instance="ci-7",
                                pushgateway_url=pushgateway)
    assert where == f"{pushgateway}/metrics/job/promptci/pipeline/promptci/instance/ci-7"
    assert not (tmp_path / "run" / "metrics.prom").exists()
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    got = samples(text)
    group = {("job", "promptci"), ("pipeline", "promptci"), ("instance", "ci-7")}
    dur = frozenset(group | {("artifact_type", "prompt"), ("result", "failed")})
    assert got[(names.DURATION + "_count", dur)] == 1
    assert got[(names.DURATION + "_sum", dur)] == 42.5
    assert got[(names.DURATION + "_bucket", dur | {("le", "30.0")})] == 0
    assert got[(names.DURATION + "_bucket", dur | {("le", "60.0")})] == 1
    for stage, result in STAGES.items():
        key = (names.RESULT + "_total", frozenset(group | {("stage", stage), ("result", result)}))
        assert got[key] == 1, key
    assert helps(text)[names.DURATION] == names.DURATION_HELP
    assert helps(text)[names.RESULT] == names.RESULT_HELP


def test_pushgateway_url_from_the_environment(pushgateway: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATEWAY_URL", pushgateway)
    where = record_pipeline_run(artifact_type="rag-config", result="succeeded", duration_seconds=3,
                                stage_results={"lint": "succeeded"}, run_dir=tmp_path)
    assert where.endswith(f"/instance/{socket.gethostname()}")
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        got = samples(resp.read().decode())
    key = (names.RESULT + "_total", frozenset({("job", "promptci"), ("pipeline", "promptci"),
                                                ("instance", socket.gethostname()),
                                                ("stage", "lint"), ("result", "succeeded")}))
    assert got[key] == 1


def test_textfile_when_no_pushgateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    run_dir = tmp_path / "runs" / "r1"
    where = record_pipeline_run(artifact_type="guardrail-policy", result="error", duration_seconds=0.25,
                                stage_results={"lint": "succeeded", "eval": "error"}, run_dir=run_dir)
    assert where == str(run_dir / "metrics.prom")
    assert [p.name for p in run_dir.iterdir()] == ["metrics.prom"]  # no temp file left behind
    got = samples((run_dir / "metrics.prom").read_text())
    dur = frozenset({("artifact_type", "guardrail-policy"), ("result", "error")})
    assert got[(names.DURATION + "_sum", dur)] == 0.25
    assert got[(names.RESULT + "_total", frozenset({("stage", "eval"), ("result", "error")}))] == 1


def test_unreachable_pushgateway_falls_back_to_the_textfile(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    where = record_pipeline_run(artifact_type="prompt", result="succeeded", duration_seconds=1,
                                stage_results={"lint": "succeeded"}, run_dir=tmp_path, pushgateway_url=url)
    assert where == str(tmp_path / "metrics.prom")
    assert "cannot push metrics" in caplog.text


def test_each_run_has_its_own_registry(tmp_path: Path) -> None:
    for i in range(2):
        record_pipeline_run(artifact_type="prompt", result="succeeded", duration_seconds=1,
                            stage_results={"lint": "succeeded"}, run_dir=tmp_path / str(i))
    got = samples((tmp_path / "1" / "metrics.prom").read_text())
    assert got[(names.RESULT + "_total", frozenset({("stage", "lint"), ("result", "succeeded")}))] == 1


@pytest.mark.parametrize("kwargs", [{"result": "passed"}, {"stage_results": {"eval": "Succeeded"}},
                                    {"duration_seconds": -1.0}])
def test_invalid_values_are_rejected(tmp_path: Path, kwargs: dict) -> None:
    args = {"artifact_type": "prompt", "result": "succeeded", "duration_seconds": 1.0,
            "stage_results": {"lint": "succeeded"}, "run_dir": tmp_path, **kwargs}
    with pytest.raises(MetricsError):
        record_pipeline_run(**args)
    assert not (tmp_path / "metrics.prom").exists()
