"""The stack's nginx (ops/nginx/nginx.conf) run for real in front of a server: TLS 1.2/1.3
with ECDHE AES-GCM/ChaCha20 suites only, security headers, gzip, /metrics kept inside, and the
caller's address passed on so that the API, trusting nginx alone, sees who called."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, free_port
from tests.e2e.ops_tools import ROOT, run, tool

NGINX = ROOT / "ops" / "nginx"
CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
CALLER = "127.0.0.2"  # the test's clients connect from here; nginx reaches the API from 127.0.0.1


@dataclass(frozen=True)
class Edge:
    http: str
    https: str
    ca: Path

    def client(self, **kwargs: object) -> httpx.Client:
        transport = httpx.HTTPTransport(
            local_address=CALLER, verify=ssl.create_default_context(cafile=str(self.ca))
        )
        return httpx.Client(transport=transport, timeout=10, **kwargs)  # type: ignore[arg-type]


def self_signed(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def local_config(directory: Path, upstream: str, http_port: int, https_port: int) -> Path:
    """nginx.conf as the stack has it, with this machine's ports, paths and upstream."""
    text = (NGINX / "nginx.conf").read_text()
    for stack, here in (
        ("server api:8000", f"server {upstream}"),
        ("/etc/nginx/tls/", f"{directory}/"),
        ("/etc/nginx/a2a_proxy.conf", str(NGINX / "a2a_proxy.conf")),
        ("/var/log/nginx/", f"{directory}/"),
        ("pid /tmp/nginx.pid", f"pid {directory}/nginx.pid"),
        ("listen 80;", f"listen {http_port};"),
        ("listen 443 ssl http2;", f"listen {https_port} ssl http2;"),
    ):
        assert stack in text, stack
        text = text.replace(stack, here)
    text = "\n".join(line for line in text.splitlines() if "listen [::]" not in line)  # IPv6 may be off
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        text = text.replace("http {", f"http {{\n    {temp}_temp_path {directory}/{temp};", 1)
    config = directory / "nginx.conf"
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Edge, Server]]:
    """One server (SQLite, trusting 127.0.0.1 as its proxy) behind one nginx, for the module."""
    nginx = tool("nginx")
    tmp_path = tmp_path_factory.mktemp("edge")
    server = Server(
        {"APP_ENV": "test", "DATA_DIR": str(tmp_path / "data"), "ELASTICSEARCH_URL": "",
         "REACHABILITY_CHECK_S": "0", "TRUSTED_PROXIES": "127.0.0.1"},
        tmp_path / "server.log",
    )  # fmt: skip
    self_signed(tmp_path)
    http_port, https_port = free_port(), free_port()
    config = local_config(tmp_path, f"127.0.0.1:{server.port}", http_port, https_port)
    checked = run([nginx, "-t", "-c", str(config), "-e", str(tmp_path / "error.log")])
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(
        [nginx, "-c", str(config), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield (
            Edge(
                f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", tmp_path / "fullchain.pem"
            ),
            server,
        )
    finally:
        proc.terminate()
        proc.wait(10)
        server.stop()


def handshake(edge: Edge, *, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """The protocol and cipher nginx agrees to, or the error that ends the handshake."""
    context = ssl.create_default_context(cafile=str(edge.ca))
    context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    port = int(edge.https.rsplit(":", 1)[1])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            cipher = tls.cipher()
            return f"{tls.version()} {cipher[0] if cipher else ''}"
    except ssl.SSLError as e:
        return f"refused: {e.reason}"


def test_the_config_keeps_the_seed_protocols_and_ciphers() -> None:
    text = (NGINX / "nginx.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert f"ssl_ciphers {CIPHERS};" in text


def test_tls_offers_only_modern_protocols_and_suites(edge: tuple[Edge, Server]) -> None:
    front, _ = edge
    assert handshake(front, version=ssl.TLSVersion.TLSv1_3).startswith("TLSv1.3 ")
    agreed = handshake(front, version=ssl.TLSVersion.TLSv1_2)
    assert agreed.startswith("TLSv1.2 ECDHE-") and ("GCM" in agreed or "CHACHA20" in agreed), agreed
    # a TLS 1.2 client offering only suites without forward secrecy or with CBC is refused
    assert handshake(
        front, version=ssl.TLSVersion.TLSv1_2, ciphers="AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA"
    ).startswith("refused")


def test_plain_http_is_sent_to_https(edge: tuple[Edge, Server]) -> None:
    front, _ = edge
    with front.client() as client:
        answer = client.get(f"{front.http}/api/v1/goals/health")
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")


def test_answers_carry_security_headers_once_and_are_compressed(edge: tuple[Edge, Server]) -> None:
    front, _ = edge
    with front.client() as client:
        answer = client.get(f"{front.https}/openapi.json", headers={"Accept-Encoding": "gzip"})
        refused = client.get(f"{front.https}/api/v1/goals/agents/a1")
        docs = client.get(f"{front.https}/docs")
        own = client.get(f"{front.https}/metrics/")  # nginx's own answer, not the API's
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert json.loads(answer.content if answer.content[:1] == b"{" else gzip.decompress(answer.content))[
        "openapi"
    ]
    assert refused.status_code == 401
    for headers in (answer.headers, refused.headers, docs.headers, own.headers):
        assert headers.get_list("strict-transport-security") == ["max-age=63072000; includeSubDomains"]
        assert headers.get_list("x-content-type-options") == ["nosniff"]
        assert headers.get_list("x-frame-options") == ["DENY"]
        assert len(headers.get_list("content-security-policy")) == 1
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["server"] == "nginx"  # no version
    # the API's CSP for its docs page (which loads Swagger UI) passes through unchanged
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_metrics_stay_inside_the_stack(edge: tuple[Edge, Server]) -> None:
    front, server = edge
    with front.client() as client:
        assert client.get(f"{front.https}/metrics/").status_code == 404
    assert httpx.get(f"{server.url}/metrics/").status_code == 200


def test_the_api_sees_the_caller_not_an_address_it_claims(edge: tuple[Edge, Server]) -> None:
    front, server = edge
    with front.client() as client:
        answer = client.get(
            f"{front.https}/api/v1/goals/agents/a1",
            headers={"Authorization": "Bearer not-a-token", "X-Forwarded-For": "203.0.113.9"},
        )
    assert answer.status_code == 401
    deadline = time.monotonic() + 5
    while '"auth_denied"' not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    denial = next(line for line in server.log_text().splitlines() if '"auth_denied"' in line)
    assert f'"address": "{CALLER}"' in denial
    assert "203.0.113.9" not in denial
