"""S3Store against the real S3 protocol: moto's ThreadedMotoServer on 127.0.0.1 (never patched boto3)."""

from __future__ import annotations

import functools
import socket
import threading
import time

import boto3
import pytest
from moto.server import ThreadedMotoServer

from config.pipeline import StoreConfig
from config.settings import SettingsError
from steps.stores.s3store import S3Store, open_store
from steps.stores.store import LocalStore, StoreError, each_item, get_json, put_json


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


def test_writers_come_from_the_settings_and_each_gets_a_pooled_connection(endpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTCI_S3_BUCKET", "promptci")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert open_store(StoreConfig(kind="s3")).writers == 16  # the default
    monkeypatch.setenv("PROMPTCI_S3_WRITERS", "40")
    store = open_store(StoreConfig(kind="s3"))
    assert isinstance(store, S3Store) and store.writers == 40
    assert store.client.meta.config.max_pool_connections == 40
    assert open_store(StoreConfig(kind="local", root=str(tmp_path))).writers == 1  # a local disk: one at a time
    monkeypatch.setenv("PROMPTCI_S3_WRITERS", "0")
    with pytest.raises(SettingsError, match="PROMPTCI_S3_WRITERS='0'"):
        open_store(StoreConfig(kind="s3"))


def test_each_item_returns_in_job_order_and_raises_the_first_error_once_every_job_ran(tmp_path):
    store = LocalStore(tmp_path)
    store.writers = 4
    started = threading.Barrier(4, timeout=10)  # four jobs at once, or this test hangs up to 10 s and fails

    def job(n: int) -> int:
        started.wait()
        store.put_bytes(f"k{n}", str(n).encode())
        if n in (1, 2):
            raise ValueError(f"job {n}")
        return n

    with pytest.raises(ValueError, match="job 1"):
        each_item(store, [functools.partial(job, n) for n in range(4)])
    assert store.list_keys("") == ["k0", "k1", "k2", "k3"]  # the jobs beside the failing one still finished
    started.reset()

    def late_first(n: int) -> int:  # the last job finishes first
        started.wait()
        if n < 3:
            done[n + 1].wait(timeout=10)
        done[n].set()
        return n

    done = [threading.Event() for _ in range(4)]
    assert each_item(store, [functools.partial(late_first, n) for n in range(4)]) == [0, 1, 2, 3]
    store.writers = 1
    order: list[int] = []
    assert each_item(store, [functools.partial(order.append, n) for n in range(3)]) == [None] * 3
    assert order == [0, 1, 2]  # one writer: the jobs run here, one after another


def test_a_connection_closed_or_timed_out_mid_call_is_retried_as_botocore_would() -> None:
    """botocore's standard retry mode retries ConnectionError and HTTPClientError (retries/standard.py,
    TransientRetryableChecker); with its retries off, tenacity must retry the same ones, or a connection an
    S3 endpoint drops mid-answer fails the item instead of being tried again."""
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    from steps.stores.s3store import _transient

    url = "https://s3.example"
    for exc in (ConnectionClosedError(endpoint_url=url), ReadTimeoutError(endpoint_url=url),
                EndpointConnectionError(endpoint_url=url)):
        assert _transient(exc), type(exc).__name__
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    assert not _transient(denied) and not _transient(ValueError("not S3's"))
