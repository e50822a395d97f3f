"""The Event reference, generated from ``schemas/`` at build time.

The schemas are the single source of truth, so the page is derived from
them and never edited by hand: a field added to a schema appears here with
its type, whether it is required, and its description. ``$ref``\\ s are
resolved through :func:`schemas.registry` (offline, by ``$id``), and a
``$ref`` with sibling keywords is read the draft 2020-12 way: both apply.
Each message gets one valid example taken from the shipped message vectors,
checked against its schema so the docs cannot show an invalid one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from agent_events import schemas
from docgen_markdown import cell, code, json_block, table

SERVER_TO_CLIENT = "server → client"
CLIENT_TO_SERVER = "client → server"


@dataclass
class Field:
    path: str
    pieces: list  # [(schema dict, resolver)], every piece applies (allOf semantics)
    required: bool
    condition: str = ""
    children: list["Field"] = field(default_factory=list)


def expand(schema: dict, resolver) -> list[tuple[dict, Any]]:
    """Every schema piece that applies to an instance: ``$ref`` targets, ``allOf``, then ``schema`` itself.

    The schema's own keywords come last, so a sibling of ``$ref`` overrides
    what the target says (a ``const`` over an ``enum``, a local description).
    """
    pieces = []
    if "$ref" in schema:
        target = resolver.lookup(schema["$ref"])
        pieces += expand(target.contents, target.resolver)
    for sub in schema.get("allOf", ()):
        pieces += expand(sub, resolver)
    pieces.append(({k: v for k, v in schema.items() if k not in ("$ref", "allOf")}, resolver))
    return pieces


def keyword(pieces, name: str, default=None):
    """The most specific value of a keyword among the pieces."""
    for schema, _ in reversed(pieces):
        if name in schema:
            return schema[name]
    return default


def conditions(pieces) -> dict[str, str]:
    """Property -> "when ..." for the ``if``/``then`` pattern that makes a field conditionally required."""
    found = {}
    for schema, _ in pieces:
        if "if" not in schema or "then" not in schema:
            continue
        consts = {k: v["const"] for k, v in schema["if"].get("properties", {}).items() if "const" in v}
        if not consts:
            continue
        when = " and ".join(f"{code(k)} is {code(json.dumps(v))}" for k, v in consts.items())
        for name in schema["then"].get("required", ()):
            found[name] = f"when {when}"
    return found


def fields_of(pieces, prefix: str = "") -> list[Field]:
    properties: dict[str, list] = {}
    required: set[str] = set()
    for schema, resolver in pieces:
        for name, sub in schema.get("properties", {}).items():
            properties.setdefault(name, []).extend(expand(sub, resolver))
        required.update(schema.get("required", ()))
    conditional = conditions(pieces)
    result = []
    for name, sub_pieces in properties.items():
        path = f"{prefix}{name}"
        item = Field(path, sub_pieces, name in required, conditional.get(name, ""))
        item.children = children_of(sub_pieces, path)
        result.append(item)
    return result


def children_of(pieces, path: str) -> list[Field]:
    if any("properties" in s for s, _ in pieces):
        return fields_of(pieces, f"{path}.")
    items = item_pieces(pieces)
    if any("properties" in s for s, _ in items):
        return fields_of(items, f"{path}[].")
    return []


def item_pieces(pieces) -> list:
    found = []
    for schema, resolver in pieces:
        if isinstance(schema.get("items"), dict):
            found += expand(schema["items"], resolver)
    return found


def describe_type(pieces) -> str:
    """A short human reading of a field's constraints, e.g. "string, 1 to 128 characters"."""
    if (const := keyword(pieces, "const", _MISSING)) is not _MISSING:
        return code(json.dumps(const))
    if (enum := keyword(pieces, "enum")) is not None:
        return "one of " + ", ".join(code(json.dumps(v)) for v in enum)
    kind = keyword(pieces, "type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    details = []
    lo, hi = keyword(pieces, "minLength"), keyword(pieces, "maxLength")
    if lo is not None or hi is not None:
        details.append(_range(lo, hi, " characters"))
    lo, hi = keyword(pieces, "minimum"), keyword(pieces, "maximum")
    if lo is not None or hi is not None:
        details.append(_range(lo, hi, ""))
    if (pattern := keyword(pieces, "pattern")) is not None:
        details.append("matching " + code(pattern))
    if kind == "array" and (items := item_pieces(pieces)):
        kind = "array of " + describe_type(items)
    return ", ".join([kind, *details])


_MISSING = object()


def _range(lo, hi, unit: str) -> str:
    if unit and lo == 1 and hi is None:
        return "not empty"
    if lo is not None and hi is not None:
        return f"{lo} to {hi}{unit}"
    if lo is not None:
        return f"at least {lo}{unit}" if unit else f"≥ {lo}"
    return f"at most {hi}{unit}" if unit else f"≤ {hi}"


def rows(fields: list[Field]) -> Iterator[tuple[str, str, str, str]]:
    for item in fields:
        required = "yes" if item.required else (f"{item.condition}" if item.condition else "no")
        yield (code(item.path), describe_type(item.pieces), required, keyword(item.pieces, "description", ""))
        yield from rows(item.children)


def example(name: str, type_: str) -> tuple[dict, str] | None:
    """The first valid vector for ``name``: from its own vector file, else from a combined one."""
    groups = list(schemas.message_vectors())
    ordered = [g for g in groups if g[1].get("schema") == name] + [g for g in groups if g[1].get("schema") != name]
    check = schemas.validator(name)
    for file_name, group in ordered:
        for test in group.get("tests", ()):
            data = test.get("data")
            if test.get("valid") and isinstance(data, dict) and data.get("type") == type_ and check.is_valid(data):
                return data, f"{file_name}: {test.get('description', '')}"
    return None


def field_table(schema: dict, resolver) -> str:
    """Every field of ``schema`` (nested ones as dotted paths) with type, required and description."""
    return table(["field", "type", "required", "description"], rows(fields_of(expand(schema, resolver))))


def message_section(name: str, type_: str, direction: str, warn: Callable[[str], None]) -> str:
    schema = schemas.load(name)
    resolver = schemas.registry().resolver(base_uri=schema["$id"])
    if direction == CLIENT_TO_SERVER:
        kind = "request"
    else:
        kind = "run event" if type_ in schemas.RUN_EVENT_TYPES else "not part of any run (no `seq`)"
    out = [
        f"### {cell(schema.get('title', name))} {{#{name}}}\n",
        f"**Direction:** {direction} · **`type`:** {code(type_)} · **Kind:** {kind} · "
        f"**Schema:** [`{schema['$id']}`](schemas/v1/{name}.json)\n",
        schema.get("description", "") + "\n",
        field_table(schema, resolver),
    ]
    found = example(name, type_)
    if found is None:
        warn(f"event reference: no valid example for {name!r} among schemas/vectors/messages")
    else:
        data, source = found
        out.append(f"Example (vector {code(source)}):\n")
        out.append(json_block(data))
    return "\n".join(out)


def event_reference(warn: Callable[[str], None]) -> str:
    """Every server message, then every client message, one section each."""
    run_events = [(n, t) for t, n in schemas.SERVER_TYPES.items() if t in schemas.RUN_EVENT_TYPES]
    others = [(n, t) for t, n in schemas.SERVER_TYPES.items() if t not in schemas.RUN_EVENT_TYPES]
    out = [
        "## Server to client {#server-to-client}\n",
        f"Any of these validates against [`{schemas.SERVER_MESSAGE}.json`](schemas/v1/{schemas.SERVER_MESSAGE}.json), "
        "which dispatches on `type`. The run events share the envelope (`type`, `run_id`, `seq`, `emitted_at`, "
        "`agent_name`, `payload`), which is closed; their payloads are open.\n",
    ]
    out += [message_section(n, t, SERVER_TO_CLIENT, warn) for n, t in run_events + others]
    out += [
        "## Client to server {#client-to-server}\n",
        f"Any of these validates against [`{schemas.CLIENT_MESSAGE}.json`](schemas/v1/{schemas.CLIENT_MESSAGE}.json).\n",
    ]
    out += [message_section(n, t, CLIENT_TO_SERVER, warn) for t, n in schemas.CLIENT_TYPES.items()]
    return "\n".join(out)


def event_index() -> str:
    """A one-line-per-message table linking to the sections below."""
    entries = [(t, n, SERVER_TO_CLIENT) for t, n in schemas.SERVER_TYPES.items()]
    entries += [(t, n, CLIENT_TO_SERVER) for t, n in schemas.CLIENT_TYPES.items()]
    return table(
        ["message", "direction", "summary"],
        ((f"[{code(schemas.load(n).get('title', t))}](#{n})", d, _first_sentence(schemas.load(n).get("description", "")))
         for t, n, d in entries),
    )


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot else "")


# -- compact summaries for the specification ------------------------------------

def _summary_of(schema: dict, resolver) -> str:
    """``**`a`**, `b` (`x` or `y`), ...``: the fields of an object schema, REQUIRED ones in bold."""
    pieces = expand(schema, resolver)
    when = conditions(pieces)
    parts = []
    for f in fields_of(pieces):
        name = code(f.path)
        text = f"**{name}**" if f.required else name
        enum = keyword(f.pieces, "enum")
        notes = [" or ".join(code(v) for v in enum)] if enum and len(enum) > 1 else []
        if f.path in when:
            notes.append(f"REQUIRED {when[f.path]}")
        parts.append(text + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def event_payloads() -> str:
    """The spec's table of run events and their payload fields, from the schemas."""
    rows = []
    for type_ in schemas.RUN_EVENT_TYPES:
        resolver = schemas.registry().resolver(base_uri=schemas.load(type_)["$id"])
        payload = resolver.lookup("#/$defs/payload")
        rows.append((code(type_), _summary_of(payload.contents, payload.resolver)))
    result = schemas.registry().resolver().lookup(schemas.load(schemas.RESULT)["$id"])
    return (table(["event", "payload (REQUIRED in bold)"], rows)
            + f"\nThe **result payload** of {code('agent_completed')}: "
            + _summary_of(result.contents, result.resolver) + ".\n")


def error_codes() -> str:
    """The spec's table of ``error.code`` values, from ``error.json`` (``x-enumDescriptions``)."""
    schema = schemas.load("error")["properties"]["code"]
    meanings = schema["x-enumDescriptions"]
    return table(["code", "sent when"], [(code(c), meanings[c]) for c in schema["enum"]])


def envelope_table() -> str:
    """The spec's table of the run-event envelope, from ``envelope.json``."""
    envelope = schemas.registry().resolver().lookup(schemas.load(schemas.ENVELOPE)["$id"])
    return field_table(envelope.contents, envelope.resolver)
