"""Messages a person can act on when the endpoint cannot be reached: a host name that does not
resolve, a handshake answered 403 (which Starlette and FastAPI send for an unknown path)."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode

#: .invalid never resolves (RFC 6761), and the resolver says so without the network.
UNRESOLVABLE = "ws://no-such-host.invalid:1/"


@pytest.mark.parametrize("command", [["check"], ["record", "-o", "{tmp}/x.jsonl"], ["load", "--duration", "1"]])
def test_a_host_that_does_not_resolve_is_named(command, tmp_path, capsys):
    argv = [part.format(tmp=tmp_path) for part in command]
    assert main([argv[0], UNRESOLVABLE, *argv[1:]]) == ExitCode.CONNECT
    err = capsys.readouterr().err
    assert "'no-such-host.invalid' does not resolve" in err, err
    assert "unknown error" not in err.lower()


class _Forbidding(socketserver.BaseRequestHandler):
    """Answers any WebSocket handshake with 403, as Starlette does for a path with no route."""

    def handle(self) -> None:
        self.request.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def forbidding_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Forbidding)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_403_names_the_path_as_well_as_the_token_and_origin(forbidding_server, capsys):
    url = f"ws://127.0.0.1:{forbidding_server}/ws/agnet?token=secret"
    assert main(["check", url, "--scenario", "primary"]) == ExitCode.CONNECT
    err = capsys.readouterr().err
    assert "HTTP 403" in err and "'/ws/agnet'" in err and "path" in err, err
    assert "token" in err and "Origin" in err
    hint = err.split("HTTP 403", 1)[1]
    assert "token=secret" not in hint  # the path alone: the query may carry the token


def test_gaierror_is_described_without_the_network():
    from agent_events.conformance.live.wire import describe_handshake_failure

    text = describe_handshake_failure(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "exmaple.test")
    assert text == "the host name 'exmaple.test' does not resolve (Name or service not known): check the URL's host"
