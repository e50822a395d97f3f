"""The CLI reference, generated from the CLI's own argparse definitions.

The parser is built with :func:`agent_events.conformance.cli.build_parser`, the same
function ``agent-events`` runs, so every subcommand and option is documented
the moment it exists, and an option is never listed by hand in the docs.
The exit codes come from :mod:`agent_events.conformance.exitcodes`, with their meaning
taken from the ``#:`` comments that document each member there.
"""

from __future__ import annotations

import argparse
from typing import Iterator

from docgen_code import member_comments
from docgen_markdown import code, table, text_block

WIDTH = 80


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Name -> (sub-parser, one-line help), in the order of ``--help``."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found[name] = (sub, helps.get(name, ""))
    return found


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="usage: ")
    return formatter.format_help()


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The option's help with ``%(default)s`` and friends expanded, as ``--help`` shows it."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    try:
        return argparse.HelpFormatter(parser.prog)._expand_help(action)
    except (KeyError, TypeError, ValueError):
        return action.help


def value_of(action: argparse.Action) -> str:
    if not action.option_strings:  # a positional: its name is already the metavar
        return {"?": "optional", "*": "zero or more", "+": "one or more"}.get(action.nargs, "required")
    if action.nargs == 0:
        return "flag"
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "one of " + ", ".join(code(c) for c in action.choices)
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    value = code(metavar)
    if action.nargs in ("*", "+"):
        value += " …"
    elif action.nargs == "?":
        value += " (optional)"
    return value


def default_of(action: argparse.Action) -> str:
    default = action.default
    if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 and default is False:
        return ""
    if isinstance(action, argparse._AppendAction) and not default:
        return ""
    return code(default if isinstance(default, str) else repr(default))


def argument_rows(parser: argparse.ArgumentParser, actions) -> Iterator[tuple[str, str, str, str]]:
    for action in actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(code(o) for o in action.option_strings) or code(action.metavar or action.dest)
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        help_ = help_text(parser, action)
        if isinstance(action, (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)) \
                and "repeatable" not in help_:
            notes.append("repeatable")
        description = help_ + (f" ({', '.join(notes)})" if notes else "")
        yield name, value_of(action), default_of(action), description


def arguments(parser: argparse.ArgumentParser, heading: str = "####") -> str:
    out = []
    for group in parser._action_groups:
        rows = list(argument_rows(parser, group._group_actions))
        if not rows:
            continue
        out.append(f"{heading} {group.title[:1].upper()}{group.title[1:]}\n")
        if group.description:
            out.append(group.description + "\n")
        out.append(table(["argument", "value", "default", "description"], rows))
    return "\n".join(out)


def pytest_plugin_options() -> str:
    """The pytest plugin's options, rendered like a subcommand's (they are argparse declarations too)."""
    try:
        from agent_events.conformance.tooling.pytest_plugin import options
    except ImportError:
        return ""
    parser = argparse.ArgumentParser(prog="pytest", add_help=False)
    group = parser.add_argument_group("pytest options")
    for flag, kwargs in options():
        group.add_argument(flag, **kwargs)
    rows = list(argument_rows(parser, group._group_actions))
    return (
        "## pytest plugin {#pytest-plugin}\n\n"
        "Installing agent-events registers a pytest plugin (entry point `pytest11`). With "
        "`--agent-events-url` it collects the conformance suite as test items, one per scenario and rule; "
        "without it, it adds nothing. Its options mirror `agent-events check`'s:\n\n"
        + table(["option", "value", "default", "description"], rows)
    )


def exit_codes() -> list[tuple[int, str, str]]:
    """(value, name, meaning) of every exit code, the meaning from its ``#:`` comment."""
    from agent_events.conformance import exitcodes

    meanings = member_comments(exitcodes.ExitCode)
    return [(int(member), member.name, meanings.get(member.name, "")) for member in exitcodes.ExitCode]


def exit_code_table() -> str:
    return table(["exit code", "name", "meaning"], ((code(v), code(n), m) for v, n, m in exit_codes()))


def cli_reference() -> str:
    from agent_events.conformance.cli import build_parser

    parser = build_parser()
    commands = subcommands(parser)
    out = [
        "## Synopsis {#synopsis}\n",
        text_block(usage(parser)),
        (parser.description or "") + "\n",
        arguments(parser, "###"),
        "Subcommands:\n",
        table(["command", "what it does"],
              ((f"[{code(name)}](#agent-events-{name})", help_) for name, (_, help_) in commands.items())),
    ]
    for name, (sub, help_) in commands.items():
        out.append(f"## `agent-events {name}` {{#agent-events-{name}}}\n")
        out.append(f"{help_[:1].upper()}{help_[1:]}.\n" if help_ else "")
        if sub.description and sub.description != help_:
            out.append(sub.description + "\n")
        out.append(text_block(usage(sub)))
        out.append(arguments(sub))
        if sub.epilog:
            out.append(sub.epilog + "\n")
    out.append(pytest_plugin_options())
    out += ["## Exit codes {#exit-codes}\n",
            "Every command exits with one of these; CI systems gate on them, so they never change meaning.\n",
            exit_code_table()]
    return "\n".join(out)
