"""With no A2A_RPC_URL the chain lives in the server's memory: `audit anchor` and `audit deploy`,
run beside it, would make a chain of their own, record a new deployment of the contract that
the server then takes for its own, and leave anchors that exist nowhere. They refuse, and the
server's contract record stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from application.aggregate_changes import load
from domain.anchors import AnchorContract, contract_record_id
from interfaces.bootstrap import build_system
from interfaces.cli.main import app
from interfaces.workers.anchoring import anchor_round
from tests.integration.support import meta, two_objectives


@pytest.mark.parametrize("command", ["anchor", "deploy"])
def test_chain_writing_commands_refuse_the_in_process_chain(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "APP_ENV": "test",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
        "ELASTICSEARCH_URL": "",
        "ANCHOR_CHECK_S": "0",
        "RUN_PROJECTIONS_IN_PROCESS": "false",
        "A2A_RPC_URL": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server = build_system()  # the server, its chain in its memory
    try:
        server.goals.set_goals("t-cli", "agent-1", two_objectives(), meta())
        server.runner.catch_up()
        assert server.anchoring is not None
        first = anchor_round(server.anchoring, force=True)
        assert first is not None and first.anchored > 0
        chain_id = first.contract.chain_id

        answer = CliRunner().invoke(app, ["audit", command])
        assert answer.exit_code == 1, answer.output
        assert "A2A_RPC_URL" in " ".join(answer.output.split())

        record = load(server.goals, contract_record_id(chain_id), AnchorContract)
        assert record is not None and record.deployments == 1
        assert server.anchoring.current() == first.contract
    finally:
        server.close()
