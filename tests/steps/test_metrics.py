"""Local-runner metrics: cumulative like the controller's, under Argo's names, pushed to a real
Pushgateway or written to an atomic node_exporter textfile."""

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
from steps.metrics import Emission, MetricsError, publish

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
RESULT = names.ARGO_PREFIX + names.RESULT
DURATION = names.ARGO_PREFIX + names.DURATION


def stage(stage: str, result: str, artifact_type: str = "prompt") -> Emission:
    return Emission(names.RESULT, "counter", names.RESULT_HELP,
                    (("artifact_type", artifact_type), ("stage", stage), ("result", result)), 1)


def run(seconds: float, result: str, artifact_type: str = "prompt") -> Emission:
    return Emission(names.DURATION, "histogram", names.DURATION_HELP,
                    (("artifact_type", artifact_type), ("result", result)), seconds, names.DURATION_BUCKETS)


ONE_RUN = [stage("lint", "Succeeded"), stage("eval", "Error"), stage("eval", "Succeeded"), stage("eval", "Failed"),
           run(42.5, "Failed")]


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
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, shared by every run on
    # the machine: an empty --persistence.file keeps this gateway's metrics in its own memory only.
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                            stdout=log, stderr=log)
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
        time.sleep(0.3)  # another test's gateway may have answered on this port while ours failed to bind
        if proc.poll() is not None:
            pytest.fail(f"pushgateway exited: {(tmp_path / 'pushgateway.log').read_text()}")
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
    """The Pushgateway holds Argo's series names: no _total on the counter, _bucket/_sum/_count."""
    where = publish(ONE_RUN, run_dir=tmp_path / "run", state_path=tmp_path / "state.json", instance="ci-7",
                    pushgateway_url=pushgateway)
    assert where == f"{pushgateway}/metrics/job/promptci/instance/ci-7"
    assert not (tmp_path / "run" / "metrics.prom").exists()
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    got = samples(text)
    group = {("job", "promptci"), ("instance", "ci-7")}
    dur = frozenset(group | {("artifact_type", "prompt"), ("result", "Failed")})
    assert got[(DURATION + "_count", dur)] == 1
    assert got[(DURATION + "_sum", dur)] == 42.5
    assert got[(DURATION + "_bucket", dur | {("le", "30.0")})] == 0
    assert got[(DURATION + "_bucket", dur | {("le", "60.0")})] == 1
    for e in ONE_RUN[:4]:
        assert got[(RESULT, frozenset(group | set(e.labels)))] == 1, e
    assert not [k for k in got if "prompt_pipeline" in k[0] and (k[0].endswith("_total") or k[0].startswith("prompt_"))]
    assert helps(text)[DURATION] == names.DURATION_HELP
    assert helps(text)[RESULT] == names.RESULT_HELP


def test_counters_and_histograms_accumulate_across_runs(pushgateway: str, tmp_path: Path) -> None:
    """As the controller's do (metrics_custom.go UpsertCustomMetric), so increase() sees every run even
    though each push replaces the group."""
    state = tmp_path / "state.json"
    for seconds in (10.0, 100.0):
        publish([stage("lint", "Succeeded"), run(seconds, "Succeeded")], run_dir=tmp_path, state_path=state,
                instance="ci-7", pushgateway_url=pushgateway)
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        got = samples(resp.read().decode())
    group = {("job", "promptci"), ("instance", "ci-7")}
    assert got[(RESULT, frozenset(group | set(stage("lint", "Succeeded").labels)))] == 2
    dur = frozenset(group | {("artifact_type", "prompt"), ("result", "Succeeded")})
    assert (got[(DURATION + "_count", dur)], got[(DURATION + "_sum", dur)]) == (2, 110.0)
    assert got[(DURATION + "_bucket", dur | {("le", "15.0")})] == 1


def test_pushgateway_url_from_the_environment(pushgateway: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATEWAY_URL", pushgateway)
    where = publish([stage("lint", "Succeeded", "rag-config")], run_dir=tmp_path, state_path=tmp_path / "s.json")
    assert where.endswith(f"/instance/{socket.gethostname()}")
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        got = samples(resp.read().decode())
    key = (RESULT, frozenset({("job", "promptci"), ("instance", socket.gethostname()), ("artifact_type", "rag-config"),
                              ("stage", "lint"), ("result", "Succeeded")}))
    assert got[key] == 1


def test_textfile_when_no_pushgateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    run_dir = tmp_path / "runs" / "r1"
    where = publish([stage("eval", "Error", "guardrail-policy"), run(0.25, "Error", "guardrail-policy")],
                    run_dir=run_dir, state_path=tmp_path / "runs" / "state.json")
    assert where == str(run_dir / "metrics.prom")
    assert [p.name for p in run_dir.iterdir()] == ["metrics.prom"]  # no temp file left behind
    got = samples((run_dir / "metrics.prom").read_text())
    dur = frozenset({("artifact_type", "guardrail-policy"), ("result", "Error")})
    assert got[(DURATION + "_sum", dur)] == 0.25
    assert got[(RESULT, frozenset(stage("eval", "Error", "guardrail-policy").labels))] == 1


def test_unreachable_pushgateway_falls_back_to_the_textfile(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    where = publish([stage("lint", "Succeeded")], run_dir=tmp_path, state_path=tmp_path / "s.json",
                    pushgateway_url=url)
    assert where == str(tmp_path / "metrics.prom")
    assert "cannot push metrics" in caplog.text


def test_concurrent_runs_lose_no_emission(tmp_path: Path) -> None:
    """Two local runs finishing together both count: the state is updated under a lock."""
    from concurrent.futures import ThreadPoolExecutor

    state = tmp_path / "state.json"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: publish([stage("lint", "Succeeded")], run_dir=tmp_path / str(i), state_path=state),
                      range(16)))
    publish([], run_dir=tmp_path / "last", state_path=state)
    final = samples((tmp_path / "last" / "metrics.prom").read_text())
    assert final[(RESULT, frozenset(stage("lint", "Succeeded").labels))] == 16


@pytest.mark.parametrize("bad", [stage("lint", "succeeded"), stage("eval", "Skipped"), run(-1.0, "Succeeded"),
                                 Emission("prompt-pipeline", "counter", "h", (), 1),
                                 Emission(names.RESULT, "gauge", "h", (), 1)])
def test_invalid_emissions_are_rejected_before_the_state_changes(tmp_path: Path, bad: Emission) -> None:
    state = tmp_path / "state.json"
    with pytest.raises(MetricsError):
        publish([stage("lint", "Succeeded"), bad], run_dir=tmp_path, state_path=state)
    assert not state.exists() and not (tmp_path / "metrics.prom").exists()
