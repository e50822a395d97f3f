"""Python API entries, generated from the live objects' signatures and docstrings.

The Python API page names what is public and explains how the pieces fit;
signatures and docstrings come from the code itself, so a renamed parameter
cannot leave the docs behind. A name that does not import is reported as a
build warning, which ``mkdocs build --strict`` turns into a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any

from docgen_code import dataclass_fields
from docgen_markdown import code

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def resolve(dotted: str) -> Any:
    """Import ``package.module.attr`` (attribute chains allowed) or raise ImportError."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ImportError(f"{dotted}: {'.'.join(parts[:cut])} has no attribute {attr!r}") from None
        return obj
    raise ImportError(f"{dotted}: no such module")


def docstring(obj: Any) -> str:
    """The docstring as Markdown: reST roles and double backticks become plain code spans."""
    text = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and text.startswith(f"{obj.__name__}("):
        return ""  # the signature dataclasses write when a class has no docstring
    text = _ROLE.sub(lambda m: f"`{m[1]}`", text)
    return text.replace("``", "`").replace("\\ ", "")


class _Source(str):
    """An annotation kept as the source text it was written as (no quotes, no evaluation)."""

    def __repr__(self) -> str:
        text = str(self)
        if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]  # written quoted under ``from __future__ import annotations``
        return text


def signature(name: str, obj: Any, width: int = 88, *, method: bool = False) -> str:
    """``name(params) -> ret`` as written in the source; one parameter per line when long."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = [p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str) else p
              for p in sig.parameters.values()]
    params = [p.replace(default=_Source("...")) if p.default is not p.empty and len(repr(p.default)) > 40 else p
              for p in params]  # a long default (an object's repr) hides the signature's shape
    if method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    ret = sig.return_annotation
    if inspect.isclass(obj):
        ret = inspect.Signature.empty
    sig = sig.replace(parameters=params, return_annotation=_Source(ret) if isinstance(ret, str) else ret)
    text = _FORWARD_REF.sub(r"\1", f"{name}{sig}")
    if len(text) <= width or len(params) < 2:
        return text
    inner = str(sig.replace(return_annotation=inspect.Signature.empty))[1:-1]
    tail = _FORWARD_REF.sub(r"\1", str(sig)[len(inner) + 2:])
    body = ",\n".join(f"    {part}" for part in _split_params(_FORWARD_REF.sub(r"\1", inner)))
    return f"{name}(\n{body},\n){tail}"


_FORWARD_REF = re.compile(r"ForwardRef\('([^']*)'\)")


def _split_params(text: str) -> list[str]:
    """Split a parameter list at top-level commas (not those inside brackets or strings)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def kind_of(obj: Any) -> str:
    if inspect.isclass(obj):
        return "class"
    if inspect.iscoroutinefunction(obj):
        return "async function"
    if inspect.ismodule(obj):
        return "module"
    return "function" if callable(obj) else "constant"


def public_members(cls: type) -> list[tuple[str, Any]]:
    """Methods and properties the class itself defines and documents (not inherited, not private)."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            members.append((name, value))
    return members


def entry(dotted: str, heading: str = "###") -> str:
    obj = resolve(dotted)
    kind = kind_of(obj)
    out = [f"{heading} {code(dotted)} {{#{dotted}}}\n", f"*{kind}*\n"]
    if kind in ("class", "function", "async function"):
        prefix = "async def " if kind == "async function" else ("class " if kind == "class" else "def ")
        out.append(f"```python\n{prefix}{signature(dotted.rsplit('.', 1)[-1], obj)}\n```\n")
    elif kind == "constant":
        out.append(f"```python\n{dotted.rsplit('.', 1)[-1]} = {obj!r}\n```\n")
    if doc := docstring(obj):
        out.append(doc + "\n")
    if kind == "class" and dataclasses.is_dataclass(obj):
        for name, default, meaning in dataclass_fields(obj):
            given = "required" if default is dataclasses.MISSING else f"default {code(repr(default))}"
            out.append(f"- {code(name)} ({given})" + (f": {meaning}" if meaning else ""))
    if kind == "class":
        for name, member in public_members(obj):
            if isinstance(member, property):
                out.append(f"- {code(name)} (property)" + (f": {docstring(member).splitlines()[0]}" if docstring(member) else ""))
            else:
                first = docstring(member).split("\n\n")[0].replace("\n", " ")
                async_ = "async " if inspect.iscoroutinefunction(member) else ""
                out.append(f"- {code(async_ + signature(name, member, 10**6, method=True))}" + (f": {first}" if first else ""))
        out.append("")
    return "\n".join(out)
