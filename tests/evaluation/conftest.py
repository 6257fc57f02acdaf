from types import ModuleType

import pytest

from reid.bench.eval import load_naive


@pytest.fixture(scope="session")
def naive() -> ModuleType:
    """tests/evaluation/naive.py, loaded the same way `reid bench eval` loads it."""
    return load_naive()
