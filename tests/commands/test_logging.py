"""A command's console log: the project's INFO lines, other libraries' warnings only (all of it with --verbose)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import logging, sys
from reid.commands.common import setup_logging
setup_logging(verbose=sys.argv[1] == "verbose")
logging.getLogger("matplotlib.font_manager").info("library info")
logging.getLogger("botocore.credentials").warning("library warning")
logging.getLogger("reid.data").info("own info")
logging.getLogger("tune.runner").info("tune info")
logging.getLogger("reid.models").debug("own debug")
logging.getLogger("urllib3").debug("library debug")
"""


def _stderr(mode: str) -> str:
    # a fresh interpreter: under pytest the root logger already has handlers, so basicConfig would do nothing
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.timeout(120)
def test_default_shows_own_info_and_library_warnings_only() -> None:
    err = _stderr("default")
    assert "own info" in err and "tune info" in err and "library warning" in err
    assert "library info" not in err and "own debug" not in err and "library debug" not in err
    assert " INFO reid.data: own info" in err  # the format: time, level, logger, message


@pytest.mark.timeout(120)
def test_verbose_shows_everything() -> None:
    err = _stderr("verbose")
    for line in ("library info", "library warning", "own info", "own debug", "library debug"):
        assert line in err
