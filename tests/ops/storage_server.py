"""An S3-compatible server on 127.0.0.1 for the storage tests: moto in server mode, in a thread of the test process.

Every process of a test (this one, the Ray nodes it starts, their workers) reaches it through the standard
`AWS_ENDPOINT_URL`, which pyarrow's S3 filesystem reads, with dummy credentials: the same `s3://bucket/...` URIs a
real deployment uses. The bucket is created with `S3FileSystem(endpoint_override=..., allow_bucket_creation=True)`.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

BUCKET = "reid-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    bucket: str

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


def s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's server on a free loopback port with one empty bucket, and the environment pointing at it (restored
    afterwards)."""
    import logging

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in this process's memory, shared by every server it starts: without a reset, a bucket of
    # an earlier test module still holds that module's runs, and a run of the same name resumes from them
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in s3_env(endpoint).items():
                mp.setenv(key, value)
            pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing",
                              region="us-east-1", allow_bucket_creation=True).create_dir(BUCKET)
            assert os.environ["AWS_ENDPOINT_URL"] == endpoint
            yield S3Server(endpoint, BUCKET)
    finally:
        server.stop()
