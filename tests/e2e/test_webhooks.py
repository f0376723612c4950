"""Webhooks as a subscriber meets them: a real HTTP receiver on loopback that checks every
signature with its own code (the Standard Webhooks spec, not the server's signing function),
fails its first delivery, and sees each event once and in order; the deliveries and their
attempts listed; tenants kept apart; the signing secret never stored in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from tests.conftest import Server, free_port
from tests.e2e import test_jobs
from tests.e2e.support import login, ok, problem
from tests.e2e.test_jobs import _logs

WEBHOOKS = "/api/v1/webhooks"
GOALS = "/api/v1/goals"
FAST = {"OUTBOUND_ALLOW_NETS": "127.0.0.0/8", "WEBHOOK_RETRY_FIRST_S": "0.2", "WEBHOOK_DISPATCH_S": "0.2"}
EVENTS = ["milestone_reached", "status_changed", "goals_set"]
WAIT_S = 120.0  # a bound: what is not delivered by then is lost
# The worker processes' fixtures, as test_jobs has them: Redis, a queue prefix, processes.
redis_url, jobs_env, start_process = test_jobs.redis_url, test_jobs.jobs_env, test_jobs.start_process


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A webhook endpoint: answers 500 to the first `fail_first` requests (or all while
    `failing`), 204 to the others, and keeps every request."""

    url: str
    fail_first: int = 1
    failing: bool = False
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = 500 if self.failing or len(self.received) < self.fail_first else 204
            self.received.append(Received(headers, body, status))
            return status

    def delivered(self) -> list[Received]:
        """The requests it accepted, once per webhook-id, in the order it accepted them."""
        with self.lock:
            seen: dict[str, Received] = {}
            for r in self.received:
                if r.answered == 204 and r.headers["webhook-id"] not in seen:
                    seen[r.headers["webhook-id"]] = r
            return list(seen.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = endpoint.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint = Receiver(f"http://127.0.0.1:{httpd.server_address[1]}/hooks")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    httpd.shutdown()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, as the Standard Webhooks spec writes it: the key is the base64
    after `whsec_`; the content signed is `{id}.{timestamp}.{body}`; the header lists
    space-separated `v1,<base64 HMAC-SHA256>` signatures, one of which must match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for candidate in headers["webhook-signature"].split(" "):
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False


def _env(store_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    env = dict(FAST)
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    return env


def _goals(api: httpx.Client, agent: str) -> int:
    body = {"goals": {"purpose_statement": f"secret plans of {agent}", "primary_objectives": ["A"]}}
    return int(ok(api.post(f"{GOALS}/agents/{agent}", json=body), 201)["position"])


def _progress(api: httpx.Client, agent: str, value: float) -> int:
    answer = api.put(f"{GOALS}/agents/{agent}/progress", json={"objective_progress": {"a": value}})
    return int(ok(answer)["position"])


def _deliveries(api: httpx.Client, subscription: str, position: int = 0) -> list[dict[str, Any]]:
    params = {"limit": 200, **({"min_position": position} if position else {})}
    page = ok(api.get(f"{WEBHOOKS}/{subscription}/deliveries", params=params))
    items: list[dict[str, Any]] = page["items"]
    return items


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.1)


def _milestones(received: list[Received]) -> list[tuple[str, float]]:
    bodies = [orjson.loads(r.body) for r in received]
    return [(b["data"]["objective_id"], b["data"]["threshold"]) for b in bodies if b["type"] == "milestone_reached"]


def _scenario(api: httpx.Client, agent: str) -> int:
    """Goals, progress crossing milestones in three steps, a pause: the last write's position."""
    _goals(api, agent)
    for value in (30, 60, 95):
        _progress(api, agent, value)
    paused = api.put(f"{GOALS}/agents/{agent}/status", json={"status": "paused", "reason": "review"})
    return int(ok(paused)["position"])


EXPECTED_MILESTONES = [
    ("a", 25.0), ("overall", 25.0), ("a", 50.0), ("overall", 50.0),
    ("a", 75.0), ("a", 90.0), ("overall", 75.0), ("overall", 90.0),
]  # fmt: skip


def test_a_receiver_sees_each_event_once_and_in_order_though_its_first_delivery_failed(
    store_kind: str,
    start_server: Callable[..., Server],
    receiver: Receiver,
    tenant: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    server = start_server(**_env(store_kind, request))
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        created = ok(api.post(WEBHOOKS, json={"url": receiver.url, "events": EVENTS}), 201)
        secret, subscription = created["secret"], created["id"]
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
        shown = ok(api.get(f"{WEBHOOKS}/{subscription}", params={"min_position": created["position"]}))
        assert shown["url"] == receiver.url and shown["events"] == EVENTS
        assert "secret" not in shown and secret not in api.get(WEBHOOKS).text

        last = _scenario(api, "a1")
        _wait_until(
            lambda: [d["status"] for d in _deliveries(api, subscription, last)] == ["delivered"] * 10,
            "ten deliveries delivered",
        )
        listed = _deliveries(api, subscription)
    metrics = httpx.get(f"{server.url}/metrics/", timeout=30).text
    assert 'a2a_goals_webhook_deliveries_total{outcome="delivered"} 10.0' in metrics
    assert 'a2a_goals_webhook_deliveries_total{outcome="retrying"} 1.0' in metrics

    assert all(verify(secret, r.headers, r.body) for r in receiver.received)
    assert receiver.received[0].answered == 500  # the first was refused, and sent again
    accepted = receiver.delivered()
    assert [orjson.loads(r.body)["type"] for r in accepted] == ["goals_set"] + ["milestone_reached"] * 8 + [
        "status_changed"
    ]
    assert _milestones(accepted) == EXPECTED_MILESTONES  # each once, in the log's order
    first = orjson.loads(accepted[0].body)
    assert first["data"]["agent_id"] == "a1" and "timestamp" in first
    retried = [r for r in receiver.received if r.headers["webhook-id"] == receiver.received[0].headers["webhook-id"]]
    assert len(retried) == 2 and retried[0].body == retried[1].body  # the same id and body on retry

    # listed newest first, each with its attempts: the first delivery's failed attempt, then its success
    assert [d["position"] for d in listed] == sorted((d["position"] for d in listed), reverse=True)
    oldest = listed[-1]
    assert oldest["id"] == receiver.received[0].headers["webhook-id"]
    assert [(a["status_code"], a["error"]) for a in oldest["attempts"]] == [(500, "status"), (204, None)]
    assert all(a["duration_ms"] >= 0 and a["at"] for a in oldest["attempts"])
    assert all(len(d["attempts"]) == 1 for d in listed[:-1])


def test_tenants_never_see_each_others_subscriptions_or_events(
    store_kind: str,
    start_server: Callable[..., Server],
    receiver: Receiver,
    tenant: str,
    request: pytest.FixtureRequest,
) -> None:
    server = start_server(**_env(store_kind, request))
    receiver.fail_first = 0
    _, mine = login(server, tenant)
    _, theirs = login(server, f"{tenant}x")
    with (
        httpx.Client(base_url=server.url, headers=mine, timeout=30) as api,
        httpx.Client(base_url=server.url, headers=theirs, timeout=30) as other,
    ):
        asked = {"url": receiver.url, "events": ["goals_set"]}
        first = ok(api.post(WEBHOOKS, json=asked, headers={"Idempotency-Key": "sub-1"}), 201)
        again = ok(api.post(WEBHOOKS, json=asked, headers={"Idempotency-Key": "sub-1"}), 201)
        assert (again["id"], again["secret"], again["replayed"]) == (first["id"], first["secret"], True)
        subscription = first["id"]
        problem(other.get(f"{WEBHOOKS}/{subscription}"), 404)
        problem(other.get(f"{WEBHOOKS}/{subscription}/deliveries"), 404)
        problem(other.delete(f"{WEBHOOKS}/{subscription}"), 404)
        assert ok(other.get(WEBHOOKS))["items"] == []

        their_position = _goals(other, "a1")  # the same agent id, in the other tenant
        my_position = _goals(api, "a1")
        mine_listed = _deliveries(api, subscription, max(their_position, my_position))
        assert [d["position"] for d in mine_listed] == [my_position]
        _wait_until(lambda: len(receiver.delivered()) == 1, "my delivery")
    assert b"secret plans of a1" in receiver.delivered()[0].body
    assert all(orjson.loads(r.body)["data"]["goals"]["purpose_statement"] == "secret plans of a1"
               for r in receiver.received)  # fmt: skip
    assert len(receiver.received) == 1  # nothing of the other tenant's


def test_refused_targets_and_bad_fields_are_422s_naming_the_field(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()  # no OUTBOUND_ALLOW_NETS: private and loopback targets are refused
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        for url in ("http://10.1.2.3/hook", "http://127.0.0.1:9/hook", "ftp://example.org/x"):
            refused = problem(api.post(WEBHOOKS, json={"url": url, "events": ["goals_set"]}), 422)
            assert [e["field"] for e in refused["errors"]] == ["body.url"], refused
        bad = problem(api.post(WEBHOOKS, json={"url": "https://example.org/h", "events": ["goals_set", "nope"]}), 422)
        assert [e["field"] for e in bad["errors"]] == ["body.events.1"]
        empty = problem(api.post(WEBHOOKS, json={"url": "https://example.org/h", "events": []}), 422)
        assert [e["field"] for e in empty["errors"]] == ["body.events"]
        assert ok(api.get(WEBHOOKS))["items"] == []


def test_the_secret_is_stored_sealed_and_deleting_cancels_pending_deliveries(
    store_kind: str,
    start_server: Callable[..., Server],
    tenant: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    env = _env(store_kind, request)
    server = start_server(**env)
    nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every attempt fails
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        created = ok(api.post(WEBHOOKS, json={"url": nowhere, "events": ["goals_set"]}), 201)
        subscription, secret = created["id"], created["secret"]
        position = _goals(api, "a1")
        _wait_until(lambda: bool(_deliveries(api, subscription, position)[0]["attempts"]), "a first attempt")
        attempt = _deliveries(api, subscription)[0]["attempts"][0]
        assert attempt["status_code"] is None and attempt["error"] == "unreachable"

        deleted = ok(api.delete(f"{WEBHOOKS}/{subscription}"))
        after = _progress(api, "a1", 40)
        listed = _deliveries(api, subscription, max(after, deleted["position"]))
        assert [d["status"] for d in listed] == ["cancelled"]  # and nothing for the later event
        problem(api.get(f"{WEBHOOKS}/{subscription}"), 404)
        problem(api.delete(f"{WEBHOOKS}/{subscription}"), 404)

    stored = _stored_events(env, tmp_path / "server-data")
    key_text = secret.removeprefix("whsec_").encode()
    assert b"aesgcm.v1." in stored  # the sealed secret is in the log
    assert secret.encode() not in stored and key_text not in stored
    assert base64.b64decode(key_text) not in stored
    assert secret not in server.log_text()


def _stored_events(env: dict[str, str], data_dir: Path) -> bytes:
    """Everything the event store and the read models hold, raw."""
    if "DATABASE_URL" in env:
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            rows = conn.execute("SELECT state FROM a2a_events").fetchall()
            tables = conn.execute(
                "SELECT string_agg(t::text, '') FROM (SELECT * FROM webhook_subscriptions) t"
            ).fetchone()
        return b"".join(bytes(r[0]) for r in rows) + str(tables).encode()
    blobs = b""
    for path in sorted(data_dir.glob("*.sqlite*")):
        blobs += path.read_bytes()
    with sqlite3.connect(data_dir / "events.sqlite") as conn:  # the WAL's pages, read through SQLite
        blobs += b"".join(bytes(r[0]) for r in conn.execute("SELECT state FROM stored_events"))
    return blobs


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_worker_processes_deliver_on_redis_and_a_killed_worker_loses_nothing(
    jobs_env: dict[str, str],
    start_server: Callable[..., Server],
    start_process: Callable[..., subprocess.Popen[bytes]],
    receiver: Receiver,
    tenant: str,
    tmp_path: Path,
) -> None:
    env = {**jobs_env, **FAST, "WEBHOOK_RETRY_FIRST_S": "1"}
    server = start_server(**env)
    worker = start_process(env, "worker", "--threads", "2")
    start_process(env, "scheduler")
    receiver.failing = True
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        created = ok(api.post(WEBHOOKS, json={"url": receiver.url, "events": EVENTS}), 201)
        subscription, secret = created["id"], created["secret"]
        _goals(api, "a1")
        _progress(api, "a1", 30)
        _wait_until(lambda: len(receiver.received) >= 2, "two failed attempts")

        worker.send_signal(signal.SIGKILL)
        worker.wait()
        _progress(api, "a1", 60)
        last = _progress(api, "a1", 95)
        receiver.failing = False
        start_process(env, "worker", "--threads", "2")
        _wait_until(
            lambda: {d["status"] for d in _deliveries(api, subscription, last)} == {"delivered"},
            f"every delivery delivered\n{_logs(tmp_path)}",
        )
        assert len(_deliveries(api, subscription)) == 9

    assert all(verify(secret, r.headers, r.body) for r in receiver.received)
    accepted = receiver.delivered()
    assert orjson.loads(accepted[0].body)["type"] == "goals_set"
    assert _milestones(accepted) == EXPECTED_MILESTONES
    assert "Traceback" not in _logs(tmp_path)


def test_a_delivery_that_keeps_failing_is_given_up_and_the_next_one_is_tried(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(**FAST, WEBHOOK_MAX_ATTEMPTS="2")
    nowhere = f"http://127.0.0.1:{free_port()}/hook"
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        subscription = ok(api.post(WEBHOOKS, json={"url": nowhere, "events": EVENTS}), 201)["id"]
        last = _scenario(api, "a1")
        _wait_until(
            lambda: {d["status"] for d in _deliveries(api, subscription, last)} == {"failed"},
            "every delivery given up",
        )
        listed = _deliveries(api, subscription)
    assert len(listed) == 10
    assert all([a["error"] for a in d["attempts"]] == ["unreachable"] * 2 for d in listed)
    metrics = httpx.get(f"{server.url}/metrics/", timeout=30).text
    assert 'a2a_goals_webhook_deliveries_total{outcome="failed"} 10.0' in metrics


def test_a_secret_sealed_under_another_secrets_key_is_an_attempt_that_fails_not_a_crash(
    start_server: Callable[..., Server], receiver: Receiver, tenant: str
) -> None:
    keys = [base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2)]
    first = start_server(**FAST, SECRETS_KEY=keys[0])
    _, headers = login(first, tenant)
    with httpx.Client(base_url=first.url, headers=headers, timeout=30) as api:
        subscription = ok(api.post(WEBHOOKS, json={"url": receiver.url, "events": ["goals_set"]}), 201)["id"]
    first.stop()

    second = start_server(**FAST, SECRETS_KEY=keys[1])  # the same store, another key
    _, headers = login(second, tenant)
    with httpx.Client(base_url=second.url, headers=headers, timeout=30) as api:
        position = _goals(api, "a1")
        _wait_until(lambda: bool(_deliveries(api, subscription, position)[0]["attempts"]), "a first attempt")
        attempt = _deliveries(api, subscription)[0]["attempts"][0]
    assert (attempt["status_code"], attempt["error"]) == (None, "secret_unreadable")
    assert receiver.received == []  # nothing unsigned, or signed with anything else, went out
    assert "Traceback" not in second.log_text()


def test_a_tenant_has_at_most_fifty_subscriptions(
    start_server: Callable[..., Server], receiver: Receiver, tenant: str
) -> None:
    server = start_server(**FAST)
    _, headers = login(server, tenant)
    _, others = login(server, f"{tenant}y")
    asked = {"url": receiver.url, "events": ["status_changed"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        created = [ok(api.post(WEBHOOKS, json=asked), 201) for _ in range(50)]
        assert len(ok(api.get(WEBHOOKS, params={"min_position": created[-1]["position"]}))["items"]) == 50
        refused = problem(api.post(WEBHOOKS, json=asked), 409)
        assert refused["type"] == "/problems/too-many-webhooks" and refused["limit"] == 50
        ok(httpx.post(f"{server.url}{WEBHOOKS}", json=asked, headers=others, timeout=30), 201)  # theirs is theirs
        deleted = ok(api.delete(f"{WEBHOOKS}/{created[0]['id']}"))
        ok(api.get(WEBHOOKS, params={"min_position": deleted["position"]}))
        ok(api.post(WEBHOOKS, json=asked), 201)
