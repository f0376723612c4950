"""The AuditAnchor contract on a real anvil, deployed from the committed artifact with web3:
the owner anchors roots anyone can read back, and the chain refuses what the contract forbids
(another account, a tree size that does not grow, a zero root). A node restarted from its state
file still has the contract and its roots, and the artifact runs on the in-process chain too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError
from web3.types import TxParams, TxReceipt

from infrastructure.contracts import audit_anchor_artifact
from tests.chain_support import OTHER_ADDRESS, OTHER_KEY, OWNER_ADDRESS, OWNER_KEY, PrivateAnvil

ZERO = bytes(32)
ROOT_A = Web3.keccak(text="root of 5 leaves")
ROOT_B = Web3.keccak(text="root of 9 leaves")


def send(w3: Web3, key: str, transaction: TxParams) -> TxReceipt:
    """Sign locally with `key` (the way the service sends), send raw, wait for the receipt."""
    account = Account.from_key(key)
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    signed = account.sign_transaction({**transaction, "nonce": nonce})
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), 30)


def deploy(w3: Web3) -> Contract:
    artifact = audit_anchor_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = send(w3, OWNER_KEY, factory.constructor().build_transaction({"from": OWNER_ADDRESS}))
    address = receipt["contractAddress"]
    assert receipt["status"] == 1 and address is not None
    return at(w3, address)


def at(w3: Web3, address: str) -> Contract:
    contract: Contract = w3.eth.contract(
        address=w3.to_checksum_address(address), abi=audit_anchor_artifact()["abi"]
    )
    return contract


def anchor(w3: Web3, contract: Contract, tree_size: int, root: bytes, key: str = OWNER_KEY) -> TxReceipt:
    sender = Account.from_key(key).address
    return send(w3, key, contract.functions.anchor(tree_size, root).build_transaction({"from": sender}))


def custom_error(signature: str, *args: object) -> str:
    """The revert data of a Solidity custom error: its selector, then its ABI-encoded arguments."""
    types = signature[signature.index("(") + 1 : -1].split(",") if args else []
    return "0x" + (Web3.keccak(text=signature)[:4] + encode(types, list(args))).hex()


def refusal(call: ContractFunction, sender: str) -> str:
    """The revert data of `call` made by `sender` (eth_call: nothing is sent)."""
    with pytest.raises(ContractCustomError) as raised:
        call.call({"from": sender})
    return str(raised.value.data)


@pytest.fixture
def w3(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url))


def test_the_owner_anchors_roots_anyone_can_read_back(w3: Web3) -> None:
    contract = deploy(w3)
    assert contract.functions.owner().call() == OWNER_ADDRESS
    assert contract.functions.latestTreeSize().call() == 0
    assert contract.functions.rootAt(5).call() == ZERO

    first = anchor(w3, contract, 5, ROOT_A)
    second = anchor(w3, contract, 9, ROOT_B)

    assert first["status"] == second["status"] == 1
    reader = at(w3, contract.address)
    assert reader.functions.rootAt(5).call({"from": OTHER_ADDRESS}) == ROOT_A
    assert reader.functions.rootAt(9).call() == ROOT_B
    assert reader.functions.rootAt(7).call() == ZERO  # never anchored
    assert reader.functions.latestTreeSize().call() == 9
    (event,) = contract.events.Anchored().process_receipt(first)
    assert event["event"] == "Anchored" and event["address"] == contract.address
    assert event["args"] == {"treeSize": 5, "root": ROOT_A}


def test_the_tree_size_is_an_indexed_topic_of_the_event(w3: Web3) -> None:
    contract = deploy(w3)
    anchor(w3, contract, 5, ROOT_A)
    anchor(w3, contract, 9, ROOT_B)

    found = contract.events.Anchored().get_logs(from_block=0, argument_filters={"treeSize": 9})

    assert [(log["args"]["treeSize"], log["args"]["root"]) for log in found] == [(9, ROOT_B)]


def test_the_code_on_chain_is_the_artifacts_deployed_bytecode(w3: Web3) -> None:
    contract = deploy(w3)

    code = w3.eth.get_code(contract.address)

    assert code.to_0x_hex() == audit_anchor_artifact()["deployedBytecode"]


def test_only_the_owner_can_anchor(w3: Web3) -> None:
    contract = deploy(w3)
    call = contract.functions.anchor(5, ROOT_A)

    assert refusal(call, OTHER_ADDRESS) == custom_error("NotOwner(address)", OTHER_ADDRESS)
    # Sent anyway (gas given, so nothing is estimated first): mined, reverted, nothing stored.
    refused = send(w3, OTHER_KEY, call.build_transaction({"from": OTHER_ADDRESS, "gas": 100_000}))
    assert refused["status"] == 0
    assert contract.functions.rootAt(5).call() == ZERO
    assert contract.events.Anchored().get_logs(from_block=refused["blockNumber"]) == []


def test_tree_sizes_must_strictly_increase(w3: Web3) -> None:
    contract = deploy(w3)
    not_increasing = "TreeSizeNotIncreasing(uint64,uint64)"
    first = contract.functions.anchor(0, ROOT_A)
    assert refusal(first, OWNER_ADDRESS) == custom_error(not_increasing, 0, 0)
    anchor(w3, contract, 5, ROOT_A)

    for tree_size in (5, 4):
        again = contract.functions.anchor(tree_size, ROOT_B)
        assert refusal(again, OWNER_ADDRESS) == custom_error(not_increasing, tree_size, 5)
    same_size = contract.functions.anchor(5, ROOT_B)
    sent_anyway = send(w3, OWNER_KEY, same_size.build_transaction({"from": OWNER_ADDRESS, "gas": 100_000}))
    assert sent_anyway["status"] == 0
    assert contract.functions.rootAt(5).call() == ROOT_A  # not replaced
    assert contract.functions.latestTreeSize().call() == 5


def test_a_zero_root_is_refused(w3: Web3) -> None:
    contract = deploy(w3)

    data = refusal(contract.functions.anchor(5, ZERO), OWNER_ADDRESS)

    assert data == custom_error("ZeroRoot()")
    assert contract.functions.latestTreeSize().call() == 0


def test_a_node_restarted_from_its_state_keeps_the_contract_and_its_roots(
    start_anvil: Callable[[], PrivateAnvil],
) -> None:
    node = start_anvil()
    w3 = Web3(Web3.HTTPProvider(node.url))
    contract = deploy(w3)
    anchor(w3, contract, 5, ROOT_A)
    block = w3.eth.block_number

    node.stop()
    node.start()

    assert w3.eth.block_number == block
    assert w3.eth.get_code(contract.address).to_0x_hex() == audit_anchor_artifact()["deployedBytecode"]
    assert contract.functions.rootAt(5).call() == ROOT_A
    assert contract.functions.latestTreeSize().call() == 5
    # It goes on from there: the owner's next nonce, sizes still checked against the old anchor.
    assert anchor(w3, contract, 9, ROOT_B)["status"] == 1
    assert refusal(contract.functions.anchor(9, ROOT_A), OWNER_ADDRESS) == custom_error(
        "TreeSizeNotIncreasing(uint64,uint64)", 9, 9
    )


def test_the_artifact_runs_on_the_in_process_chain() -> None:
    # The embedded default anchors on web3's eth-tester chain (py-evm), not on anvil: the
    # pinned EVM version must run there as well.
    w3 = Web3(Web3.EthereumTesterProvider())
    funding = w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": OWNER_ADDRESS, "value": Web3.to_wei(1, "ether")}
    )
    w3.eth.wait_for_transaction_receipt(funding)

    contract = deploy(w3)
    assert anchor(w3, contract, 5, ROOT_A)["status"] == 1

    assert contract.functions.rootAt(5).call() == ROOT_A
    # eth-tester reports a revert as its own TransactionFailed, not web3's ContractCustomError.
    with pytest.raises(TransactionFailed):
        contract.functions.anchor(5, ROOT_B).call({"from": OWNER_ADDRESS})
