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
from typing import Any

from wattplan.exceptions import MissingExtraError, WattplanError

__all__ = ["main"]

# (module that defines ``register(subparsers)``, the extra it needs, the commands it adds)
# in the order shown by ``--help``. When the extra is not installed, each command is still
# listed and says which extra to install.
_COMMAND_MODULES: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("wattplan.optimizer._cli", None, ("plan", "schema")),
    ("wattplan.sandbox._cli", "sandbox", ("sandbox",)),
    ("wattplan.auth._cli", "auth", ("login",)),
    ("wattplan.planner._cli", "planner", ("run", "status", "demo")),
    ("wattplan._serve_cli", "planner", ("serve",)),
    ("wattplan.forecast._cli", "forecast", ("forecast",)),
    ("wattplan._backtest_cli", None, ("backtest",)),
)


def _register_missing(sub: Any, commands: tuple[str, ...], error: MissingExtraError) -> None:
    """List ``commands`` whose extra is missing; running one reports the extra to install."""

    def _fail(_args: argparse.Namespace) -> int:
        raise error

    for command in commands:
        p = sub.add_parser(command, help=f"(needs {error.pip_command})", add_help=False)
        p.set_defaults(func=_fail, missing_extra=True)  # takes any arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattplan",
        description="Load-shifting optimization for households on dynamic electricity tariffs.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, _extra, commands in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except MissingExtraError as exc:
            _register_missing(sub, commands, exc)
        else:
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "missing_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
