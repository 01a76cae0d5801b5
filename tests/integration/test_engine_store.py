"""The engine's checkpoint on the real contracts: a restart from the file equals the chain."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.scenario import StepRecord, run_scenario
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain, Reorg, plan_head
from overlord.engine.state_codec import market_state_document, market_state_from_document
from overlord.engine.store import ENGINE_DB, EngineStore, EngineStoreError


def _store(devnet: Devnet, directory: Path) -> EngineStore:
    return EngineStore(
        directory / ENGINE_DB, pool=devnet.manifest.pool, chain_id=devnet.manifest.chain_id
    )


def _head(rpc: JsonRpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def _accounts(engine: Engine) -> dict[str, object]:
    return {
        address: engine.table.account(index) for index, address in enumerate(engine.table.addresses)
    }


def _chain_tuples(rpc: JsonRpcClient, engine: Engine, block: int) -> dict[str, tuple[int, ...]]:
    users = list(engine.table.addresses)
    data = MarketReader(rpc, engine.pool).read_account_data(users, block)
    return {user: tuple(d) for user, d in zip(users, data, strict=True)}


def _our_tuples(engine: Engine) -> dict[str, tuple[int, ...]]:
    from overlord.aave import calculate_user_account_data

    assert engine.state is not None
    return {
        address: calculate_user_account_data(
            engine.state.market, engine.table.account(index), engine.state.block_timestamp
        ).as_tuple()
        for index, address in enumerate(engine.table.addresses)
    }


def test_the_market_survives_the_json_round_trip_exactly(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    state = MarketReader(rpc, devnet.manifest.pool).read_market(_head(rpc))

    assert market_state_from_document(market_state_document(state)) == state


def test_a_restart_from_the_file_equals_the_engine_that_wrote_it_and_the_chain(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    settings = EngineSettings(reannounce_interval=10**9)
    with _store(devnet, tmp_path) as store:
        writer = Engine(rpc, devnet.manifest.pool, settings, store=store)
        writer.sync(devnet.users, _head(rpc))
        writer.process_block(_head(rpc))

        def step(record: StepRecord) -> None:
            writer.process_block(record.block_number)

        run_scenario(rpc, devnet.manifest, devnet.users, steps=12, seed=5, on_step=step)
        checkpoint = store.checkpoint()
        assert checkpoint is not None
        assert checkpoint.block == writer.last_block
        assert store.pending == 0

    with _store(devnet, tmp_path) as store:
        reader = Engine(rpc, devnet.manifest.pool, settings, store=store)
        restored = reader.restore()

        assert restored is not None
        assert restored.block == writer.last_block
        assert _accounts(reader) == _accounts(writer)
        assert reader.state == writer.state
        assert reader.processed_hashes() == writer.processed_hashes()
        # The stored state, computed by our math, is the Pool's at the checkpoint block.
        assert _our_tuples(reader) == _chain_tuples(rpc, reader, restored.block)


def test_a_restart_catches_up_through_the_logs_of_the_blocks_it_missed(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    with _store(devnet, tmp_path) as store:
        writer = Engine(rpc, devnet.manifest.pool, store=store)
        writer.sync(devnet.users, _head(rpc))
        writer.process_block(_head(rpc))
    # Down while the market moves.
    run_scenario(rpc, devnet.manifest, devnet.users, steps=10, seed=11)
    head = NodeChain(rpc).latest()

    with _store(devnet, tmp_path) as store:
        engine = Engine(rpc, devnet.manifest.pool, store=store)
        assert engine.restore() is not None
        report = engine.process_block(head.number, block_hash=head.block_hash)

        assert report.touched > 0
        assert _our_tuples(engine) == _chain_tuples(rpc, engine, head.number)
        saved = store.checkpoint()
        assert saved is not None
        assert saved.block == head.number


def test_a_reorg_while_down_is_rolled_back_from_the_stored_hashes(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    snapshot = rpc.call("evm_snapshot")
    with _store(devnet, tmp_path) as store:
        writer = Engine(rpc, devnet.manifest.pool, store=store)
        writer.sync(devnet.users, _head(rpc))
        writer.process_block(_head(rpc))
        run_scenario(
            rpc,
            devnet.manifest,
            devnet.users,
            steps=6,
            seed=3,
            on_step=lambda r: _process(writer, r.block_number, _hash(rpc, r)),
        )
    # The blocks it saw are replaced by others (a reorg the engine was not there for).
    rpc.call("evm_revert", [snapshot])
    run_scenario(rpc, devnet.manifest, devnet.users, steps=9, seed=4)
    head = NodeChain(rpc).latest()

    with _store(devnet, tmp_path) as store:
        engine = Engine(rpc, devnet.manifest.pool, store=store)
        assert engine.restore() is not None
        last = engine.last_block
        assert last is not None
        plan = plan_head(engine.processed_hashes(), last, head, NodeChain(rpc))
        assert isinstance(plan, Reorg)
        engine.rollback(plan.ancestor, everyone=plan.beyond_history)
        engine.process_block(head.number, block_hash=head.block_hash)

        assert _our_tuples(engine) == _chain_tuples(rpc, engine, head.number)


def _process(engine: Engine, block: int, block_hash: str | None = None) -> None:
    engine.process_block(block, block_hash=block_hash)


def _hash(rpc: JsonRpcClient, record: StepRecord) -> str:
    return NodeChain(rpc).hash_at(record.block_number) or ""


def test_a_failed_write_keeps_the_changes_for_the_next_block(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    with _store(devnet, tmp_path) as store:
        engine = Engine(rpc, devnet.manifest.pool, store=store)
        engine.sync(devnet.users, _head(rpc))
        engine.process_block(_head(rpc))
        saved = store.checkpoint()
        # Another connection holds the write lock: the engine's writes fail (SQLITE_BUSY),
        # as on a full or read-only disk.
        blocker = sqlite3.connect(tmp_path / ENGINE_DB, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        store._db.execute("PRAGMA busy_timeout = 0")
        run_scenario(
            rpc,
            devnet.manifest,
            devnet.users,
            steps=6,
            seed=8,
            on_step=lambda r: _process(engine, r.block_number),
        )
        assert engine.store_errors > 0
        assert store.pending > 0
        assert store.checkpoint() == saved  # the file still holds one whole block
        blocker.rollback()
        blocker.close()
        engine.process_block(_head(rpc))
        assert store.pending == 0

    with _store(devnet, tmp_path) as store:
        restarted = Engine(rpc, devnet.manifest.pool, store=store)
        restarted.restore()
        assert _accounts(restarted) == _accounts(engine)


def test_an_initial_sync_that_cannot_be_saved_runs_on_and_leaves_the_old_checkpoint(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    with _store(devnet, tmp_path) as store:
        first = Engine(rpc, devnet.manifest.pool, store=store)
        first.sync(devnet.users[:10], _head(rpc))
        saved = store.checkpoint()
    run_scenario(rpc, devnet.manifest, devnet.users, steps=3, seed=12)
    blocker = sqlite3.connect(tmp_path / ENGINE_DB, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # every write fails, as on a full disk
    try:
        with _store(devnet, tmp_path) as store:
            store._db.execute("PRAGMA busy_timeout = 0")
            engine = Engine(rpc, devnet.manifest.pool, store=store)
            engine.sync(devnet.users, _head(rpc))

            assert engine.store is None  # no partial sync ever becomes a checkpoint
            assert engine.store_errors == 1
            assert engine.table.users == len(devnet.users)
            engine.process_block(_head(rpc))  # detection goes on
    finally:
        blocker.rollback()
        blocker.close()
    with _store(devnet, tmp_path) as store:
        assert store.checkpoint() == saved


def test_a_file_of_another_pool_is_refused_with_its_path(devnet: Devnet, tmp_path: Path) -> None:
    with _store(devnet, tmp_path):
        pass
    with pytest.raises(EngineStoreError, match=r"engine\.sqlite holds the state of pool"):
        EngineStore(tmp_path / ENGINE_DB, pool="0x" + "11" * 20, chain_id=devnet.manifest.chain_id)
