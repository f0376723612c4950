"""Exactly-once projection: `a2a-goals project` SIGKILLed mid-stream and restarted ends with
read models identical to a fresh rebuild, with no duplicate and no missing history entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import IO

from domain.goals import AgentGoals
from infrastructure.settings import Settings
from interfaces.bootstrap import System
from tests.integration.support import (
    ProgressWriter,
    history_rows,
    meta,
    progress_rows,
    rebuilt_rows,
    tenant_events,
    tracking,
    two_objectives,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
AGENTS = [f"agent-{i:02d}" for i in range(40)]


class Projector:
    """`a2a-goals project` as its own process, on the same store as the test's system."""

    def __init__(self, settings: Settings, log: Path) -> None:
        env = {
            **os.environ,
            "APP_ENV": "test",
            "DATA_DIR": str(settings.data_dir),
            "DATABASE_URL": settings.database_url,
            "PROJECTION_PAGE_SIZE": "50",
            "PROJECTION_POLL_S": "0.1",
        }
        self._log: IO[str] = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "project"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> int:
        os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(30)
        self._log.close()
        return code

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def _positions(system: System) -> list[int]:
    marks = tracking(system.store)
    return [marks[name][0] for name in system.runner.names]


def _part_way(system: System, projector: Projector, since: int) -> bool:
    """The projector has applied something beyond `since` and is still behind the log (or died)."""
    return since < min(_positions(system)) < system.goals.log_position() or not projector.alive()


def test_projector_killed_mid_stream_projects_every_event_exactly_once(
    system: System, tenant: str, tmp_path: Path
) -> None:
    started_at = system.goals.log_position()
    for agent in AGENTS:
        system.goals.set_goals(tenant, agent, two_objectives(), meta("setup"))
    writer = ProgressWriter(system, tenant, AGENTS, seed=42, pause_s=0.02)
    for _ in range(40):  # ~1000 events before the projector starts
        writer.write_batch()
    projected_before = min(_positions(system))

    log = tmp_path / "projector.log"
    writer.start()
    try:
        for _ in range(3):  # kill it three times, each time part-way through the log
            projector = Projector(system.settings, log)
            wait_until(
                partial(_part_way, system, projector, projected_before),
                60,
                "the projector to be part-way through the log",
                every_s=0.002,
            )
            assert projector.alive(), log.read_text()
            assert projector.kill() == -signal.SIGKILL
            projected_before = min(_positions(system))
            assert projected_before < system.goals.log_position(), "the kill should land mid-stream"

        last = Projector(system.settings, log)
        target = writer.batches + 10
        wait_until(lambda: writer.batches >= target, 120, "more writes after the restart")
    finally:
        writer.halt.set()
        writer.join(60)
    assert writer.error is None, writer.error
    try:
        end = system.goals.log_position()
        wait_until(
            lambda: min(_positions(system)) >= end or not last.alive(), 120, "the projector to catch up"
        )
        assert last.alive(), log.read_text()
    finally:
        assert last.terminate() == 0, log.read_text()
    assert all(state == "live" for _, state, _ in tracking(system.store).values())

    events = tenant_events(system, tenant, after=started_at)
    assert len(events) > 2000
    history = history_rows(system.store, tenant)
    expected = [p for p, e in events if not isinstance(e, AgentGoals.Registered)]
    assert [r[0] for r in history] == expected  # none missing, none twice
    updates = Counter(e.agent_id for _, e in events if isinstance(e, AgentGoals.ProgressRecorded))
    progress = progress_rows(system.store, tenant)
    assert {r[1]: int(r[7]) for r in progress} == {a: updates[a] for a in AGENTS}

    # a fresh rebuild from the log into an empty store gives identical read models
    assert (progress, history) == rebuilt_rows(system, tenant, tmp_path)
