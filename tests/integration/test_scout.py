"""Pending oracle updates: events before inclusion, for exactly the users the block sinks."""

from __future__ import annotations

from pathlib import Path

import zmq

from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.engine.engine import Engine
from overlord.engine.runner import Runner
from overlord.engine.scout import PriceScout
from overlord.feeds.decoders import decode_update
from overlord.feeds.sources import discover_feeds
from overlord.outputs.events import decode_event
from overlord.outputs.publisher import EventPublisher

WAD = 10**18


def _head(rpc: JsonRpcClient) -> tuple[int, int]:
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(block["number"], 16), int(block["timestamp"], 16)


def test_feed_discovery_follows_the_ratio_adapter_to_the_eth_feed(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    assets = [r.asset for r in manifest.reserves]

    watched = discover_feeds(rpc, manifest.addresses["oracle"], assets, _head(rpc)[0])

    eth = manifest.feed("ETH / USD").address.lower()
    moved = {manifest.reserve(s).asset.lower() for s in ("WETH", "wstETH")}
    assert watched[eth] == moved
    assert watched[manifest.feed("wstETH / USD").address.lower()] == {
        manifest.reserve("wstETH").asset.lower()
    }


def test_a_pending_crash_is_announced_before_it_is_mined(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    manifest = devnet.manifest
    number, timestamp = _head(rpc)
    engine = Engine(rpc, manifest.pool)
    engine.sync(devnet.users, number)
    engine.process_block(number)
    before = set(engine.underwater)
    watched = discover_feeds(
        rpc, manifest.addresses["oracle"], [r.asset for r in manifest.reserves], number
    )
    scout = PriceScout(engine, rpc, manifest.addresses["oracle"], watched, block_interval=12)
    endpoint = f"ipc://{tmp_path}/events.ipc"
    context = zmq.Context()
    consumer = context.socket(zmq.PULL)
    consumer.setsockopt(zmq.RCVTIMEO, 10_000)
    consumer.setsockopt(zmq.LINGER, 0)
    with EventPublisher(endpoint, send_timeout_ms=5_000) as publisher:
        consumer.connect(endpoint)
        runner = Runner(engine, manifest.chain_id, publisher)
        rpc.call("anvil_autoImpersonateAccount", [True])
        rpc.call("evm_setAutomine", [False])
        try:
            tx_hash = rpc.call(
                "eth_sendTransaction",
                [
                    {
                        "from": manifest.accounts["admin"],
                        "to": manifest.feed("ETH / USD").address,
                        "data": aave_abi.UPDATE_ANSWER.encode(2_000 * 10**8),
                        "gas": hex(200_000),
                        "gasPrice": "0x0",
                    }
                ],
            )
            (detection,) = scout.poll()
            events = runner.emit_pending(detection)
            received = [decode_event(consumer.recv()) for _ in events]
            still_pending = int(rpc.call("eth_blockNumber"), 16) == number
            rpc.call("evm_setNextBlockTimestamp", [timestamp + 12])
            rpc.call("evm_mine")
        finally:
            rpc.call("evm_setAutomine", [True])
            consumer.close()
            context.term()

    assert still_pending
    assert {e.tx_hash for e in received} == {tx_hash}
    assert all(e.inclusion_block == number + 1 and e.raw_tx for e in received)
    reader = MarketReader(rpc, manifest.pool)
    users = list(engine.table.addresses)
    chain = dict(zip(users, reader.read_account_data(users, number + 1), strict=True))
    sunk = {u for u, data in chain.items() if data[5] < WAD} - before
    assert sunk
    assert {e.address.lower() for e in received} == sunk
    for event in received:
        assert event.user_account_data.as_tuple() == tuple(chain[event.address.lower()])
    engine.process_block(number + 1)
    scout.check_included()
    assert (scout.checked, scout.mismatches) == (1, 0)


def test_unrelated_and_unknown_transactions_are_not_feed_updates() -> None:
    watched = {"0x" + "aa" * 20: {"0x" + "bb" * 20}}
    update = aave_abi.UPDATE_ANSWER.encode(1)

    assert decode_update("0x" + "aa" * 20, update, watched) is not None
    assert decode_update("0x" + "cc" * 20, update, watched) is None  # not a watched feed
    assert (
        decode_update("0x" + "aa" * 20, aave_abi.APPROVE.encode("0x" + "aa" * 20, 1), watched)
        is None
    )
    assert decode_update(None, update, watched) is None
    assert decode_update("0x" + "aa" * 20, "0x12", watched) is None
