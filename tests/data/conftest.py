"""Fixtures of the data tests."""

import pytest

from reid.data import pipeline


@pytest.fixture
def fake_ledger(monkeypatch):
    """A decoding actor (`pipeline._DecodeBatches`) built in this process: its ledger actor faked, no Ray cluster
    (no tracklet known bad, nothing recorded)."""

    class Remote:
        def __init__(self, value):
            self.value = value

        def remote(self, *args):
            return self.value

    class Ledger:
        decoder_started = Remote({})
        decoder_ready = Remote(None)
        add_bad = Remote({})

    monkeypatch.setattr(pipeline.ray, "get_actor", lambda name, namespace=None: Ledger())
    monkeypatch.setattr(pipeline.ray, "get", lambda ref, timeout=None: ref)
    return Ledger
