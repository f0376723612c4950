"""The committed AuditAnchor artifact is what the pinned solc makes of the committed source:
recompiled here with node and ops/chain/compile.js, it matches byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infrastructure.contracts import audit_anchor_artifact
from tests.conftest import ROOT

COMPILE = ROOT / "ops" / "chain" / "compile.js"
COMMITTED = ROOT / "infrastructure" / "contracts" / "AuditAnchor.json"


def _node() -> str:
    node = shutil.which("node")
    installed = (ROOT / "ops" / "chain" / "node_modules" / "solc").is_dir()
    if node and installed:
        return node
    message = "node and ops/chain's npm packages are needed (ops/test runs npm ci in ops/chain)"
    if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_recompiling_the_source_gives_the_committed_artifact(tmp_path: Path) -> None:
    fresh = tmp_path / "AuditAnchor.json"
    subprocess.run([_node(), str(COMPILE), str(fresh)], check=True, capture_output=True, timeout=120)

    rebuilt, committed = json.loads(fresh.read_text()), json.loads(COMMITTED.read_text())
    hint = "the artifact is stale: run node ops/chain/compile.js and commit AuditAnchor.json"
    assert rebuilt["abi"] == committed["abi"], hint
    assert rebuilt["bytecode"] == committed["bytecode"], hint
    assert rebuilt["deployedBytecode"] == committed["deployedBytecode"], hint
    assert fresh.read_bytes() == COMMITTED.read_bytes(), hint


def test_the_artifact_names_its_pinned_compiler_and_settings() -> None:
    artifact = audit_anchor_artifact()

    assert artifact["contractName"] == "AuditAnchor"
    assert artifact["compiler"]["version"].startswith("0.8.37+")
    assert artifact["settings"]["evmVersion"] == "cancun"
    assert artifact["settings"]["metadata"] == {"bytecodeHash": "none"}
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
    names = {entry.get("name") for entry in artifact["abi"]}
    assert {"anchor", "rootAt", "latestTreeSize", "owner", "Anchored"} <= names
