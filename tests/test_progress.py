"""Progress lines: tqdm's bar on a terminal; elsewhere one line per refresh, no carriage returns, the last counts."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from reid import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _enabled(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # tests/conftest.py sets it for the rest of the suite
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)


def test_off_a_terminal_each_refresh_is_a_line_and_the_last_counts_close_it(monkeypatch):
    monkeypatch.setattr(progress, "PERIOD_S", 0.0)
    out = io.StringIO()
    assert list(progress.bar(range(4), desc="pack jpeg", unit="tracklets", file=out)) == [0, 1, 2, 3]
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert lines[0].startswith("pack jpeg: 0/4 tracklets (0%)")
    assert lines[-1].startswith("pack jpeg: 4/4 tracklets (100%)") and lines[-1].endswith(" tracklets/s")
    assert [ln.split(" ")[2] for ln in lines] == ["0/4", "1/4", "2/4", "3/4", "4/4"]  # the last not twice


def test_off_a_terminal_lines_come_at_most_once_a_period():
    out = io.StringIO()  # PERIOD_S = 30 s: the first line, then only the close's final counts
    bar = progress.bar(total=1000, desc="pose", unit="tracklets", file=out)
    for _ in range(1000):
        bar.update(1)
    bar.set_postfix(loss="0.5", refresh=False)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("pose: 1000/1000 tracklets (100%)") and "loss=0.5" in lines[1]


def test_a_manual_bar_without_total_and_a_bar_that_clears_itself():
    out = io.StringIO()
    bar = progress.bar(desc="decode", unit="clips", file=out)
    bar.update(5)
    bar.close()
    assert out.getvalue().splitlines()[-1].startswith("decode: 5 clips ")
    out = io.StringIO()
    list(progress.bar(range(3), desc="features", leave=False, file=out))  # a log cannot clear a line: it ends done
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2 and lines[-1].startswith("features: 3/3 it (100%)")


def test_on_a_terminal_it_is_tqdms_bar():
    out = _Terminal()
    list(progress.bar(range(3), desc="synth", unit="tracklets", file=out))
    assert "\r" in out.getvalue() and "synth: 100%" in out.getvalue()


def test_the_period_from_tqdms_variable_and_a_bad_value_ignored(monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    out = io.StringIO()
    list(progress.bar(range(3), desc="x", file=out))
    assert len(out.getvalue().splitlines()) == 4  # 0, 1, 2, 3: every refresh
    monkeypatch.setenv("TQDM_MININTERVAL", "often")
    out = io.StringIO()
    list(progress.bar(range(3), desc="x", file=out))
    assert len(out.getvalue().splitlines()) == 2  # PERIOD_S: the first line and the last


def test_disabled_by_flag_or_by_tqdms_variable(monkeypatch):
    out = io.StringIO()
    assert list(progress.bar(range(3), desc="x", disable=True, file=out)) == [0, 1, 2]
    monkeypatch.setenv("TQDM_DISABLE", "1")
    list(progress.bar(range(3), desc="x", file=out))
    assert out.getvalue() == ""


@pytest.mark.timeout(60)
def test_a_command_s_progress_in_a_log_file_is_lines(tmp_path):
    """What `ray job logs` shows for `reid synth`: stderr is a file, every line ends with a newline."""
    log = tmp_path / "synth.log"
    with log.open("w") as err:
        subprocess.run([sys.executable, "-m", "reid.cli", "synth", "--preset", "tiny", "--out", str(tmp_path / "d")],
                       stderr=err, stdout=subprocess.DEVNULL, check=True,
                       env={k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"})
    text = log.read_text()
    assert "\r" not in text
    assert any(ln.startswith("synth: ") and "(100%)" in ln for ln in text.splitlines()), text[-2000:]


def test_a_slow_loop_reads_in_seconds_per_item(monkeypatch):
    monkeypatch.setattr(progress, "PERIOD_S", 0.0)
    clock = iter(range(0, 10_000, 30))  # every reading of the clock 30 s later: 2 readings per item
    monkeypatch.setattr("tqdm.std.time", lambda: float(next(clock)))
    out = io.StringIO()
    list(progress.bar(range(3), desc="pose", unit="tracklets", file=out))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("? tracklets/s") and lines[-1].startswith("pose: 3/3 tracklets (100%)"), lines
    assert all(ln.endswith(" s/tracklet") and " s/ " not in ln for ln in lines[1:]), lines
    assert progress.rate_text(50.071, "tracklets") == "50.07 tracklets/s"
    assert progress.rate_text(1 / 32.4, "tracklets") == "32.4 s/tracklet"
    assert progress.rate_text(0.5, "it") == "2.0 s/it" and progress.rate_text(None, "clips") == "? clips/s"
