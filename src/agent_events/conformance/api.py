"""Offline validation as a Python API: messages, frames or files in, a Report out.

The CLI's ``validate`` is a thin layer over :func:`validate_lines`; these
functions are what a team calls from its own tests (for example on the
messages its agent emitted into a list), with the same checker and the same
report as every other entry point.
"""

from __future__ import annotations

import errno
import gzip
import os
from typing import IO, Any, Iterable

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core.profiles import Profile
from agent_events.conformance.reporting.report import DEFAULT_POLICY, Policy, Report, Section, _now, recorded_version
from agent_events.conformance.offline.transcript import feed, frames_from_vector, iter_frames, read_lines

STDIN = "-"


def validate_messages(messages: Iterable[Any], profile: "str | Profile" = _profiles.DEFAULT_PROFILE, *,
                      policy: Policy = DEFAULT_POLICY, name: str = "messages") -> Report:
    """Check server messages (decoded JSON values, raw text ``str`` or binary ``bytes`` frames),
    as one connection received them, with no timing: latency rules are N/A."""
    from agent_events.conformance.core.checker import Checker

    started = _now()
    checker = Checker(profile)
    receive = checker.receive
    for message in messages:
        receive(message)
    checker.close()
    section = Section.from_checker(name, checker, kind="stream")
    return Report(checker.profile, [section], policy, target={"kind": "messages"}, command="api",
                  started_at=started, protocol_version=recorded_version([section]))


def validate_frames(frames: Iterable[dict], profile: "str | Profile" = _profiles.DEFAULT_PROFILE, *,
                    policy: Policy = DEFAULT_POLICY, name: str = "frames") -> Report:
    """Check frames in transcript form (``{"t", "dir", "conn", "msg"|"text"|"binary"}`` dicts),
    as the sequence vectors and :mod:`agent_events.conformance.tooling.strategies` produce them."""
    from agent_events.conformance.core.checker import Checker

    started = _now()
    checker = Checker(profile)
    feed(checker, frames_from_vector(frames, name))
    checker.close()
    section = Section.from_checker(name, checker, kind="stream")
    return Report(checker.profile, [section], policy, target={"kind": "frames"}, command="api",
                  started_at=started, protocol_version=recorded_version([section]))


def validate_lines(lines: Iterable[bytes | str], source: str, profile: "str | Profile" = _profiles.DEFAULT_PROFILE,
                   dialect: Any = None) -> Section:
    """Check one transcript or plain JSONL, streamed line by line, into one report section.

    With a foreign ``dialect`` (:mod:`agent_events.dialects`) an SSE capture is read too, and the
    dialect's judge replaces our checker. Raises
    :class:`agent_events.conformance.offline.transcript.TranscriptError` for a malformed transcript frame.
    """
    header: dict = {}
    if dialect is not None and not dialect.is_ours:
        from agent_events.dialects import make_checker
        from agent_events.dialects.offline import iter_dialect_frames

        checker = make_checker(dialect, profile)
        frames = iter_dialect_frames(read_lines(lines), source, header)
    else:
        from agent_events.conformance.core.checker import Checker  # not imported for a foreign dialect: start-up

        checker = Checker(profile)
        frames = iter_frames(read_lines(lines), source, header)
    fed = feed(checker, frames, source)
    if fed > checker.violation_counts.get("frame.size", 0):  # every line within the frame limit
        checker.external("frame.size", True, checks=fed - checker.violation_counts.get("frame.size", 0))
    checker.close()
    notes = []
    if not checker.delivery_checked and checker.frames:
        notes.append("no receive times: latency rules are not applicable")
    if not checker.starts_sent and checker.frames:
        notes.append("no client frames: runs were identified from their events; isolation is not applicable")
    if dialect is not None and not dialect.is_ours:
        notes.insert(0, f"judged as dialect {dialect.label} ({dialect.title}); {dialect.source}")
    return Section.from_checker(source, checker, kind="file", notes=notes, header=header or None)


def open_input(path: str | os.PathLike) -> IO[bytes]:
    """A binary line source for ``path`` (``-`` is stdin; ``.gz`` is decompressed on the fly)."""
    import sys

    if str(path) == STDIN:
        if sys.stdin is None or sys.stdin.closed:  # started with standard input closed (`<&-`)
            raise OSError(errno.EBADF, "standard input is closed; pipe a stream into '-' or name a file")
        return sys.stdin.buffer
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)


def validate_files(paths: Iterable[str | os.PathLike], profile: "str | Profile" = _profiles.DEFAULT_PROFILE, *,
                   policy: Policy = DEFAULT_POLICY) -> Report:
    """Check files (transcripts or plain JSONL), one report section each."""
    started = _now()
    profile = _profiles.get(profile)
    sections = []
    names = []
    for path in paths:
        name = "<stdin>" if str(path) == STDIN else str(path)
        names.append(name)
        stream = open_input(path)
        try:
            sections.append(validate_lines(stream, name, profile))
        finally:
            if str(path) != STDIN:
                stream.close()
    return Report(profile, sections, policy, target={"kind": "files", "files": names}, command="validate",
                  started_at=started, protocol_version=recorded_version(sections))


__all__ = ["validate_messages", "validate_frames", "validate_files", "validate_lines"]
