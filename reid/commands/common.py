"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import logging


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", action="append", default=[], metavar="FILE",
                        help="YAML config file or packaged config name (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, e.g. model.sigma=0.3 data.seq_len=8 ray.num_workers=2")


OWN_LOGGERS = ("reid", "tune", "jobs")


def setup_logging(verbose: bool = False) -> None:
    """The console log of a command: this project's loggers (OWN_LOGGERS) at INFO, every other library at WARNING,
    so that a library's INFO line (matplotlib's "generated new fontManager" on a fresh machine, botocore's "Found
    credentials ...") does not land between the command's own lines; `verbose`: everything at DEBUG."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
