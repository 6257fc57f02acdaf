"""The `reid` command. Each subcommand lives in `reid/commands/<name>.py` with `add_arguments` and `run`.

Errors the user can act on (`ReidError`) are printed as one message without a traceback, exit status 2 (the same
status argparse uses for unknown options). Any other failure prints one line with its cause, the file holding the
traceback and Ray's log folder, exit status 1 (`reid.commands.failure`). Ctrl-C prints `interrupted` (status 130),
a SIGTERM once Ray is up (`ray job stop`) `stopped (SIGTERM)` (status 143; reid.ray_runtime.stop_on_sigterm).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from reid.commands.failure import TRACEBACK_ENV, report_failure
from reid.commands.versions import version_text
from reid.errors import ReidError
from reid.ray_runtime import sigterm_received

# name -> one-line help; the module reid.commands.<name> provides add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, str] = {
    "demo": "the main job: synthesize the demo set, train the baseline on Ray, evaluate, write the report",
    "synth": "generate the synthetic video re-ID dataset",
    "prepare": "turn a dataset on disk (MARS, iLIDS-VID, PRID-2011, Duke, generic) into a manifest",
    "train": "train a method with Ray Train",
    "eval": "evaluate a checkpoint on a dataset and protocol",
    "report": "write the HTML report of a run",
    "tune": "Ray Tune + Optuna sweeps and the papers' ablation tables",
    "pose": "estimate keypoints with Keypoint R-CNN as a Ray Data job",
    "transfer-attributes": "adfta attribute transfer: label a target dataset from a source attribute set",
    "bench": "benchmarks: data pipeline, evaluation, training, the GPU checks, keypoints",
    "export": "export a run's feature extractor (ONNX / TorchScript, preprocessing in the graph)",
    "index": "embed a gallery with Ray Data batch inference into a FAISS index",
    "search": "search an index with a tracklet (frames directory, video or manifest row)",
    "serve": "serve an index over HTTP with Ray Serve",
}


class _Version(argparse.Action):
    """--version, computed only when asked (it may run git)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="print the versions of reid, Python, Ray and torch")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_text())
        parser.exit()


def _available() -> dict[str, str]:
    out = {}
    for name, help_text in COMMANDS.items():
        module = "reid.commands." + name.replace("-", "_")
        if importlib.util.find_spec(module) is not None:
            out[name] = help_text
    return out


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the module of the chosen subcommand is imported (some import torch and Ray, which is slow)."""
    parser = argparse.ArgumentParser(
        prog="reid",
        description="Video-based person re-identification at scale on Ray (Train, Data, Tune).",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args if not a.startswith("-")), None)
    for name, help_text in _available().items():
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module("reid.commands." + name.replace("-", "_"))
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost parser of the command line (`reid bench data ...` -> that of `bench data`), so that an error
    about leftover tokens shows the usage the user needs, not the top-level one."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if chosen not in (subs[0].choices if subs else {}):
            return parser
        parser = subs[0].choices[chosen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    if not (sys.argv[1:] if argv is None else list(argv)):  # bare `reid`: the commands, not only "required"
        parser.print_help(sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    # argparse cannot continue a nargs="*" positional after options (`reid train m --config f a.b=1`): dotted
    # key=value tokens left over are overrides; anything else is still an error with usage (exit 2).
    if extra:
        if hasattr(args, "overrides") and all("=" in t and not t.startswith("-") for t in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except ReidError as exc:
        print(f"reid {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # SIGTERM: `ray job stop`, a pod ending (reid.ray_runtime.stop_on_sigterm; what reaches here may be the
        # KeyboardInterrupt that Ray Train raises in its place)
        if sigterm_received():
            print(f"reid {args.command}: stopped (SIGTERM)", file=sys.stderr)
            return 143
        print(f"reid {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # anything else (a Ray Train run that failed, a cluster that did not start): one line naming the cause and
        # the logs to read; the traceback goes to a file (REID_TRACEBACK=1 prints it instead)
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(report_failure(args.command, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
