"""The commands the docs show exist: every `reid ...` option, config key, packaged `--config`, method, ablation
table, search space and repository path named in a tracked markdown file (README, docs/, jobs/, tune/, results/),
a YAML or shell file (their comments) or a command's --help text is one the CLI, the config and the repository
have. A renamed flag or key then fails here, not in a user's terminal."""

from __future__ import annotations

import argparse
import re
import subprocess
import typing
from functools import cache
from pathlib import Path

import pytest
from pydantic import BaseModel

from reid.cli import build_parser
from reid.config.loader import packaged_config_path
from reid.config.schema import ExperimentConfig
from reid.registry import get_method, list_methods

ROOT = Path(__file__).resolve().parents[1]
# (file, name) pairs a doc shows on purpose although they do not exist
WRONG_ON_PURPOSE = {("docs/training.md", "data.seqlen"),  # the example of the unknown-key error
                    ("docs/tune.md", "results/fcnta-components-quality.md")}  # a table replaced, named as history
COMMAND = re.compile(r"\breid ([a-z][a-z-]+)((?: [a-z][a-z-]+)?)([^`|;\n]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
KEY = re.compile(r"(?<![\w./-])([a-z_]+(?:\.[a-z_0-9]+)+)=")
CONFIG = re.compile(r"--config[ =]([A-Za-z0-9_.-]*[A-Za-z0-9_-])")  # a sentence's full stop is not the name's
METHOD = re.compile(r"\breid (?:train|tune search) ([a-z][a-z0-9_-]*)\b")
TABLE = re.compile(r"\breid tune ablation ([a-z][a-z0-9_-]*)\b")
SPACE = re.compile(r"--space[ =]([A-Za-z][A-Za-z0-9_./-]*[A-Za-z0-9_-])")
PATH = re.compile(r"`((?:reid|tests|docs|tune|jobs|cluster|infra|results|\.ci)/[\w./-]+?)(?:::[\w\[\]-]+)?[`\s:,)]")


def tracked(*patterns: str) -> list[str]:
    return subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def doc_lines() -> list[tuple[str, int, str]]:
    """Every line of the tracked markdown files, of the YAML and shell files (recipes, ablation tables, cluster
    specs and scripts, whose comments show commands too) and of the commands' modules (their --help texts)."""
    files = tracked("*.md", "*.yaml", "*.yml", "*.sh", "reid/commands/*.py", "reid/bench/*.py")  # + the --help texts
    assert "README.md" in files and any(f.startswith("docs/") for f in files)
    assert any(f.startswith("reid/configs/") for f in files) and any(f.startswith("tune/ablations/") for f in files)
    return [(f, n, line) for f in files for n, line in enumerate((ROOT / f).read_text().splitlines(), 1)]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subs[0].choices) if subs else {}


@cache
def command_parser(name: str) -> argparse.ArgumentParser | None:
    """The parser of `reid NAME` with its options (build_parser adds them for the command it is given only)."""
    return subcommands(build_parser([name])).get(name)


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def config_keys() -> set[str]:
    """Every dotted key of the config: the sections, and model.* / loss.* of every registered method."""
    keys: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            keys.add(prefix + name)
            for t in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t, f"{prefix}{name}.")

    walk(ExperimentConfig, "")
    for method in list_methods():
        spec = get_method(method)
        walk(spec.model_params, "model.")
        walk(spec.loss_params, "loss.")
    return keys


def unknown(found: list[tuple[str, int, str]]) -> list[str]:
    return [f"{f}:{n}: {name}" for f, n, name in found if (f, name) not in WRONG_ON_PURPOSE]


def test_every_option_the_docs_show_exists():
    found = []
    for f, n, line in doc_lines():
        for m in COMMAND.finditer(line):
            parser = command_parser(m.group(1))
            if parser is None:  # prose ("reid is ...") or a command this build does not have: the next test
                continue
            word, rest = m.group(2).strip(), m.group(3)
            subs = subcommands(parser)
            if word in subs:
                allowed = options(subs[word])
            else:  # `reid tune ... --resume`: any of its subcommands' options
                rest = f" {word}{rest}"
                allowed = options(parser).union(*(options(p) for p in subs.values()))
            found += [(f, n, f"reid {m.group(1)} {word} {flag}") for flag in FLAG.findall(rest) if flag not in allowed]
    bad = unknown(found)
    assert not bad, "\n".join(bad)


def test_every_command_the_docs_show_exists():
    commands = set(subcommands(build_parser([])))
    found = [(f, n, f"reid {m.group(1)}") for f, n, line in doc_lines()
             for m in re.finditer(r"`reid ([a-z][a-z-]+)", line) if m.group(1) not in commands]
    bad = unknown(found)
    assert not bad, "\n".join(bad)


def test_every_config_key_the_docs_show_exists():
    keys = config_keys()
    sections = {k.split(".")[0] for k in keys if "." in k}
    found = [(f, n, key) for f, n, line in doc_lines() for key in KEY.findall(line)
             if key.split(".")[0] in sections and key not in keys]
    bad = unknown(found)
    assert not bad, "\n".join(bad)


def test_every_recipe_method_table_and_space_the_docs_name_exists():
    from tune.ablation import list_specs
    from tune.spaces import BUILTIN_SPACES

    methods, tables = set(list_methods()), set(list_specs())
    found = []
    for f, n, line in doc_lines():
        found += [(f, n, f"--config {c}") for c in CONFIG.findall(line)
                  if not c.endswith((".yaml", ".yml")) and not c.isupper() and packaged_config_path(c) is None]
        found += [(f, n, f"method {m}") for m in METHOD.findall(line) if m not in methods]
        found += [(f, n, f"table {t}") for t in TABLE.findall(line) if t not in tables and not t.isupper()]
        found += [(f, n, f"--space {s}") for s in SPACE.findall(line)
                  if s not in BUILTIN_SPACES and not s.isupper() and not s.endswith((".yaml", ".yml"))]
    bad = unknown(found)
    assert not bad, "\n".join(bad)


def test_every_repository_path_the_docs_name_exists():
    """`reid/data/pipeline.py`, `tests/ops/`, `tests/x.py::test_y`, `tests/ops/helpers.assert_same_weights`."""
    files = set(tracked())
    folders = {str(parent) for f in files for parent in Path(f).parents}

    def exists(path: str) -> bool:
        path = path.rstrip("/.")
        module, _, _ = path.rpartition(".")  # a module's attribute: path/module.name
        return path in files or path in folders or ("/" in module and f"{module}.py" in files)

    found = [(f, n, path) for f, n, line in doc_lines() for path in PATH.findall(line)
             if "*" not in path and not exists(path)]
    bad = unknown(found)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("broken", ["`reid train baseline --no-such-flag`", "`reid train baseline data.no_such=1`",
                                    "`reid eval RUN --config no-such-recipe`", "`reid tune ablation no-such-table`",
                                    "`reid no-such-command RUN`", "see `reid/data/no_such_module.py`"])
def test_the_checks_catch_a_broken_line(broken, monkeypatch):
    monkeypatch.setattr(f"{__name__}.doc_lines", lambda: [("docs/x.md", 1, broken)])
    checks = (test_every_option_the_docs_show_exists, test_every_command_the_docs_show_exists,
              test_every_config_key_the_docs_show_exists, test_every_recipe_method_table_and_space_the_docs_name_exists,
              test_every_repository_path_the_docs_name_exists)
    failed = 0
    for check in checks:
        try:
            check()
        except AssertionError:
            failed += 1
    assert failed == 1
