"""The chain the audit log is anchored on, through web3.py: a JSON-RPC node (A2A_RPC_URL) or,
with none configured, an in-process chain (eth-tester), which is worth nothing outside the
process that holds it.

The node is infrastructure the operator names, like the database: it is not fetched through
the outbound guard, whose job is the addresses that callers give us. Every call is bounded by
CHAIN_TIMEOUT_S, and every failure of the node (down, slow, an error answer) is a
ChainUnavailable: anchoring waits and tries again, writes never wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception

from application.anchoring import ChainUnavailable, Receipt

log = logging.getLogger(__name__)
T = TypeVar("T")
ANCHOR_GAS = 120_000  # anchor() writes one slot and the latest size: ~70k; headroom for a cold slot
DEPLOY_GAS = 1_500_000
LOG_WINDOW = 1_000  # blocks per log query: within what public providers allow
LOG_SEARCH_BLOCKS = 100_000  # how far back a lost anchor transaction is looked for


@dataclass(frozen=True)
class ContractCode:
    abi: list[dict[str, Any]]
    bytecode: str


class Web3Chain:
    """One chain and one signing account; the AuditAnchor contract's calls."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        code: ContractCode,
        *,
        name: str,
        timeout_s: float,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._w3 = w3
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._timeout_s = timeout_s
        self._account = account
        self._code = code
        self._lock = threading.Lock()  # nonces: one transaction at a time from this process
        self.name = name  # how the node is named in logs and health: never its URL's secrets

    @property
    def sender(self) -> str:
        return str(self._account.address)

    def chain_id(self) -> int:
        return self._call(lambda: int(self._w3.eth.chain_id))

    def head(self) -> int:
        return self._call(lambda: int(self._w3.eth.block_number))

    def has_code(self, address: str) -> bool:
        return self._call(lambda: len(self._w3.eth.get_code(Web3.to_checksum_address(address))) > 0)

    def deploy(self) -> Receipt:
        """Send the contract's creation and wait (CHAIN_TIMEOUT_S at most) for its receipt."""
        contract = self._w3.eth.contract(abi=self._code.abi, bytecode=self._code.bytecode)

        def send() -> Receipt:
            tx_hash = self._send(contract.constructor(), DEPLOY_GAS)
            found = self._w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=self._timeout_s, poll_latency=0.1)
            if found["status"] != 1 or not found.get("contractAddress"):
                raise ChainUnavailable(f"the contract's creation {tx_hash} failed")
            return Receipt(tx_hash, int(found["blockNumber"]), True, str(found["contractAddress"]))

        return self._call(send)

    def send_anchor(self, contract: str, tree_size: int, root: bytes, replacing: str | None = None) -> str:
        """Send anchor(tree_size, root); its transaction hash (0x...). Not waited for. With
        `replacing`, a transaction still pending: the same nonce and higher fees (a new nonce
        would queue behind it, then revert, and be paid for)."""
        instance = self._contract(contract)

        def send() -> str:
            prior = None if replacing is None else self._w3.eth.get_transaction(HexStr(replacing))
            return self._send(instance.functions.anchor(tree_size, root), ANCHOR_GAS, prior)

        return self._call(send)

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The transaction's receipt once mined; None while it is not."""

        def read() -> Receipt | None:
            try:
                found = self._w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                return None
            return Receipt(tx_hash, int(found["blockNumber"]), found["status"] == 1, None)

        return self._call(read)

    def knows(self, tx_hash: str) -> bool:
        """Whether the node still has the transaction (pending or mined): False once dropped."""

        def read() -> bool:
            try:
                self._w3.eth.get_transaction(HexStr(tx_hash))
            except TransactionNotFound:
                return False
            return True

        return self._call(read)

    def root_at(self, contract: str, tree_size: int) -> bytes:
        """The root the contract holds for `tree_size` (32 zero bytes: none)."""
        instance = self._contract(contract)
        return self._call(lambda: bytes(instance.functions.rootAt(tree_size).call()))

    def latest_tree_size(self, contract: str) -> int:
        instance = self._contract(contract)
        return self._call(lambda: int(instance.functions.latestTreeSize().call()))

    def anchored_in(self, contract: str, tree_size: int) -> Receipt | None:
        """The transaction whose Anchored event wrote `tree_size` (None: none did, in the last
        LOG_SEARCH_BLOCKS blocks). Searched backwards from the head in windows of LOG_WINDOW
        blocks: public providers refuse a log query over a longer range, and the transaction
        looked for is a recent one (a send that was not recorded, or mined after it was
        thought lost)."""
        instance = self._contract(contract)

        def find() -> Receipt | None:
            last = int(self._w3.eth.block_number)
            floor = max(0, last - LOG_SEARCH_BLOCKS)
            while last >= floor:
                first = max(floor, last - LOG_WINDOW + 1)
                logs = instance.events.Anchored.get_logs(
                    from_block=first, to_block=last, argument_filters={"treeSize": tree_size}
                )
                if logs:
                    found = logs[0]
                    return Receipt("0x" + bytes(found["transactionHash"]).hex(), int(found["blockNumber"]), True)
                last = first - 1
            return None

        return self._call(find)

    def _contract(self, address: str) -> Any:
        return self._w3.eth.contract(address=Web3.to_checksum_address(address), abi=self._code.abi)

    def _send(self, call: Any, gas: int, prior: Any = None) -> str:
        with self._lock:
            nonce = int(self._w3.eth.get_transaction_count(self._account.address, "pending"))
            fee = self._w3.eth.gas_price
            # Twice the current price: a spike between two blocks does not strand it.
            max_fee, tip = 2 * fee + 1, min(fee, 1_000_000_000) or 1
            if prior is not None:  # a replacement: nodes want both fees raised by 10% at least
                nonce = int(prior["nonce"])
                max_fee = max(max_fee, _bumped(prior.get("maxFeePerGas") or prior.get("gasPrice")))
                tip = max(tip, _bumped(prior.get("maxPriorityFeePerGas") or prior.get("gasPrice")))
                max_fee = max(max_fee, tip)
            tx = call.build_transaction(
                {
                    "from": self._account.address,
                    "nonce": nonce,
                    "gas": gas,
                    "chainId": self._w3.eth.chain_id,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                }
            )
            signed = self._account.sign_transaction(tx)
            return "0x" + bytes(self._w3.eth.send_raw_transaction(signed.raw_transaction)).hex()

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ChainUnavailable:
            raise
        except ContractLogicError as revert:
            raise ChainUnavailable(f"{self.name}: the contract refused: {self._redact(str(revert))}") from None
        except (Web3Exception, OSError, ValueError, TimeoutError) as error:
            raise ChainUnavailable(self._failure(error)) from None
        except Exception as error:  # requests' and aiohttp's errors, whatever the provider raises
            if type(error).__module__.split(".")[0] in {"requests", "urllib3", "aiohttp", "eth_tester", "eth_utils"}:
                raise ChainUnavailable(self._failure(error)) from None
            raise

    def _failure(self, error: Exception) -> str:
        return f"{self.name}: {type(error).__name__}: {self._redact(str(error))}"[:300]

    def _redact(self, text: str) -> str:
        """The text without the node URL's secrets (requests names the URL it failed on)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def rpc_chain(url: str, private_key: str, code: ContractCode, timeout_s: float) -> Web3Chain:
    """A chain over JSON-RPC (HTTP); nothing is sent until the first call."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
    return Web3Chain(
        w3, Account.from_key(private_key), code, name=_node_name(url), timeout_s=timeout_s, secrets=_url_secrets(url)
    )


def in_process_chain(code: ContractCode, timeout_s: float) -> Web3Chain:
    """An eth-tester chain in this process, funded account 0 signing (its key is public)."""
    from web3 import EthereumTesterProvider  # imports py-evm: ~1 s, only when used

    provider = EthereumTesterProvider()
    tester: Any = provider.ethereum_tester
    key = tester.backend.account_keys[0]
    return Web3Chain(
        Web3(provider), Account.from_key(key.to_bytes()), code, name="in-process chain", timeout_s=timeout_s
    )


def _bumped(fee: Any) -> int:
    """A fee an eighth over `fee` (nodes replace a pending transaction for 10% more)."""
    return int(fee or 0) * 9 // 8 + 1


def _url_secrets(url: str) -> tuple[str, ...]:
    """What of A2A_RPC_URL may be a secret (its user info, path and query), as written and as
    requests writes it back (percent-encoded)."""
    from urllib.parse import quote, unquote, urlsplit

    parts = urlsplit(url)
    found = [parts.username or "", parts.password or "", parts.query]
    found += [piece for piece in parts.path.split("/") if len(piece) > 2]
    found += [value for pair in parts.query.split("&") for value in pair.split("=")[1:]]
    return tuple({form for piece in found if piece for form in (piece, unquote(piece), quote(piece, safe=""))})


def _node_name(url: str) -> str:
    """The node's scheme, host and port: what logs and health may say of A2A_RPC_URL (a
    provider's URL often carries its API key in the path or the query)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
