"""The audit trail end to end against a real anvil: a server anchors its log by itself; a proof
fetched over HTTP checks with a verifier written here from RFC 9162 against the root read
from the contract by raw JSON-RPC (eth_call, eth_getTransactionReceipt); a stored event changed
behind the system's back makes `audit verify` fail naming its position."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils import keccak

from tests.chain_support import PrivateAnvil
from tests.conftest import ROOT, Server
from tests.e2e.support import ok
from tests.e2e.test_audit import AUDIT, StoredRow, _audit_cli, rfc9162_root_from_path
from tests.e2e.test_seed_commands import GOALS


def rfc9162_consistent(first: int, second: int, proof: list[bytes], first_root: bytes, second_root: bytes) -> bool:
    """RFC 9162 2.1.4.2, written out again: does `proof` show the tree of `first` leaves is a
    prefix of the tree of `second` leaves?"""

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    if first == second:
        return not proof and first_root == second_root
    if first & (first - 1) == 0:  # a power of two: the first root is the first step
        proof = [first_root, *proof]
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def _readme_check() -> str:
    """The python block of the README's audit section, as a reader copies it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The audit log") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def rpc(url: str, method: str, *params: Any) -> Any:
    body = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()
    assert "error" not in body, body
    return body["result"]


def root_on_chain(url: str, contract: str, tree_size: int) -> bytes:
    """rootAt(uint64) by eth_call: the selector, then the argument as one 32-byte word."""
    data = "0x" + keccak(text="rootAt(uint64)")[:4].hex() + tree_size.to_bytes(32, "big").hex()
    return bytes.fromhex(rpc(url, "eth_call", {"to": contract, "data": data}, "latest")[2:])


def _anchored_proof(api: httpx.Client, position: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = api.get(f"{AUDIT}/events/{position}/proof")
        if answer.status_code == 200 and answer.json()["anchored"]:
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"position {position} was never anchored")


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_an_anchored_proof_checks_against_the_chain_and_a_changed_row_fails_verify(
    store_kind: str, rpc_url: str, start_server: Callable[..., Server], request: pytest.FixtureRequest
) -> None:
    env = {"A2A_RPC_URL": rpc_url, "ANCHOR_CHECK_S": "0.3", "ANCHOR_EVERY_SECONDS": "1", "ANCHOR_EVERY_EVENTS": "3"}
    if store_kind == "postgres":
        # Anchors are not tenant-scoped: a database of its own keeps other tests' chains out.
        env["DATABASE_URL"] = request.getfixturevalue("own_pg_url")
    server = start_server(**env)
    tenant = f"a{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=server.url, headers=server.auth_headers(tenant), timeout=30) as api:
        written = ok(api.post("/api/v1/goals/agents/anchored", json=GOALS), 201)
        position = written["position"]
        proof = _anchored_proof(api, position)
        for _ in range(5):  # more events, and so a newer anchor to prove consistency with
            ok(api.put("/api/v1/goals/agents/anchored/progress", json={"objective_progress": {"alpha": 40}}))
        deadline = time.monotonic() + 60
        while (latest := _anchored_proof(api, position))["newest_anchor"] is None:
            assert time.monotonic() < deadline, "no newer anchor"
            time.sleep(0.2)
        listed = ok(api.get(f"{AUDIT}/anchors", params={"limit": 200}))["items"]
        assert ok(api.get("/api/v1/goals/health"))["anchoring"] == "ok"

    # The leaf, its path, and the root it leads to: nothing but hashlib.
    leaf = bytes.fromhex(proof["leaf_data"])
    path = [bytes.fromhex(h) for h in proof["inclusion_proof"]]
    root = rfc9162_root_from_path(proof["leaf_index"], proof["tree_size"], leaf, path)
    assert root.hex() == proof["root_hash"]
    # That root is the one the contract holds for that tree size, in the transaction named.
    assert root_on_chain(rpc_url, proof["contract"], proof["tree_size"]) == root
    receipt = rpc(rpc_url, "eth_getTransactionReceipt", proof["tx_hash"])
    assert int(receipt["status"], 16) == 1 and int(receipt["blockNumber"], 16) == proof["block_number"]
    assert receipt["to"].lower() == proof["contract"].lower()
    assert int(rpc(rpc_url, "eth_chainId"), 16) == proof["chain_id"]
    # The proof's own anchor stays; a newer one holds it too, as a consistency proof shows.
    assert (latest["tree_size"], latest["root_hash"]) == (proof["tree_size"], proof["root_hash"])
    newer = latest["newest_anchor"]
    newer_root = root_on_chain(rpc_url, newer["contract"], newer["tree_size"])
    assert newer_root.hex() == newer["root_hash"]
    steps = [bytes.fromhex(h) for h in newer["consistency_proof"]]
    assert rfc9162_consistent(proof["tree_size"], newer["tree_size"], steps, root, newer_root)
    assert not rfc9162_consistent(proof["tree_size"], newer["tree_size"], steps, root, bytes(32))
    mine = {a["tree_size"]: a for a in listed if a["contract"] == proof["contract"]}
    assert mine[proof["tree_size"]]["status"] == "confirmed" and mine[proof["tree_size"]]["tx_hash"] == proof["tx_hash"]

    # The README's own check of `audit proof`'s output, run as a reader would run it.
    printed = _audit_cli(server, "proof", str(position))
    assert printed.returncode == 0, printed.stderr
    readme_check = _readme_check()
    passed = subprocess.run(
        [sys.executable, "-c", readme_check, rpc_url], input=printed.stdout, capture_output=True, text=True, timeout=60
    )
    assert passed.returncode == 0, passed.stderr
    assert f"event {position} is in the root anchored by {proof['tx_hash']}" in passed.stdout
    forged = json.loads(printed.stdout)
    last = int(forged["leaf_data"][-2:], 16)
    forged["leaf_data"] = forged["leaf_data"][:-2] + f"{last ^ 1:02x}"  # one bit of the event changed
    failed = subprocess.run(
        [sys.executable, "-c", readme_check, rpc_url], input=json.dumps(forged), capture_output=True, text=True, timeout=60
    )
    assert failed.returncode != 0 and "AssertionError" in failed.stderr

    checked = _audit_cli(server, "verify")
    assert checked.returncode == 0, checked.stderr
    assert "checked against the chain" in checked.stdout and " 0 checked" not in checked.stdout

    row = StoredRow(server, position)
    original = row.state()
    changed = original.replace(b"anchored", b"tampered")
    assert changed != original
    row.put(changed)
    try:
        tampered = _audit_cli(server, "verify")
        assert tampered.returncode == 1
        assert f"BAD at position {position}" in tampered.stderr
    finally:
        row.put(original)  # the PostgreSQL database is shared by the session's tests


def test_the_cli_deploys_and_anchors(rpc_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATA_DIR": str(tmp_path / "data"),
        "ELASTICSEARCH_URL": "",
        "A2A_RPC_URL": rpc_url,
        "RUN_PROJECTIONS_IN_PROCESS": "false",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "interfaces.cli.main", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )

    assert cli("clients", "create", "--tenant", "acme", "--scopes", "goals:read").returncode == 0  # an event to anchor
    deployed = cli("audit", "deploy")
    assert deployed.returncode == 0, deployed.stderr
    address = deployed.stdout.strip()
    assert address.startswith("0x") and len(address) == 42
    anchored = cli("audit", "anchor")
    assert anchored.returncode == 0, anchored.stderr
    assert f"on {address}" in anchored.stdout and "confirmed" in anchored.stdout
    size = int(anchored.stdout.split("anchored ", 1)[1].split(" leaves", 1)[0])
    assert root_on_chain(rpc_url, address, size) != bytes(32)
    again = cli("audit", "anchor")  # its own events since are not worth an anchor
    assert again.returncode == 0 and "nothing new to anchor" in again.stdout, again.stdout

    env["A2A_RPC_URL"] = "http://127.0.0.1:9"  # nothing listens there
    env["CHAIN_TIMEOUT_S"] = "1"
    down = cli("audit", "anchor")
    assert down.returncode == 2 and "chain cannot be used" in down.stderr


def test_readiness_shows_the_chain_but_a_node_away_never_holds_requests(
    start_anvil: Callable[[], PrivateAnvil], start_server: Callable[..., Server]
) -> None:
    node = start_anvil()
    server = start_server(A2A_RPC_URL=node.url, CHAIN_TIMEOUT_S="1", ANCHOR_CHECK_S="0.3")
    tenant = f"a{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=server.url, headers=server.auth_headers(tenant), timeout=30) as api:
        assert ok(api.get("/health/ready"))["checks"]["chain"] == "up"
        node.stop()
        answer = api.get("/health/ready")
        assert answer.status_code == 200, answer.text  # still ready: writes do not wait for the node
        assert answer.json()["checks"]["chain"] in {"down", "timeout"}
        written = ok(api.post("/api/v1/goals/agents/while-away", json=GOALS), 201)
        node.start()
        assert ok(api.get("/health/ready"))["checks"]["chain"] == "up"
        proof = _anchored_proof(api, written["position"])  # anchoring caught up by itself
        assert proof["tree_size"] > proof["leaf_index"]


def test_an_erasure_leaves_every_anchored_root_valid(
    rpc_url: str, start_server: Callable[..., Server], own_pg_url: str
) -> None:
    """Two tenants' events anchored on the chain; one tenant erased. The roots the contract
    holds are the ones the log still gives: the other tenant's proof checks against the chain
    as before, and `audit verify` passes against the chain, end to end."""
    server = start_server(
        DATABASE_URL=own_pg_url,
        ENCRYPTION="on",
        OPERATOR_TENANT="ops",
        A2A_RPC_URL=rpc_url,
        ANCHOR_CHECK_S="0.3",
        ANCHOR_EVERY_SECONDS="1",
        ANCHOR_EVERY_EVENTS="2",
    )
    positions = {}
    for tenant in ("acme", "globex"):
        with httpx.Client(base_url=server.url, headers=server.auth_headers(tenant), timeout=30) as api:
            positions[tenant] = ok(api.post("/api/v1/goals/agents/anchored", json=GOALS), 201)["position"]
    with httpx.Client(base_url=server.url, headers=server.auth_headers("globex"), timeout=30) as api:
        before = _anchored_proof(api, positions["globex"])
        covering = _anchored_proof(api, max(positions.values()))  # an anchor over both tenants' events
        assert covering["tree_size"] > positions["acme"] - 1

    erased = httpx.post(
        f"{server.url}/api/v1/admin/tenants/acme/erase", headers=server.auth_headers("ops", scopes=["admin"]), timeout=60
    )
    assert erased.status_code == 200, erased.text

    with httpx.Client(base_url=server.url, headers=server.auth_headers("globex"), timeout=30) as api:
        after = _anchored_proof(api, positions["globex"])
    assert {k: after[k] for k in ("leaf_data", "inclusion_proof", "root_hash", "tree_size", "tx_hash")} == {
        k: before[k] for k in ("leaf_data", "inclusion_proof", "root_hash", "tree_size", "tx_hash")
    }
    for proof in (before, covering):
        assert root_on_chain(rpc_url, proof["contract"], proof["tree_size"]).hex() == proof["root_hash"]
    checked = _audit_cli(server, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "checked against the chain" in checked.stdout and " 0 checked" not in checked.stdout
