"""The proxy's HTTP side of a hop: which headers belong to one hop, the upstream URL for a client's
request, and the upstream's refusal copied back as the client's (so a 401 upstream is a 401 client)."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit, urlunsplit

from websockets.datastructures import Headers
from websockets.exceptions import InvalidURI
from websockets.http11 import Response
from websockets.uri import parse_uri

#: Request headers that belong to one hop and are not forwarded.
HOP_HEADERS = frozenset({
    "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept", "content-length", "transfer-encoding", "keep-alive",
    "te", "trailer", "proxy-connection",
})
#: Response headers of a refused handshake that are not copied back to the client.
HOP_RESPONSE_HEADERS = HOP_HEADERS | {"date", "server"}

def check_upstream(url: str) -> None:
    """``ValueError`` unless ``url`` is a ws:// or wss:// URL."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({exc})") from None


def upstream_url(base: str, request_path: str) -> str:
    """The upstream URL for a client's request path: the client's path under the upstream's, queries joined."""
    parts = urlsplit(base)
    path, _, query = request_path.partition("?")
    if path and path != "/":
        joined = parts.path.rstrip("/") + path
    else:
        joined = parts.path or "/"
    queries = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, parts.netloc, joined, queries, ""))


def why(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return f"{type(exc).__name__}: {exc}"


def copy_response(response: Response) -> Response:
    """The upstream's refusal, as the client's: same status, body and headers but the hop's own."""
    body = bytes(response.body or b"")
    headers = Headers([(k, v) for k, v in response.headers.raw_items() if k.lower() not in HOP_RESPONSE_HEADERS])
    headers["Content-Length"] = str(len(body))
    return Response(response.status_code, response.reason_phrase, headers, body)
