"""The engine on the real contracts: exactly the users getUserAccountData says, every block."""

from __future__ import annotations

from dataclasses import replace

from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.scenario import StepRecord, run_scenario
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.engine import Engine, EngineSettings, Reason
from overlord.engine.screen import underwater_users
from tests.integration.governance import change_emode

WAD = 10**18


def chain_underwater(
    reader: MarketReader, users: list[str], block: int
) -> dict[str, tuple[int, ...]]:
    data = reader.read_account_data(users, block)
    return {user: tuple(d) for user, d in zip(users, data, strict=True) if d[5] < WAD}


def test_the_engine_holds_exactly_the_underwater_users_at_every_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    head = int(rpc.call("eth_blockNumber"), 16)
    engine = Engine(rpc, devnet.manifest.pool, EngineSettings(reannounce_interval=10**9))
    engine.sync(devnet.users, head)
    reader = MarketReader(rpc, devnet.manifest.pool)
    checked: list[int] = []
    detections = 0

    def check(record: StepRecord) -> None:
        nonlocal detections
        report = engine.process_block(record.block_number)
        users = list(engine.table.addresses)
        expected = chain_underwater(reader, users, record.block_number)
        assert set(report.underwater) == set(expected), record
        for user, account in report.underwater.items():
            assert account.as_tuple() == expected[user]
        for detection in report.detections:
            assert detection.account.as_tuple() == expected[detection.address]
        detections += len(report.detections)
        checked.append(record.block_number)

    run_scenario(rpc, devnet.manifest, devnet.users, steps=40, seed=99, on_step=check)

    assert len(set(checked)) >= 30
    assert detections > 0


def test_announcements_follow_state_changes_not_every_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    head = int(rpc.call("eth_blockNumber"), 16)
    engine = Engine(rpc, devnet.manifest.pool, EngineSettings(reannounce_interval=3600))
    engine.sync(devnet.users, head)
    feed = devnet.manifest.feed("ETH / USD").address
    sender = TxSender(rpc)
    sender.send(
        [
            Tx(
                devnet.manifest.accounts["admin"],
                feed,
                aave_abi.UPDATE_ANSWER.encode(1500 * 10**8),
                "crash",
            )
        ]
    )
    first = engine.process_block(int(rpc.call("eth_blockNumber"), 16))
    rpc.call("evm_mine")
    second = engine.process_block(int(rpc.call("eth_blockNumber"), 16))

    assert first.detections
    assert all(d.reason is Reason.NEW for d in first.detections)
    # One block later only interest moved: nothing is announced again before the interval.
    assert second.detections == ()
    assert set(second.underwater) == set(first.underwater)


def test_hypothetical_prices_give_what_a_full_rescreen_gives(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    head = int(rpc.call("eth_blockNumber"), 16)
    engine = Engine(rpc, devnet.manifest.pool)
    engine.sync(devnet.users, head)
    engine.process_block(head)
    assert engine.state is not None
    weth = devnet.manifest.reserve("WETH").asset.lower()
    crashed = {weth: engine.state.market.prices[weth] * 55 // 100}

    targeted = engine.evaluate_prices(crashed)

    market = replace(engine.state.market, prices={**engine.state.market.prices, **crashed})
    full = underwater_users(engine.table, market, engine.state.block_timestamp)
    assert targeted == {engine.table.addresses[u]: d for u, d in full.items()}
    assert len(targeted) > len(engine.underwater)


def test_a_price_move_reannounces_the_users_it_touches(devnet: Devnet, rpc: JsonRpcClient) -> None:
    engine = Engine(rpc, devnet.manifest.pool, EngineSettings(reannounce_interval=3600))
    engine.sync(devnet.users, int(rpc.call("eth_blockNumber"), 16))
    sender, admin = TxSender(rpc), devnet.manifest.accounts["admin"]
    eth = devnet.manifest.feed("ETH / USD").address
    sender.send([Tx(admin, eth, aave_abi.UPDATE_ANSWER.encode(1500 * 10**8), "crash")])
    first = engine.process_block(int(rpc.call("eth_blockNumber"), 16))
    sender.send([Tx(admin, eth, aave_abi.UPDATE_ANSWER.encode(1490 * 10**8), "lower")])

    second = engine.process_block(int(rpc.call("eth_blockNumber"), 16))

    assert engine.state is not None
    # The ETH feed prices WETH and, through the ratio adapter, wstETH.
    moved = {
        engine.state.market.reserve_by_asset(devnet.manifest.reserve(symbol).asset.lower()).id
        for symbol in ("WETH", "wstETH")
    }
    assert first.detections
    changed = {d.address for d in second.detections if d.reason is Reason.CHANGED}
    assert changed
    assert changed <= set(first.underwater)
    for address in changed:
        index = engine.table.user_index(address)
        assert index is not None
        assert moved & set(engine.table.account(index).positions)  # the moved price is theirs


def test_a_user_first_seen_in_an_event_is_added_and_reported(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    engine = Engine(rpc, devnet.manifest.pool)
    engine.sync(devnet.users[:10], int(rpc.call("eth_blockNumber"), 16))
    stranger = "0x" + "5a" * 20
    weth, admin = devnet.manifest.reserve("WETH"), devnet.manifest.accounts["admin"]
    sender = TxSender(rpc)
    sender.send([Tx(admin, weth.asset, aave_abi.MINT.encode(stranger, 10**18), "mint")])
    sender.send(
        [
            Tx(
                stranger,
                weth.asset,
                aave_abi.APPROVE.encode(devnet.manifest.pool, 10**18),
                "approve",
            ),
            Tx(
                stranger,
                devnet.manifest.pool,
                aave_abi.SUPPLY.encode(weth.asset, 10**18, stranger, 0),
                "supply",
            ),
        ]
    )

    report = engine.process_block(int(rpc.call("eth_blockNumber"), 16))

    assert report.added_users == (stranger,)
    index = engine.table.user_index(stranger)
    assert index is not None
    assert engine.table.account(index).configuration != 0


def test_a_configurator_change_makes_the_engine_read_the_market_in_full(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    head = int(rpc.call("eth_blockNumber"), 16)
    engine = Engine(rpc, devnet.manifest.pool, EngineSettings(reannounce_interval=10**9))
    engine.sync(devnet.users, head)
    engine.process_block(head)
    rpc.call("evm_mine")
    engine.process_block(head + 1)  # incremental from here on
    change_emode(rpc, devnet.manifest)
    block = int(rpc.call("eth_blockNumber"), 16)

    report = engine.process_block(block)

    fresh = MarketReader(rpc, devnet.manifest.pool).read_market(block)
    assert engine.state is not None
    assert engine.state.market == fresh.market
    reader = MarketReader(rpc, devnet.manifest.pool)
    expected = chain_underwater(reader, list(engine.table.addresses), block)
    assert {u: a.as_tuple() for u, a in report.underwater.items()} == expected
