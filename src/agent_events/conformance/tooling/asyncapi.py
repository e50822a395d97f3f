"""The AsyncAPI 3.0 document of protocol v1, generated from ``schemas/``.

AsyncAPI tooling (code generators, catalogues, browsable docs) is how many
teams discover and consume an event API; this module translates the
protocol's JSON Schemas into one, so it never drifts from them and nothing
is listed twice. ``agent-events schema --asyncapi`` prints it and the docs
site publishes it as ``asyncapi.json``.

The document describes the *server* (the agent side): it receives the
client messages and sends the server messages over one WebSocket channel.

AsyncAPI 3.0 payloads are AsyncAPI Schema Objects, a superset of JSON Schema
draft 07, while the protocol's schemas are draft 2020-12. Two translations
keep the meaning: every schema and every ``$defs`` entry becomes a component
(``#/components/schemas/<name>`` and ``<name>.<def>``), with ``$ref``\\ s
rewritten to point there; and a ``$ref`` with sibling keywords (which draft 07
would ignore) becomes ``allOf: [{$ref}]`` beside them, as 2020-12 reads it.
The canonical ``$id`` of each schema is kept as ``externalDocs`` so a reader
can always reach the normative file.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator
from urllib.parse import urldefrag, urljoin

from agent_events import schemas

ASYNCAPI_VERSION = "3.0.0"
WS_BINDING_VERSION = "0.1.0"
CHANNEL = "agentEvents"
CONTENT_TYPE = "application/json"
SITE = "https://agent-events.dev/"

#: Keywords whose value is one subschema, a map of subschemas, or a list of subschemas.
_ONE = ("items", "not", "if", "then", "else", "additionalProperties", "contains", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
#: Keywords that only annotate; a schema made only of these constrains nothing.
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "$defs"}


def _component_ref(uri: str, names_by_id: dict[str, str]) -> str:
    """Map an absolute JSON Schema reference to its place under ``#/components/schemas``."""
    document, fragment = urldefrag(uri)
    name = names_by_id[document]
    parts = fragment.lstrip("/").split("/") if fragment else []
    if len(parts) >= 2 and parts[0] == "$defs":
        name, parts = f"{name}.{parts[1]}", parts[2:]
    return "#/components/schemas/" + "/".join([name, *parts])


def _translate(node: Any, base: str, names_by_id: dict[str, str]) -> Any:
    """A draft-07-compatible copy of one schema node, with references rewritten."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "$id", "$defs"):
            continue
        if key in _ONE:
            out[key] = _translate(value, base, names_by_id)
        elif key in _MAP:
            out[key] = {k: _translate(v, base, names_by_id) for k, v in value.items()}
        elif key in _LIST:
            out[key] = [_translate(v, base, names_by_id) for v in value]
        elif key == "$ref":
            out[key] = _component_ref(urljoin(base, value), names_by_id)
        else:
            out[key] = copy.deepcopy(value)
    if "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}, *out.get("allOf", [])]
    return out


def component_schemas() -> dict[str, dict[str, Any]]:
    """Every protocol schema and every ``$defs`` entry, translated, keyed by component name."""
    loaded = schemas.all_schemas()
    names_by_id = {schema["$id"]: name for name, schema in loaded.items()}
    components: dict[str, dict[str, Any]] = {}
    for name, schema in loaded.items():
        base = schema["$id"]
        for def_name, definition in schema.get("$defs", {}).items():
            components[f"{name}.{def_name}"] = _translate(definition, base, names_by_id)
        if set(schema) - _ANNOTATIONS:
            body = _translate(schema, base, names_by_id)
            body["externalDocs"] = {"url": base, "description": "The normative JSON Schema (draft 2020-12)."}
            components[name] = body
    return components


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot and not head.endswith(".") else "")


def _examples(name: str, type_: str, limit: int = 2) -> list[dict[str, Any]]:
    """Valid single-message vectors of this message, as AsyncAPI message examples."""
    check = schemas.validator(name)
    found = []
    for file_name, group in schemas.message_vectors():
        for test in group.get("tests", ()):
            data = test.get("data")
            if (test.get("valid") and isinstance(data, dict) and data.get("type") == type_
                    and check.is_valid(data) and len(found) < limit):
                found.append({"name": f"example{len(found) + 1}", "summary": test.get("description", file_name),
                              "payload": data})
    return found


def _message(name: str, type_: str) -> dict[str, Any]:
    schema = schemas.load(name)
    description = schema.get("description", "")
    message = {
        "name": name,
        "title": schema.get("title", type_),
        "summary": _first_sentence(description),
        "description": description + f"\n\nThe `type` field is `{type_}`.",
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "externalDocs": {"url": schema["$id"], "description": "The normative JSON Schema (draft 2020-12)."},
    }
    if examples := _examples(name, type_):
        message["examples"] = examples
    return message


def _messages() -> Iterator[tuple[str, str, str]]:
    """(message key, wire type, side) of every message of the protocol."""
    for type_, name in schemas.CLIENT_TYPES.items():
        yield name, type_, "client"
    for type_, name in schemas.SERVER_TYPES.items():
        yield name, type_, "server"


def _serve_defaults() -> tuple[str, str]:
    """Host and port the reference agent listens on by default, read from ``agent-events serve``.

    The example server then matches what a reader gets by running the command.
    When ``serve`` is not installed the document falls back to a generic local address.
    """
    host, port = "localhost", "8765"
    try:
        from agent_events.conformance.cli import build_parser

        for action in build_parser()._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict) and "serve" in choices:
                serve = choices["serve"]
                host = str(serve.get_default("host") or host)
                port = str(serve.get_default("port") or port)
    except Exception:  # noqa: BLE001 - the defaults only decorate the example server
        pass
    return host, port


def _refs(channel_messages: list[str]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{CHANNEL}/messages/{key}"} for key in channel_messages]


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of protocol v1, as a JSON-ready dict."""
    messages = list(_messages())
    run_events = [schemas.SERVER_TYPES[t] for t in schemas.RUN_EVENT_TYPES]
    error = schemas.SERVER_TYPES["error"]
    host, port = _serve_defaults()
    subprotocol = schemas.SUBPROTOCOL
    channel_ref = {"$ref": f"#/channels/{CHANNEL}"}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "agent-events",
            "version": schemas.PROTOCOL_VERSION,
            "description": (
                "Protocol v1 of agent-events: AI-agent event streams over WebSocket. A client opens a "
                f"WebSocket offering the subprotocol `{subprotocol}`, sends `start_run`, and receives the run's "
                "events (agent_started, agent_thinking, tool_executing, tool_completed, progress, agent_completed) "
                "as UTF-8 JSON text frames, one message per frame. This document is generated from the "
                "protocol's JSON Schemas; the normative text is the specification."
            ),
            "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
            "externalDocs": {"url": f"{SITE}spec/", "description": "The normative specification"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "reference": {
                "host": "{host}:{port}",
                "protocol": "ws",
                "pathname": "/",
                "title": "Reference agent",
                "description": (
                    "The reference agent as `agent-events serve` starts it. It selects the subprotocol "
                    f"`{subprotocol}`. A bearer token is required only when the server was started with one."
                ),
                "variables": {
                    "host": {"default": host, "description": "Interface the server listens on."},
                    "port": {"default": port, "description": "TCP port; 0 at start-up picks a free one."},
                },
                "security": [{"$ref": "#/components/securitySchemes/bearer"},
                             {"$ref": "#/components/securitySchemes/queryToken"}],
            },
            "referenceTls": {
                "host": "{host}:{port}",
                "protocol": "wss",
                "pathname": "/",
                "title": "Reference agent over TLS",
                "description": "The reference agent started with a certificate and key.",
                "variables": {
                    "host": {"default": host},
                    "port": {"default": port},
                },
                "security": [{"$ref": "#/components/securitySchemes/bearer"},
                             {"$ref": "#/components/securitySchemes/queryToken"}],
            },
        },
        "channels": {
            CHANNEL: {
                "address": "/",
                "title": "Agent event stream",
                "description": (
                    "One WebSocket connection. The client sends start_run, cancel_run and time_sync; the server "
                    "sends the events of the runs this connection started (never another connection's), error "
                    "messages, and time_sync replies. Several runs may be in flight at once, told apart by run_id."
                ),
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key, _, _ in messages},
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Sec-WebSocket-Protocol": {
                                    "type": "string",
                                    "const": subprotocol,
                                    "description": "The subprotocol the client offers and the server should select.",
                                },
                                "Authorization": {
                                    "type": "string",
                                    "pattern": "^Bearer .+$",
                                    "description": "Bearer token, when the server requires one.",
                                },
                            },
                        },
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "The bearer token, for clients that cannot set headers (browsers).",
                                },
                            },
                        },
                        "bindingVersion": WS_BINDING_VERSION,
                    }
                },
            }
        },
        "operations": {
            "startRun": {
                "action": "receive",
                "channel": channel_ref,
                "title": "Start a run",
                "summary": "The client asks for a run; the server answers with the run's events.",
                "messages": _refs([schemas.CLIENT_TYPES["start_run"]]),
                "reply": {"channel": channel_ref, "messages": _refs([*run_events, error])},
            },
            "cancelRun": {
                "action": "receive",
                "channel": channel_ref,
                "title": "Cancel a run",
                "summary": "The run ends promptly with an agent_completed whose result says it was cancelled.",
                "messages": _refs([schemas.CLIENT_TYPES["cancel_run"]]),
                "reply": {"channel": channel_ref, "messages": _refs([schemas.SERVER_TYPES["agent_completed"], error])},
            },
            "timeSync": {
                "action": "receive",
                "channel": channel_ref,
                "title": "Read the server's clock",
                "summary": "The server echoes the client's time with its own, so a harness can correct for clock offset.",
                "messages": _refs([schemas.CLIENT_TYPES["time_sync"]]),
                "reply": {"channel": channel_ref, "messages": _refs([schemas.SERVER_TYPES["time_sync"]])},
            },
            "resumeRun": {
                "action": "receive",
                "channel": channel_ref,
                "title": "Resume a run after a dropped connection (1.1)",
                "summary": "With the run's resume_token: every event after last_seq is replayed once, in order, then "
                           "the run continues on this connection; resume_denied or resume_expired otherwise.",
                "messages": _refs([schemas.CLIENT_TYPES["resume_run"]]),
                "reply": {"channel": channel_ref, "messages": _refs([*run_events, error])},
            },
            "sendCapabilities": {
                "action": "send",
                "channel": channel_ref,
                "title": "Declare the version and optional features (1.1)",
                "summary": "Once per connection, the first server message; a 1.0 server never sends it.",
                "messages": _refs([schemas.SERVER_TYPES["capabilities"]]),
            },
            "sendRunEvents": {
                "action": "send",
                "channel": channel_ref,
                "title": "Stream a run's events",
                "summary": "Every run event, in seq order per run; runs of one connection may interleave.",
                "messages": _refs(run_events),
            },
            "sendError": {
                "action": "send",
                "channel": channel_ref,
                "title": "Report a client message that could not be acted on",
                "summary": "Not part of any run; the connection stays usable.",
                "messages": _refs([error]),
            },
        },
        "components": {
            "schemas": component_schemas(),
            "messages": {key: _message(key, type_) for key, type_, _ in messages},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "`Authorization: Bearer <token>` on the handshake."},
                "queryToken": {"type": "httpApiKey", "name": "token", "in": "query",
                               "description": "The token as the `token` query parameter (browsers cannot set headers)."},
            },
        },
    }
