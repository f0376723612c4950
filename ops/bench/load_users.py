"""The simulated users of ops/bench/load.py: locust users, run in a process of their own
(locust patches the standard library for gevent when imported, which the setup's asyncio and
psycopg code must not meet).

    python -m ops.bench.load_users SPEC.json OUT.json

SPEC (written by load.py): the server's base URL, the window, the number of users, and per
tenant a bearer token, its active goals (agent id and objective ids), its agents' card ETags,
the search paths it sends, and the public card paths. Each user is one tenant's client; it
sends, with no pause between requests, a weighted mix of the request types in `WEIGHTS`.
OUT: per request type, the count, the failures (with a few samples), the status codes and
the latencies' p50/p99 in ms (taken from every request, not locust's rounded buckets).
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, constant, task
from locust.env import Environment

API = "/api/v1"
# Request type -> weight in the mix.
WEIGHTS = {
    "goal": 10,
    "history": 4,
    "analytics (agent)": 3,
    "analytics (system)": 1,
    "progress update": 6,
    "search": 5,
    "card": 6,
    "card If-None-Match": 4,
    "well-known card": 2,
}


class Tally:
    """What each request type did, filled from locust's request event."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {name: [] for name in WEIGHTS}
        self.failures: dict[str, int] = dict.fromkeys(WEIGHTS, 0)
        self.samples: dict[str, list[str]] = {name: [] for name in WEIGHTS}
        self.statuses: dict[str, dict[int, int]] = {name: {} for name in WEIGHTS}

    def record(self, name: str, response_time: float, response: Any, exception: Any, **_: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        self.statuses[name][status] = self.statuses[name].get(status, 0) + 1
        self.latencies[name].append(response_time)
        if exception is not None:
            self.failures[name] += 1
            if len(self.samples[name]) < 3:
                body = (getattr(response, "text", "") or "")[:200]
                self.samples[name].append(f"{status} {exception} {body}")

    def summary(self, seconds: float) -> dict[str, dict[str, Any]]:
        out = {}
        for name, times in self.latencies.items():
            ordered = sorted(times)

            def pct(q: float, ordered: list[float] = ordered) -> float | None:
                return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

            out[name] = {
                "requests": len(ordered),
                "failures": self.failures[name],
                "per_s": len(ordered) / seconds,
                "p50_ms": pct(0.5),
                "p99_ms": pct(0.99),
                "statuses": {str(k): v for k, v in sorted(self.statuses[name].items())},
                "samples": self.samples[name],
            }
        return out


def user_class(spec: dict[str, Any]) -> type[FastHttpUser]:
    tenants = itertools.cycle(spec["tenants"])
    public = spec["public"]

    class TenantClient(FastHttpUser):
        """One tenant's API client (users take the tenants in turn)."""

        host = spec["base"]
        wait_time = constant(0)

        def on_start(self) -> None:
            self.tenant = next(tenants)
            self.rng = random.Random()
            self.auth = {"Authorization": f"Bearer {self.tenant['token']}"}
            self.etags: dict[str, str] = dict(self.tenant["etags"])
            self.agents = sorted(self.etags)

        def _goal(self) -> dict[str, Any]:
            goal: dict[str, Any] = self.rng.choice(self.tenant["goals"])
            return goal

        @task(WEIGHTS["goal"])
        def goal(self) -> None:
            self.client.get(f"{API}/goals/agents/{self._goal()['agent_id']}", headers=self.auth, name="goal")

        @task(WEIGHTS["history"])
        def history(self) -> None:
            path = f"{API}/goals/agents/{self._goal()['agent_id']}/history?limit=20"
            self.client.get(path, headers=self.auth, name="history")

        @task(WEIGHTS["analytics (agent)"])
        def agent_analytics(self) -> None:
            path = f"{API}/goals/analytics/{self._goal()['agent_id']}"
            self.client.get(path, headers=self.auth, name="analytics (agent)")

        @task(WEIGHTS["analytics (system)"])
        def system_analytics(self) -> None:
            self.client.get(f"{API}/goals/analytics", headers=self.auth, name="analytics (system)")

        @task(WEIGHTS["progress update"])
        def progress(self) -> None:
            goal = self._goal()
            body = {"objective_progress": {o: round(self.rng.uniform(0, 99), 1) for o in goal["objectives"]}}
            path = f"{API}/goals/agents/{goal['agent_id']}/progress"
            self.client.put(path, json=body, headers=self.auth, name="progress update")

        @task(WEIGHTS["search"])
        def search(self) -> None:
            self.client.get(self.rng.choice(self.tenant["searches"]), headers=self.auth, name="search")

        @task(WEIGHTS["card"])
        def card(self) -> None:
            agent = self.rng.choice(self.agents)
            answer = self.client.get(f"{API}/agents/{agent}/card", headers=self.auth, name="card")
            if answer.headers and (etag := answer.headers.get("etag")):
                self.etags[agent] = str(etag)

        @task(WEIGHTS["card If-None-Match"])
        def card_if_none_match(self) -> None:
            """304 while the card is unchanged; 200 with the new card (and ETag) once its goals moved."""
            agent = self.rng.choice(self.agents)
            headers = {**self.auth, "If-None-Match": self.etags[agent]}
            path = f"{API}/agents/{agent}/card"
            with self.client.get(
                path, headers=headers, name="card If-None-Match", catch_response=True
            ) as answer:
                if answer.status_code == 200 and answer.headers and (etag := answer.headers.get("etag")):
                    self.etags[agent] = str(etag)
                if answer.status_code in (200, 304):
                    answer.success()
                else:
                    answer.failure(f"status {answer.status_code}")

        @task(WEIGHTS["well-known card"])
        def public_card(self) -> None:
            self.client.get(self.rng.choice(public), name="well-known card")

    return TenantClient


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Every user at once, for spec["seconds"]; then what each request type did."""
    tally = Tally()
    env = Environment(user_classes=[user_class(spec)])
    env.events.request.add_listener(tally.record)  # type: ignore[no-untyped-call]
    runner = env.create_local_runner()
    started = time.perf_counter()
    runner.start(spec["users"], spawn_rate=spec["users"])
    gevent.sleep(spec["seconds"])
    runner.quit()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "by_type": tally.summary(seconds)}


if __name__ == "__main__":
    spec_file, out_file = sys.argv[1:3]
    Path(out_file).write_text(json.dumps(run(json.loads(Path(spec_file).read_text()))))
