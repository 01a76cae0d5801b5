"""WsSubscriber against anvil's WebSocket endpoint (the HTTP port), on the real Aave devnet.

Parametrized over the protocol versions by the ``devnet`` fixture; each test runs between an
``evm_snapshot`` and an ``evm_revert``. Waits are bounded by ``WAIT_S``; nothing asserts an
order between ``logs`` and ``newHeads`` notifications, which anvil does not keep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from queue import Empty, Queue
from typing import Any

import pytest

from overlord.chain import aave_abi
from overlord.chain.abi import event_topic
from overlord.chain.rpc import JsonRpcClient
from overlord.chain.ws import Connected, Notification, WsMessage, WsSubscriber, ws_url_for
from overlord.devnet.launch import Devnet
from overlord.devnet.seed import MAX_UINT256, token_unit
from overlord.devnet.transactions import Tx, TxSender

WAIT_S = 30.0
SUPPLY_TOPIC = event_topic("Supply(address,address,address,uint256,uint16)")
SUPPLIER = "0x00000000000000000000000000000000005e1f01"


class Inbox:
    """The ``on_message`` callback: a queue of everything the subscriber delivered."""

    def __init__(self) -> None:
        self.messages: Queue[WsMessage] = Queue()

    def __call__(self, message: WsMessage) -> None:
        self.messages.put(message)

    def next(self) -> WsMessage:
        try:
            return self.messages.get(timeout=WAIT_S)
        except Empty:
            pytest.fail(f"no message from the subscriber within {WAIT_S} s")

    def connected(self) -> Connected:
        message = self.next()
        assert isinstance(message, Connected), message
        return message

    def notification(self, wanted: Callable[[Notification], bool]) -> Notification:
        """The next notification for which ``wanted`` is true (others are skipped)."""
        while True:
            message = self.next()
            assert isinstance(message, Notification), message
            if wanted(message):
                return message


@pytest.fixture
def subscribe(devnet: Devnet) -> Iterator[Callable[..., tuple[WsSubscriber, Inbox]]]:
    """Start subscribers on the devnet's WebSocket endpoint (stopped after the test)."""
    started: list[WsSubscriber] = []

    def subscribe(**options: Any) -> tuple[WsSubscriber, Inbox]:
        inbox = Inbox()
        subscriber = WsSubscriber(ws_url_for(devnet.rpc_url), on_message=inbox, **options)
        started.append(subscriber)
        subscriber.start()
        return subscriber, inbox

    yield subscribe
    for subscriber in started:
        subscriber.stop(WAIT_S)


def is_head(message: Notification) -> bool:
    return message.kind == "newHeads"


def test_new_heads_announces_a_mined_block(
    rpc: JsonRpcClient, subscribe: Callable[..., tuple[WsSubscriber, Inbox]]
) -> None:
    _subscriber, inbox = subscribe()
    assert inbox.connected() == Connected(1, ("newHeads",), False)
    head = int(rpc.call("eth_blockNumber"), 16)

    rpc.call("evm_mine")

    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    announced = inbox.notification(is_head).result
    assert int(announced["number"], 16) == head + 1
    assert announced["hash"] == block["hash"]
    assert announced["parentHash"] == block["parentHash"]


def test_a_logs_subscription_on_the_pool_delivers_a_supply(
    devnet: Devnet, rpc: JsonRpcClient, subscribe: Callable[..., tuple[WsSubscriber, Inbox]]
) -> None:
    manifest = devnet.manifest
    pool = manifest.pool.lower()
    _subscriber, inbox = subscribe(logs_filter={"address": [manifest.pool]})
    assert inbox.connected().kinds == ("newHeads", "logs")
    reserve = manifest.reserves[0]
    amount = 1_000 * token_unit(reserve)

    sender = TxSender(rpc)
    mint = aave_abi.MINT.encode(SUPPLIER, amount)
    sender.send([Tx(manifest.accounts["admin"], reserve.asset, mint, "mint")])
    approve = aave_abi.APPROVE.encode(manifest.pool, MAX_UINT256)
    supply = aave_abi.SUPPLY.encode(reserve.asset, amount, SUPPLIER, 0)
    receipts = sender.send(
        [
            Tx(SUPPLIER, reserve.asset, approve, "approve"),
            Tx(SUPPLIER, manifest.pool, supply, "supply"),
        ]
    )

    receipt: dict[str, Any] = receipts[-1]
    expected = [log for log in receipt["logs"] if log["address"].lower() == pool]
    assert SUPPLY_TOPIC in [log["topics"][0] for log in expected]
    delivered: list[dict[str, Any]] = []
    block_announced = False
    while len(delivered) < len(expected) or not block_announced:
        message = inbox.notification(lambda _message: True)
        if message.kind == "newHeads":
            block_announced |= message.result["hash"] == receipt["blockHash"]
        elif message.result["transactionHash"] == receipt["transactionHash"]:
            delivered.append(message.result)
        else:  # no other transaction of the test touches the pool
            pytest.fail(f"an unexpected pool log {message.result}")
    assert [(log["logIndex"], log["topics"], log["data"]) for log in delivered] == [
        (log["logIndex"], log["topics"], log["data"]) for log in expected
    ]
    assert all(log["address"].lower() == pool and not log["removed"] for log in delivered)
    assert {log["blockHash"] for log in delivered} == {receipt["blockHash"]}


def test_a_pending_transaction_arrives_as_a_full_object_before_it_is_mined(
    rpc: JsonRpcClient, subscribe: Callable[..., tuple[WsSubscriber, Inbox]]
) -> None:
    account = rpc.call("eth_accounts")[0]
    _subscriber, inbox = subscribe(new_heads=False, pending=True)
    assert inbox.connected() == Connected(1, ("newPendingTransactions",), True)
    rpc.call("evm_setAutomine", [False])
    try:
        transaction = {"from": account, "to": account, "value": "0x1", "gas": hex(21_000)}
        sent = rpc.call("eth_sendTransaction", [transaction])

        announced = inbox.notification(lambda _message: True)

        assert announced.kind == "newPendingTransactions"
        assert announced.result["hash"] == sent
        assert announced.result["from"].lower() == account.lower()
        assert announced.result["blockNumber"] is None
        assert rpc.call("eth_getTransactionReceipt", [sent]) is None
    finally:
        rpc.call("anvil_dropAllTransactions")
        rpc.call("evm_setAutomine", [True])


def test_anvil_reorg_announces_the_replacement_blocks(
    rpc: JsonRpcClient, subscribe: Callable[..., tuple[WsSubscriber, Inbox]]
) -> None:
    account = rpc.call("eth_accounts")[0]
    _subscriber, inbox = subscribe()
    inbox.connected()
    rpc.call("evm_mine")
    rpc.call("evm_mine")
    replaced = [inbox.notification(is_head).result for _ in range(2)]
    # A transaction in the first replacement block: an empty reorg can rebuild blocks
    # identical to the ones it replaces (same hashes) on a chain loaded from a state file.
    transaction = {"from": account, "to": account, "value": "0x1", "gas": hex(21_000)}

    rpc.call("anvil_reorg", [2, [[transaction, 0]]])

    replacements = [inbox.notification(is_head).result for _ in range(2)]
    assert [r["number"] for r in replacements] == [r["number"] for r in replaced]
    assert {r["hash"] for r in replacements}.isdisjoint(r["hash"] for r in replaced)
    assert replacements[0]["parentHash"] == replaced[0]["parentHash"]
    assert replacements[1]["parentHash"] == replacements[0]["hash"]
    assert rpc.call("eth_getBlockByNumber", ["latest", False])["hash"] == replacements[1]["hash"]
