"""The liquidation tracker, on-demand health factors, the verifier and hf-backfill on the devnet.

Prices crash, real ``liquidationCall``s are sent, and the tracker (Pool logs, a SQLite store
in a temporary directory) must report each exactly once, across a restart, with the
user's account data at the block before and the block of the liquidation equal to
``Pool.getUserAccountData`` there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overlord.aave import calculate_user_account_data
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.cli import app
from overlord.demo_cli import CRASH, fund_liquidator, set_feed_prices
from overlord.devnet.launch import Devnet
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.verifier import DUMP_FILE, HealthFactorVerifier, VerifierSampler
from overlord.observability.metrics import Metrics
from overlord.tracker.attribution import Verdict, Watchlist
from overlord.tracker.logsource import LogSource
from overlord.tracker.ondemand import OnDemandHealth
from overlord.tracker.store import TrackerStore
from overlord.tracker.tracker import LiquidationTracker, TrackedLiquidation, TrackerSettings
from tests.integration.liquidating import liquidate, underwater_users

WAD = 10**18


def _head(rpc: JsonRpcClient) -> int:
    return NodeChain(rpc).latest().number


def _tracker(
    devnet: Devnet,
    rpc: JsonRpcClient,
    store: TrackerStore,
    delivered: list[TrackedLiquidation],
    *,
    start_block: int,
    watchlist: Watchlist | None = None,
    max_range: int = 10_000,
    ignore_bootstrap: bool = True,
    metrics: Metrics | None = None,
) -> LiquidationTracker:
    source = LogSource(rpc, devnet.manifest.pool, start_block=start_block, max_range=max_range)
    return LiquidationTracker(
        source,
        store,
        TrackerSettings(ignore_bootstrap_batch=ignore_bootstrap),
        health=OnDemandHealth(rpc, devnet.manifest.pool),
        watchlist=watchlist,
        deliver=delivered.append,
        metrics=metrics,
    )


def _drain(tracker: LiquidationTracker, rpc: JsonRpcClient) -> None:
    """Poll until the source has reached the head."""
    for _ in range(1000):
        report = tracker.poll()
        cursor = tracker.store.cursor("logs")
        if cursor is not None and int(cursor) >= _head(rpc) and not report.new:
            return
    raise AssertionError("the tracker never caught up")


def test_each_liquidation_once_with_exact_health_around_it_across_a_restart(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    fund_liquidator(devnet, rpc)
    delivered: list[TrackedLiquidation] = []
    store = TrackerStore.in_dir(tmp_path)
    tracker = _tracker(devnet, rpc, store, delivered, start_block=_head(rpc))
    assert tracker.poll().bootstrap  # a cold start: nothing yet, the cursor is set

    set_feed_prices(devnet, rpc, CRASH)
    victims = underwater_users(devnet, rpc)
    assert len(victims) >= 4
    first_blocks = liquidate(devnet, rpc, victims[:2])
    report = tracker.poll()
    assert [item.record.user for item in report.new] == victims[:2]

    store.close()  # a restart: two more liquidations while nothing runs
    second_blocks = liquidate(devnet, rpc, victims[2:4])
    store = TrackerStore.in_dir(tmp_path)
    restarted = _tracker(devnet, rpc, store, delivered, start_block=0, max_range=1)
    _drain(restarted, rpc)  # one block per poll: the catch-up takes many polls, none loses any

    assert [item.record.user for item in delivered] == victims[:4]
    assert [item.block for item in delivered] == first_blocks + second_blocks
    assert store.seen_total() == 4
    reader = MarketReader(rpc, devnet.manifest.pool)
    for item in delivered:
        assert item.block is not None
        assert item.before is not None
        assert item.after is not None
        (before,) = reader.read_account_data([item.record.user], item.block - 1)
        (after,) = reader.read_account_data([item.record.user], item.block)
        assert item.before.as_tuple() == before
        assert item.after.as_tuple() == after
        assert item.before.health_factor < WAD
        assert item.record.liquidator == devnet.manifest.accounts["liquidator"].lower()
    store.close()


def test_a_liquidation_of_a_chain_that_replaced_the_scanned_blocks_is_delivered(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    fund_liquidator(devnet, rpc)
    delivered: list[TrackedLiquidation] = []
    with TrackerStore.in_dir(tmp_path) as store:
        tracker = _tracker(devnet, rpc, store, delivered, start_block=_head(rpc))
        tracker.poll()
        set_feed_prices(devnet, rpc, CRASH)
        victims = underwater_users(devnet, rpc)
        fork = rpc.call("evm_snapshot")
        (orphaned,) = liquidate(devnet, rpc, victims[:1])
        tracker.poll()
        rpc.call("evm_revert", [fork])  # a reorg: the scanned block is replaced
        (replacing,) = liquidate(devnet, rpc, victims[1:2])
        tracker.poll()

    assert replacing <= orphaned  # at or below the cursor: found only by the rescan
    assert [item.record.user for item in delivered] == victims[:2]


def test_verdicts_say_whether_we_flagged_the_user_first(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    fund_liquidator(devnet, rpc)
    start = _head(rpc)
    set_feed_prices(devnet, rpc, CRASH)
    victims = underwater_users(devnet, rpc)
    watchlist = Watchlist()
    watchlist.started([user for user in devnet.users if user != victims[1]], start)
    watchlist.flagged(victims[0], _head(rpc))  # we announced the first, never the second
    delivered: list[TrackedLiquidation] = []
    metrics = Metrics()
    with TrackerStore.in_dir(tmp_path) as store:
        tracker = _tracker(
            devnet, rpc, store, delivered, start_block=start, watchlist=watchlist, metrics=metrics
        )
        tracker.poll()
        liquidate(devnet, rpc, victims[:3])
        tracker.poll()

    verdicts = {item.record.user: item.verdict for item in delivered}
    assert verdicts[victims[0]] is Verdict.FLAGGED
    assert verdicts[victims[1]] is Verdict.NOT_IN_USER_SET
    assert verdicts[victims[2]] is Verdict.BUG  # watched, underwater, never announced
    text = metrics.exposition().decode()
    assert 'liquidation_missed_total{reason="not_in_user_set"} 1.0' in text
    assert 'liquidation_missed_total{reason="bug"} 1.0' in text
    assert "liquidation_new_events_total 3.0" in text


def test_the_bootstrap_batch_fills_the_seen_set_without_delivering(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fund_liquidator(devnet, rpc)
    start = _head(rpc)
    set_feed_prices(devnet, rpc, CRASH)
    victims = underwater_users(devnet, rpc)
    liquidate(devnet, rpc, victims[:2])  # before the tracker's first start
    synced = _head(rpc)
    after_start = liquidate(devnet, rpc, victims[2:3])  # before the first poll, after the start
    delivered: list[TrackedLiquidation] = []
    with TrackerStore.in_dir(tmp_path) as store, caplog.at_level(logging.INFO):
        tracker = _tracker(devnet, rpc, store, delivered, start_block=start)
        tracker.source.cold_until = synced  # type: ignore[attr-defined]
        report = tracker.poll()
        assert report.bootstrap
        assert report.suppressed == 2
        assert store.seen_total() == 2
        assert tracker.health is not None
        assert tracker.health.queries == 0
        assert "bootstrap batch ignored (2 events suppressed)" in caplog.text
        _drain(tracker, rpc)
    assert [item.record.user for item in delivered] == victims[2:3]
    assert [item.block for item in delivered] == after_start


def test_the_verifier_agrees_with_the_chain_and_catches_an_injected_mismatch(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    metrics = Metrics()
    verifier = HealthFactorVerifier(
        rpc,
        devnet.manifest.pool,
        debug_errors=True,
        dump_dir=tmp_path,
        metrics=metrics,
        revert_retry_s=0.01,
    )
    block = _head(rpc)
    reader = MarketReader(rpc, devnet.manifest.pool)
    state = reader.read_market(block)
    accounts = reader.read_users(list(devnet.users)[:40], block, state)
    assert all(check.matches for check in verifier.check(state, accounts))

    borrower = next(a for a in accounts if a.configuration & 0x5555)  # borrows something
    true_hf = calculate_user_account_data(state.market, borrower, state.block_timestamp)
    assert verifier.verify(borrower.address, true_hf.health_factor, block).is_consistent
    off = verifier.verify(borrower.address, true_hf.health_factor + 1, block)
    assert off.as_dict() == {
        "original": true_hf.health_factor + 1,
        "verified": true_hf.health_factor,
        "diff": -1,
        "is_consistent": False,
    }

    reserve_id = next(r for r in borrower.positions if borrower.configuration >> (2 * r + 1) & 1)
    position = borrower.positions[reserve_id]
    more = replace(position, scaled_atoken_balance=position.scaled_atoken_balance + 10**6)
    tampered = replace(borrower, positions={**borrower.positions, reserve_id: more})
    (check,) = verifier.check(state, [tampered])
    assert not check.matches
    assert verifier.mismatches == 2
    assert verifier.checks == 40 + 2 + 1
    dumped = [json.loads(line) for line in (tmp_path / DUMP_FILE).read_text().splitlines()]
    assert [entry["user"] for entry in dumped] == [borrower.address]
    assert "verifier_mismatches_total 2.0" in metrics.exposition().decode()


def test_the_sampler_checks_the_engines_own_table(devnet: Devnet, rpc: JsonRpcClient) -> None:
    engine = Engine(rpc, devnet.manifest.pool, EngineSettings(), client_factory=devnet.client)
    engine.sync(list(devnet.users), _head(rpc))
    verifier = HealthFactorVerifier(devnet.client(), devnet.manifest.pool)
    sampler = VerifierSampler(engine, verifier, per_block=len(devnet.users), seed=1)
    checks = sampler.sample()
    assert len(checks) == len(devnet.users)
    assert all(check.matches for check in checks)
    verifier.reader.client.close()


def test_backfill_writes_each_users_health_before_and_now(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    fund_liquidator(devnet, rpc)
    set_feed_prices(devnet, rpc, CRASH)
    victims = underwater_users(devnet, rpc)
    blocks = liquidate(devnet, rpc, victims[:3])
    out = tmp_path / "hf-backfill-output.json"

    result = CliRunner().invoke(
        app,
        ["backfill", "--recent", "2", "--out", str(out), "--manifest", str(devnet.manifest_path)],
        env={"OVERLORD_RPC_URL": devnet.rpc_url},
    )

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert set(document) >= {"timestamp", "recentCount", "totalUsers", "results"}
    assert document["recentCount"] == 2
    assert document["totalUsers"] == 2
    rows = document["results"]
    assert [row["userId"] for row in rows] == victims[2:0:-1]  # newest first
    assert [row["block"] for row in rows] == blocks[2:0:-1]
    reader = MarketReader(rpc, devnet.manifest.pool)
    latest = _head(rpc)
    for row in rows:
        (before,) = reader.read_account_data([row["userId"]], row["block"] - 1)
        (now,) = reader.read_account_data([row["userId"]], latest)
        assert int(row["healthFactorBeforeWad"]) == before[5] < WAD
        assert int(row["healthFactorWad"]) == now[5]
        assert row["healthFactorBefore"] == pytest.approx(before[5] / WAD)
        assert "error" not in row
