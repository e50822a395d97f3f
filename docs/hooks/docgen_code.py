"""Read documentation that lives in the code: ``#:`` comments and dataclass defaults.

The project documents enum members and settings fields with ``#:``
comments right above them (the Sphinx convention). Reading those comments
lets a page show an exit code's meaning, a budget's meaning or a server
limit's meaning without a second copy of the text that could drift.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

_COMMENTED = re.compile(r"((?:^[ \t]*#:.*\n)+)[ \t]*(\w+)\s*[:=]", re.M)


def member_comments(obj: Any) -> dict[str, str]:
    """Member name -> its ``#:`` comment (joined into one line) in ``obj``'s source."""
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return {}
    return {m[2]: " ".join(re.sub(r"^\s*#:\s?", "", line) for line in m[1].splitlines()).strip().replace("``", "`")
            for m in _COMMENTED.finditer(source)}


def dataclass_fields(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, meaning) of each dataclass field, in declaration order.

    A field without a default has ``dataclasses.MISSING`` as its default.
    """
    comments = member_comments(cls)
    found = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = dataclasses.MISSING
        found.append((f.name, default, comments.get(f.name, "")))
    return found
