"""``agent-events validate FILE... | -``: check recorded streams offline."""

from __future__ import annotations

from pathlib import Path

from agent_events.conformance.api import STDIN, open_input, validate_lines
from agent_events.conformance.commands import publish
from agent_events.conformance.cli_options import add_check_options, settings_from_args
from agent_events.conformance.reporting.report import Report, _now, recorded_version
from agent_events.conformance.reporting.terminal import FileProgress, add_verbosity_arguments
from agent_events.conformance.offline.transcript import TranscriptError, read_lines

HELP = "check recorded streams (JSONL transcripts or plain server messages) offline"
DESCRIPTION = (
    "Check recorded streams against protocol v1: JSONL transcripts written by `agent-events record` "
    "or `check --record` (one frame per line, with direction, receive time and connection), or plain "
    "JSONL of server messages (then latency rules are not applicable, and isolation too without client "
    "frames). '-' reads standard input; a .gz file is decompressed. Files are streamed: memory stays flat "
    "however large they are. Exit codes: 0 the gate passed (by default: conformant), 1 the gate failed, 2 usage or input error, 4 internal error."
)

#: Bytes looked at to tell a text file from a binary one.
SNIFF_BYTES = 8192


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="a transcript or JSONL file; '-' for standard input")
    add_check_options(parser)
    add_verbosity_arguments(parser)


def _check_paths(files: list[str]) -> None:
    from agent_events.conformance.cli import UsageError

    if files.count(STDIN) > 1:
        raise UsageError("'-' (standard input) can be given only once")
    for name in files:
        if name == STDIN:
            continue
        path = Path(name)
        if not path.exists():
            raise UsageError(f"{name}: no such file")
        if path.is_dir():
            raise UsageError(f"{name}: is a directory, not a JSONL file")


def _sniff(stream, name: str) -> None:
    """Refuse binary data early: it would be a million frame.json violations, not a finding."""
    from agent_events.conformance.cli import UsageError

    peek = getattr(stream, "peek", None)
    head = peek(SNIFF_BYTES)[:SNIFF_BYTES] if peek is not None else b""
    if b"\x00" in head:
        raise UsageError(f"{name}: not a JSONL file (binary content); expected one JSON message or frame per line")


def run(args) -> int:

    settings = settings_from_args(args, command="validate")
    _check_paths(args.files)
    started = _now()
    sections = []
    names = []
    progress = FileProgress(len(args.files), enabled=None if not args.quiet else False)
    try:
        for path in args.files:
            sections.append(_validate_one(path, names, settings, progress))
            progress.file_done()
    finally:
        progress.clear()
    report = Report(settings.profile, sections, settings.policy, target={"kind": "files", "files": names},
                    command="validate", started_at=started, protocol_version=recorded_version(sections),
                    dialect=settings.dialect)
    publish(report, settings, args)
    return report.exit_code()


def _validate_one(path: str, names: list[str], settings, progress: FileProgress):
    """One file's section (its name appended to ``names``); a bad file is a ``UsageError``."""
    from agent_events.conformance.cli import UsageError

    name = "<stdin>" if path == STDIN else path
    names.append(name)
    try:
        stream = open_input(path)
    except OSError as exc:
        raise UsageError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        _sniff(stream, name)
        section = validate_lines(progress.lines(read_lines(stream), name), name, settings.profile, settings.dialect)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, EOFError) as exc:  # unreadable, or a truncated .gz
        raise UsageError(f"{name}: cannot read: {exc}") from None
    finally:
        if path != STDIN:
            stream.close()
    if not section.stats.get("frames"):
        raise UsageError(f"{name}: no messages (the file is empty or holds only a transcript header)")
    return section
