"""``S3Store``: the artifact store on S3 (or MinIO / any S3-compatible endpoint) via boto3.

Bucket, prefix, endpoint and region come from ``StoreConfig`` or the
environment (``PROMPTCI_S3_BUCKET``, ``PROMPTCI_S3_PREFIX``,
``PROMPTCI_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``, ``AWS_REGION``).
Credentials only ever come from boto3's default chain (environment, mounted
secret files, IRSA), never from config. Transient errors are retried with
tenacity; what still fails raises StoreError, which fails the stage.

boto3, botocore and tenacity are imported when an ``S3Store`` is made, not with this module: a stage
whose store is the local disk never pays for them (``open_store`` lives here, and every stage calls it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from config.pipeline import StoreConfig
from config.settings import get_settings
from steps.stores.store import ArtifactStore, LocalStore, StoreError

T = TypeVar("T")
TRANSIENT_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown",
                   "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException"}


def _transient(exc: BaseException) -> bool:
    """Return whether a failed S3 call is worth another attempt: what botocore's own "standard" retry mode
    retries (botocore/retries/standard.py ``TransientRetryableChecker``: ``ConnectionError`` and
    ``HTTPClientError``, i.e. a connection closed before the answer or a read timeout too; 500/502/503/504
    and the throttling codes), which promptci turns off to retry with tenacity instead. A PUT of the same
    bytes to the same key and a GET are safe to repeat."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return err.get("Code") in TRANSIENT_CODES or status in TRANSIENT_CODES
    return False


class S3Store:
    """An ``ArtifactStore`` in one bucket under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, client: Any = None, attempts: int | None = None,
                 writers: int | None = None):
        import boto3
        from botocore.config import Config as BotoConfig
        from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

        self.bucket = bucket
        settings = get_settings()
        # tenacity does the retrying (botocore's own retries are off so attempts are not multiplied).
        attempts = attempts or settings.s3_attempts  # PROMPTCI_S3_ATTEMPTS, default 5
        # Items written at once by ``each_item``, all through this one client: boto3's clients are
        # thread-safe (boto3 docs/source/guide/clients.rst, "Multithreading or multiprocessing with
        # clients"; not across processes, and each stage process makes its own). Each writer gets
        # its own pooled HTTP connection (botocore's default pool holds 10).
        self.writers = writers or settings.s3_writers  # PROMPTCI_S3_WRITERS, default 16
        self._retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(attempts),
                               wait=wait_exponential(multiplier=0.2, max=3), reraise=True)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                              read_timeout=30, max_pool_connections=max(10, self.writers),
                              s3={"addressing_style": "path"} if endpoint_url else None))

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._retrying(fn)()
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"cannot {what} s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` at ``key`` (one PUT: S3 never shows a half-written object); return the key."""
        self._call("write", key, lambda: self.client.put_object(
            Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type))
        return key

    def get_bytes(self, key: str) -> bytes | None:
        """Return the object at ``key`` or None when it does not exist."""
        from botocore.exceptions import ClientError

        def get() -> bytes | None:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
                return bytes(body.read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
        return self._call("read", key, get)

    def list_keys(self, prefix: str) -> list[str]:
        """Return every key under ``prefix`` (store-relative), sorted."""
        def listing() -> list[str]:
            keys: list[str] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
            return sorted(keys)
        return self._call("list", prefix, listing)

    def describe(self) -> str:
        """Return ``s3://bucket/prefix`` (plus the endpoint for MinIO)."""
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where


def open_store(cfg: StoreConfig, env: dict[str, str] | None = None) -> ArtifactStore:
    """Return the store ``cfg`` describes; environment variables override the S3 settings.

    Raises StoreError when an S3 store has no bucket.
    """
    env = dict(os.environ) if env is None else env
    settings = get_settings(env)
    if (settings.store_kind or cfg.kind) == "local":
        return LocalStore(settings.store_root or cfg.root)
    bucket = settings.s3_bucket or cfg.bucket
    if not bucket:
        raise StoreError("store.kind is 's3' but no bucket is set (store.bucket or PROMPTCI_S3_BUCKET)")
    return S3Store(bucket, settings.s3_prefix if settings.s3_prefix is not None else cfg.prefix,
                   endpoint_url=settings.s3_endpoint_url or env.get("AWS_ENDPOINT_URL") or cfg.endpoint_url,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cfg.region)
