"""The egress proxy: real sockets, an allowlist, and a record of every attempt."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from github_emulator.llm import OpenAIEmulator

from runner.gateway.egress import EgressProxy, host_allowed, split_target


@pytest.fixture()
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as emu:
        yield emu


def ask(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
            if data.startswith(b"CONNECT") and out.count(b"\r\n\r\n") >= 2 and b'"data"' in out:
                break
    return out


def test_a_connect_to_an_allowed_host_and_port_is_tunnelled(upstream: OpenAIEmulator, tmp_path: Path) -> None:
    port = urlsplit(upstream.base_url).port
    proxy = EgressProxy(["127.0.0.1"], ports={port})
    path = proxy.serve_unix(tmp_path / "egress.sock")
    try:
        answer = ask(path, f"AGENT-RUNNER-PEER pip install x\nCONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"
                     f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\n"
                     "Connection: close\r\n\r\n".encode())
    finally:
        proxy.close()
    assert answer.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200")
    assert b'"object": "list"' in answer
    assert [(a.host, a.allowed, a.command) for a in proxy.attempts] == [("127.0.0.1", True, "pip install x")]


def test_an_absolute_http_request_is_forwarded_in_origin_form(upstream: OpenAIEmulator, tmp_path: Path) -> None:
    port = urlsplit(upstream.base_url).port
    proxy = EgressProxy(["127.0.0.1"], ports={port})
    path = proxy.serve_unix(tmp_path / "egress.sock")
    try:
        answer = ask(path, f"GET http://127.0.0.1:{port}/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Proxy-Authorization: Basic x\r\nAuthorization: Bearer k\r\n\r\n".encode())
    finally:
        proxy.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert upstream.requests[0].path == "/v1/models"
    assert "proxy-authorization" not in upstream.requests[0].headers


@pytest.mark.parametrize(("request_line", "reason"), [
    (b"CONNECT evil.example:443 HTTP/1.1", b"not in SANDBOX_EGRESS_ALLOW"),
    (b"CONNECT pypi.org:22 HTTP/1.1", b"port 22 is not allowed"),
    (b"CONNECT 127.0.0.1:443 HTTP/1.1", b"not in SANDBOX_EGRESS_ALLOW"),
    (b"GET /relative HTTP/1.1", b"Only CONNECT"),
])
def test_everything_else_is_refused_and_recorded(tmp_path: Path, request_line: bytes, reason: bytes) -> None:
    proxy = EgressProxy(["pypi.org", "*.pythonhosted.org"])
    path = proxy.serve_unix(tmp_path / "egress.sock")
    try:
        answer = ask(path, request_line + b"\r\nHost: x\r\n\r\n")
    finally:
        proxy.close()
    assert answer.split(b"\r\n")[0] in (b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 400 Bad Request")
    assert reason in answer


def test_a_name_that_resolves_to_a_local_address_is_refused() -> None:
    proxy = EgressProxy(["localhost"])
    assert proxy.decide("localhost", 443) == (None, "it resolves only to a local or private address")
    assert EgressProxy(["127.0.0.1"]).decide("127.0.0.1", 443) == ("127.0.0.1", "")


def test_host_patterns_and_targets() -> None:
    assert host_allowed("files.pythonhosted.org", ["*.pythonhosted.org"])
    assert host_allowed("PyPI.org.", ["pypi.org"])
    assert not host_allowed("pypi.org.evil.example", ["pypi.org"])
    assert split_target("CONNECT", "pypi.org:443") == ("pypi.org", 443)
    assert split_target("GET", "http://pypi.org/simple") == ("pypi.org", 80)
    assert split_target("GET", "/simple") is None
    assert split_target("CONNECT", "pypi.org:notaport") is None


def test_the_allowlist_setting_takes_host_names_only() -> None:
    from runner.config import load_settings
    from runner.errors import ConfigError

    assert load_settings(env_file=None, sandbox_egress_allow="PyPI.org,*.pythonhosted.org").sandbox_egress_allow == (
        "pypi.org", "*.pythonhosted.org")
    for bad in ("https://pypi.org", "pypi.org:443", "pypi.org/simple"):
        with pytest.raises(ConfigError, match="SANDBOX_EGRESS_ALLOW"):
            load_settings(env_file=None, sandbox_egress_allow=bad)
