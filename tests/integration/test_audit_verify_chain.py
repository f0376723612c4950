"""`audit verify` holds the log to what the chain holds, not only to the anchors the read model
lists: a stored event changed, the audit_log read model rebuilt to match it, and the anchors'
rows deleted, still fails verify, since the contract keeps the root of the log as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interfaces.bootstrap import build_system
from interfaces.cli.main import app
from interfaces.workers.anchoring import anchor_round
from tests.chain_support import OWNER_KEY, PrivateAnvil
from tests.integration.support import meta, two_objectives


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_anvil: Callable[[], PrivateAnvil]
) -> dict[str, str]:
    node = start_anvil()
    values = {
        "APP_ENV": "test",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
        "ELASTICSEARCH_URL": "",
        "ANCHOR_CHECK_S": "0",
        "RUN_PROJECTIONS_IN_PROCESS": "false",
        "A2A_RPC_URL": node.url,
        "A2A_PRIVATE_KEY": OWNER_KEY,
        "CHAIN_TIMEOUT_S": "2",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_verify_fails_when_the_read_models_were_rebuilt_to_hide_a_change(env: dict[str, str]) -> None:
    system = build_system()
    try:
        system.goals.set_goals("t-verify", "agent-tamperme", two_objectives(), meta())
        system.runner.catch_up()
        assert system.anchoring is not None
        anchored = anchor_round(system.anchoring, force=True)
        assert anchored is not None and anchored.anchored == anchored.tree_size > 0
        system.runner.catch_up()
        events, read_models = system.settings.events_path, system.settings.read_models_path
        table = system.goals.recorder.events_table_name  # type: ignore[attr-defined]
    finally:
        system.close()
    runner = CliRunner()
    honest = runner.invoke(app, ["audit", "verify"])
    assert honest.exit_code == 0, honest.output

    with sqlite3.connect(events) as db:  # the notification id is the rowid
        rows = db.execute(f"SELECT rowid, state FROM {table}").fetchall()
        position, state = next((at, bytes(body)) for at, body in rows if b"tamperme" in bytes(body))
        db.execute(f"UPDATE {table} SET state = ? WHERE rowid = ?", (state.replace(b"tamperme", b"tampered"), position))
    system = build_system()
    try:
        system.rebuilder.rebuild(["audit_log"])
    finally:
        system.close()
    with sqlite3.connect(read_models) as db:
        db.execute("DELETE FROM audit_anchors")

    tampered = runner.invoke(app, ["audit", "verify"])
    assert tampered.exit_code == 1, tampered.output
    said = " ".join(tampered.output.split())  # rich wraps its lines
    assert "BAD at position" in said and "the contract's latest" in said
    assert "changed after it was anchored" in said
