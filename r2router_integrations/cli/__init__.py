"""The ``r2router`` command line (also ``python -m r2router_integrations``).

The command line sits above the core and the integrations, so every import
points down: each subcommand is a thin module here exposing
``add_parser(subparsers)`` and ``run(args) -> int`` that parses arguments and
calls the library. Modules are imported only when their command runs, so
``r2router route`` never imports LangChain or the server.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from r2router_core import R2RouterError

__all__ = ["main"]

# command name -> module that implements it
COMMANDS: dict[str, str] = {
    "route": "r2router_integrations.cli.route",
    "route-batch": "r2router_integrations.cli.route_batch",
    "train": "r2router_integrations.cli.train",
    "info": "r2router_integrations.cli.info",
    "eval": "r2router_integrations.cli.eval",
    "calibrate": "r2router_integrations.cli.calibrate",
    "serve": "r2router_integrations.cli.serve",
    "demo": "r2router_integrations.cli.demo",
    "collect": "r2router_integrations.cli.collect",
    "report": "r2router_integrations.cli.report",
}


# command name -> the extra that installs what it needs
EXTRAS = {
    "route-batch": "batch",
    "eval": "eval",
    "calibrate": "eval",
    "serve": "server",
    "demo": "langchain",
    "collect": "collect",
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _requested_command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (skipping --log-level's value), so only its module is imported."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--log-level")
    pre.add_argument("command", nargs="?")
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:
        return None  # the full parser reports the usage error
    return known.command if known.command in COMMANDS else None


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every available subcommand (those whose module imports).

    Raises:
        MissingDependencyError: A single requested command whose extra is missing.
    """
    parser = argparse.ArgumentParser(
        prog="r2router",
        description="Route each prompt to an (LLM, output-token budget) pair.",
        epilog="Run 'r2router COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=LOG_LEVELS,
        help="logging level (default: WARNING)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands or COMMANDS:
        try:
            module = importlib.import_module(COMMANDS[name])
        except ImportError as exc:
            if commands is not None:
                from r2router_core import missing_dependency

                raise missing_dependency(exc.name or "?", EXTRAS.get(name, "all"), f"'r2router {name}'") from exc
            continue  # the command's optional extra is not installed
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``r2router`` command; returns the exit code.

    Exit codes (table in docs/errors.md): 0 success, 1 an r2router error, 2 a usage error or a flag
    out of range, 3 the store, 4 the network, 5 the port, 6 a permission, 130 Ctrl-C, 141 a closed
    pipe (quiet). Every failure but a bug is one line on stderr (see ``common.run_command``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = _requested_command(argv)
    try:
        parser = build_parser([wanted] if wanted else None)
    except R2RouterError as exc:
        print(f"r2router: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from r2router_integrations.cli.common import run_command

    return run_command(args)
