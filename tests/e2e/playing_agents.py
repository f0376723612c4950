"""A real HTTP server on loopback that plays an agent: Prometheus text on /metrics and a JSON
health document on /health, with values the test changes as it goes. It can be stopped and
started again on the same port (an agent going down and coming back)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PlayedAgent:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.healthy = True
        self.requests = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prometheus_text(self) -> str:
        lines = ["# TYPE tasks_completed counter"]
        lines += [f'tasks_completed_total{{queue="{q}"}} {v}' for q, v in sorted(self.values.items())]
        lines += ["# TYPE latency_seconds histogram"]
        lines += [
            f'latency_seconds_bucket{{le="{le}"}} {n}' for le, n in (("0.1", 5), ("1", 10), ("+Inf", 10))
        ]
        lines += ["latency_seconds_sum 4.0", "latency_seconds_count 10"]
        return "\n".join(lines) + "\n"

    def answer(self, path: str) -> tuple[int, str, bytes]:
        with self._lock:
            self.requests += 1
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.prometheus_text().encode()
        if path == "/health":
            return 200, "application/json", b'{"status": "ok", "uptime_s": 12}'
        return 404, "text/plain", b"not found"

    def start(self) -> None:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = agent.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
