"""--record mode against a live OpenAI-compatible server (a local fake on 127.0.0.1), then offline replay."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from steps.contracts import content_hash
from steps.eval import run_branch
from steps.stores.store import LocalStore
from tests.steps.evalkit import NAMES, config, make_repo

pytestmark = pytest.mark.slow


class _Chat(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Chat.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        name = body["messages"][-1]["content"].removeprefix("My name is ").rstrip(".")
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": f"Hello {name}!"}}],
                 "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_record_then_replay_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        repo = tmp_path / "repo"
        item = make_repo(repo)
        prompt = repo / "prompts" / "greeter.yaml"
        doc = yaml.safe_load(prompt.read_text())
        doc["model"] = "qwen2.5-7b-instruct"  # openai-compatible in the catalog, base URL from $VLLM_BASE_URL
        prompt.write_text(yaml.safe_dump(doc, sort_keys=False))
        item = item.model_copy(update={"content_hash": content_hash(prompt.read_bytes())})
        monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-test-not-a-real-key")
        monkeypatch.setenv("PROMPTCI_RECORD", "1")
        for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD", "HTTPS_PROXY",
                    "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(var, raising=False)
        store = LocalStore(tmp_path / "store")
        live = run_branch(item, repo_root=repo, run_id="rec", target_env=None, config=config(), store=store,
                          work_dir=tmp_path / "w1")
        assert live.status == "passed", live.reasons
        assert len(_Chat.seen) == 3 and _Chat.seen[0]["path"] == "/v1/chat/completions"
        assert _Chat.seen[0]["body"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
        system = _Chat.seen[0]["body"]["messages"][0]["content"]
        assert "Keep {{not a var}} literal." in system  # braces reach the model verbatim, never templated
        recordings = sorted((repo / "recordings" / "greeter").glob("*.json"))
        assert len(recordings) == 3
        assert "sk-test" not in "".join(p.read_text() for p in recordings)
        assert "sk-test" not in (tmp_path / "w1" / "promptfooconfig.json").read_text()

        monkeypatch.delenv("PROMPTCI_RECORD")
        server.shutdown()  # the replay must not need the server
        replay = run_branch(item, repo_root=repo, run_id="replay", target_env=None, config=config(),
                            store=store, work_dir=tmp_path / "w2")
        assert replay.status == "passed" and not replay.cached, replay.reasons
        assert replay.tests_passed == len(NAMES)
    finally:
        server.server_close()
