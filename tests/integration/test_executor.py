"""The executor on the devnet: the engine announces, the executor liquidates, the chain agrees.

A 45 % ETH crash and a 30 % BTC crash sink a set of the seeded users; the engine's events go
to the executor one by one. Every block is mined 12 s after the previous one
(``anvil_setBlockTimestampInterval``), the inclusion delay the executor plans with, so the
plan is sized at the very timestamp the liquidation executes at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.demo_cli import CRASH, fund_liquidator, set_feed_prices
from overlord.devnet.launch import Devnet, running_devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.plans import CostModel, plan_of, ranked_plans
from overlord.engine.runner import Runner
from overlord.executor.executor import (
    Executor,
    ExecutorSettings,
    liquidation_call_amounts,
    with_amounts,
)
from overlord.executor.store import AttemptStore, Status
from overlord.executor.submit import LIQUIDATOR_KEY_ENV, KeySubmitter, NodeAccountSubmitter
from overlord.outputs.events import UnderwaterUserEvent, encode_event
from tests.integration.conftest import reverted_after

BLOCK_INTERVAL_S = 12
USERS, SEED = 400, 7


RESTORE = {"ETH / USD": 3_000, "BTC / USD": 60_000, "LINK / USD": 15}  # the seeded prices


@pytest.fixture(scope="module", params=["3.0.2", "3.6.0"])
def market_devnet(request: pytest.FixtureRequest) -> Iterator[Devnet]:
    """A chain with more borrowers than the shared one: the crash must sink 20+ of them."""
    with running_devnet(request.param, users=USERS, seed=SEED) as devnet:
        yield devnet


@pytest.fixture
def devnet(market_devnet: Devnet) -> Iterator[Devnet]:
    """This module's chain, reverted to its seeded state after each test."""
    yield from reverted_after(market_devnet)


@pytest.fixture
def announced(
    devnet: Devnet, rpc: JsonRpcClient
) -> Iterator[tuple[Engine, list[UnderwaterUserEvent]]]:
    """The engine synced on the seeded users, then the crash block processed."""
    rpc.call("anvil_setBlockTimestampInterval", [BLOCK_INTERVAL_S])
    try:
        fund_liquidator(devnet, rpc)
        events: list[UnderwaterUserEvent] = []
        engine = Engine(rpc, devnet.manifest.pool, EngineSettings(), client_factory=devnet.client)
        runner = Runner(engine, devnet.manifest.chain_id, on_event=events.append)
        head = NodeChain(rpc).latest()
        runner.start(devnet.users, head.number, block_hash=head.block_hash)
        events.clear()  # whoever was underwater before the crash is not part of the story
        set_feed_prices(devnet, rpc, CRASH)
        runner.process(NodeChain(rpc).latest().number)
        yield engine, events
    finally:
        rpc.call("anvil_removeBlockTimestampInterval")


def executor_for(devnet: Devnet, rpc: JsonRpcClient, path: Path) -> Executor:
    manifest = devnet.manifest
    settings = ExecutorSettings(
        min_profit_base=0,
        native_asset=manifest.reserve("WETH").asset,
        inclusion_delay_s=BLOCK_INTERVAL_S,
    )
    submitter = NodeAccountSubmitter(rpc, manifest.accounts["liquidator"])
    return Executor(rpc, manifest.pool, submitter, AttemptStore(path), settings)


def test_the_executor_liquidates_exactly_as_planned(
    devnet: Devnet,
    rpc: JsonRpcClient,
    announced: tuple[Engine, list[UnderwaterUserEvent]],
    tmp_path: Path,
) -> None:
    _engine, events = announced
    executor = executor_for(devnet, rpc, tmp_path / "attempts.sqlite")

    attempts = [executor.handle(event) for event in events]

    executed = [a for a in attempts if a.status is Status.EXECUTED]
    assert len(executed) >= 20, Counter(a.status for a in attempts)
    assert not [a for a in attempts if a.status in (Status.REVERTED, Status.FAILED)]
    for attempt in executed:
        # The LiquidationCall moved exactly what the plan said, at the planned timestamp.
        assert attempt.realized_debt_repaid == attempt.planned_debt_repaid
        assert attempt.realized_collateral_received == attempt.planned_collateral_received
        assert attempt.estimated_net_base is not None
        assert attempt.realized_net_base is not None
        assert attempt.estimated_gas_base is not None
        assert attempt.realized_gas_base is not None
        # Only the gas may differ: the estimate against what the receipt says.
        gas_error = abs(attempt.estimated_gas_base - attempt.realized_gas_base)
        assert abs(attempt.realized_net_base - attempt.estimated_net_base) <= gas_error
        assert attempt.estimated_net_base > 0
    # The store holds every attempt, and a second delivery of an event is not acted on.
    assert list(executor.store.attempts()) == attempts
    again = executor.handle(events[0])
    assert again.status is Status.SKIPPED_DUPLICATE


def test_a_user_who_recovered_is_not_liquidated(
    devnet: Devnet,
    rpc: JsonRpcClient,
    announced: tuple[Engine, list[UnderwaterUserEvent]],
    tmp_path: Path,
) -> None:
    _engine, events = announced
    set_feed_prices(devnet, rpc, RESTORE)
    executor = executor_for(devnet, rpc, tmp_path / "attempts.sqlite")

    attempt = executor.handle(events[0])

    assert attempt.status is Status.SKIPPED_HEALTHY
    assert attempt.health_factor is not None
    assert attempt.health_factor >= 10**18
    assert attempt.tx_hash is None


def test_the_chosen_pair_beats_every_alternative_when_executed(
    devnet: Devnet,
    rpc: JsonRpcClient,
    announced: tuple[Engine, list[UnderwaterUserEvent]],
) -> None:
    engine, events = announced
    manifest = devnet.manifest
    liquidator = manifest.accounts["liquidator"]
    costs = CostModel(fee_bps=30)
    sender = TxSender(rpc)
    sender.send(
        [
            Tx(liquidator, r.asset, aave_abi.APPROVE.encode(manifest.pool, 2**256 - 1), "approve")
            for r in manifest.reserves
        ]
    )
    compared = 0
    for event in events:
        head = NodeChain(rpc).latest()
        state = engine.reader.read_market(head.number)
        user = engine.reader.read_users([event.address], head.number, state)[0]
        timestamp = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        plans = ranked_plans(
            state.market, user, timestamp + BLOCK_INTERVAL_S, liquidator, costs=costs
        )
        if len(plans) < 2:
            continue
        realized = []
        for plan in plans:  # each executed on the same snapshot
            snapshot = rpc.call("evm_snapshot")
            liquidation = plan.liquidation
            data = aave_abi.LIQUIDATION_CALL.encode(
                liquidation.collateral_asset,
                liquidation.debt_asset,
                event.address,
                liquidation.debt_to_cover,
                False,
            )
            # TxSender raises if the call reverts.
            receipt = sender.send([Tx(liquidator, manifest.pool, data, "liquidate", 2_000_000)])[0]
            rpc.call("evm_revert", [snapshot])
            amounts = liquidation_call_amounts(receipt, manifest.pool, event.address)
            assert amounts is not None
            actual = with_amounts(liquidation, *amounts)
            realized.append(plan_of(state.market, actual, costs).net_profit_base)
        assert realized[0] == max(realized), realized
        assert realized == [p.net_profit_base for p in plans]  # each as planned, too
        compared += 1
        if compared == 3:
            break
    assert compared >= 1, "no underwater user with two valid pairs"


ANVIL_KEY_2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # public


def test_overlord_execute_consumes_zmq_and_signs_with_the_key_from_the_environment(
    devnet: Devnet,
    rpc: JsonRpcClient,
    announced: tuple[Engine, list[UnderwaterUserEvent]],
    tmp_path: Path,
) -> None:
    _engine, events = announced
    assert KeySubmitter(rpc, ANVIL_KEY_2).sender == devnet.manifest.accounts["liquidator"]
    endpoint = f"ipc://{tmp_path}/events.ipc"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pusher = context.socket(zmq.PUSH)
    pusher.bind(endpoint)
    command = [
        sys.executable,
        "-m",
        "overlord",
        "execute",
        "--rpc-url",
        devnet.rpc_url,
        "--manifest",
        str(devnet.manifest_path),
        "--endpoint",
        endpoint,
        "--data-dir",
        str(tmp_path),
        "--count",
        "3",
    ]
    env = {**os.environ, LIQUIDATOR_KEY_ENV: ANVIL_KEY_2, "PROFIT_MIN_USD": "0"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        pusher.send(b"not an event")  # queued until the executor connects; skipped there
        for event in events[:3]:
            pusher.send(encode_event(event))
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
        pusher.close(linger=0)
        context.term()

    assert process.returncode == 0, err
    assert ANVIL_KEY_2[2:] not in out + err
    assert "malformed event skipped" in err
    with AttemptStore(tmp_path / "executor.sqlite") as store:
        attempts = list(store.attempts())
    assert [a.user for a in attempts] == [e.address for e in events[:3]]
    executed = [a for a in attempts if a.status is Status.EXECUTED]
    assert executed, [a.status for a in attempts]
    for attempt in executed:
        assert attempt.realized_debt_repaid == attempt.planned_debt_repaid
        receipt = rpc.call("eth_getTransactionReceipt", [attempt.tx_hash])
        assert receipt["from"].lower() == devnet.manifest.accounts["liquidator"].lower()
