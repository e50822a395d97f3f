"""The CLI's shared behaviour: version, help, usage errors and the schema command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent_events import schemas
from agent_events.conformance import __version__
from agent_events.conformance.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", *args], capture_output=True, text=True, timeout=60)


def test_version_names_the_kit_and_protocol():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"agent-events {__version__} (protocol v1)"


def test_no_command_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_unknown_flag_is_a_usage_error():
    proc = run_cli("schema", "--no-such-flag")
    assert proc.returncode == 2
    assert "--no-such-flag" in proc.stderr


def test_schema_lists_every_schema(capsys):
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    for name in schemas.schema_names():
        assert name in out


def test_schema_prints_one(capsys):
    assert main(["schema", "agent_completed"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"].endswith("/v1/agent_completed.json")


def test_unknown_schema_is_exit_2_with_the_known_names(capsys):
    assert main(["schema", "agent_dreaming"]) == 2
    err = capsys.readouterr().err
    assert "agent_dreaming" in err and "agent_completed" in err
    assert "Traceback" not in err


def test_schema_out_to_an_unwritable_place_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["schema", "--out", str(blocker / "sub")]) == 2
    assert "cannot write schemas" in capsys.readouterr().err


def test_internal_error_is_exit_4_and_says_how_to_report(monkeypatch, capsys):
    import agent_events.conformance.commands.schema as schema_cmd

    def boom(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(schema_cmd, "run", boom)
    assert main(["schema"]) == 4
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err
    assert "report it" in err


def test_a_closed_stdout_pipe_is_not_an_internal_error():
    """``agent-events schema | head -1``: the reader leaves early; no traceback, no exit 4."""
    proc = subprocess.Popen([sys.executable, "-m", "agent_events.conformance.cli", "schema", "server_message"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first write past the pipe buffer breaks it
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 141)  # 0 when the output fit in the pipe buffer before close
    assert b"Traceback" not in err and b"internal error" not in err


@pytest.mark.parametrize("extra", [["--out", "somewhere"], ["--asyncapi"]])
def test_schema_name_with_an_export_flag_is_a_usage_error(extra, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["schema", "agent_completed", *extra]) == 2
    assert "does not go with" in capsys.readouterr().err
    assert not (tmp_path / "somewhere").exists()


def test_a_command_loads_only_its_own_module_and_help_still_lists_every_command(tmp_path):
    """validate must not pay for the live check and the reference agent at start-up."""
    path = tmp_path / "one.jsonl"
    path.write_text('{"type":"progress","run_id":"r","seq":0,"emitted_at":1,"agent_name":"A","payload":{}}\n')
    code = ("import sys; from agent_events.conformance.cli import main; main(['validate', sys.argv[1], '-q']); "
            "print(sorted(m for m in ('agent_events.reference_agent.server', 'agent_events.conformance.live.engine') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
    listing = run_cli("--help").stdout
    assert all(f"    {name}" in listing for name in ("demo", "check", "validate", "record", "serve", "load"))
