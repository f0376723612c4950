"""Scraping agents' endpoints through the outbound guard, against real loopback servers: how
each kind of failure is named, what is retried, and what a body becomes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any

import pytest

from application.collection import ScrapeFailed
from domain.kpi_values import Sample
from infrastructure.outbound import OutboundClient, OutboundPolicy
from infrastructure.scraping import MAX_JSON_PATH_CHARS, MAX_JSON_SAMPLES, MetricsScraper
from tests.conftest import free_port

# path -> the answers in turn (status, content type, body); the last one repeats
Script = dict[str, list[tuple[int, str, bytes]]]


@pytest.fixture
def agent() -> Iterator[tuple[str, Script, list[str]]]:
    script: Script = {}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            answers = script[self.path]
            status, content_type, body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script, asked
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def scraper() -> Iterator[MetricsScraper]:
    policy = OutboundPolicy(allow_nets=(ip_network("127.0.0.0/8"),), timeout_s=2.0)
    with OutboundClient(policy) as client:
        yield MetricsScraper(client, retries=2, backoff_s=0.01)


PROMETHEUS = b'# TYPE jobs counter\njobs_total{queue="a"} 3\njobs_total{queue="b"} 4\n'


def test_prometheus_text_and_a_json_health_document_become_samples(
    agent: tuple[str, Script, list[str]], scraper: MetricsScraper
) -> None:
    url, script, _ = agent
    script["/metrics"] = [(200, "text/plain; version=0.0.4", PROMETHEUS)]
    script["/health"] = [
        (200, "application/json", b'{"status": "ok", "queue": {"depth": 3, "ok": true}, "w": [1]}')
    ]
    samples = scraper.scrape(f"{url}/health", f"{url}/metrics")
    assert samples == [
        Sample("queue.depth", 3.0),
        Sample("w.0", 1.0),
        Sample("jobs_total", 3.0, {"queue": "a"}),
        Sample("jobs_total", 4.0, {"queue": "b"}),
    ]


def test_a_5xx_is_retried_and_a_4xx_is_not(
    agent: tuple[str, Script, list[str]], scraper: MetricsScraper
) -> None:
    url, script, asked = agent
    script["/flaky"] = [(503, "text/plain", b"busy"), (200, "text/plain", PROMETHEUS)]
    assert len(scraper.scrape(None, f"{url}/flaky")) == 2
    script["/gone"] = [(404, "text/plain", b"no")]
    with pytest.raises(ScrapeFailed) as failed:
        scraper.scrape(None, f"{url}/gone")
    assert failed.value.status == "status"
    assert asked.count("/flaky") == 2 and asked.count("/gone") == 1
    script["/down"] = [(500, "text/plain", b"down")]
    with pytest.raises(ScrapeFailed):
        scraper.scrape(None, f"{url}/down")
    assert asked.count("/down") == 3  # the first try and two retries


def test_each_failure_is_named(agent: tuple[str, Script, list[str]], scraper: MetricsScraper) -> None:
    url, script, _ = agent
    script["/garbled"] = [(200, "text/plain", b'jobs_total{queue="a 3\n')]
    script["/notjson"] = [(200, "application/json", b"{nope")]
    cases = {
        f"{url}/garbled": "unparsable",
        f"{url}/notjson": "unparsable",
        f"http://127.0.0.1:{free_port()}/metrics": "unreachable",
    }
    for target, status in cases.items():
        with pytest.raises(ScrapeFailed) as failed:
            scraper.scrape(None, target)
        assert failed.value.status == status, target


def test_a_small_hostile_json_body_stays_small(agent: tuple[str, Script, list[str]], scraper: MetricsScraper) -> None:
    url, script, _ = agent
    long_key = b'{"' + b"k" * 50_000 + b'": [' + b",".join([b"1"] * 10_000) + b"]}"
    deep = b"[" * 1000 + b"1" + b"]" * 1000
    wide = b'{"' + b"k" * 150 + b'": [' + b",".join([b"1"] * 100_000) + b'], "depth": 2}'
    script["/long"] = [(200, "application/json", long_key)]
    script["/deep"] = [(200, "application/json", deep)]
    script["/wide"] = [(200, "application/json", wide)]
    script["/fine"] = [(200, "application/json", b'{"queue": {"depth": 3}, "' + b"x" * 300 + b'": 1}')]
    assert scraper.scrape(f"{url}/long", None) == []  # no name a mapping could read
    assert scraper.scrape(f"{url}/deep", None) == []  # past the depth bound, and no RecursionError
    samples = scraper.scrape(f"{url}/wide", None)
    assert 0 < len(samples) <= MAX_JSON_SAMPLES
    assert sum(len(s.name) for s in samples) <= MAX_JSON_PATH_CHARS
    assert scraper.scrape(f"{url}/fine", None) == [Sample("queue.depth", 3.0)]


def test_an_unparsable_body_is_named_by_line_never_echoed(
    agent: tuple[str, Script, list[str]], scraper: MetricsScraper
) -> None:
    url, script, _ = agent
    script["/nul"] = [(200, "text/plain", b"ok_total 1\n# HELP g a gauge\ng\x00 1\n")]
    script["/json"] = [(200, "application/json", b'{"a": \x01secret}')]
    for path, expected in (("/nul", "not the Prometheus text format (line 3)"), ("/json", "not JSON (line 1")):
        with pytest.raises(ScrapeFailed) as failed:
            scraper.scrape(None, f"{url}{path}")
        assert failed.value.status == "unparsable"
        assert expected in failed.value.reason
        assert "\x00" not in failed.value.reason and "secret" not in failed.value.reason


def test_non_finite_prometheus_samples_are_dropped(
    agent: tuple[str, Script, list[str]], scraper: MetricsScraper
) -> None:
    url, script, _ = agent
    script["/m"] = [(200, "text/plain", b"a_total NaN\nb_total +Inf\nc_total -Inf\nd_total 2\n")]
    assert scraper.scrape(None, f"{url}/m") == [Sample("d_total", 2.0)]
