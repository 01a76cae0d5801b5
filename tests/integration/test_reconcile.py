"""Reconciliation and the addresses file's hot reload on the real contracts."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from overlord.aave import UserAccount
from overlord.aave.configuration import flagged_reserves
from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.addresses_watch import AddressesChange, AddressesWatcher
from overlord.engine.engine import Engine
from overlord.engine.reconcile import FieldDifference, Mismatch, Reconciler


def head(rpc: JsonRpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def next_block(rpc: JsonRpcClient) -> int:
    rpc.call("evm_mine")
    return head(rpc)


def stored(engine: Engine, address: str) -> UserAccount:
    index = engine.table.user_index(address)
    assert index is not None
    return engine.table.account(index)


def reconciler_for(devnet: Devnet, engine: Engine, found: list[Mismatch]) -> Reconciler:
    return Reconciler(engine, devnet.client, interval_s=60.0, chunk=50, on_mismatch=found.append)


def supply_weth(rpc: JsonRpcClient, devnet: Devnet, user: str) -> None:
    weth, pool = devnet.manifest.reserve("WETH"), devnet.manifest.pool
    sender, admin = TxSender(rpc), devnet.manifest.accounts["admin"]
    sender.send([Tx(admin, weth.asset, aave_abi.MINT.encode(user, 10**18), "mint")])
    sender.send(
        [
            Tx(user, weth.asset, aave_abi.APPROVE.encode(pool, 10**18), "approve"),
            Tx(user, pool, aave_abi.SUPPLY.encode(weth.asset, 10**18, user, 0), "supply"),
        ]
    )


def test_a_tampered_position_is_found_and_healed_by_the_next_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    engine = Engine(rpc, devnet.manifest.pool)
    synced_at = head(rpc)
    engine.sync(devnet.users, synced_at)
    found: list[Mismatch] = []
    reconciler = reconciler_for(devnet, engine, found)
    try:
        clean = reconciler.reconcile_once()
        victim = next(
            a
            for a in engine.table.addresses
            if any(flagged_reserves(stored(engine, a).configuration))
        )
        account = stored(engine, victim)
        reserve_id = next(iter(account.positions))
        true = account.positions[reserve_id]
        wrong = replace(true, scaled_variable_debt=true.scaled_variable_debt + 12345)
        positions = MappingProxyType({**account.positions, reserve_id: wrong})
        with engine.lock:
            engine.table.upsert(replace(account, positions=positions))

        tampered = reconciler.reconcile_once()
        engine.process_block(next_block(rpc))
        healed = reconciler.reconcile_once()
    finally:
        reconciler.close()

    assert clean.mismatches == []
    assert clean.users_checked == len(devnet.users) > 100
    assert clean.errors == 0
    field = f"reserve[{reserve_id}].scaled_variable_debt"
    difference = FieldDifference(
        field, true.scaled_variable_debt + 12345, true.scaled_variable_debt
    )
    assert tampered.mismatches == [Mismatch(victim, synced_at, (difference,))]
    assert found == tampered.mismatches
    assert healed.mismatches == []
    assert healed.block == engine.last_block
    assert stored(engine, victim) == account
    assert reconciler.rounds == 3
    assert reconciler.mismatches == 1


def test_a_chain_that_moved_on_is_compared_at_the_engines_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    engine = Engine(rpc, devnet.manifest.pool)
    synced_at = head(rpc)
    engine.sync(devnet.users[:20], synced_at)
    user = devnet.users[0]
    supply_weth(rpc, devnet, user)  # the engine has not seen this block yet
    reader = MarketReader(rpc, devnet.manifest.pool)
    now = head(rpc)
    (moved,) = reader.read_users([user], now, reader.read_market(now))
    assert moved != stored(engine, user)
    reconciler = reconciler_for(devnet, engine, [])
    try:
        behind = reconciler.reconcile_once()
        engine.process_block(now)
        caught_up = reconciler.reconcile_once()
    finally:
        reconciler.close()

    assert (behind.block, behind.mismatches) == (synced_at, [])
    assert (caught_up.block, caught_up.mismatches) == (now, [])
    assert stored(engine, user) == moved


def write(path: Path, *lines: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(temporary, path)


def test_the_addresses_file_adds_and_drops_users_and_survives_bad_input(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = MarketReader(rpc, devnet.manifest.pool)
    start = head(rpc)
    everyone = reader.read_users(list(devnet.users), start, reader.read_market(start))
    users = [account.address for account in everyone if account.configuration][:6]
    path = tmp_path / "users.txt"
    write(path, *users[:4])
    engine = Engine(rpc, devnet.manifest.pool)
    engine.sync(users[:4], start)
    watcher = AddressesWatcher(path, engine, initial=users[:4])

    # A line added: the user joins at the next block.
    write(path, *users[:5])
    added = watcher.check()
    block = next_block(rpc)
    engine.process_block(block)
    (chain_view,) = reader.read_users([users[4]], block, reader.read_market(block))

    assert added == AddressesChange(added=(users[4],), removed=())
    assert stored(engine, users[4]) == chain_view

    # A line removed, one added, one malformed: the malformed one is logged, the rest applies.
    write(path, *users[1:5], "0x1234 # truncated", users[5])
    with caplog.at_level(logging.WARNING, logger="overlord.addresses"):
        changed = watcher.check()
    engine.process_block(next_block(rpc))

    assert changed == AddressesChange(added=(users[5],), removed=(users[0],))
    assert [getattr(r, "line", None) for r in caplog.records] == [5]
    assert stored(engine, users[0]) == UserAccount(users[0], 0)
    assert stored(engine, users[5]).configuration != 0

    # The reconciler leaves the dropped user out instead of reading them back in.
    reconciler = Reconciler(engine, devnet.client, interval_s=60.0, dropped=watcher.dropped_users)
    try:
        report = reconciler.reconcile_once()
    finally:
        reconciler.close()
    assert (report.users_checked, report.mismatches) == (5, [])

    # The file deleted: nobody is dropped.
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="overlord.addresses"):
        assert watcher.check() is None
    engine.process_block(next_block(rpc))

    assert any(str(path) in str(getattr(r, "file", "")) for r in caplog.records)
    for user in users[1:6]:
        assert stored(engine, user).configuration != 0
    assert watcher.addresses == set(users[1:6])
