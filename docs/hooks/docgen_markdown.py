"""Markdown building blocks shared by the generated pages.

Generated text goes through these few helpers so that escaping is done in
one place: a ``|`` in a schema pattern or a help string must not split a
table row, and a backtick in a value must not end an inline code span.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence


def cell(text: Any) -> str:
    """Text safe inside one table cell: one line, ``|`` escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: Any) -> str:
    """An inline code span that survives backticks inside ``text``."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```\n"


def text_block(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"
