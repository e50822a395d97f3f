"""Client messages in, protocol ``error`` and ``time_sync`` replies out.

Parsing returns data, never raises: the connection loop needs either a typed
message to act on or a ready-to-send :class:`ProtocolError` whose ``code`` is
one of the documented ``schemas.ERROR_CODES``. Validation is the shipped JSON
Schema of the message's type (the same one clients and the checker use), so
the server can never be stricter or looser than the spec; it runs once per
client message, not per event.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Union

import orjson
from jsonschema.exceptions import best_match

from agent_events import schemas

MAX_ERROR_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class StartRun:
    input: str
    run_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelRun:
    run_id: str


@dataclass(frozen=True, slots=True)
class TimeSync:
    client_time_ms: float


@dataclass(frozen=True, slots=True)
class ResumeRun:
    """1.1: take a run over after a dropped connection (see :mod:`agent_events.reference_agent.resume`)."""

    run_id: str
    resume_token: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A problem to report to the client as an ``error`` message."""

    code: str
    message: str
    run_id: str | None = None
    details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.code not in schemas.ERROR_CODES:  # a bug here, not bad input
            raise ValueError(f"undocumented error code {self.code!r}; known: {schemas.ERROR_CODES}")

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "error", "code": self.code,
                                   "message": self.message[:MAX_ERROR_MESSAGE] or self.code,
                                   "emitted_at": time.time() * 1000.0}
        if _is_run_id(self.run_id):
            message["run_id"] = self.run_id
        if self.details:
            message["details"] = self.details
        return message

    def encode(self) -> bytes:
        return orjson.dumps(self.to_message())


ClientMessage = Union[StartRun, CancelRun, TimeSync]


def _is_run_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def _pointer(parts) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _start_run_shape() -> tuple[frozenset, frozenset, int, int, frozenset]:
    """The start_run constraints the fast path checks, read from the schema files."""
    schema = schemas.load(schemas.CLIENT_TYPES["start_run"])
    run_id = schemas.load("defs")["$defs"]["run_id"]
    failure = schema["properties"]["options"]["properties"]["simulate_failure"]["enum"]
    return (frozenset(schema["properties"]), frozenset(schema["required"]),
            run_id["minLength"], run_id["maxLength"], frozenset(failure))


_ALLOWED, _REQUIRED, _RUN_ID_MIN, _RUN_ID_MAX, _FAILURES = _start_run_shape()


def fast_valid_start_run(message: dict) -> bool:
    """True only for a start_run the schema certainly accepts; False means "ask jsonschema".

    A start_run arrives once per run, and full schema validation of one costs
    about as much as sending all of the run's events, so the common shape is
    checked here against constraints read from the schema. It may only say
    yes to valid messages; a differential property test holds it to that.
    """
    keys = message.keys()
    if not (_REQUIRED <= keys <= _ALLOWED) or type(message["input"]) is not str:
        return False
    if "run_id" in message:
        run_id = message["run_id"]
        if type(run_id) is not str or not _RUN_ID_MIN <= len(run_id) <= _RUN_ID_MAX:
            return False
    if "options" in message:
        options = message["options"]
        if type(options) is not dict:
            return False
        if "simulate_failure" in options:
            failure = options["simulate_failure"]
            if type(failure) is not str or failure not in _FAILURES:
                return False
    return True


class _ElidedArray(list):
    """An array the schema does not look into, emptied: same JSON type, bounded repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[...]"


class _ElidedObject(dict):
    """An object the schema does not look into, emptied: same JSON type, bounded repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "{...}"


def _validation_view(value: Any, schema: Any) -> Any:
    """``value`` as the schema sees it: the objects it names properties of are kept (their
    values viewed the same way); every other array or object is replaced by an empty one.

    jsonschema checks such a container's type only, but puts ``repr(value)`` in its
    messages: for 1,000 nested arrays that repr raised RecursionError (issue #14), and
    for a wide one it costs time. The view keeps every verdict the schema can reach,
    and its cost is one step per key of the objects the schema names, never a recursion
    into client data. A differential property test holds it to that.
    """
    if type(value) is dict:
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not properties:
            return _ElidedObject() if value else value
        return {key: _validation_view(item, properties.get(key)) for key, item in value.items()}
    if type(value) is list:
        return _ElidedArray() if value else value
    return value


def _preview(value: Any, limit: int = 100) -> str:
    """A bounded description of any JSON value, without recursing into it."""
    if type(value) is dict:
        return "{...}" if value else "{}"
    if type(value) is list:
        return "[...]" if value else "[]"
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    return repr(value)[:limit]


def _schema_problem(message: dict, type_: str) -> ProtocolError | None:
    """The most relevant schema violation of ``message``, as invalid_message."""
    schema = schemas.load(schemas.CLIENT_TYPES[type_])
    message = _validation_view(message, schema)
    error = best_match(schemas.validator(schemas.CLIENT_TYPES[type_]).iter_errors(message))
    if error is None:
        return None
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        path.append(missing[0] if missing else "")
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = min((name for name in error.instance if name not in allowed), default="")
        path.append(extra)
    return ProtocolError(
        "invalid_message", f"{type_}: {error.message}",
        run_id=message.get("run_id") if type_ != "time_sync" else None,
        details={"path": _pointer(path), "schema_path": _pointer(error.absolute_schema_path),
                 "validator": str(error.validator)},
    )


def parse_client_message(frame: str | bytes) -> ClientMessage | ProtocolError:
    """Turn one received WebSocket frame into a client message or an error."""
    if not isinstance(frame, str):
        return ProtocolError("unsupported_frame",
                             "binary frames are not part of protocol v1: send each JSON message as a text frame")
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        return ProtocolError("invalid_json", f"the frame is not JSON: {exc}")
    if not isinstance(message, dict):
        return ProtocolError("invalid_json", f"a client message is a JSON object, not {type(message).__name__}")
    type_ = message.get("type")
    if type_ is None:
        return ProtocolError("invalid_message", "the message has no \"type\"", run_id=message.get("run_id"),
                             details={"path": "/type"})
    if not isinstance(type_, str) or type_ not in schemas.CLIENT_TYPES:
        return ProtocolError("unknown_type", f"unknown message type {_preview(type_)}",
                             run_id=message.get("run_id"),
                             details={"type": type_[:100] if isinstance(type_, str) else _preview(type_),
                                      "known": sorted(schemas.CLIENT_TYPES)})
    if type_ == "start_run" and fast_valid_start_run(message):
        return StartRun(input=message["input"], run_id=message.get("run_id"), options=message.get("options") or {})
    problem = _schema_problem(message, type_)
    if problem is not None:
        return problem
    if type_ == "start_run":
        return StartRun(input=message["input"], run_id=message.get("run_id"), options=message.get("options") or {})
    if type_ == "cancel_run":
        return CancelRun(run_id=message["run_id"])
    if type_ == "resume_run":
        return ResumeRun(run_id=message["run_id"], resume_token=message["resume_token"], last_seq=message["last_seq"])
    client_time = message["client_time_ms"]
    if not math.isfinite(client_time):  # pragma: no cover - orjson rejects non-finite numbers already
        return ProtocolError("invalid_message", "client_time_ms must be finite", details={"path": "/client_time_ms"})
    return TimeSync(client_time_ms=client_time)


def time_sync_reply(request: TimeSync) -> bytes:
    return orjson.dumps({"type": "time_sync", "client_time_ms": request.client_time_ms,
                         "server_time_ms": time.time() * 1000.0})
