"""A dialect's vendored JSON Schema, in two tiers, on the same fast path as our own.

AG-UI 1.1's schema closes every event (``unevaluatedProperties: false``) and every
discriminated union (an outcome, a content part), while its processing rules
(/spec/1.1/basic/processing) tell a consumer to strip an unknown property and drop an
unknown union member, and its conformance streams expect such a stream to complete. So
an event is judged twice: against a *tolerant* derivation of the schema (closures
removed, each union discriminated by ``type`` or ``op`` given a member for the types it does not
list) for the dialect's MUST rule, and against the schema as published for its SHOULD
rule. Every other constraint (a known field's type, an enum such as ``role``, a required
field) is the same in both. The fast verdict is jsonschema-rs's; only an invalid event is
explained, by ``jsonschema`` (the reference), as for our own messages.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable

from agent_events import schemas
try:  # the fast engine, as for our own messages (imported here, not from conformance.schema_validation,
    # which compiles our protocol's schemas on import: start-up a foreign dialect does not need)
    import jsonschema_rs
except ImportError:  # pragma: no cover - jsonschema-rs is a default dependency
    jsonschema_rs = None
from agent_events.conformance.core.violations import clip

MAX_PROBLEMS = 3
#: The properties AG-UI discriminates its unions by: ``type`` (outcomes, parts), ``op`` (RFC 6902 patches).
DISCRIMINATORS = ("type", "op")


def schema_path(folder: str):
    return schemas._root() / "dialects" / folder / "schema.json"


@functools.cache
def load(folder: str) -> dict:
    """The vendored schema of ``folder`` (e.g. ``ag-ui-1.1``)."""
    return json.loads(schema_path(folder).read_text(encoding="utf-8"))


def event_types(folder: str) -> dict[str, str]:
    """Event ``type`` -> the ``$defs`` entry that defines it (read from the schema's ``Event`` union)."""
    defs = load(folder)["$defs"]
    table = {}
    for member in defs["Event"]["oneOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        table[defs[name]["properties"]["type"]["const"]] = name
    return table


def tolerant(schema: dict) -> dict:
    """The schema with unknown properties and unknown members of ``type``-discriminated unions allowed."""
    doc = copy.deepcopy(schema)
    defs = doc["$defs"]

    def const_of(member: dict, key: str):
        ref = member.get("$ref", "")
        target = defs.get(ref.rsplit("/", 1)[1]) if ref.startswith("#/$defs/") else member
        return (target or {}).get("properties", {}).get(key, {}).get("const")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("unevaluatedProperties") is False:
                del node["unevaluatedProperties"]
            if node.get("additionalProperties") is False:
                del node["additionalProperties"]
            members = node.get("oneOf")
            if isinstance(members, list) and members:
                for key in DISCRIMINATORS:
                    consts = [const_of(m, key) for m in members if isinstance(m, dict)]
                    if all(isinstance(c, str) for c in consts) and len(consts) == len(members):
                        members.append({"type": "object", "required": [key],
                                        "properties": {key: {"type": "string", "not": {"enum": consts}}}})
                        break
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(defs)
    return doc


def _wrapper(doc: dict, name: str) -> dict:
    return {"$schema": doc.get("$schema"), "$ref": f"#/$defs/{name}", "$defs": doc["$defs"]}


class _Table(dict):
    """type -> (strict fast is_valid, tolerant fast, tolerant reference, strict reference), compiled on
    first use: a stream uses a handful of AG-UI's 31 types, and start-up is part of every ``validate``."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder
        self.names = event_types(folder)

    def __missing__(self, type_: str):
        name = self.names.get(type_)
        if name is None:
            return None
        strict_doc = _wrapper(load(self.folder), name)
        fast_s = jsonschema_rs.validator_for(strict_doc).is_valid if jsonschema_rs is not None else None
        entry = self[type_] = _Entry(self.folder, name, fast_s)
        return entry


class _Entry:
    """One type's validators: the strict fast one at once, the rest only when an event fails it."""

    __slots__ = ("folder", "name", "fast_s", "_rest")

    def __init__(self, folder: str, name: str, fast_s) -> None:
        self.folder, self.name, self._rest = folder, name, None
        self.fast_s = fast_s if fast_s is not None else self.rest()[2].is_valid

    def rest(self):
        """(tolerant fast is_valid, tolerant reference, strict reference)."""
        if self._rest is None:
            from jsonschema import Draft202012Validator

            tolerant_doc = _wrapper(_tolerant(self.folder), self.name)
            ref_t = Draft202012Validator(tolerant_doc)
            ref_s = Draft202012Validator(_wrapper(load(self.folder), self.name))
            fast_t = jsonschema_rs.validator_for(tolerant_doc).is_valid if jsonschema_rs is not None else ref_t.is_valid
            self._rest = (fast_t, ref_t, ref_s)
        return self._rest


@functools.cache
def _tolerant(folder: str) -> dict:
    return tolerant(load(folder))


@functools.cache
def _validators(folder: str) -> _Table:
    return _Table(folder)


def validator_for(dialect) -> Callable[[str, Any], list[tuple[str, str, str]]]:
    """``check(type, event) -> [(rule id, expected, observed)]`` for the dialect's two schema rules."""
    table = _validators(dialect.schema)
    must, should = dialect.lifecycle.get("schema"), dialect.lifecycle.get("schema_strict")
    where = f"{dialect.label} schema"

    def check(type_: str, event: Any) -> list[tuple[str, str, str]]:
        entry = table[type_]
        if entry is None:
            return []
        try:
            if entry.fast_s(event):  # strict valid implies tolerant valid: the common case, one call
                return []
        except Exception:  # noqa: BLE001 - a value the fast engine cannot take: the reference decides
            pass
        fast_t, ref_t, ref_s = entry.rest()
        if not should and _ok(fast_t, event):
            return []
        if not ref_t.is_valid(event):
            return [(must, f"a valid {type_} ({where})", _explain(ref_t, event))] if must else []
        if should and not ref_s.is_valid(event):
            return [(should, f"a {type_} valid against the {where} as published",
                     _explain(ref_s, event) + " (a consumer strips or drops it)")]
        return []

    return check


def _ok(is_valid, event) -> bool:
    try:
        return is_valid(event)
    except Exception:  # noqa: BLE001 - a value the fast engine cannot take: the reference decides
        return False


def _explain(validator, event) -> str:
    errors = sorted(validator.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
    parts = []
    for error in errors[:MAX_PROBLEMS]:
        path = "/".join(map(str, error.absolute_path)) or "(event)"
        parts.append(f"at {path}: {error.message}")
    return clip("; ".join(parts), 400)
