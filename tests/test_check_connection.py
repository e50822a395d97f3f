"""How the live check connects: tokens and headers, wss:// with a private CA or --insecure."""

from __future__ import annotations

import datetime
import ipaddress

import pytest

from agent_events import reference_agent
from misbehaving_servers import RELAXED_FLAGS
from agent_events.conformance.cli import main
from agent_events.conformance.live.api import build_headers, parse_header

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent-events test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def tls_agent(tls_files):
    certfile, keyfile = tls_files
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       certfile=certfile, keyfile=keyfile) as server:
        yield server.url


@pytest.fixture(scope="module")
def token_agent():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, token=TOKEN) as server:
        yield server.url


def test_wss_with_the_ca_file_is_checked(tls_agent, tls_files, capsys):
    assert tls_agent.startswith("wss://")
    assert main(["check", tls_agent, "--cafile", tls_files[0], "--scenario", "primary", "-q", *RELAXED_FLAGS]) == 0
    assert "CONFORMANT" in capsys.readouterr().out


def test_wss_with_an_unknown_ca_is_exit_3_with_a_hint(tls_agent, capsys):
    assert main(["check", tls_agent, "--scenario", "primary"]) == 3
    err = capsys.readouterr().err
    assert "TLS" in err and "--insecure" in err


def test_wss_insecure_skips_verification(tls_agent):
    assert main(["check", tls_agent, "--insecure", "--scenario", "primary", "-q", *RELAXED_FLAGS]) == 0


def test_a_missing_token_is_exit_3_naming_http_401(token_agent, capsys):
    assert main(["check", token_agent, "--scenario", "primary"]) == 3
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "--token" in err


@pytest.mark.parametrize("flags", [["--token", TOKEN], ["--header", f"Authorization: Bearer {TOKEN}"]],
                         ids=["token", "header"])
def test_token_or_header_authenticates(token_agent, flags):
    assert main(["check", token_agent, *flags, "--scenario", "primary", "-q", *RELAXED_FLAGS]) == 0


def test_the_token_can_come_from_the_environment(token_agent, monkeypatch):
    monkeypatch.setenv("AGENT_EVENTS_TOKEN", TOKEN)
    assert main(["check", token_agent, "--scenario", "primary", "-q", *RELAXED_FLAGS]) == 0


def test_headers_parse_and_the_token_replaces_an_authorization_header():
    assert parse_header("X-Team:  blue ") == ("X-Team", "blue")
    with pytest.raises(ValueError):
        parse_header("no colon here")
    assert build_headers(["Authorization: Basic x", "X-A: 1"], token="t") == (("X-A", "1"), ("Authorization", "Bearer t"))


@pytest.mark.parametrize("argv", [
    ["check", "http://127.0.0.1:1/"],
    ["check", "ws://127.0.0.1:1/", "--header", "nocolon"],
    ["check", "ws://127.0.0.1:1/", "--cafile", "/no/such/file.pem"],
    ["check", "ws://127.0.0.1:1/", "--runs", "0"],
    ["check", "ws://127.0.0.1:1/", "--scenario", "nope"],
    ["check", "ws://127.0.0.1:1/", "--runs", "99999999999999999999"],
    ["check", "ws://127.0.0.1:1/", "--concurrency", "100000"],
    ["check", "ws://127.0.0.1:1/", "--first-event-ms", "inf"],
    ["check", "ws://127.0.0.1:1/", "--deadline-s", "1e400"],
    ["check", "ws://127.0.0.1:1/", "--connect-timeout", "inf"],
    ["record", "ws://127.0.0.1:1/", "-o", "x.jsonl", "--deadline-s", "inf"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("table, key, value", [("", "runs", 100001), ("[check]\n", "concurrency", 10001)])
def test_config_counts_have_the_same_maxima_as_the_flags(tmp_path, table, key, value, capsys):
    config = tmp_path / "agent-events.toml"
    config.write_text(f"{table}{key} = {value}\n")
    assert main(["check", "ws://127.0.0.1:1/", "--config", str(config)]) == 2
    assert f"{key} must be an integer 1..{value - 1}, not {value}" in capsys.readouterr().err
