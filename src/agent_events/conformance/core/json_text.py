"""Parsing JSON text the way the checker judges it: orjson, and the standard library for numbers orjson refuses.

orjson reads an integer beyond 64 bits as the nearest double, but refuses a
number whose magnitude overflows a double (a 400-digit ``seq``, ``1e400``)
as if the text were not JSON. The JSON grammar sets no such limit (RFC 8259
leaves range to implementations), so such a frame is JSON carrying an absurd
value: the checker must judge the value (the schema, ``seq.contiguous``), not
call the frame malformed (``frame.json``). Such a number is read as the
double it overflows to, an infinity, which is exactly what orjson's rule
(beyond 64 bits, a double) gives when carried to its end: every value a
parse returns is one orjson could return or an infinity, so nothing
downstream meets an integer it cannot serialise.

Every parse of recorded or received text goes through :func:`loads`, so the
checker and the transcript reader cannot disagree about what is JSON. The
fallback runs only after orjson raised, so the fast path is orjson alone; and
it only accepts what orjson refused for a number's range: text refused for
anything else (a lone surrogate, invalid UTF-8, ``NaN``, excessive nesting)
keeps orjson's error.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
_orjson_loads = orjson.loads
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
_DOUBLE_MAX = sys.float_info.max
#: Python refuses to turn longer digit strings into an int (a guard against quadratic conversions);
#: any such integer is far beyond a double anyway.
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """The JSON value of ``data``; :class:`JSONDecodeError` (orjson's own) when it is not JSON."""
    try:
        return _orjson_loads(data)
    except JSONDecodeError as exc:
        return _beyond_double(data, exc)


def _beyond_double(data: Any, error: JSONDecodeError) -> Any:
    """``data`` parsed by the standard library, if orjson refused it only for a number out of a
    double's range; otherwise ``error`` is raised again."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        text.encode("utf-8")  # a lone surrogate (undecodable bytes kept by surrogateescape) is not UTF-8
    except UnicodeError:
        raise error from None
    overflowed = False

    def infinity(negative: bool) -> float:
        nonlocal overflowed
        overflowed = True
        return -math.inf if negative else math.inf

    def integer(digits: str) -> int | float:
        if len(digits) > _MAX_DIGITS:
            return infinity(digits.startswith("-"))
        value = int(digits)
        if _INT_MIN <= value <= _UINT_MAX:
            return value
        return float(value) if -_DOUBLE_MAX <= value <= _DOUBLE_MAX else infinity(value < 0)

    def real(digits: str) -> float:
        value = float(digits)
        return infinity(value < 0) if math.isinf(value) else value

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_int=integer, parse_float=real, parse_constant=constant)
        if overflowed:
            # strings must still be Unicode scalar values, as orjson requires ("\ud800" is not)
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError are ValueErrors
        raise error from None
    if not overflowed:
        raise error
    return value


__all__ = ["JSONDecodeError", "loads"]
