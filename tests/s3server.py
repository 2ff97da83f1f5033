"""A real S3 protocol server (moto's ThreadedMotoServer) on 127.0.0.1, for the tests and the benches.

One code path for both: the suite's ``s3_endpoint`` fixture (tests/conftest.py) and
bench/bench_store.py start it here. Never a patched boto3: clients reach it over real HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def moto_s3(bucket: str = "promptci") -> Iterator[str]:
    """Yield the URL of a moto S3 server on a free port of 127.0.0.1 holding an empty ``bucket``; stop it after.

    The AWS credentials and region are boto3's usual environment (the caller sets fake ones).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
