"""anvil nodes of a test's own, which it may stop and start again with the chain they held (an
outage of the node is staged on these, never on the shared node of TEST_RPC_URL), and the
well-known accounts every fresh anvil chain funds."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
# npm installs the binary for this platform only (ops/test runs `npm ci` in ops/chain).
ANVIL_BINARIES = ROOT / "ops" / "chain" / "node_modules" / "@foundry-rs"

# anvil's first two default accounts (mnemonic "test test test test test test test test test test
# test junk"), 10,000 ETH each on every fresh chain. Public test keys: never use them elsewhere.
OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OWNER_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def chain_id(url: str, timeout: float = 2) -> int:
    """The node's chain id (eth_chainId); raises httpx.TransportError when it does not answer."""
    answer = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout
    )
    answer.raise_for_status()
    return int(answer.json()["result"], 16)


def anvil_binary() -> Path:
    """anvil itself, not npm's node wrapper: the wrapper exits on SIGTERM without waiting for
    anvil, so waiting for it would not wait for the state file to be written."""
    found = sorted(ANVIL_BINARIES.glob("anvil-*/bin/anvil"))
    if not found:
        message = "anvil is not installed (ops/test runs npm ci in ops/chain)"
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found[0]


class PrivateAnvil:
    """An anvil on a free port of 127.0.0.1, a child of the test process, keeping its chain in
    `state` (a JSON file anvil loads on start and writes on SIGTERM)."""

    def __init__(self, state: Path) -> None:
        self._binary = anvil_binary()
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = state.with_name(f"{state.stem}.log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self) -> None:
        """Start (or start again, on the same port, from the state file) and wait until it
        answers eth_chainId."""
        command = [str(self._binary), "--host", "127.0.0.1", "--port", str(self.port), "--silent"]
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [*command, "--state", str(self.state)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                chain_id(self.url, timeout=0.5)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(f"anvil on port {self.port} did not start: {self.log()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as an operator stopping the node: anvil writes its chain to the state file,
        then exits; this returns once it has."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(STOP_TIMEOUT_S)
            self._proc = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
