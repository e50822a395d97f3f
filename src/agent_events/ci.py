"""The GitHub Action's logic (``action.yml``): start the agent, check it, publish what it found.

``python -m agent_events.ci`` (also ``agent-events ci``) does what the composite action's
main step needs, so that the action's YAML is only wiring and the logic is tested here:

1. start the agent with ``--start CMD`` (in its own process group, its output in
   ``agent.log``), or take a running one's ``--url``. Without ``--url`` the URL is the
   first ``ws://`` / ``wss://`` URL the command prints on stdout (``agent-events serve
   --port 0`` prints exactly that), so an agent on a free port needs no fixed port;
2. wait until it is ready: ``--ready-url`` answers a GET with 2xx (``http(s)://``) or
   accepts a TCP connection (``tcp://`` or ``ws(s)://``), by default the check URL's
   host and port; a command that exits first, or a wait past ``--ready-timeout``, is exit 3;
3. run ``agent-events check`` in a child process with the given scenarios, ``--dialect``
   (passed only when given), ``--fail-on``, ``--baseline`` and one ``--report`` per format,
   into ``--report-dir``; the token is read from ``$AGENT_EVENTS_TOKEN`` by the check and
   never put on a command line;
4. stop the agent (SIGTERM to its group, SIGKILL after ``--stop-timeout``);
5. publish: append the Markdown report to ``$GITHUB_STEP_SUMMARY``, write the step outputs to
   ``$GITHUB_OUTPUT`` (``name<<DELIMITER`` blocks with a random delimiter, so no value can end
   its block early), and, under ``GITHUB_ACTIONS=true``, an ``::error`` / ``::warning``
   annotation per failing rule (GitHub shows 10 per kind and step; the summary has them all).

The exit code is the check's (0 passed, 1 failed, 2 usage, 3 unreachable, 4 internal), so the
step fails exactly when the check does. Outputs: ``verdict`` (``conformant``,
``not-conformant``, ``inconclusive``, ``passed-gate`` (not conformant, but the gate let it
through: ``--fail-on none`` or a baseline), ``usage-error``, ``unreachable``, ``internal-error``),
``exit-code``, ``passed``, ``report-dir``, one ``<format>-report`` path per format written,
``reports`` (``format=path`` lines) and ``summary-path``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from agent_events.conformance.cli_options import positive_float
from agent_events.conformance.exitcodes import ExitCode

#: The formats the action writes whatever is asked: the summary and the outputs are made from them.
ALWAYS = ("markdown", "json")
DEFAULT_FORMATS = ("markdown", "json", "junit", "sarif", "html")
EXTENSIONS = {"markdown": "md", "json": "json", "junit": "xml", "sarif": "sarif", "html": "html", "text": "txt",
              "badge": "svg"}
#: GitHub refuses a step summary over 1 MiB (and then shows none): stay under it.
SUMMARY_LIMIT = 1024 * 1024 - 4096
#: GitHub shows this many annotations of one kind per step.
ANNOTATIONS_PER_KIND = 10
_URL_IN_OUTPUT = re.compile(r"\bwss?://[^\s'\"]+")
_VERDICT_OF_EXIT = {int(ExitCode.USAGE): "usage-error", int(ExitCode.CONNECT): "unreachable",
                    int(ExitCode.INTERNAL): "internal-error"}


class CiError(Exception):
    """The action could not get as far as a check: ``code`` is the exit code, the message says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- GitHub's files and workflow commands -------------------------------------------------

def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped as the runner unescapes them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``title=``): also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(kind: str, message: str, title: str | None = None) -> str:
    """``::error title=T::message`` (``kind``: ``error``, ``warning`` or ``notice``)."""
    props = f" title={escape_property(title)}" if title else ""
    return f"::{kind}{props}::{escape_data(message)}"


def output_block(name: str, value: str) -> str:
    """One ``$GITHUB_OUTPUT`` entry in the multiline form, with a delimiter that is not in ``value``."""
    delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
    while delimiter in value:  # pragma: no cover - 128 random bits
        delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def write_outputs(outputs: dict[str, str], env: dict[str, str]) -> Path | None:
    """Append ``outputs`` to ``$GITHUB_OUTPUT`` (nothing outside Actions); returns the file."""
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as stream:
        for name, value in outputs.items():
            stream.write(output_block(name, value))
    return Path(path)


def write_summary(markdown: str, env: dict[str, str]) -> Path | None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY``, cut (and saying so) to fit GitHub's limit."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    data = markdown.encode("utf-8")
    if len(data) > SUMMARY_LIMIT:
        cut = data[:SUMMARY_LIMIT].decode("utf-8", "ignore")
        cut = cut[:cut.rfind("\n") + 1]
        if cut.count("```") % 2:  # do not leave a fence open
            cut += "```\n"
        markdown = cut + "\n... (cut to fit GitHub's 1 MiB job summary; the full report is in the report files)\n"
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return Path(path)


# -- the agent ------------------------------------------------------------------------------

@dataclass
class Agent:
    """A started agent: its process (in its own group), its log, and the URL it printed."""

    process: subprocess.Popen
    log_path: Path
    printed_urls: list[str] = field(default_factory=list)
    _url_seen: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, command: str, log_path: Path) -> "Agent":
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, text=True,
                                   encoding="utf-8", errors="replace", bufsize=1)
        agent = cls(process, log_path)
        agent._reader = threading.Thread(target=agent._pump, daemon=True)
        agent._reader.start()
        return agent

    def _pump(self) -> None:
        """Copy the agent's output to its log, noting the first URL it prints."""
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if not self.printed_urls:
                    found = _URL_IN_OUTPUT.search(line)
                    if found:
                        self.printed_urls.append(found.group(0).rstrip(".,;)"))
                        self._url_seen.set()
        self._url_seen.set()  # the output ended: nobody waits for a URL that cannot come

    def wait_for_url(self, timeout: float) -> str:
        self._url_seen.wait(timeout)
        if self.printed_urls:
            return self.printed_urls[0]
        if self.process.poll() is not None:
            raise CiError(f"the agent command exited with code {self.process.returncode} before printing a "
                          f"ws:// URL{self.log_tail()}", ExitCode.CONNECT)
        raise CiError(f"the agent printed no ws:// URL within {timeout:g} s (give --url){self.log_tail()}",
                      ExitCode.CONNECT)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return ("; its last output:\n" + "\n".join(text)) if text else ""

    def stop(self, timeout: float) -> None:
        """SIGTERM to the agent's process group, then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._reader is not None:
            self._reader.join(5)


def ready_target(ready_url: str | None, url: str) -> str:
    """What readiness is probed on: ``ready_url``, else the check URL's host and port over TCP."""
    if ready_url:
        return ready_url
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "wss" else 80)
    return f"tcp://{parsed.hostname}:{port}"


def probe(target: str, timeout: float = 2.0) -> bool:
    """One readiness probe: an HTTP GET answered with 2xx, or a TCP connection accepted."""
    parsed = urllib.parse.urlsplit(target)
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310 - the user's URL
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
    if parsed.scheme in ("tcp", "ws", "wss"):
        port = parsed.port or (443 if parsed.scheme == "wss" else 80)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                return True
        except OSError:
            return False
    raise CiError(f"--ready-url must be http://, https://, tcp://, ws:// or wss://, not {target!r}", ExitCode.USAGE)


def wait_ready(target: str, timeout: float, agent: Agent | None, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if probe(target):
            return
        if agent is not None and agent.process.poll() is not None:
            raise CiError(f"the agent command exited with code {agent.process.returncode} before {target} was "
                          f"ready{agent.log_tail()}", ExitCode.CONNECT)
        if time.monotonic() >= deadline:
            raise CiError(f"{target} was not ready within {timeout:g} s"
                          + (agent.log_tail() if agent is not None else ""), ExitCode.CONNECT)
        time.sleep(interval)


# -- the check ------------------------------------------------------------------------------

def split_list(values: Sequence[str] | None) -> list[str]:
    """Scenarios or formats given as repeated flags, commas, spaces or lines (an action input is one string)."""
    return [item for value in values or () for item in re.split(r"[\s,]+", value) if item]


def report_paths(formats: Sequence[str], report_dir: Path) -> dict[str, Path]:
    chosen = list(dict.fromkeys([*ALWAYS, *formats]))
    unknown = [f for f in chosen if f not in EXTENSIONS]
    if unknown:
        raise CiError(f"unknown report format(s) {', '.join(unknown)}; known: {', '.join(EXTENSIONS)}", ExitCode.USAGE)
    return {fmt: report_dir / f"agent-events.{EXTENSIONS[fmt]}" for fmt in chosen}


def check_command(args, url: str, reports: dict[str, Path]) -> list[str]:
    command = [sys.executable, "-m", "agent_events.conformance.cli", "check", url]
    for scenario in split_list(args.scenarios):
        command += ["--scenario", scenario]
    if args.dialect:  # only when given: a kit without --dialect must still work without it
        command += ["--dialect", args.dialect]
    if args.fail_on:
        command += ["--fail-on", args.fail_on]
    if args.baseline:
        command += ["--baseline", args.baseline]
    if args.record:
        command += ["--record", str(Path(args.report_dir) / "transcript.jsonl")]
    for fmt, path in reports.items():
        command += ["--report", f"{fmt}={path}"]
    command += shlex.split(args.check_args or "")
    return command


def verdict_of(code: int, data: dict | None) -> str:
    if data is None:
        return _VERDICT_OF_EXIT.get(code, "internal-error")  # no report: nothing was judged
    if not data.get("conformant"):
        return "passed-gate" if data.get("passed_gate") else "not-conformant"
    inconclusive = data.get("summary", {}).get("rules", {}).get("INCONCLUSIVE", 0)
    return "inconclusive" if inconclusive else "conformant"


def annotations(data: dict) -> list[str]:
    """One annotation per rule that failed or warned in a section, failures first, at most 10 per kind."""
    lines: dict[str, list[str]] = {"error": [], "warning": []}
    for section in data.get("sections", []):
        for rule in section.get("rules", []):
            kind = {"FAIL": "error", "WARN": "warning"}.get(rule["status"])
            if kind is None:
                continue
            first = next((v for v in section.get("violations", []) if v["rule"] == rule["id"]), None)
            message = f"{section['name']}: {rule['title']} ({rule['violations']} violation(s))"
            if first:
                message += f"\nexpected: {first['expected']}\nobserved: {first['observed']}"
            lines[kind].append(annotation(kind, message, f"agent-events {rule['id']} [{rule['level']}]"))
    out = []
    for kind, found in lines.items():
        out += found[:ANNOTATIONS_PER_KIND]
        if len(found) > ANNOTATIONS_PER_KIND:
            out.append(annotation("notice", f"{len(found) - ANNOTATIONS_PER_KIND} more {kind} annotation(s): "
                                            "see the job summary"))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-events ci",
        description="Check an agent in GitHub Actions: start it, check it, write the job summary, the step "
                    "outputs and annotations. Exit code: the check's.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    agent = parser.add_argument_group("the agent")
    agent.add_argument("--url", default=None, help="the endpoint to check (default: the first ws:// URL --start prints)")
    agent.add_argument("--start", default=None, metavar="CMD", help="shell command that starts the agent; stopped after")
    agent.add_argument("--ready-url", default=None, metavar="URL",
                       help="readiness probe: http(s):// answering 2xx, or tcp://HOST:PORT (default: the URL's host and port)")
    agent.add_argument("--ready-timeout", type=positive_float, default=60.0, metavar="S", help="how long to wait for it (default 60)")
    agent.add_argument("--stop-timeout", type=positive_float, default=10.0, metavar="S",
                       help="time between SIGTERM and SIGKILL when stopping it (default 10)")
    check = parser.add_argument_group("the check")
    check.add_argument("--scenario", "--scenarios", dest="scenarios", action="append", default=None, metavar="NAMES",
                       help="scenarios to run, comma- or space-separated (repeatable; default all)")
    check.add_argument("--dialect", default=None, help="passed to check as --dialect when given")
    check.add_argument("--fail-on", default=None, choices=("error", "warning", "none"), help="passed to check")
    check.add_argument("--baseline", default=None, metavar="FILE", help="passed to check")
    check.add_argument("--record", action="store_true", help="also write the transcript to REPORT_DIR/transcript.jsonl")
    check.add_argument("--check-args", default=None, metavar="ARGS", help="more check flags, split as a shell would")
    out = parser.add_argument_group("reports")
    out.add_argument("--reports", "--report-formats", dest="formats", action="append", default=None, metavar="FORMATS",
                     help=f"formats to write, comma-separated (default {','.join(DEFAULT_FORMATS)}; "
                          f"{' and '.join(ALWAYS)} always)")
    out.add_argument("--report-dir", default="agent-events-reports", metavar="DIR",
                     help="where the reports go (default agent-events-reports)")


def run(args, env: dict[str, str] | None = None, stdout=None) -> int:
    env = dict(os.environ if env is None else env)
    stdout = stdout or sys.stdout
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    report_dir = Path(args.report_dir)
    agent: Agent | None = None
    code: int
    data: dict | None = None
    problem: str | None = None
    reports: dict[str, Path] = {}
    try:
        if not args.url and not args.start:
            raise CiError("give --url, --start, or both", ExitCode.USAGE)
        reports = report_paths(split_list(args.formats) or DEFAULT_FORMATS, report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        for path in reports.values():
            path.unlink(missing_ok=True)  # a report left by an earlier run must not pass for this one's
        if args.start:
            agent = Agent.start(args.start, report_dir / "agent.log")
        url = args.url or agent.wait_for_url(args.ready_timeout)
        wait_ready(ready_target(args.ready_url, url), args.ready_timeout, agent)
        command = check_command(args, url, reports)
        print(f"agent-events ci: {shlex.join(command[1:])}", file=stdout, flush=True)
        if in_actions:
            print("::group::agent-events check", file=stdout, flush=True)
        completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace")
        stdout.write(completed.stdout)
        if in_actions:
            print("::endgroup::", file=stdout, flush=True)
        code = completed.returncode
        try:
            data = json.loads(reports["json"].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
            problem = "\n".join(completed.stdout.strip().splitlines()[-15:]) or f"check exited with code {code}"
    except CiError as exc:
        code, problem = int(exc.code), str(exc)
        print(f"agent-events ci: {exc}", file=sys.stderr, flush=True)
    finally:
        if agent is not None:
            agent.stop(args.stop_timeout)
    verdict = verdict_of(code, data)
    written = {fmt: path for fmt, path in reports.items() if path.exists()}
    if data is not None and "markdown" in written:
        summary = written["markdown"].read_text(encoding="utf-8")
    else:
        summary = (f"## agent-events conformance report\n\n\u274c **{verdict}** (exit {code}): no report was "
                   f"written.\n\n```text\n{(problem or '').replace('```', '` ` `')}\n```\n")
    summary_path = write_summary(summary, env)
    outputs = {"verdict": verdict, "exit-code": str(code), "passed": "true" if code == 0 else "false",
               "report-dir": str(report_dir),
               **{f"{fmt}-report": str(path) for fmt, path in written.items()},
               "reports": "\n".join(f"{fmt}={path}" for fmt, path in written.items()),
               "summary-path": str(summary_path or "")}
    write_outputs(outputs, env)
    if in_actions:
        lines = annotations(data) if data is not None else [annotation("error", problem or verdict,
                                                                       f"agent-events: {verdict}")]
        for line in lines:
            print(line, file=stdout)
        stdout.flush()
    print(f"agent-events ci: verdict {verdict}, exit {code}", file=stdout, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
