"""Exact account-data time for one user with 1, 4 and 16 positions.

Prints ``exact_hf_1pos_us``, ``exact_hf_4pos_us`` and ``exact_hf_16pos_us``: the median,
over many batches, of the time ``calculate_user_account_data`` takes for one user on a
16-reserve market, in microseconds. Measured for protocol 3.6 (floor/ceil math) and, as
``..._v3_0_2`` figures, for 3.0.2 (half-up math, binomial interest). Positions alternate
collateral and debt across reserves of 18, 6 and 8 decimals; reserve indices were last
updated an hour before the evaluated block, so every position pays for interest accrual.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from overlord.aave import (
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    UserAccount,
    UserReserve,
    calculate_user_account_data,
    user_configuration_word,
)

RAY = 10**27
NOW = 1_731_000_000
RESERVES = 16
DECIMALS = (18, 6, 8)


def build_market(version: ProtocolVersion) -> Market:
    """A 16-reserve market with realistic indices, rates and prices."""
    reserves = {}
    prices = {}
    for reserve_id in range(RESERVES):
        asset = f"0x{0xA000 + reserve_id:040x}"
        configuration = ReserveConfiguration(
            ltv=7000 + 50 * reserve_id,
            liquidation_threshold=7500 + 50 * reserve_id,
            liquidation_bonus=10500,
            decimals=DECIMALS[reserve_id % 3],
            liquidation_protocol_fee=1000,
        )
        reserves[reserve_id] = Reserve(
            id=reserve_id,
            asset=asset,
            configuration=configuration,
            liquidity_index=RAY + 31_415_926_535_897_932_384_626_433 * (reserve_id + 1),
            variable_borrow_index=RAY + 27_182_818_284_590_452_353_602_874 * (reserve_id + 1),
            current_liquidity_rate=20_000_000_000_000_000_000_000_000 + reserve_id,
            current_variable_borrow_rate=45_000_000_000_000_000_000_000_000 + reserve_id,
            last_update_timestamp=NOW - 3600,
        )
        prices[asset] = (1 + reserve_id) * 123_456_789_01
    return Market(version=version, reserves=reserves, prices=prices)


def build_user(positions: int) -> UserAccount:
    """A user with ``positions`` positions, alternating collateral and debt."""
    collateral = [i for i in range(positions) if i % 2 == 0] or [0]
    borrowing = [i for i in range(positions) if i % 2 == 1]
    balances = {
        i: UserReserve(
            scaled_atoken_balance=7_654_321 * 10 ** DECIMALS[i % 3] if i in collateral else 0,
            scaled_variable_debt=1_234_567 * 10 ** DECIMALS[i % 3] if i in borrowing else 0,
        )
        for i in range(positions)
    }
    word = user_configuration_word(borrowing=borrowing, collateral=collateral)
    return UserAccount(address="0x" + "11" * 20, configuration=word, positions=balances)


def median_microseconds(
    market: Market, user: UserAccount, batches: int = 60, calls: int = 200
) -> float:
    """Median over ``batches`` of the mean time per call in a batch of ``calls``."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(calls):
            calculate_user_account_data(market, user, NOW)
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def main() -> None:
    """Print one JSON line per figure."""
    cores = os.cpu_count()
    for version, suffix in ((ProtocolVersion.V3_6, ""), (ProtocolVersion.V3_0_2, "_v3_0_2")):
        market = build_market(version)
        for positions in (1, 4, 16):
            value = median_microseconds(market, build_user(positions))
            figure = {
                "name": f"exact_hf_{positions}pos_us{suffix}",
                "value": round(value, 2),
                "unit": "us",
                "cores": cores,
                "protocol": version.value,
            }
            print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
