"""The ``agent-events`` command line: a thin layer over the Python API.

Arguments are parsed apart from running (as check-jsonschema does), so tests
and the docs' CLI reference can build the parser without running anything.
Each subcommand lives in its own module under ``agent_events.conformance.commands`` and
exposes ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; this file
only wires them together and turns errors into the documented exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from typing import Sequence

from agent_events.conformance import __version__
from agent_events.conformance.exitcodes import ExitCode

#: Subcommand name -> module. The order is the order of ``--help``.
COMMANDS: dict[str, str] = {
    "demo": "agent_events.conformance.commands.demo",
    "check": "agent_events.conformance.commands.check",
    "validate": "agent_events.conformance.commands.validate",
    "record": "agent_events.conformance.commands.record",
    "serve": "agent_events.conformance.commands.serve",
    "proxy": "agent_events.conformance.commands.proxy",
    "load": "agent_events.conformance.commands.load",
    "schema": "agent_events.conformance.commands.schema",
    "ci": "agent_events.conformance.commands.ci",
}

BUG_REPORT_URL = "https://github.com/agent-events/agent-events/issues"


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2, no traceback."""


def available_commands(only: str | None = None) -> dict[str, object]:
    """The subcommand modules that exist in this installation (just ``only``'s, when given)."""
    found = {}
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        if importlib.util.find_spec(module) is not None:
            found[name] = importlib.import_module(module)
    return found


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` starts with, if any (with a top-level option first, ``--help``
    say, the whole parser is built: it lists every command)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that subcommand's (importing every command
    module cost ``validate`` a tenth of a second of start-up: the live check and the reference
    agent it never uses)."""
    parser = argparse.ArgumentParser(
        prog="agent-events",
        description="Reference specification and conformance kit for AI-agent event streams over WebSocket.",
        epilog="Exit codes: 0 the gate passed (by default: conformant, every MUST rule held), 1 the gate failed, "
        "2 usage or config error, "
        "3 could not connect, 4 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"agent-events {__version__} (protocol v1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in available_commands(only).items():
        sp = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; argparse itself exits 2 on a usage error, as documented."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(ExitCode.USAGE)
    return args


def run(args: argparse.Namespace) -> int:
    return int(args._run(args))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return run(args)
    except UsageError as exc:
        print(f"agent-events: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:
        # The reader went away (``agent-events demo | head``): not our error, and
        # nothing left to say. Point stdout at /dev/null so the interpreter's
        # final flush does not raise again, and exit as a process killed by
        # SIGPIPE would (128 + 13), as coreutils do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("agent-events: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
        print(
            f"agent-events: internal error: {type(exc).__name__}: {exc}\n"
            f"This is a bug in agent-events {__version__}. Please report it at {BUG_REPORT_URL}\n"
            "with the command line you ran and the traceback below.\n",
            file=sys.stderr,
        )
        traceback.print_exc(file=sys.stderr)
        return ExitCode.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    # Run as `python -m`, this file is __main__, a second copy of the module: the commands raise
    # agent_events.conformance.cli.UsageError, so its main must be the one that catches them.
    from agent_events.conformance.cli import main as _main

    sys.exit(_main())
