"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import logging


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", action="append", default=[], metavar="FILE",
                        help="YAML config file or packaged config name (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, e.g. model.sigma=0.3 data.seq_len=8 ray.num_workers=2")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
