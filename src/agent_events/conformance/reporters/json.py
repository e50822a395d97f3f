"""``--format json``: the stable, versioned report (its JSON Schema is ``report_schema.json``)."""

from __future__ import annotations

import json as _json
from functools import cache
from importlib import resources

import orjson

from agent_events.conformance.reporters.base import Reporter


class JsonReporter(Reporter):
    name = "json"
    extension = ".json"
    media_type = "application/json"

    def render(self, report) -> str:
        return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                            default=_fallback).decode() + "\n"


def _fallback(value):
    """Anything a transcript header or note holds that JSON cannot: its repr, never a crash."""
    return repr(value)


@cache
def report_schema() -> dict:
    """The JSON Schema of the report (published by the docs at its ``$id``)."""
    return _json.loads((resources.files("agent_events.conformance") / "report_schema.json").read_text(encoding="utf-8"))
