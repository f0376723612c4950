"""The audit log on PostgreSQL: events leafed per second, proof latency, and `audit verify` time.

Run from the repo root:

    .venv/bin/python ops/bench/audit.py [--events 100000] [--agents 2000] [--proofs 2000]
        [--database-url URL] [--page-size 5000]

It creates a fresh database `a2a_bench_audit_<random>` on the server named by --database-url
(default: $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and drops it
at the end. Phases:

  1. write: --agents agents set goals, then progress arrives through record_progress_batch
     (300 updates per transaction) until the log holds at least --events events.
  2. leaf: a ProjectionRunner with the audit_log projection alone catches up over the whole
     log (reading the stored rows as the live projection does): events/s.
  3. proofs: --proofs inclusion proofs of random positions against the current tree, as the
     API serves them (AuditProofs.inclusion: leaf row, the stored event read back, O(log n)
     subtree rows): p50/p99 in ms; and as many consistency proofs of random sizes.
  4. verify: the whole log recomputed and compared (what `a2a-goals audit verify` does).
  5. anchor (on an EVM node: --rpc-url, default $BENCH_RPC_URL or a private anvil started from
     ops/chain/node_modules): the log leafed again from the start in one thread while rounds
     of anchoring (as the job runs them: the root from the read model, the transaction, its
     receipt, the Anchor events) run back to back in another, each anchoring what has been
     leafed, until the whole log is under a confirmed anchor: events/s leafed and anchored,
     and the rounds' p50/p99. Then the same node's rate of one transaction per event
     (--per-event-txs anchor() transactions, each waited for), the design this replaces.
  6. verify again, now checking every anchored root against the log and the chain.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from application.anchoring import Anchoring  # noqa: E402
from application.audit import Viewer  # noqa: E402
from application.goals import ProgressUpdate  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from interfaces.wiring.anchoring import topics_of_leaves  # noqa: E402
from interfaces.wiring.audit import audit_projection, audit_verifier  # noqa: E402
from projections.audit_anchors import AuditAnchorQueries, AuditAnchorsProjection  # noqa: E402
from projections.audit_log import AuditLogProjection  # noqa: E402
from projections.audit_log_queries import AuditLogQueries  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

TENANT = "bench"
GOALS = GoalDefinition(
    purpose_statement="Benchmark the audit log",
    objectives=(Objective("speed", "Speed", weight=1.0), Objective("care", "Care", weight=1.0)),
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=5000)
    default_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database-url", default=default_url)
    parser.add_argument("--rpc-url", default=os.environ.get("BENCH_RPC_URL", ""))
    parser.add_argument("--anchor-every", type=int, default=1000, help="leaves per anchor (ANCHOR_EVERY_EVENTS)")
    parser.add_argument("--per-event-txs", type=int, default=300)
    args = parser.parse_args()
    node = None
    if not args.rpc_url:
        node = start_anvil()
        args.rpc_url = node.url

    name = f"a2a_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.database_url.rpartition('/')[0]}/{name}"
    data_dir = Path(f"/tmp/{name}")
    try:
        run(args, url, data_dir)
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if node is not None:
            node.stop()


def run(args: argparse.Namespace, url: str, data_dir: Path) -> None:
    settings = Settings(
        APP_ENV="test",
        DATABASE_URL=url,
        DATA_DIR=str(data_dir),
        RUN_PROJECTIONS_IN_PROCESS="false",
        ELASTICSEARCH_URL="",
        A2A_RPC_URL=args.rpc_url,
        ANCHOR_EVERY_EVENTS=str(args.anchor_every),
    )
    system = build_system(settings)
    rng = random.Random(7)
    try:
        started = time.perf_counter()
        agents = [f"agent-{i}" for i in range(args.agents)]
        for agent in agents:
            system.goals.set_goals(TENANT, agent, GOALS, Meta(actor="bench"))
        while system.goals.log_position() < args.events:
            updates = [ProgressUpdate(rng.choice(agents), {"speed": rng.randint(1, 99)}) for _ in range(300)]
            system.goals.record_progress_batch(TENANT, updates, Meta(actor="bench"))
        events = system.goals.log_position()
        print(f"write: {events:,} events in {time.perf_counter() - started:.1f}s")

        projection = audit_projection(system.goals)
        applying = [0.0]
        apply = AuditLogProjection.apply

        def timed_apply(self: AuditLogProjection, tx: Any, events: Any) -> None:
            t = time.perf_counter()
            apply(self, tx, events)
            applying[0] += time.perf_counter() - t

        AuditLogProjection.apply = timed_apply  # type: ignore[method-assign]
        runner = ProjectionRunner(system.goals.read_log, system.store, [projection], page_size=args.page_size)
        with system.store.transaction() as tx:  # the System's runner set the table up: start empty
            tx.execute("DELETE FROM audit_leaves")
            tx.execute("DELETE FROM audit_nodes")
            tx.execute("UPDATE projection_tracking SET position = 0 WHERE name = 'audit_log'")
        started = time.perf_counter()
        leafed = runner.catch_up()
        seconds = time.perf_counter() - started
        runner.close()
        print(f"leaf: {leafed:,} events in {seconds:.1f}s = {leafed / seconds:,.0f} events/s leafed")
        # The log read and decoding are shared by every read model of a runner; this is the
        # audit log's own share (its read of the stored rows, hashing, its rows' COPY).
        print(f"  of which audit_log.apply: {applying[0]:.1f}s = {leafed / applying[0]:,.0f} events/s")

        size = system.audit.root()["tree_size"]
        positions = [p for (p,) in _positions(system)]
        timings = []
        for position in rng.choices(positions, k=args.proofs):
            t = time.perf_counter()
            system.audit.inclusion(position, Viewer(TENANT))
            timings.append((time.perf_counter() - t) * 1000)
        print(
            f"inclusion proofs at {size:,} leaves: p50 {statistics.median(timings):.2f} ms,"
            f" p99 {percentile(timings, 0.99):.2f} ms"
        )
        timings = []
        for _ in range(args.proofs // 4):
            first = rng.randint(1, size)
            t = time.perf_counter()
            system.audit.consistency(first, size)
            timings.append((time.perf_counter() - t) * 1000)
        print(
            f"consistency proofs: p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
        )

        started = time.perf_counter()
        result = audit_verifier(system.goals, system.store).verify()
        seconds = time.perf_counter() - started
        verdict = "OK" if result.first_bad is None else f"BAD at {result.first_bad.position}"
        print(
            f"verify: {result.events:,} events in {seconds:.1f}s = {result.events / seconds:,.0f} events/s ({verdict})"
        )
        anchor(args, system, size)
    finally:
        system.close()


def anchor(args: argparse.Namespace, system: Any, size: int) -> None:
    """Leafing and anchoring together, as deployed: the audit_log projection leafs the log from
    the start in one thread while rounds of anchoring run back to back in another, each
    anchoring whatever has been leafed (at least --anchor-every leaves), until the whole log
    written in phase 1 is under a confirmed anchor."""
    store = system.store
    anchors = AuditAnchorQueries(store)
    leaves = AuditLogQueries(store)
    follow = ProjectionRunner(system.goals.read_log, store, [AuditAnchorsProjection()], page_size=args.page_size)
    follow.catch_up()  # read past the log written so far, outside the timings
    anchoring = Anchoring(
        system.goals, system.anchoring._chain, leaves, anchors, topics_of_leaves(system.goals, store),
        system.anchoring.policy,
    )
    anchoring.contract()  # deployed before the timings
    chain = system.anchoring._chain()
    print(f"anchor: on {chain.name} (chain {chain.chain_id()}), a root per {args.anchor_every:,} leaves or more")
    runner = ProjectionRunner(system.goals.read_log, store, [audit_projection(system.goals)], page_size=args.page_size)
    with store.transaction() as tx:  # leaf the log again from the start, now with anchoring running
        tx.execute("DELETE FROM audit_leaves")
        tx.execute("DELETE FROM audit_nodes")
        tx.execute("UPDATE projection_tracking SET position = 0 WHERE name = 'audit_log'")
    leafing = threading.Thread(target=runner.catch_up)
    timings: list[float] = []
    anchored = 0
    started = time.perf_counter()
    leafing.start()
    while anchored < size:
        t = time.perf_counter()
        # The log's last leaves are fewer than a batch: once all are leafed, they go at once
        # rather than after ANCHOR_EVERY_SECONDS (a live log keeps growing instead).
        result = anchoring.run(force=not leafing.is_alive())
        follow.catch_up()  # the anchors read model the next round reads (the projector does this)
        if result.sent:
            timings.append((time.perf_counter() - t) * 1000)
        anchored = max(anchored, result.anchored)
        if not result.sent:
            time.sleep(0.005)
    seconds = time.perf_counter() - started
    leafing.join()
    runner.close()
    rounds = len(timings)
    print(
        f"  {size:,} events leafed and anchored in {seconds:.1f}s = {size / seconds:,.0f} events/s;"
        f" {rounds} anchors, each {size / rounds:,.0f} leaves on average;"
        f" a round p50 {statistics.median(timings):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms"
    )
    batched = size / (sum(timings) / 1000)  # events anchored per second of rounds (the chain's share)

    # One transaction per event: the same node, the same contract call, each waited for.
    contract = chain.deploy().contract_address or ""
    started = time.perf_counter()
    for n in range(1, args.per_event_txs + 1):
        tx = chain.send_anchor(contract, n, n.to_bytes(32, "big"))
        while chain.receipt(tx) is None:
            time.sleep(0.001)
    seconds = time.perf_counter() - started
    per_event = args.per_event_txs / seconds
    print(
        f"  one transaction per event on the same node: {args.per_event_txs} in {seconds:.1f}s ="
        f" {per_event:,.0f} events/s; batches anchored {batched:,.0f} events per second spent in rounds,"
        f" {batched / per_event:,.0f}x as many"
    )

    started = time.perf_counter()
    result = audit_verifier(system.goals, store).verify(
        stop=leaves.last_position(), anchors=anchors.confirmed(), chain_root=system.anchoring.chain_roots()
    )
    seconds = time.perf_counter() - started
    verdict = "OK" if result.first_bad is None else f"BAD at {result.first_bad.position}: {result.first_bad.what}"
    print(
        f"verify with the chain: {result.events:,} events and {result.anchors_checked} anchored roots"
        f" checked on the chain in {seconds:.1f}s ({verdict})"
    )


def start_anvil() -> Any:
    """A private anvil on a free port (ops/test's npm install put it in ops/chain/node_modules)."""
    import socket
    import subprocess

    import httpx

    found = sorted((ROOT / "ops/chain/node_modules/@foundry-rs").glob("anvil-*/bin/anvil"))
    if not found:
        raise SystemExit("no anvil: run (cd ops/chain && npm ci), or pass --rpc-url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(found[0]), "--host", "127.0.0.1", "--port", str(port), "--silent"], stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)

    class Node:
        def __init__(self) -> None:
            self.url = url

        def stop(self) -> None:
            proc.terminate()
            proc.wait(30)

    return Node()


def _positions(system: object) -> list[tuple[int]]:
    store = system.store  # type: ignore[attr-defined]
    with store.read() as reader:
        return [
            (int(row[0]),)
            for row in reader.fetchall("SELECT position FROM audit_leaves WHERE tenant = ?", (TENANT,))
        ]


if __name__ == "__main__":
    main()
