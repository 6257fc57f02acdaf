"""The S3 server of the storage tests (tests/ops/storage_server.py) starts empty every time."""

from __future__ import annotations

from reid import storage
from tests.ops.storage_server import s3_server


def test_every_server_starts_with_an_empty_bucket():
    """moto keeps its buckets in this process's memory, shared by every server it starts: a later module's server
    must not see an earlier one's runs (a run of the same name resumed from them and did not fail where the test
    injects a fault: seen in the whole suite, after the bucket job test)."""
    with s3_server() as first:
        storage.write_text(first.uri("runs", "cut", "config.yaml"), "x: 1\n")
        assert storage.list_dir(first.uri("runs")) == ["cut"]
    with s3_server() as second:
        assert storage.list_dir(second.uri()) == []
