"""What a user reads when a connection cannot be opened: a URL that is not ws:// or wss://, and one
line they can act on for anything that stopped the opening handshake (HTTP status with a hint, DNS,
TLS, reset, timeout). Kept apart from the wire so the messages can be read, and tested, on their own."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri


def check_url(url: str) -> None:
    """Raise ``ValueError`` with a readable message unless ``url`` is ws:// or wss://."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({exc})") from None


def describe_handshake_failure(exc: BaseException, host: str | None = None, path: str | None = None) -> str:
    """One line a user can act on, for anything that stopped the handshake (``host`` and ``path``:
    the URL's, named in the message when known)."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = bytes(response.body or b"")[:200].decode("utf-8", "replace").strip()
        at_path = f" {path!r}" if path else ""
        hint = {401: " (unauthorized: pass --token or --header 'Authorization: ...')",
                # Starlette/FastAPI answer a WebSocket handshake on a path with no route with 403
                403: f" (forbidden: check the path{at_path} - some frameworks, such as Starlette and FastAPI, "
                     "answer 403 for a path with no WebSocket route - then the token, or the Origin the endpoint allows)",
                404: f" (no WebSocket endpoint at the path{at_path})"}.get(response.status_code, "")
        text = f"HTTP {response.status_code} {response.reason_phrase}{hint}"
        return f"{text}: {body}" if body else text
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc} (use --cafile for a private CA, --insecure for a self-signed test server)"
    if isinstance(exc, socket.gaierror):  # its errno is an EAI_* code, which os.strerror does not know
        name = f"the host name {host!r}" if host else "the host name"
        return f"{name} does not resolve ({exc.strerror or exc}): check the URL's host"
    if isinstance(exc, ConnectionResetError):
        return "the endpoint reset the connection (for wss://, is it really serving TLS?)"
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return os.strerror(exc.errno).lower()
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, InvalidHandshake):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return f"invalid handshake: {exc}{cause}"
    return f"{type(exc).__name__}: {exc}"
