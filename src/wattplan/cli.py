"""The ``wattplan`` command.

Each subcommand lives beside the code it drives, in a private ``_cli`` module that
exposes ``register(subparsers)``; this file only wires them together, imports them
lazily where they pull in heavy dependencies, and configures logging (the library
itself only logs).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from wattplan.exceptions import WattplanError

__all__ = ["main"]

# (module that defines ``register(subparsers)``) in the order shown by ``--help``.
_COMMAND_MODULES = (
    "wattplan.optimizer._cli",
    "wattplan.sandbox._cli",
    "wattplan.auth._cli",
    "wattplan.planner._cli",
    "wattplan._serve_cli",
    "wattplan.forecast._cli",
    "wattplan._backtest_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattplan",
        description="Load-shifting optimization for households on dynamic electricity tariffs.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    if not logging.getLogger().handlers:  # like basicConfig: a host's logging stays as it is
        from wattplan._logging import configure_logging

        configure_logging("text", level)  # redacted: tokens, codes and secrets never print
    try:
        code: int = args.func(args)
    except WattplanError as exc:
        print(f"wattplan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
