"""The live viewer: three static files that ``agent-events serve`` answers at ``GET /``.

A plain HTTP GET of ``/`` (no ``Upgrade: websocket``) gets ``index.html``; the
page loads ``viewer.css`` and ``viewer.js`` from the same server and opens a
WebSocket back to it. No CDN, no build step: the files are read from this
package as they are. The page holds no data, so it is served without the
token; the WebSocket it opens carries the page's ``?token=`` like any other
client.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

#: URL path -> (file in this package, media type)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
    "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
}

#: Everything from this server, nothing from anywhere else ('self' covers ws:/wss: to the same host).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@lru_cache(maxsize=None)
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def wants_page(request: Request, path: str) -> bool:
    """A browser asking for one of the viewer's files, not a WebSocket handshake."""
    return path in FILES and "websocket" not in request.headers.get("Upgrade", "").lower()


def response(path: str) -> Response:
    name, media_type = FILES[path]
    body = _read(name)
    headers = Headers()
    headers["Content-Type"] = media_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Security-Policy"] = CSP
    headers["Referrer-Policy"] = "no-referrer"
    return Response(200, "OK", headers, body)
