"""Engine benchmarks: synthetic markets of 100k and 1M users, and the devnet with 10k users.

Synthetic (20 reserves of 18/6/8 decimals, 3 positions per user on average, balances
log-uniform from dust to whales, 10 % of users in eMode, protocol 3.6):
``build_100k_s`` / ``build_1m_s`` (bulk load of the position table), ``screen_full_100k_ms``
/ ``screen_full_1m_ms`` (every user screened, median of runs), ``price_update_100k_ms`` /
``price_update_1m_ms`` (one asset's price moves 1 %: targeted screen of its users and exact
confirmation of the uncertain ones), ``confirmations_per_update_1m`` and
``rss_mb_per_100k`` (resident memory added by 100k users' table).

Devnet (Aave 3.6.0, 10k seeded users; the first run seeds and caches it, about 80 s):
``sync_users_per_s`` (initial sync), ``onchain_eval_10k_ms`` (batched getUserAccountData
for every user, the prior systems' method), ``ours_eval_10k_ms`` (screen + confirmation of
every user at the same block) and ``onchain_vs_ours_ratio``. Skip it with
BENCH_ENGINE_DEVNET=0.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from overlord.aave import (
    EModeCategory,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    reserve_bitmap,
)
from overlord.engine.positions import BORROWING, COLLATERAL, PositionTable
from overlord.engine.screen import SAFE, block_factors, confirm, screen

RAY = 10**27
NOW = 1_731_000_000
RESERVES = 20
CORES = os.cpu_count()


def figure(name: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps({"name": name, "value": round(value, 3), "unit": unit, "cores": CORES, **extra}),
        flush=True,
    )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_market() -> Market:
    rng = np.random.default_rng(7)
    reserves, prices = {}, {}
    for i in range(RESERVES):
        decimals = (18, 6, 8)[i % 3]
        lt = int(rng.integers(6500, 9000))
        asset = f"0x{0xA000 + i:040x}"
        reserves[i] = Reserve(
            id=i,
            asset=asset,
            configuration=ReserveConfiguration(
                ltv=lt - 300,
                liquidation_threshold=lt,
                liquidation_bonus=10500,
                decimals=decimals,
                liquidation_protocol_fee=1000,
            ),
            liquidity_index=RAY + int(rng.integers(0, 10**9)) * 10**17,
            variable_borrow_index=RAY + int(rng.integers(0, 10**9)) * 10**17,
            current_liquidity_rate=3 * 10**25,
            current_variable_borrow_rate=6 * 10**25,
            last_update_timestamp=NOW - 600,
        )
        # Prices that fit the decimals: 6-decimal stablecoins, 8-decimal BTC-likes, 18-decimal rest.
        low, high = {6: (7.9, 8.1), 8: (10.5, 12.8), 18: (6, 11.6)}[decimals]
        prices[asset] = int(10 ** rng.uniform(low, high))
    emode = {
        1: EModeCategory(
            id=1,
            ltv=9300,
            liquidation_threshold=9500,
            liquidation_bonus=10100,
            collateral_bitmap=reserve_bitmap([0, 1, 2]),
        )
    }
    return Market(
        version=ProtocolVersion.V3_6, reserves=reserves, prices=prices, emode_categories=emode
    )


def synthetic_table(market: Market, users: int) -> PositionTable:
    """``users`` users with 1 to 5 positions (3 on average) and log-normal health factors.

    The first position is collateral, the others debt with probability 0.6. Collateral is
    log-uniform from $0.01 to $3M a position; each user's debt is its collateral value
    x 0.65 (the lowest threshold) / HF with HF log-normal around 1.6 (about 3 % of borrowers
    below 1 before eMode and higher thresholds lift them), split
    evenly over its debt positions.
    """
    rng = np.random.default_rng(users)
    counts = rng.integers(1, 6, users)
    row_user = np.repeat(np.arange(users), counts)
    rows = len(row_user)
    reserve = rng.integers(0, RESERVES, rows).astype(np.int16)
    first = np.concatenate(([True], row_user[1:] != row_user[:-1]))
    borrow = ~first & (rng.random(rows) < 0.6)
    flags = np.where(borrow, BORROWING, COLLATERAL).astype(np.uint8)
    decimals = np.array([(18, 6, 8)[r % 3] for r in range(RESERVES)])
    price = np.array(
        [market.prices[market.reserves[r].asset] for r in range(RESERVES)], dtype=np.float64
    )
    collateral_usd = np.where(borrow, 0.0, 10 ** rng.uniform(-2, 6.5, rows))
    per_user = np.bincount(row_user, collateral_usd, minlength=users)
    health = np.exp(rng.normal(np.log(1.6), 0.25, users))
    debt_rows = np.maximum(np.bincount(row_user, borrow, minlength=users), 1)
    debt_usd = np.where(borrow, (per_user * 0.65 / health / debt_rows)[row_user], 0.0)
    usd = collateral_usd + debt_usd
    units = usd * 1e8 / price[reserve] * 10.0 ** decimals[reserve]
    high = np.floor(units / 2.0**64)
    low = np.floor(units - high * 2.0**64).clip(0, 2.0**64 - 2**11)  # 128-bit, as (high, low)
    high_a, low_a = (np.where(borrow, 0.0, half).astype(np.uint64) for half in (high, low))
    high_v, low_v = (np.where(borrow, half, 0.0).astype(np.uint64) for half in (high, low))
    table = PositionTable()
    emode = np.where(rng.random(users) < 0.1, 1, 0).astype(np.uint8)
    addresses = [f"0x{i + 1:040x}" for i in range(users)]
    table.bulk_add(addresses, emode, row_user, reserve, flags, (high_a, low_a), (high_v, low_v))
    return table


def median_ms(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def synthetic(users: int, label: str) -> None:
    market = synthetic_market()
    before = rss_mb()
    start = time.perf_counter()
    table = synthetic_table(market, users)
    figure(f"build_{label}_s", time.perf_counter() - start, "s")
    if users == 100_000:
        figure(
            "rss_mb_per_100k", rss_mb() - before, "MB", table_mb=round(table.nbytes() / 2**20, 1)
        )
    factors = block_factors(market, NOW)
    screen(table, factors)  # warm-up
    figure(f"screen_full_{label}_ms", median_ms(lambda: screen(table, factors), 7), "ms")
    asset = market.reserves[4].asset
    moved = replace(market, prices={**market.prices, asset: market.prices[asset] * 99 // 100})
    confirmations: list[int] = []

    def price_update() -> None:
        moved_factors = block_factors(moved, NOW)
        affected = table.users_of_reserves([4])
        result = screen(table, moved_factors, affected)
        candidates = result.users[result.status != SAFE]
        confirm(table, moved_factors, candidates)
        confirmations.append(len(candidates))

    figure(f"price_update_{label}_ms", median_ms(price_update, 5), "ms")
    if users == 1_000_000:
        figure("confirmations_per_update_1m", float(statistics.median(confirmations)), "users")


def devnet() -> None:
    from overlord.devnet.launch import running_devnet
    from overlord.engine.engine import Engine, EngineSettings

    users = int(os.environ.get("BENCH_ENGINE_DEVNET_USERS", "10000"))
    print(
        f"# devnet with {users} users (first run seeds and caches it)", file=sys.stderr, flush=True
    )
    with running_devnet("3.6.0", users=users, seed=5) as chain, chain.client() as client:
        block = int(client.call("eth_blockNumber"), 16)
        engine = Engine(
            client, chain.manifest.pool, EngineSettings(buckets=4), client_factory=chain.client
        )
        start = time.perf_counter()
        engine.sync(chain.users, block)
        figure("sync_users_per_s", users / (time.perf_counter() - start), "users/s", users=users)
        assert engine.state is not None
        state = engine.state
        onchain = median_ms(lambda: engine.reader.read_account_data(list(chain.users), block), 3)

        def ours() -> None:
            factors = block_factors(state.market, state.block_timestamp)
            result = screen(engine.table, factors)
            confirm(engine.table, factors, result.users[result.status != SAFE])

        mine = median_ms(ours, 5)
        figure("onchain_eval_10k_ms", onchain, "ms", users=users)
        figure("ours_eval_10k_ms", mine, "ms", users=users)
        figure("onchain_vs_ours_ratio", onchain / mine, "x", users=users)


if __name__ == "__main__":
    synthetic(100_000, "100k")
    synthetic(1_000_000, "1m")
    if os.environ.get("BENCH_ENGINE_DEVNET", "1") != "0":
        devnet()
