"""Schema validation of single messages: a fast verdict, a reference explanation.

``jsonschema`` is the reference implementation of draft 2020-12 in Python,
but at a few thousand messages per second it would be most of a check's cost.
So every message first goes through a compiled validator (``jsonschema-rs``,
measured at about 250x ``jsonschema`` and 6x ``fastjsonschema`` on our
messages, and ``fastjsonschema`` cannot be used as is anyway: it ignores the
keywords beside a ``$ref``, which our per-type schemas rely on). Only when
the fast path says "invalid" do we ask ``jsonschema`` why, so the detailed
message costs nothing on a conforming stream, and the final verdict is always
the reference's: where the two engines disagree (a regex ``$`` before a
trailing newline, for one) ``jsonschema`` wins. Without ``jsonschema-rs``
installed, ``jsonschema`` does both jobs.

Schema problems are classified for the rule registry: a problem inside
``payload`` is ``schema.payload``, one in the rest of a run event's envelope
is ``schema.envelope``; ``error`` and ``time_sync`` replies have no envelope,
so any problem with them is ``schema.payload`` ("not valid for its type").
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

from agent_events import schemas
from agent_events.conformance.core.violations import clip

try:  # the optional fast path: ``pip install 'agent-events[fast]'``
    import jsonschema_rs

    jsonschema_rs.Registry  # noqa: B018 - older releases cannot resolve our $refs offline
except (ImportError, AttributeError):  # pragma: no cover - exercised only where it is missing
    jsonschema_rs = None

#: Which engine gives the fast verdicts.
ENGINE = "jsonschema-rs" if jsonschema_rs is not None else "jsonschema"

ENVELOPE_RULE = "schema.envelope"
PAYLOAD_RULE = "schema.payload"

#: At most this many schema problems are described per message.
MAX_PROBLEMS = 3


def _no_network(uri: str):
    """Every $ref resolves from the shipped files; anything else is a bug, never a download."""
    raise LookupError(f"schema {uri} is not shipped with agent-events")


#: A pattern's end as the shipped schemas write it for Python's ``re`` (whose ``$`` also matches
#: before a final newline): ``$`` and a lookahead refusing that newline (see ``defs.json#/$defs/name``).
PYTHON_END = "$(?!\\n)"


def fast_pattern(pattern: str) -> str:
    """``pattern`` as the fast engine gets it: a final ``$(?!\\n)`` becomes ``$``.

    Why: in ``jsonschema-rs`` (Rust's ``regex``, as in ECMA-262) ``$`` matches only at the end of
    the string, where no newline can follow, so the lookahead never changes a verdict there; but a
    lookaround sends the pattern to the backtracking engine, which cost 0.35 us for each of
    ``agent_name`` and ``tool_name`` (0.45 against 0.10 us per string): a third of validating a
    tool event (issue 26). The reference engine keeps the schema as shipped.
    Only a final, unescaped ``$`` is rewritten (an even number of backslashes before it).
    """
    if not pattern.endswith(PYTHON_END):
        return pattern
    head = pattern[: -len(PYTHON_END)]
    if (len(head) - len(head.rstrip("\\"))) % 2:
        return pattern  # ``\\$(?!\\n)``: a literal dollar, then the lookahead: leave it
    return head + "$"


def for_fast_engine(node: Any) -> Any:
    """A copy of a schema with every ``pattern`` rewritten by :func:`fast_pattern`."""
    if isinstance(node, dict):
        return {k: (fast_pattern(v) if k == "pattern" and isinstance(v, str) else for_fast_engine(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [for_fast_engine(v) for v in node]
    return node


@functools.cache
def _fast_schemas() -> dict[str, Any]:
    """Every shipped schema as the fast engine gets it (:func:`for_fast_engine`): read and rewritten
    once, for its registry and for each validator alike."""
    return {name: for_fast_engine(s) for name, s in schemas.all_schemas().items()}


@functools.cache
def _rs_registry():
    return jsonschema_rs.Registry([(s["$id"], s) for s in _fast_schemas().values()], retriever=_no_network)


@functools.cache
def fast_validator(name: str):
    """The compiled validator of schema ``name`` (falls back to the reference)."""
    if jsonschema_rs is None:
        return schemas.validator(name)
    schema = _fast_schemas().get(name)
    if schema is None:
        schemas.load(name)  # raises its KeyError, naming the schemas there are
    return jsonschema_rs.validator_for(schema, registry=_rs_registry())


def reference_validator(name: str):
    return schemas.validator(name)


def _is_valid_table(types: dict[str, str]) -> dict[str, Callable[[Any], bool]]:
    return {type_: fast_validator(name).is_valid for type_, name in types.items()}


#: ``type`` -> fast ``is_valid`` for every server message type.
SERVER_IS_VALID: dict[str, Callable[[Any], bool]] = _is_valid_table(schemas.SERVER_TYPES)
#: ``type`` -> fast ``is_valid`` for every client message type.
CLIENT_IS_VALID: dict[str, Callable[[Any], bool]] = _is_valid_table(schemas.CLIENT_TYPES)
RUN_EVENT_TYPES = frozenset(schemas.RUN_EVENT_TYPES)


def fast_is_valid(type_: str, message: Any, *, client: bool = False) -> bool:
    """The fast engine's verdict; a value it cannot take counts as invalid (the reference decides)."""
    table = CLIENT_IS_VALID if client else SERVER_IS_VALID
    try:
        return table[type_](message)
    except Exception:  # noqa: BLE001 - e.g. an integer beyond 64 bits: let the reference decide
        return False


def _compact(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return clip(text, limit)


def _path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(message)"


def problems(type_: str, message: Any, *, client: bool = False) -> list[tuple[str, str, str]]:
    """The reference's problems with a message of a known type: ``(rule id, expected, observed)``.

    At most one entry per rule (several problems are joined), so one bad
    message is one violation per rule. An empty list means the message is
    valid. Called on the slow path only.
    """
    names = schemas.CLIENT_TYPES if client else schemas.SERVER_TYPES
    validator = reference_validator(names[type_])
    try:
        errors = sorted(validator.iter_errors(message), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    except Exception as exc:  # noqa: BLE001 - a value no JSON parser produces (e.g. a NaN pattern input)
        return [(PAYLOAD_RULE, "a JSON message valid for its type", f"cannot be validated: {type(exc).__name__}: {exc}")]
    by_rule: dict[str, tuple[list[str], list[str]]] = {}
    is_event = type_ in RUN_EVENT_TYPES and not client
    for error in errors:
        path = list(error.absolute_path)
        rule = ENVELOPE_RULE if is_event and not (path and path[0] == "payload") else PAYLOAD_RULE
        expected = f"{error.validator}: {_compact(error.validator_value)}"
        observed = f"at {_path(error)}: {error.message}"
        exp, obs = by_rule.setdefault(rule, ([], []))
        if observed not in obs and len(obs) < MAX_PROBLEMS:
            exp.append(expected)
            obs.append(observed)
    return [
        (rule, f"{'; '.join(exp)} ({names[type_]}.json)", clip("; ".join(obs), 400))
        for rule, (exp, obs) in by_rule.items()
    ]


def check(type_: str, message: Any) -> list[tuple[str, str, str]]:
    """Problems with a server message of a known type; ``[]`` when valid (fast in that case)."""
    if fast_is_valid(type_, message):
        return []
    return problems(type_, message)


def is_valid_client(message: Any) -> bool:
    """Whether a client message is valid (decides whether a start_run really starts a run)."""
    if not isinstance(message, dict):
        return False
    type_ = message.get("type")
    if type(type_) is not str or type_ not in CLIENT_IS_VALID:
        return False
    return fast_is_valid(type_, message, client=True) or not problems(type_, message, client=True)
