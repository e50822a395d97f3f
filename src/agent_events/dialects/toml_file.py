"""Dialect files: a home-grown stream's shape, in TOML, like ``agent-events.toml``.

Every key is declared once in :data:`SCHEMA` (what it holds, how it is checked, its help
text, from which the docs' dialect-file reference page is generated), so a mistake is an
error naming the file, the line and the key: an unknown key (with the nearest known one),
a value of the wrong kind, a pointer that is not RFC 6901, a type that both opens and closes
a run or a family. The CLI turns it into exit code 2. A file may ``extends`` a built-in
dialect and change only what differs (an AG-UI agent whose timestamps are milliseconds:
``extends = "ag-ui"`` and ``timestamp_unit = "ms"``).

A file dialect maps onto *our* rules: its runs are judged by ``order.first_started``,
``order.completed_last`` and ``fallback.single`` (a further open past ``restarts``), its
families by ``pair.no_orphan``, ``pair.unique_id`` and ``pair.tool_matched``, ``seq`` by
``seq.contiguous`` when it has a seq pointer, latency on receive times; every rule it
cannot evidence is N/A with the reason (no seq pointer: ``seq.contiguous`` N/A, said so).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from agent_events.conformance.core import rules as _rules
from agent_events.dialects.builtin import BUILTIN, OUR_LIFECYCLE
from agent_events.dialects.model import FRAMINGS, PAIRINGS, SCOPES, TIMESTAMP_UNITS, Dialect, Family, Runs
from agent_events.dialects.pointer import Pointer, PointerError


class DialectFileError(ValueError):
    """A dialect file that cannot be used: ``FILE:LINE: KEY: problem``."""


# -- the keys, as data ---------------------------------------------------------------------------

def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def _types(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("a list of event type names")
    return tuple(value)


def _pointer(value: Any) -> Pointer:
    if not isinstance(value, str):
        raise ValueError('an RFC 6901 JSON pointer such as "/payload/tool_name"')
    try:
        return Pointer(value)
    except PointerError as exc:
        raise ValueError(str(exc)) from None


def _choice(choices) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError("one of " + ", ".join(f'"{c}"' for c in choices))
        return value
    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError("an integer 0..100")
    return value


def _table(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError("a table (JSON object) of the message")
    return value


#: table -> key -> (converter, help). ``""`` is the top level; ``families`` is an array of tables.
SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], str]]] = {
    "": {
        "name": (_str, "the dialect's name, as reports show it (\"judged as dialect NAME VERSION\")"),
        "version": (_str, "the version of the shape it describes"),
        "title": (_str, "one line saying what the shape is"),
        "extends": (_choice(tuple(BUILTIN)), "a built-in dialect to start from; the keys given replace its own"),
        "framing": (_choice(FRAMINGS), "how a frame decodes: auto (per frame: JSON, else SSE records), json, "
                                       "sse (data: records in a text frame), envelope (a JSON object holding the event)"),
        "envelope": (_pointer, "with framing = \"envelope\": the pointer to the event inside the frame"),
        "types": (_types, "every event type the shape has (then an unknown type is schema.unknown_type)"),
        "hooks": (_types, "named hooks run on each event before judging (ag-ui.chunks: AG-UI chunk expansion)"),
    },
    "fields": {
        "type": (_pointer, "where an event's type is (default \"/type\")"),
        "run_id": (_pointer, "where the run id is (needed by runs.scope = \"keyed\")"),
        "seq": (_pointer, "where a per-run sequence number is (0, then +1); without it seq.contiguous is N/A"),
        "timestamp": (_pointer, "where the sender's timestamp is"),
        "timestamp_unit": (_choice(tuple(TIMESTAMP_UNITS)), "the timestamp's unit; only then is latency.delivery judged"),
    },
    "runs": {
        "opens": (_types, "types that open a run"),
        "finishes": (_types, "types that end a run"),
        "errors": (_types, "types that end a run as failed (nothing left open is owed then)"),
        "scope": (_choice(SCOPES), "positional (a run's events follow its open until it ends) or keyed (by fields.run_id)"),
        "restarts": (_count, "further opens allowed inside a run (the seed's fallback attempt: 1)"),
        "may_follow": (_bool, "whether runs may follow one another on one connection (a live check starts one per connection otherwise)"),
        "errors_first": (_bool, "an error may come with no run open"),
        "late_error": (_bool, "an error may follow a finished run"),
    },
    "families": {
        "name": (_str, "the family's name (tool_call, message, step...)"),
        "opens": (_types, "types that open an item"),
        "content": (_types, "types that continue an open item"),
        "closes": (_types, "types that close an item"),
        "key": (_pointer, "where the item's id is (pairing = \"id\")"),
        "pairing": (_choice(PAIRINGS), "id (by the key) or name-in-order (no call id: by name, first open first closed)"),
        "name_at": (_pointer, "where the item's name is (the tool name)"),
        "reopen": (_bool, "a closed id may open again"),
        "tool": (_bool, "the items are tool calls (latency.tool_gap judges the profile's fast tools)"),
    },
    "start": {
        "message": (_table, "the message the client sends to start a run; \"{run_id}\", \"{thread_id}\", "
                            "\"{message_id}\" and \"{input}\" inside strings are filled in"),
    },
}
#: keys of the top level that are tables
_TABLES = ("fields", "runs", "families", "start")


def reference_rows():
    """(table, key, help) for the docs' generated dialect-file reference."""
    for table, keys in SCHEMA.items():
        for key, (_, text) in keys.items():
            yield table, key, text


# -- line numbers --------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*(\.|=)")


def _lines(text: str) -> dict[tuple, int]:
    """(table, index or None, key) -> the line it is on; (table, index, None) -> the header's line."""
    found: dict[tuple, int] = {}
    table, index = "", None
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("#"):
            table = header[2].strip().strip("\"'")
            if header[1] == "[[":
                index = counts.get(table, 0)
                counts[table] = index + 1
            else:
                index = None
            found.setdefault((table, index, None), number)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault((table, index, key[1].strip("\"'")), number)
    return found


# -- loading -------------------------------------------------------------------------------------

def load(path: "str | Path") -> Dialect:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DialectFileError(f"dialect file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DialectFileError(f"cannot read dialect file {path}: {exc}") from None
    return loads(text, str(path))


def loads(text: str, source: str = "<dialect>") -> Dialect:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DialectFileError(f"{source}: not valid TOML: {exc}") from None
    lines = _lines(text)

    def fail(table: str, index, key: str | None, problem: str) -> DialectFileError:
        line = lines.get((table, index, key)) or lines.get((table, index, None))
        where = f"{source}:{line}" if line else source
        name = ".".join(p for p in (table if index is None else f"{table}[{index}]", key) if p)
        return DialectFileError(f"{where}: {name}: {problem}" if name else f"{where}: {problem}")

    def convert(table: str, index, values: dict) -> dict:
        keys = SCHEMA[table]
        out = {}
        for key, value in values.items():
            if key not in keys:
                if table == "" and key in _TABLES:
                    continue
                close = difflib.get_close_matches(key, list(keys) + ([*_TABLES] if table == "" else []), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise fail(table, index, key, f"unknown key{hint}; known keys here: {', '.join(keys)}")
            try:
                out[key] = keys[key][0](value)
            except ValueError as exc:
                text = str(exc)
                raise fail(table, index, key, text if text.startswith("'") else f"must be {text}") from None
        return out

    top = convert("", None, data)
    for table in ("fields", "runs", "start"):
        if table in data and not isinstance(data[table], dict):
            raise fail("", None, table, "must be a table ([" + table + "])")
    fields = convert("fields", None, data.get("fields", {}))
    runs = convert("runs", None, data.get("runs", {}))
    start = convert("start", None, data.get("start", {}))
    raw_families = data.get("families", [])
    if not isinstance(raw_families, list) or not all(isinstance(f, dict) for f in raw_families):
        raise fail("", None, "families", "must be an array of tables ([[families]])")
    families = [convert("families", i, f) for i, f in enumerate(raw_families)]

    base = BUILTIN[top["extends"]] if "extends" in top else None
    if base is None:
        for key in ("name", "version"):
            if key not in top:
                raise fail("", None, None, f"{key} is required (or extends = a built-in dialect)")
        if not runs.get("opens") or not runs.get("finishes"):
            raise fail("runs", None, None, "runs.opens and runs.finishes are required: which types open and end a run")
    framing = top.get("framing", base.framing if base else "json")
    if framing == "envelope" and "envelope" not in top and not (base and base.envelope):
        raise fail("", None, "framing", 'framing = "envelope" needs envelope = "/pointer/to/the/event"')
    if "envelope" in top and framing != "envelope":
        raise fail("", None, "envelope", 'an envelope pointer needs framing = "envelope"')

    # a type that both opens and closes
    b_runs = base.runs if base else Runs((), ())
    opens = runs.get("opens", b_runs.opens)
    ends = runs.get("finishes", b_runs.finishes) + runs.get("errors", b_runs.errors)
    both = sorted(set(opens) & set(ends))
    if both:
        key = "opens" if "opens" in runs else ("finishes" if "finishes" in runs else "errors")
        raise fail("runs", None, key, f"type {both[0]!r} both opens and ends a run")
    built_families = []
    for i, fam in enumerate(families):
        for need in ("name", "opens", "closes"):
            if need not in fam:
                raise fail("families", i, None, f"{need} is required")
        both = sorted(set(fam["opens"]) & set(fam["closes"]))
        if both:
            raise fail("families", i, "closes", f"type {both[0]!r} both opens and closes family {fam['name']!r}")
        clash = sorted((set(fam["opens"]) | set(fam.get("content", ())) | set(fam["closes"])) & (set(opens) | set(ends)))
        if clash:
            raise fail("families", i, "opens", f"type {clash[0]!r} is a run's open or end, not a family's")
        pairing = fam.get("pairing", "id" if "key" in fam else None)
        if pairing is None:
            raise fail("families", i, None, 'a family pairs by an id (key = "/pointer") or by name '
                                             '(pairing = "name-in-order" with name_at = "/pointer")')
        if pairing == "id" and "key" not in fam:
            raise fail("families", i, "pairing", 'pairing = "id" needs key = "/pointer/to/the/id"')
        if pairing == "name-in-order" and "name_at" not in fam:
            raise fail("families", i, "pairing", 'pairing = "name-in-order" needs name_at = "/pointer/to/the/name"')
        built_families.append(Family(
            fam["name"], opens=fam["opens"], closes=fam["closes"], content=fam.get("content", ()),
            key=fam.get("key") if pairing == "id" else None, pairing=pairing, name_pointer=fam.get("name_at"),
            reopen=fam.get("reopen", True), tool=fam.get("tool", False),
            open_once_rule="pair.unique_id" if pairing == "id" else None))
    if fields.get("timestamp_unit") and not fields.get("timestamp") and not (base and base.timestamp):
        raise fail("fields", None, "timestamp_unit", "a timestamp unit needs fields.timestamp")
    scope = runs.get("scope", b_runs.scope)
    if scope == "keyed" and "run_id" not in fields and not (base and base.run_id):
        raise fail("runs", None, "scope", 'scope = "keyed" needs fields.run_id')

    new_runs = Runs(opens=opens, finishes=runs.get("finishes", b_runs.finishes), errors=runs.get("errors", b_runs.errors),
                    errors_first=runs.get("errors_first", b_runs.errors_first),
                    late_error=runs.get("late_error", b_runs.late_error), scope=scope,
                    may_follow=runs.get("may_follow", b_runs.may_follow), restarts=runs.get("restarts", b_runs.restarts))
    if base is not None:
        dialect = replace(
            base, name=top.get("name", base.name), version=top.get("version", base.version),
            title=top.get("title", base.title), framing=framing, envelope=top.get("envelope", base.envelope),
            type=fields.get("type", base.type), run_id=fields.get("run_id", base.run_id),
            seq=fields.get("seq", base.seq), timestamp=fields.get("timestamp", base.timestamp),
            timestamp_unit=fields.get("timestamp_unit", base.timestamp_unit), runs=new_runs,
            families=tuple(built_families) or base.families, types=top.get("types", base.types),
            start=start.get("message", base.start), hooks=top.get("hooks", base.hooks), source=source)
        return _rederive(dialect, base)
    dialect = Dialect(
        name=top["name"], version=top["version"], title=top.get("title", top["name"]), framing=framing,
        envelope=top.get("envelope"), type=fields.get("type", Pointer("/type")), run_id=fields.get("run_id"),
        seq=fields.get("seq"), timestamp=fields.get("timestamp"), timestamp_unit=fields.get("timestamp_unit"),
        runs=new_runs, families=tuple(built_families), types=top.get("types", ()), start=start.get("message"),
        hooks=top.get("hooks", ()), lifecycle=dict(OUR_LIFECYCLE), source=source)
    for hook in dialect.hooks:
        from agent_events.dialects.hooks import HOOKS

        if hook not in HOOKS:
            raise fail("", None, "hooks", f"unknown hook {hook!r}; known: {', '.join(HOOKS)}")
    return _our_rules(dialect)


def _rederive(dialect: Dialect, base: Dialect) -> Dialect:
    """A built-in dialect extended: latency.delivery moves to the judged rules once a unit is declared."""
    rules = list(base.rules)
    na = dict(base.not_applicable)
    if dialect.timestamp_unit and "latency.delivery" not in rules:
        rules.append("latency.delivery")
        na.pop("latency.delivery", None)
    return replace(dialect, rules=tuple(rules), not_applicable=na)


def _our_rules(d: Dialect) -> Dialect:
    """Which of our rules a file dialect is judged by, and why each other one is N/A."""
    judged = ["frame.text", "frame.json", "frame.size", "schema.envelope", "order.first_started",
              "order.completed_last", "fallback.single", "latency.first_event", "latency.run_deadline"]
    na: dict[str, str] = {}
    name = d.name
    if d.types:
        judged.append("schema.unknown_type")
    else:
        na["schema.unknown_type"] = f"dialect {name} lists no types, so no type is unknown"
    if d.seq is not None:
        judged.append("seq.contiguous")
    else:
        na["seq.contiguous"] = (f"dialect {name} has no seq field: a dropped, repeated or reordered event cannot be "
                                f"seen, only a pairing or lifecycle breach it causes")
    if d.families:
        judged += ["pair.no_orphan", "pair.tool_matched"]
        if any(f.pairing == "id" for f in d.families):
            judged.append("pair.unique_id")
        else:
            na["pair.unique_id"] = f"dialect {name} pairs by name, in order: there is no call id to be unique"
        if any(f.tool for f in d.families):
            judged.append("latency.tool_gap")
        else:
            na["latency.tool_gap"] = f"dialect {name} has no tool family"
    else:
        for rule in ("pair.no_orphan", "pair.tool_matched", "pair.unique_id", "latency.tool_gap"):
            na[rule] = f"dialect {name} has no family of paired events"
    if d.timestamp is not None and d.timestamp_unit:
        judged.append("latency.delivery")
    else:
        na["latency.delivery"] = f"dialect {name} declares no timestamp with a unit (fields.timestamp_unit)"
    na["schema.payload"] = f"dialect {name} names no schema for its events' contents"
    na["isolation.run_scope"] = ("runs are positional on their connection: a leak from another connection's run "
                                 "cannot be told apart" if d.runs.scope == "positional" else
                                 "judged only for agent-events streams (start_run names the run)")
    for rule in ("order.thinking", "fallback.flag", "fallback.continuity"):
        na[rule] = "agent-events' attempt model (agent_thinking, fallback_used): not part of a dialect file"
    for rule in _rules.RULES:
        if rule.profile is not None:
            na[rule.id] = "profiles judge agent-events streams"
    judged_order = [r.id for r in _rules.ALL_RULES if r.id in set(judged)]
    return replace(d, rules=tuple(judged_order), not_applicable=na)
