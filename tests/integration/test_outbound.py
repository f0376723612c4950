"""The outbound guard against real HTTP servers on loopback: what it refuses is never
connected to, what it allows is fetched within its time and size, and the connection goes to
the address that was checked."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Iterator, Sequence
from ipaddress import ip_address, ip_network
from pathlib import Path

import orjson
import pytest

from infrastructure.outbound import OutboundClient, OutboundFailed, OutboundPolicy, OutboundRefused
from infrastructure.outbound_addresses import IPAddress
from infrastructure.settings import Settings
from tests.integration.web_peers import (
    Peer,
    certificate_for,
    chunked,
    dripping,
    redirect,
    reply,
    serving,
    silent_listener,
)

LOOPBACK = (ip_network("127.0.0.0/8"),)
DOCUMENT = orjson.dumps({"keys": [], "name": "peer"})


@pytest.fixture
def peer() -> Iterator[Peer]:
    with serving() as server:
        server.routes["/doc"] = reply(200, DOCUMENT, Content_Type="application/json")
        yield server


@pytest.fixture
def other() -> Iterator[Peer]:
    """A second server, on 127.0.0.2: loopback too, but another address."""
    with serving("127.0.0.2") as server:
        server.routes["/doc"] = reply(200, DOCUMENT)
        yield server


def client(*allowed: str, **policy: float) -> OutboundClient:
    nets = tuple(ip_network(n) for n in allowed)
    return OutboundClient(OutboundPolicy(allow_nets=nets, **policy))  # type: ignore[arg-type]


class Resolver:
    """Answers names from a table, one answer per call in turn (the last one repeats), and
    keeps the names it was asked."""

    def __init__(self, **answers: Sequence[str]) -> None:
        self._answers = {name.replace("_", "."): list(a) for name, a in answers.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.asked.append(host)
        turns = self._answers[host]
        answer = turns.pop(0) if len(turns) > 1 else turns[0]
        return [ip_address(a) for a in answer.split(",")]


def test_loopback_is_refused_by_default_and_never_connected_to(peer: Peer) -> None:
    with client() as outbound, pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is loopback") as refused:
        outbound.get(f"{peer.url}/doc")
    assert refused.value.kind == "refused"
    assert peer.connections == 0


def test_loopback_is_fetched_once_allowed(peer: Peer) -> None:
    settings = Settings(_env_file=None, OUTBOUND_ALLOW_NETS="127.0.0.0/8")
    with OutboundClient(OutboundPolicy.from_settings(settings)) as outbound:
        assert outbound.get_json(f"{peer.url}/doc") == {"keys": [], "name": "peer"}
        response = outbound.get(f"{peer.url}/doc?page=2")
    assert (response.status, response.content, response.url) == (200, DOCUMENT, f"{peer.url}/doc?page=2")
    assert peer.requests[0].headers["Accept"] == "application/json"


def test_a_name_that_resolves_to_loopback_is_refused_by_default(peer: Peer) -> None:
    with client() as outbound, pytest.raises(OutboundRefused, match=r"localhost resolves to 127\.0\.0\.1"):
        outbound.get(f"http://localhost:{peer.port}/doc")
    assert peer.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.1", "0177.0.0.1", "[::ffff:127.0.0.1]"])
def test_other_spellings_of_loopback_are_refused(peer: Peer, host: str) -> None:
    with client() as outbound, pytest.raises(OutboundRefused):
        outbound.get(f"http://{host}:{peer.port}/doc")
    assert peer.connections == 0


def test_a_redirect_to_an_address_not_allowed_is_refused_and_never_connected_to(
    peer: Peer, other: Peer
) -> None:
    peer.routes["/away"] = redirect(f"{other.url}/doc")
    with client("127.0.0.1/32") as outbound, pytest.raises(OutboundRefused) as refused:
        outbound.get(f"{peer.url}/away")
    assert refused.value.url == f"{other.url}/doc"
    assert "127.0.0.2 is loopback" in refused.value.reason
    assert other.connections == 0
    assert len(peer.requests) == 1


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
        ("http://[fd00::1]/", "fd00::1 is private"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
        ("http://admin:hunter2@127.0.0.1/", "credentials"),
    ],
)
def test_a_redirect_to_a_refused_target_is_refused(peer: Peer, location: str, reason: str) -> None:
    peer.routes["/away"] = redirect(location, 301)
    with (
        client(*[str(n) for n in LOOPBACK]) as outbound,
        pytest.raises(OutboundRefused, match=reason) as refused,
    ):
        outbound.get(f"{peer.url}/away")
    assert "hunter2" not in str(refused.value)


def test_redirects_are_followed_up_to_five(peer: Peer) -> None:
    for hop in range(1, 7):
        peer.routes[f"/hop/{hop}"] = redirect("/doc" if hop == 1 else f"/hop/{hop - 1}", 307)
    with client("127.0.0.0/8") as outbound:
        assert outbound.get_json(f"{peer.url}/hop/5") == {"keys": [], "name": "peer"}
        with pytest.raises(OutboundFailed, match="more than 5 redirects") as failed:
            outbound.get(f"{peer.url}/hop/6")
    assert failed.value.kind == "status"


def test_credentials_are_not_sent_along_a_redirect_to_another_origin(peer: Peer, other: Peer) -> None:
    peer.routes["/here"] = redirect("/doc")
    peer.routes["/away"] = redirect(f"{other.url}/doc")
    token = {"Authorization": "Bearer s3cret"}
    with client("127.0.0.0/8") as outbound:
        outbound.get(f"{peer.url}/here", headers=token)
        outbound.get(f"{peer.url}/away", headers=token)
    assert [r.headers.get("Authorization") for r in peer.requests] == ["Bearer s3cret"] * 3
    assert "Authorization" not in other.requests[0].headers


def test_a_post_is_sent_again_on_307_and_becomes_a_get_on_303(peer: Peer) -> None:
    peer.routes["/again"] = redirect("/hook", 307)
    peer.routes["/seeother"] = redirect("/doc", 303)
    peer.routes["/hook"] = reply(202)
    with client("127.0.0.0/8") as outbound:
        assert outbound.post_json(f"{peer.url}/again", {"event": "done"}).status == 202
        assert outbound.post_json(f"{peer.url}/seeother", {"event": "done"}).content == DOCUMENT
    methods = [(r.method, r.path, r.body) for r in peer.requests]
    assert methods == [
        ("POST", "/again", b'{"event":"done"}'),
        ("POST", "/hook", b'{"event":"done"}'),
        ("POST", "/seeother", b'{"event":"done"}'),
        ("GET", "/doc", b""),
    ]
    assert peer.requests[1].headers["Content-Type"] == "application/json"


def test_a_post_that_must_not_follow_redirects_gets_the_redirect_as_its_answer(peer: Peer) -> None:
    """Webhook deliveries: a 3xx is the endpoint's answer, never a POST (or GET) elsewhere."""
    peer.routes["/moved"] = redirect("/hook", 307)
    peer.routes["/hook"] = reply(202)
    with client("127.0.0.0/8") as outbound:
        answer = outbound.post_json(f"{peer.url}/moved", {"event": "done"}, follow_redirects=False)
    assert answer.status == 307 and not answer.ok
    assert [r.path for r in peer.requests] == ["/moved"]


def test_a_body_past_the_limit_is_refused_while_it_arrives(peer: Peer) -> None:
    peer.routes["/chunked"] = chunked(b"x" * 1000, 100)  # 100 kB and no Content-Length
    peer.routes["/fits"] = chunked(b"x" * 1000, 64)
    with client("127.0.0.0/8", max_bytes=64_000) as outbound:
        with pytest.raises(OutboundFailed, match="more than 64000 bytes") as failed:
            outbound.get(f"{peer.url}/chunked")
        assert failed.value.kind == "too_large"
        assert len(outbound.get(f"{peer.url}/fits").content) == 64_000
        assert "Content-Length" not in peer.requests[0].headers


def test_a_declared_length_past_the_limit_is_refused_before_the_body(peer: Peer) -> None:
    peer.routes["/big"] = reply(200, b"x" * 70_000)
    with client("127.0.0.0/8", max_bytes=64_000) as outbound, pytest.raises(OutboundFailed) as failed:
        outbound.get(f"{peer.url}/big")
    assert (failed.value.kind, failed.value.reason) == ("too_large", "a body of 70000 bytes, over 64000")


def test_a_compressed_body_is_not_inflated(peer: Peer) -> None:
    peer.routes["/gz"] = reply(200, gzip.compress(b"0" * 10_000_000), Content_Encoding="gzip")
    with client("127.0.0.0/8") as outbound, pytest.raises(OutboundFailed, match="gzip") as failed:
        outbound.get(f"{peer.url}/gz")
    assert failed.value.kind == "unparsable"
    assert peer.requests[0].headers["Accept-Encoding"] == "identity"


def test_a_server_that_never_answers_times_out() -> None:
    with silent_listener() as port, client("127.0.0.0/8", timeout_s=0.5) as outbound:
        started = time.monotonic()
        with pytest.raises(OutboundFailed) as failed:
            outbound.get(f"http://127.0.0.1:{port}/doc")
        waited = time.monotonic() - started
    assert failed.value.kind == "timeout"
    assert waited < 3  # about the 0.5 s timeout, on a loaded machine too


def test_a_body_that_trickles_in_ends_with_the_fetch_time(peer: Peer) -> None:
    peer.routes["/drip"] = dripping(0.05)  # each read gets a byte well within any read timeout
    with client("127.0.0.0/8", timeout_s=0.5) as outbound:
        started = time.monotonic()
        with pytest.raises(OutboundFailed) as failed:
            outbound.get(f"{peer.url}/drip")
        waited = time.monotonic() - started
    assert failed.value.kind == "timeout"
    assert waited < 3


def test_unreachable_statuses_and_garbage_fail_by_kind(peer: Peer) -> None:
    peer.routes["/garbage"] = reply(200, b"<html>not json</html>")
    with silent_listener() as closed_port:
        pass  # the port is free again: nothing listens on it
    with client("127.0.0.0/8") as outbound:
        kinds = []
        for url in (f"{peer.url}/missing", f"{peer.url}/garbage", f"http://127.0.0.1:{closed_port}/"):
            with pytest.raises(OutboundFailed) as failed:
                outbound.get_json(url)
            kinds.append(failed.value.kind)
        assert outbound.get(f"{peer.url}/missing").status == 404  # get leaves the status to the caller
    assert kinds == ["status", "unparsable", "unreachable"]


def test_cookies_are_not_kept(peer: Peer) -> None:
    peer.routes["/cookie"] = reply(200, b"{}", Set_Cookie="session=abc; Path=/")
    with client("127.0.0.0/8") as outbound:
        outbound.get(f"{peer.url}/cookie")
        outbound.get(f"{peer.url}/doc")
    assert "Cookie" not in peer.requests[1].headers


def test_the_connection_goes_to_the_address_that_was_checked(peer: Peer) -> None:
    """A name that answers 127.0.0.1 when checked and 127.0.0.2 after (a rebinding attempt):
    asked once, and the request reaches the server on 127.0.0.1 under the name."""
    resolver = Resolver(agent_test=["127.0.0.1", "127.0.0.2"])
    policy = OutboundPolicy(allow_nets=(ip_network("127.0.0.1/32"),), resolve=resolver)
    with OutboundClient(policy) as outbound:
        assert outbound.get_json(f"http://agent.test:{peer.port}/doc") == {"keys": [], "name": "peer"}
    assert resolver.asked == ["agent.test"]
    assert peer.requests[0].headers["Host"] == f"agent.test:{peer.port}"


def test_each_hop_is_resolved_once_and_checked(peer: Peer, other: Peer) -> None:
    peer.routes["/away"] = redirect(f"http://second.test:{other.port}/doc")
    resolver = Resolver(first_test=["127.0.0.1"], second_test=["127.0.0.2"])
    with OutboundClient(OutboundPolicy(allow_nets=LOOPBACK, resolve=resolver)) as outbound:
        outbound.get(f"http://first.test:{peer.port}/away")
    assert resolver.asked == ["first.test", "second.test"]
    assert other.requests[0].headers["Host"] == f"second.test:{other.port}"

    refusing = Resolver(first_test=["127.0.0.1"], second_test=["127.0.0.2,169.254.169.254"])
    with (
        OutboundClient(OutboundPolicy(allow_nets=LOOPBACK, resolve=refusing)) as outbound,
        pytest.raises(OutboundRefused, match=r"second\.test resolves to 169\.254\.169\.254"),
    ):
        outbound.get(f"http://first.test:{peer.port}/away")
    assert len(other.requests) == 1  # every address must pass: none was connected to


def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(tmp_path: Path) -> None:
    server_tls, trusted = certificate_for("idp.test", tmp_path)
    with serving(tls=server_tls) as idp:
        idp.routes["/jwks"] = reply(200, DOCUMENT)
        resolver = Resolver(idp_test=["127.0.0.1"])
        policy = OutboundPolicy(allow_nets=LOOPBACK, resolve=resolver)
        with OutboundClient(policy, ssl_context=trusted) as outbound:
            assert outbound.get(f"https://idp.test:{idp.port}/jwks").content == DOCUMENT
            with pytest.raises(OutboundFailed, match="certificate") as failed:
                outbound.get(f"https://127.0.0.1:{idp.port}/jwks")  # the certificate names idp.test
    assert failed.value.kind == "unreachable"
    assert resolver.asked == ["idp.test"]
    assert [r.headers["Host"] for r in idp.requests] == [f"idp.test:{idp.port}"]


def test_a_https_to_http_redirect_is_refused(tmp_path: Path, peer: Peer) -> None:
    server_tls, trusted = certificate_for("idp.test", tmp_path)
    with serving(tls=server_tls) as idp:
        idp.routes["/jwks"] = redirect(f"{peer.url}/doc")
        policy = OutboundPolicy(allow_nets=LOOPBACK, resolve=Resolver(idp_test=["127.0.0.1"]))
        with (
            OutboundClient(policy, ssl_context=trusted) as outbound,
            pytest.raises(OutboundRefused, match="from https"),
        ):
            outbound.get(f"https://idp.test:{idp.port}/jwks")
    assert peer.connections == 0


def test_what_is_logged_of_a_fetch_holds_no_query(peer: Peer, caplog: pytest.LogCaptureFixture) -> None:
    peer.routes["/away"] = redirect("/doc?next=s3cret")
    caplog.set_level(logging.DEBUG, logger="infrastructure.outbound")
    with client("127.0.0.0/8") as outbound:
        outbound.get(f"{peer.url}/away?token=s3cret")
    ours = [r.getMessage() for r in caplog.records if r.name == "infrastructure.outbound"]
    assert ours and all("s3cret" not in line for line in ours)
