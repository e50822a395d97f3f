"""The handshake: bearer token, Origin, subprotocol, /healthz, TLS."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from agent_events import schemas
from test_reference_agent_support import FAST, agent, arun, check_well_formed, connect, recv_until_completed, start_run

TOKEN = "s3cret-t0ken"


async def handshake_status(url: str, **kwargs) -> int:
    """101 when the WebSocket opens, else the HTTP status the server answered."""
    try:
        async with connect(url, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize("how, expected", [
    ({}, 401),
    ({"additional_headers": {"Authorization": "Bearer wrong-token"}}, 401),
    ({"additional_headers": {"Authorization": f"Basic {TOKEN}"}}, 401),
    ({"query": "token=wrong"}, 401),
    ({"additional_headers": {"Authorization": f"Bearer {TOKEN}"}}, 101),
    ({"additional_headers": {"authorization": f"bearer {TOKEN}"}}, 101),
    ({"query": f"token={TOKEN}"}, 101),
])
def test_token_auth_at_the_handshake(how, expected):
    async def body():
        async with agent(token=TOKEN, **FAST) as server:
            url = server.url + (f"?{how['query']}" if "query" in how else "")
            headers = {k: v for k, v in how.items() if k != "query"}
            return await handshake_status(url, **headers)

    assert arun(body()) == expected


def test_an_authorised_client_gets_a_whole_run():
    async def body():
        async with agent(token=TOKEN, **FAST) as server:
            async with connect(server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
                await ws.send(start_run("authed"))
                runs, _ = await recv_until_completed(ws, ["authed"])
                return runs["authed"]

    check_well_formed(arun(body()))


def test_401_says_how_to_authenticate():
    async def body():
        async with agent(token=TOKEN, **FAST) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url):
                    pass
            return refused.value.response

    response = arun(body())
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"Authorization: Bearer" in response.body


def test_allowed_origins():
    async def body():
        async with agent(allow_origins=["https://app.example"], **FAST) as server:
            return (await handshake_status(server.url, origin="https://app.example"),
                    await handshake_status(server.url, origin="https://evil.example"),
                    await handshake_status(server.url))

    assert arun(body()) == (101, 403, 101)


def test_subprotocol_is_selected_when_offered_and_not_required():
    async def body():
        async with agent(**FAST) as server:
            async with connect(server.url) as offered:
                chosen = offered.subprotocol
            async with connect(server.url, subprotocols=None) as plain:
                await plain.send(start_run("plain"))
                runs, _ = await recv_until_completed(plain, ["plain"])
                return chosen, plain.subprotocol, runs["plain"]

    chosen, none, events = arun(body())
    assert chosen == schemas.SUBPROTOCOL and none is None
    check_well_formed(events)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_healthz_is_plain_http_json_without_a_token():
    async def body():
        import asyncio

        async with agent(token=TOKEN, **FAST) as server:
            http = server.url.replace("ws://", "http://")
            async with connect(server.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}):
                health = await asyncio.to_thread(get, http + "healthz")
            missing = await asyncio.to_thread(get, http + "elsewhere")
            return health, missing

    (status, headers, body_), (missing_status, _, missing_body) = arun(body())
    assert status == 200 and headers["Content-Type"] == "application/json"
    health = json.loads(body_)
    assert health["status"] == "ok" and health["connections"] == 1 and health["runs_in_flight"] == 0
    assert health["protocol"] == schemas.PROTOCOL_VERSION and health["version"]
    assert missing_status == 404 and b"/healthz" in missing_body


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_wss_with_a_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    client_tls = ssl.create_default_context(cafile=str(cert))

    async def body():
        async with agent(certfile=str(cert), keyfile=str(key), **FAST) as server:
            assert server.url.startswith("wss://127.0.0.1:")
            async with connect(server.url, ssl=client_tls) as ws:
                await ws.send(start_run("tls"))
                runs, _ = await recv_until_completed(ws, ["tls"])
                return runs["tls"]

    check_well_formed(arun(body()))

