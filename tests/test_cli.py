import argparse
import re

import pytest

from reid.cli import COMMANDS, build_parser, main
from reid.errors import Terminated


def test_unknown_subcommand_and_option_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nosuchcommand"])
    assert exc.value.code == 2 and "usage: reid" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "baseline", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in err
    # the usage shown is that of the command the user typed, down to a nested one
    assert "usage: reid train" in err and "reid train: error:" in err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "eval", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage: reid bench eval" in err and "reid bench eval: error:" in err


def test_bare_reid_lists_the_commands_and_version_names_what_a_bug_report_needs(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: reid" in err and all(name in err for name in COMMANDS)
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert re.match(r"reid \d+\.\d+\.\d+( \(commit [0-9a-g-]+(-dirty)?\))?\nPython 3\.\d+\.\d+, ray \S+, torch \S+, "
                    r"torchvision \S+\n$", out), out


def parsers_below(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every subcommand's parser under it (`reid tune` -> tune, tune search, tune ablation, ...)."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += parsers_below(sub)
    return out


def check_help_texts(top: argparse.ArgumentParser) -> None:
    """In a 120-column terminal no line of the help of `top` or of its subcommands runs past the edge, and every
    argument says what it is."""
    for parser in parsers_below(top):
        long = [line for line in parser.format_help().splitlines() if len(line) > 120]
        assert not long, (parser.prog, long)
        bare = [a.option_strings or a.dest for a in parser._actions
                if a.help is None and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        assert not bare, (parser.prog, bare)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"usage: reid {name}" in capsys.readouterr().out
    monkeypatch.setenv("COLUMNS", "120")
    command = next(a for a in build_parser([name])._actions if isinstance(a, argparse._SubParsersAction))
    check_help_texts(command.choices[name])


def test_the_job_tools_help_says_what_each_argument_is(monkeypatch):
    from jobs import local_cluster, submit

    monkeypatch.setenv("COLUMNS", "120")
    check_help_texts(submit.build_parser())
    check_help_texts(local_cluster.build_parser())


def test_overrides_may_follow_options():
    args, extra = build_parser(["train", "baseline", "--config", "x", "a.b=1"]).parse_known_args(
        ["train", "baseline", "--config", "x", "a.b=1"])
    assert extra == ["a.b=1"] or args.overrides == ["a.b=1"]


def test_config_errors_are_one_line_without_traceback(capsys):
    assert main(["train", "baseline", "data.seqlen=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'data.seqlen' (did you mean 'seq_len'?)" in err and "Traceback" not in err
    assert main(["train", "baseline", "data.zzz=3"]) == 2  # nothing close: no guess
    err = capsys.readouterr().err
    assert "unknown key 'data.zzz'; allowed keys here: attributes, augment" in err


def test_an_audit_log_of_an_in_process_run_is_refused_in_one_line(capsys, tmp_path):
    log = tmp_path / "audit.jsonl"
    assert main(["train", "baseline", "ray.num_workers=0", "--audit-log", str(log)]) == 2
    err = capsys.readouterr().err
    assert "--audit-log logs Ray Train's reports: it needs ray.num_workers >= 1" in err and "Traceback" not in err
    assert not log.exists()


@pytest.mark.parametrize("exc,signalled,code,line", [
    (KeyboardInterrupt(), False, 130, "reid demo: interrupted"),
    (Terminated("signal 15"), True, 143, "reid demo: stopped (SIGTERM)"),
    (KeyboardInterrupt(), True, 143, "reid demo: stopped (SIGTERM)"),  # what Ray Train raises in its place
])
def test_ctrl_c_and_sigterm_end_in_one_line(exc, signalled, code, line, monkeypatch, capsys):
    import reid.cli as cli
    import reid.commands.demo as demo

    def stopped(args):
        raise exc

    monkeypatch.setattr(demo, "run", stopped)
    monkeypatch.setattr(cli, "sigterm_received", lambda: signalled)
    assert main(["demo"]) == code
    assert capsys.readouterr().err.strip() == line
