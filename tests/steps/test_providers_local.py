"""The provider setting, the local model's provider entry, and authored recordings (no server needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from config.artifacts import ModelParameters
from config.catalog import load_catalog
from steps.providers import ProviderConfigError, effective_mode, local_model, provider_mode, recording
from steps.providers.author import author
from steps.providers.live import live_provider

REPO = Path(__file__).resolve().parents[2]


def test_provider_setting() -> None:
    assert provider_mode({}) == "recorded"
    assert provider_mode({"PROMPTCI_PROVIDER": "local"}) == "local"
    assert provider_mode({"PROMPTCI_RECORD": "1"}) == "record"  # live + write recordings
    assert provider_mode({"PROMPTCI_RECORD": "1", "PROMPTCI_PROVIDER": "local"}) == "local"
    assert recording({"PROMPTCI_RECORD": "1"}) and not recording({})
    with pytest.raises(ProviderConfigError, match="expected one of recorded, live, local"):
        provider_mode({"PROMPTCI_PROVIDER": "lcoal"})
    # local mode calls only the model the bundled server serves; everything else replays recordings
    assert effective_mode("local", "local", {}) == "live"
    assert effective_mode("local", "local", {"PROMPTCI_RECORD": "1"}) == "record"
    assert effective_mode("local", "openai", {"PROMPTCI_RECORD": "1"}) == "recorded"
    assert effective_mode("live", "openai") == "live" and effective_mode("recorded", "local") == "recorded"


def test_local_model_is_an_openai_compatible_endpoint_without_a_key() -> None:
    canonical, entry = load_catalog().resolve("smollm2-135m-instruct")  # type: ignore[misc]
    params = ModelParameters(temperature=0, seed=7, max_tokens=40)
    started = live_provider(canonical, entry, params, env={"PROMPTCI_LOCAL_BASE_URL": "http://127.0.0.1:4321/v1"})
    assert started == {"id": "openai:chat:smollm2-135m-instruct", "label": "smollm2-135m-instruct",
                       "config": {"temperature": 0.0, "seed": 7, "max_tokens": 40, "maxRetries": 0,
                                  "apiBaseUrl": "http://127.0.0.1:4321/v1", "apiKeyRequired": False}}
    assert local_model.is_local(started)
    # the port changes every run; the cache key names the model file instead
    unstarted = live_provider(canonical, entry, params, env={})
    assert local_model.cache_view(started) == local_model.cache_view(unstarted)
    assert local_model.MODEL_SHA256 in json.dumps(local_model.cache_view(started))
    other = live_provider(*load_catalog().resolve("qwen2.5-7b-instruct"), params,  # type: ignore[misc]
                          env={"VLLM_BASE_URL": "http://gpu:8000/v1"})
    assert not local_model.is_local(other) and local_model.cache_view(other) == other


def test_a_corrupt_model_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_model.MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(local_model.LocalModelError, match="make setup-local-model"):
        local_model.model_path()
    (tmp_path / local_model.MODEL_FILE).write_bytes(b"GGUF but not the model")
    with pytest.raises(local_model.LocalModelError, match="does not have sha256"):
        local_model.model_path(verify=True)


@pytest.fixture
def authored(tmp_path: Path) -> Path:
    """Return a repo with one sample prompt (summarizer), its dataset and its answers in responses.yaml."""
    shutil.copytree(REPO / "evals" / "summarizer", tmp_path / "evals" / "summarizer")
    (tmp_path / "prompts").mkdir()
    shutil.copy(REPO / "prompts" / "summarizer.json", tmp_path / "prompts")
    table = yaml.safe_load((REPO / "recordings" / "responses.yaml").read_text())
    (tmp_path / "responses.yaml").write_text(yaml.safe_dump({"summarizer": table["summarizer"]}))
    return tmp_path


def _write(root: Path, rekey: bool = False) -> list[str]:
    return author(root, root / "responses.yaml", root / "recordings", [root / "prompts"], rekey=rekey)


def test_authored_recordings_say_so_and_claim_no_tokens(authored: Path) -> None:
    assert _write(authored) == []
    docs = [json.loads(p.read_text()) for p in (authored / "recordings" / "summarizer").glob("*.json")]
    assert len(docs) == 2
    for d in docs:
        assert d["origin"] == "authored" and d["source"] == "prompts/summarizer.json"
        assert d["responses"][0]["tokenUsage"] == {"prompt": 0, "completion": 0, "total": 0}


def test_an_answer_is_not_moved_onto_a_changed_prompt_without_rekey(authored: Path) -> None:
    assert _write(authored) == []
    before = sorted(p.name for p in (authored / "recordings" / "summarizer").glob("*.json"))
    prompt = authored / "prompts" / "summarizer.json"
    doc = json.loads(prompt.read_text())
    doc["messages"][0]["content"] += " Be brief."
    prompt.write_text(json.dumps(doc))

    problems = _write(authored)
    assert len(problems) == 2 and all("the prompt changed since its answer was authored" in p
                                      and "--rekey" in p for p in problems)
    assert sorted(p.name for p in (authored / "recordings" / "summarizer").glob("*.json")) == before

    assert _write(authored, rekey=True) == []
    after = [json.loads(p.read_text()) for p in (authored / "recordings" / "summarizer").glob("*.json")]
    assert len(after) == 2
    assert all(d["origin"] == "authored" and d["rekeyed_from"] in before for d in after)
    assert all("Be brief." in d["messages"][0]["content"] for d in after)


def test_a_model_recording_is_never_overwritten_by_an_authored_answer(authored: Path) -> None:
    assert _write(authored) == []
    path = next((authored / "recordings" / "summarizer").glob("*.json"))
    doc = json.loads(path.read_text())
    doc["origin"] = {"model": "claude-haiku-4-5", "provider": "anthropic:messages:claude-haiku-4-5",
                     "recorded_at": "2026-11-29T08:00:00Z"}
    path.write_text(json.dumps(doc))
    problems = _write(authored)
    assert len(problems) == 1 and "was recorded from a model" in problems[0]
    assert json.loads(path.read_text())["origin"]["model"] == "claude-haiku-4-5"


def test_a_user_proxy_is_kept_but_never_used_for_loopback(tmp_path: Path) -> None:
    from steps.promptfoo import promptfoo_env

    env = promptfoo_env(tmp_path, ["api.openai.com", "127.0.0.1"],
                        base={"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "git.corp"})
    assert env["HTTPS_PROXY"] == "http://proxy.corp:3128"  # remote hosts still go through it
    assert env["NO_PROXY"].split(",") == ["git.corp", "127.0.0.1"]
