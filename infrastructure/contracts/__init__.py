"""The AuditAnchor contract as compiled by `node ops/chain/compile.js`: its ABI and bytecode.

The artifact `AuditAnchor.json` is committed beside its source and ships in the wheel, so
deploying or calling the contract needs no compiler; tests/integration/test_contract_artifact.py
recompiles the source and checks the artifact still matches it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, TypedDict


class ContractArtifact(TypedDict):
    """What compile.js writes: the compiler and settings used, the ABI, and the creation
    (`bytecode`) and runtime (`deployedBytecode`) code as 0x-prefixed hex."""

    contractName: str
    compiler: dict[str, str]
    settings: dict[str, Any]
    abi: list[dict[str, Any]]
    bytecode: str
    deployedBytecode: str


def audit_anchor_artifact() -> ContractArtifact:
    """The AuditAnchor artifact, read afresh on each call (callers may change their copy)."""
    text = files(__name__).joinpath("AuditAnchor.json").read_text(encoding="utf-8")
    artifact: ContractArtifact = json.loads(text)
    return artifact
