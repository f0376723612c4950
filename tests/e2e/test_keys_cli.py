"""`a2a-goals keys rotate-master` as an operator runs it: the data keys re-wrapped under the
newest master key, the log still read; a master key that does not fit is refused by id only."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from domain.meta import Meta
from domain.objectives import GoalDefinition, Objective
from infrastructure.settings import Settings
from interfaces.bootstrap import build_system
from tests.conftest import ROOT


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _env(data_dir: Path, master_keys: str) -> dict[str, str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATA_DIR": str(data_dir),
        "ENCRYPTION": "on",
        "MASTER_KEYS": master_keys,
    }
    env.pop("DATABASE_URL", None)
    return env


def _rotate(data_dir: Path, master_keys: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interfaces.cli.main", "keys", "rotate-master"],
        cwd=ROOT,
        env=_env(data_dir, master_keys),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write_two_tenants(data_dir: Path, master_keys: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(data_dir),
        ENCRYPTION="on",
        MASTER_KEYS=master_keys,
        RUN_PROJECTIONS_IN_PROCESS="false",
    )
    system = build_system(settings)
    try:
        for tenant in ("acme", "globex"):
            definition = GoalDefinition(f"Purpose of {tenant}", (Objective("o1", "One"),))
            system.goals.set_goals(tenant, "agent-1", definition, Meta(actor="t", request_id=""))
    finally:
        system.close()


def test_rotate_master_rewraps_every_data_key_once_and_the_log_still_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old, new = _key(), _key()
    _write_two_tenants(data_dir, old)

    first = _rotate(data_dir, f"{new},{old}")
    assert first.returncode == 0, first.stderr
    assert "re-wrapped 2 of 2 data keys" in first.stdout
    again = _rotate(data_dir, f"{new},{old}")
    assert "re-wrapped 0 of 2 data keys" in again.stdout

    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(data_dir),
        ENCRYPTION="on",
        MASTER_KEYS=new,
        RUN_PROJECTIONS_IN_PROCESS="false",
    )
    system = build_system(settings)
    try:
        goals = system.goals.current("globex", "agent-1")
        assert goals is not None and goals.definition.purpose_statement == "Purpose of globex"
    finally:
        system.close()


def test_rotate_master_with_keys_that_do_not_fit_names_ids_not_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    right, wrong = _key(), _key()
    _write_two_tenants(data_dir, right)
    refused = _rotate(data_dir, wrong)
    assert refused.returncode == 1
    assert "not in MASTER_KEYS" in refused.stderr
    output = refused.stdout + refused.stderr
    assert right not in output and wrong not in output
