"""What a small hostile JSON health document costs one scrape: samples, name characters,
peak memory and time, against a real loopback server.

    .venv/bin/python ops/bench/hostile_json.py

Bodies: long keys (`{"k"*50000: [1]*10000}`, 70 KB), a wide one (`{"k"*150: [1]*100000}`),
and 1000-deep nesting. Each is scraped in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

BODIES = {
    "long-keys": b'{"' + b"k" * 50_000 + b'": [' + b",".join([b"1"] * 10_000) + b"]}",
    "wide": b'{"' + b"k" * 150 + b'": [' + b",".join([b"1"] * 100_000) + b"]}",
    "deep": b"[" * 1000 + b"1" + b"]" * 1000,
}


def scrape_one(name: str) -> None:
    from infrastructure.outbound import OutboundClient, OutboundPolicy
    from infrastructure.scraping import MetricsScraper

    body = BODIES[name]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    policy = OutboundPolicy(allow_nets=(ip_network("127.0.0.0/8"),), timeout_s=10.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with OutboundClient(policy) as client:
        started = time.perf_counter()
        samples = MetricsScraper(client, retries=0).scrape(f"http://127.0.0.1:{httpd.server_address[1]}/h", None)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chars = sum(len(s.name) for s in samples)
    print(
        f"| {name} | {len(body) / 1024:.0f} KB | {len(samples)} | {chars} |"
        f" {(peak - before) / 1024:.1f} MB | {elapsed * 1000:.0f} ms |"
    )
    httpd.shutdown()


def main() -> None:
    if len(sys.argv) > 1:
        scrape_one(sys.argv[1])
        return
    print("| body | size | samples | name characters | peak RSS growth | time |")
    print("|---|---|---|---|---|---|")
    for name in BODIES:
        if subprocess.run([sys.executable, __file__, name], capture_output=False).returncode:
            print(f"| {name} | {len(BODIES[name]) / 1024:.0f} KB | the scrape raised (see above) | | | |")


if __name__ == "__main__":
    main()
