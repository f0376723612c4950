"""Tokens of an external identity provider, trusted by its JWKS URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer
from tests.conftest import Server

IDP = "https://idp.example"


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[tuple[str, KeyRing]]:
    """A real HTTP server publishing an identity provider's JWKS."""
    keys = KeyRing.load_or_create(tmp_path / "idp-keys.json")
    body = json.dumps(keys.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", keys
    server.shutdown()


def test_tokens_of_the_configured_idp_are_accepted_and_others_refused(
    idp: tuple[str, KeyRing], start_server: Callable[..., Server], tenant: str, tmp_path: Path
) -> None:
    jwks_url, idp_keys = idp
    # The IdP of this test serves on loopback, which outbound fetches may reach only when allowed.
    server = start_server(
        EXTERNAL_JWKS_URL=jwks_url,
        EXTERNAL_ISSUER=IDP,
        EXTERNAL_ALGORITHMS="ES256",
        OUTBOUND_ALLOW_NETS="127.0.0.0/8",
    )
    url = f"{server.url}/api/v1/goals/"

    token, _ = TokenIssuer(idp_keys, issuer=IDP, audience="a2a-goals-api").issue(
        "svc-1", tenant, ["goals:read"]
    )
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 0

    impostor = TokenIssuer(idp_keys, issuer="https://evil.example", audience="a2a-goals-api")
    forged, _ = impostor.issue("svc-1", tenant, ["goals:read"])
    assert httpx.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=30).status_code == 401

    stranger = KeyRing.load_or_create(tmp_path / "stranger.json")
    unknown, _ = TokenIssuer(stranger, issuer=IDP, audience="a2a-goals-api").issue(
        "svc-1", tenant, ["goals:read"]
    )
    assert httpx.get(url, headers={"Authorization": f"Bearer {unknown}"}, timeout=30).status_code == 401
