"""The AsyncAPI 3.0 document: complete, faithful to the JSON Schemas, and valid for an independent parser."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from agent_events import schemas
from agent_events.conformance.tooling import asyncapi
from agent_events.conformance.cli import main

HERE = Path(__file__).parent
PARSER_PACKAGE = "@asyncapi/parser"
PARSER_VERSION = "3.6.6"
NPM_DIR = Path(os.environ.get("AGENT_EVENTS_NPM_CACHE", Path.home() / ".cache" / "agent-events" / "npm"))


@pytest.fixture(scope="module")
def document():
    return asyncapi.build()


def test_document_is_asyncapi_3_with_one_websocket_channel(document):
    assert document["asyncapi"].startswith("3.")
    assert document["info"]["version"] == schemas.PROTOCOL_VERSION
    (channel,) = document["channels"].values()
    binding = channel["bindings"]["ws"]
    assert binding["method"] == "GET"
    assert binding["headers"]["properties"]["Sec-WebSocket-Protocol"]["const"] == schemas.SUBPROTOCOL
    assert {s["protocol"] for s in document["servers"].values()} == {"ws", "wss"}


def test_every_message_of_both_sides_is_in_the_channel(document):
    expected = set(schemas.SERVER_TYPES.values()) | set(schemas.CLIENT_TYPES.values())
    (channel,) = document["channels"].values()
    assert set(channel["messages"]) == expected
    assert set(document["components"]["messages"]) == expected
    for name in expected:
        message = document["components"]["messages"][name]
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        assert message["externalDocs"]["url"] == schemas.load(name)["$id"]


def test_operations_receive_client_messages_and_send_server_messages(document):
    def names(refs):
        return {ref["$ref"].rsplit("/", 1)[1] for ref in refs}

    received = set().union(*(names(op["messages"]) for op in document["operations"].values() if op["action"] == "receive"))
    sent = set().union(*(names(op["messages"]) for op in document["operations"].values() if op["action"] == "send"))
    replies = set().union(*(names(op.get("reply", {}).get("messages", [])) for op in document["operations"].values()))
    assert received == set(schemas.CLIENT_TYPES.values())
    assert sent | replies == set(schemas.SERVER_TYPES.values())


def test_no_reference_is_left_pointing_outside_the_document(document):
    text = json.dumps(document)
    assert ".json#" not in text and '"$ref": "defs.json' not in text
    assert '"$schema"' not in text and '"$defs"' not in text

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # KeyError = a dangling reference


def _vectors():
    for file_name, group in schemas.message_vectors():
        for i, test in enumerate(group["tests"]):
            yield pytest.param(group["schema"], test, id=f"{file_name}#{i}")


@pytest.mark.parametrize("name,test", list(_vectors()))
def test_translated_payload_schema_gives_the_same_verdict_as_the_original(document, name, test):
    """The draft-07 translation keeps the 2020-12 meaning: same verdict on every message vector."""
    root = dict(document, **{"$ref": f"#/components/schemas/{name}"})
    translated = Draft7Validator(root).is_valid(test["data"])
    assert translated == schemas.validator(name).is_valid(test["data"]) == test["valid"]


def test_schema_command_prints_the_document(capsys, document):
    assert main(["schema", "--asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out) == document


def test_schema_command_writes_the_document_with_the_schemas(tmp_path, capsys, document):
    assert main(["schema", "--asyncapi", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "asyncapi.json").read_text()) == document
    assert {p.stem for p in tmp_path.glob("*.json")} == set(schemas.schema_names()) | {"asyncapi"}


# -- the independent validator: @asyncapi/parser, the AsyncAPI initiative's reference parser --------

@pytest.fixture(scope="module")
def asyncapi_parser():
    """Run the parser on a document; installs it once into a cache directory (reused afterwards)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run @asyncapi/parser (the independent AsyncAPI validator)")
    module = NPM_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    installed = module.exists() and json.loads(module.read_text()).get("version") == PARSER_VERSION
    if not installed:
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        (NPM_DIR / "package.json").write_text(json.dumps(
            {"name": "agent-events-test-tools", "private": True, "dependencies": {PARSER_PACKAGE: PARSER_VERSION}}))
        env = dict(os.environ, npm_config_update_notifier="false", SCARF_ANALYTICS="false")
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NPM_DIR,
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, f"npm install {PARSER_PACKAGE}@{PARSER_VERSION} failed:\n{proc.stderr}"

    def parse(doc: dict, tmp: Path) -> dict:
        path = tmp / "asyncapi.json"
        path.write_text(json.dumps(doc))
        proc = subprocess.run([node, str(HERE / "asyncapi_parse.cjs"), str(path)], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, NODE_PATH=str(NPM_DIR / "node_modules")))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return parse


@pytest.mark.slow
def test_independent_parser_accepts_the_document_with_no_error(asyncapi_parser, document, tmp_path):
    result = asyncapi_parser(document, tmp_path)
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert errors == []
    assert result["parsed"]
    assert set(result["messages"]) == set(schemas.SERVER_TYPES.values()) | set(schemas.CLIENT_TYPES.values())
    assert sorted(result["operations"]) == sorted([k, v["action"]] for k, v in document["operations"].items())


@pytest.mark.slow
def test_independent_parser_rejects_a_broken_document(asyncapi_parser, document, tmp_path):
    """A control: the parser does judge our schemas, so its silence above means something."""
    broken = copy.deepcopy(document)
    broken["components"]["schemas"]["defs.seq"]["type"] = "integr"
    del broken["operations"]["startRun"]["action"]
    result = asyncapi_parser(broken, tmp_path)
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert not result["parsed"]
    assert any("defs.seq" in d["path"] for d in errors)
    assert any(d["path"] == ["operations", "startRun"] for d in errors)
