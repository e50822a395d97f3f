"""Small network helpers shared by the servers of the kit (the reference agent, the fault proxy)."""

from __future__ import annotations


def listen_url(scheme: str, host: str, port: int | None) -> str:
    """The URL a client uses for a server listening on ``host:port``: a wildcard address becomes the
    loopback one of its family (a client cannot connect to 0.0.0.0), and an IPv6 host gets brackets."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"
