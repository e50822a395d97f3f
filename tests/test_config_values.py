"""Every config key, fed every kind of TOML value through the real CLI: a value or a usage error, never a crash.

A converter that compares a TOML array or table with a dict's keys raises
``TypeError: unhashable`` (exit 4); this matrix covers every key registered
(``config.KEYS`` and the keys commands add with ``config.register``), at the
top level and in a command's table, so a new key cannot bring that back.
"""

from __future__ import annotations

import orjson
import pytest

from agent_events import schemas
from agent_events.conformance import config
from agent_events.conformance.cli import build_parser, main
from agent_events.conformance.exitcodes import ExitCode

build_parser()  # imports every command, so the keys they register are in config.KEYS too

#: One or more values of each TOML type (as TOML source), plausible and absurd.
TOML_VALUES = {
    "string": ['"x"', '""', '"generic"', '"json"', '"order.thinking"', '"html=out.html"'],
    "integer": ["0", "-1", "3"],
    "float": ["1.5", "-0.5", "inf", "nan"],
    "boolean": ["true", "false"],
    "array": ["[]", '["x"]', "[1, 2]", '[["x"]]', "[{ a = 1 }]"],
    "table": ["{}", "{ a = 1 }", '{ html = "out.html" }', '{ a = { b = "error" } }', "{ a = [] }"],
    "date-time": ["1979-05-27T07:32:00Z", "1979-05-27T07:32:00", "1979-05-27", "07:32:00"],
}


def test_the_live_keys_are_in_the_one_table_without_importing_the_live_cli():
    """The live check's keys are declared in the table itself (nothing registers keys on import), so
    the pytest plugin, which never imports the live CLI module, knows them too (issue 12)."""
    import subprocess
    import sys

    code = ("import sys; from agent_events.conformance import config; "
            "assert 'agent_events.conformance.live.cli_args' not in sys.modules; "
            "print(sorted(k for k in ('scenarios', 'runs', 'concurrency', 'input') if k in config.KEYS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['concurrency', 'input', 'runs', 'scenarios']"


@pytest.fixture(scope="module")
def vector(tmp_path_factory):
    """Plain server messages of a valid run: no timing, so no budget can fail it."""
    path = tmp_path_factory.mktemp("vector") / "primary.jsonl"
    frames = dict(schemas.sequence_vectors())["valid/primary.json"]["frames"]
    path.write_bytes(b"".join(orjson.dumps(f["msg"]) + b"\n" for f in frames if f["dir"] == "recv"))
    return path


@pytest.mark.parametrize("kind", TOML_VALUES)
@pytest.mark.parametrize("key", sorted(config.KEYS))
def test_every_key_takes_any_toml_value_or_says_what_it_expected(key, kind, vector, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # reports and badges a valid value asks for land here
    path = tmp_path / "agent-events.toml"
    for literal in TOML_VALUES[kind]:
        for table in ("", "[validate]\n"):
            path.write_text(f"{table}{key} = {literal}\n")
            code = main(["validate", str(vector), "--config", str(path), "--format", "json"])
            err = capsys.readouterr().err
            assert code in (ExitCode.OK, ExitCode.USAGE), f"{table}{key} = {literal}: exit {code}\n{err}"
            if code == ExitCode.USAGE:
                assert str(path) in err and key in err and "Traceback" not in err, err
                assert "must be" in err or "unknown rule id" in err or "contradicts" in err, err
