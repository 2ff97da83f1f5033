"""S3Store against the real S3 protocol: moto's ThreadedMotoServer on 127.0.0.1 (never patched boto3)."""

from __future__ import annotations

import socket
import threading
import time

import boto3
import pytest
from moto.server import ThreadedMotoServer

from config.pipeline import StoreConfig
from steps.stores.s3store import S3Store, open_store
from steps.stores.store import LocalStore, StoreError, get_json, put_json


@pytest.fixture
def endpoint(s3_endpoint: str) -> str:
    return s3_endpoint


@pytest.fixture
def creds(s3_creds: None) -> None:
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_round_trip_list_and_missing_keys(endpoint):
    store = S3Store("promptci", "team-a/", endpoint_url=endpoint, region="us-east-1")
    put_json(store, "runs/r1/a/golden/result.json", {"ok": True})
    store.put_bytes("runs/r1/a/golden/diff.md", b"# diff", "text/markdown")
    store.put_bytes("baselines/dev/a/golden.json", b"{}")
    assert get_json(store, "runs/r1/a/golden/result.json") == {"ok": True}
    assert store.get_bytes("runs/r1/nothing") is None
    assert store.list_keys("runs/r1/") == ["runs/r1/a/golden/diff.md", "runs/r1/a/golden/result.json"]
    raw = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    assert raw.get_object(Bucket="promptci", Key="team-a/runs/r1/a/golden/diff.md")["Body"].read() == b"# diff"
    assert store.describe() == f"s3://promptci/team-a/ at {endpoint}"


def test_open_store_takes_settings_from_config_and_environment(endpoint, monkeypatch, tmp_path):
    assert isinstance(open_store(StoreConfig(kind="local", root=str(tmp_path))), LocalStore)
    with pytest.raises(StoreError, match="no bucket"):
        open_store(StoreConfig(kind="s3"), env={})
    monkeypatch.setenv("PROMPTCI_S3_BUCKET", "promptci")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_store(StoreConfig(kind="s3", prefix="p"))
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v" and store.describe().startswith("s3://promptci/p/")


def test_a_transient_outage_is_retried_until_the_endpoint_answers(creds):
    port = _free_port()
    store = S3Store("promptci", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    def start_late() -> None:
        time.sleep(0.5)  # the first attempts hit a closed port
        server.start()
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1"
                     ).create_bucket(Bucket="promptci")

    t = threading.Thread(target=start_late)
    t.start()
    try:
        assert store.put_bytes("runs/r/x", b"data") == "runs/r/x"
        assert store.get_bytes("runs/r/x") == b"data"
    finally:
        t.join()
        server.stop()


def test_a_failed_upload_raises_instead_of_being_skipped(creds):
    store = S3Store("promptci", endpoint_url=f"http://127.0.0.1:{_free_port()}", region="us-east-1",
                    attempts=2)
    with pytest.raises(StoreError, match="cannot write s3://promptci/runs/r/x"):
        store.put_bytes("runs/r/x", b"data")


def test_missing_bucket_is_an_error_not_a_miss(endpoint):
    store = S3Store("no-such-bucket", endpoint_url=endpoint, region="us-east-1")
    with pytest.raises(StoreError, match="cannot read"):
        store.get_bytes("k")
