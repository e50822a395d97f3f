"""Protocol v1 of agent-events, as data.

The JSON Schemas in the repository's top-level ``schemas/v1/`` folder are the
single source of truth of the protocol: the reference agent, the conformance checker and the docs all read
them from here, and nothing else lists the message types a second time. This
module only finds and loads them; the constants below are *derived* from the
schema files so that adding a type to a schema is the whole change.

Schemas are resolved through a local :mod:`referencing` registry built from
the shipped files, never through the network, even though their ``$id``\\ s are
absolute URLs (the docs site publishes them there).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

#: The latest protocol version the kit speaks; a live check reports the one it judged (an
#: endpoint's ``capabilities`` say 1.1, an endpoint without them is 1.0).
PROTOCOL_VERSION = "1.1"
#: Every minor version of the v1 line, oldest first.
PROTOCOL_VERSIONS = ("1.0", "1.1")


def lowest_version(versions) -> str:
    """The oldest of some protocol versions ("1.0" of none): a claim for several streams claims no more
    than the oldest of them showed (a part that is not a number sorts first)."""
    def key(version: str) -> tuple:
        return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))

    return min(versions, key=key, default=PROTOCOL_VERSIONS[0])

#: The WebSocket subprotocol a client offers and a server should select.
SUBPROTOCOL = "agent-events.v1"
#: Every schema's ``$id`` starts with this.
BASE_URI = "https://agent-events.dev/schemas/v1/"
#: The schema of any message a server sends, and of any a client sends.
SERVER_MESSAGE = "server_message"
CLIENT_MESSAGE = "client_message"
ENVELOPE = "envelope"
RESULT = "result"


def _root():
    """Where the schema files are: inside the package once built (the wheel copies the
    repository's top-level ``schemas/`` folder here), else that folder itself (an
    editable install or a source checkout). The files live once, at the top of the
    repository, where people who never run Python read and copy them."""
    shipped = resources.files(__name__)
    if (shipped / "v1").is_dir():
        return shipped
    return Path(__file__).resolve().parents[3] / "schemas"


def schema_names() -> list[str]:
    """Names (file stems) of every schema of protocol v1, sorted."""
    return sorted(p.name[:-5] for p in (_root() / "v1").iterdir() if p.name.endswith(".json"))


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (a file stem such as ``"agent_started"``)."""
    if name not in schema_names():
        raise KeyError(f"no schema named {name!r}; known: {', '.join(schema_names())}")
    return json.loads((_root() / "v1" / f"{name}.json").read_text(encoding="utf-8"))


def all_schemas() -> dict[str, dict[str, Any]]:
    return {name: load(name) for name in schema_names()}


@functools.cache
def registry():
    """A :class:`referencing.Registry` holding every schema under its ``$id``.

    Relative ``$ref``\\ s such as ``"defs.json#/$defs/seq"`` resolve against the
    absolute ``$id`` of the schema that holds them, so they land here too.
    """
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources_ = [
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for schema in all_schemas().values()
    ]
    return Registry().with_resources(resources_).crawl()


@functools.cache
def validator(name: str):
    """A cached draft 2020-12 validator (the reference: ``jsonschema``) for one schema."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load(name), registry=registry())


def _dispatch(name: str) -> dict[str, str]:
    """``type`` value -> schema name, read from a combined schema's if/then table."""
    table = {}
    for branch in load(name)["allOf"]:
        type_ = branch["if"]["properties"]["type"]["const"]
        table[type_] = branch["then"]["$ref"][: -len(".json")]
    return table


#: Server message ``type`` -> schema name (``"time_sync"`` -> ``"time_sync_reply"``).
SERVER_TYPES: dict[str, str] = _dispatch(SERVER_MESSAGE)
#: Client message ``type`` -> schema name.
CLIENT_TYPES: dict[str, str] = _dispatch(CLIENT_MESSAGE)
#: The event types that make up a run, in the order the envelope lists them.
RUN_EVENT_TYPES: tuple[str, ...] = tuple(load(ENVELOPE)["properties"]["type"]["enum"])
#: The documented ``error.code`` values.
ERROR_CODES: tuple[str, ...] = tuple(load("error")["properties"]["code"]["enum"])


def vectors_root():
    """The shipped test vectors (``messages/`` and ``sequences/``)."""
    return _root() / "vectors"


def message_vectors() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file name, vector group)`` for every single-message vector file."""
    folder = vectors_root() / "messages"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            yield entry.name, json.loads(entry.read_text(encoding="utf-8"))


def sequence_vectors() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(relative path, vector)`` for every whole-run sequence vector."""
    for verdict in ("valid", "invalid"):
        folder = vectors_root() / "sequences" / verdict
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".json"):
                yield f"{verdict}/{entry.name}", json.loads(entry.read_text(encoding="utf-8"))
