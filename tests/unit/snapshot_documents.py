"""Snapshot documents shared by the snapshot and CLI tests."""

from __future__ import annotations

import copy
from typing import Any

RAY = 10**27
T0 = 1_700_000_000
WETH = "0x" + "aa" * 20
USDC = "0x" + "bb" * 20
USER = "0x" + "11" * 20


def spec_example() -> dict[str, Any]:
    """docs/aave-v3-math.md §9.2 account-data example as a snapshot (1 hour after t0)."""
    return copy.deepcopy(
        {
            "protocol_version": "3.6",
            "block_timestamp": T0 + 3600,
            "reserves": [
                {
                    "id": 0,
                    "asset": WETH,
                    "symbol": "WETH",
                    "configuration": {
                        "ltv": 8050,
                        "liquidation_threshold": 8300,
                        "liquidation_bonus": 10500,
                        "decimals": 18,
                    },
                    "liquidity_index": "1020000000000000000000000000",
                    "variable_borrow_index": "1040000000000000000000000000",
                    "current_liquidity_rate": "20000000000000000000000000",
                    "current_variable_borrow_rate": "30000000000000000000000000",
                    "last_update_timestamp": T0,
                    "price": 300000000000,
                },
                {
                    "id": 1,
                    "asset": USDC,
                    "symbol": "USDC",
                    "configuration": {
                        "ltv": 7500,
                        "liquidation_threshold": 7800,
                        "liquidation_bonus": 10500,
                        "decimals": 6,
                    },
                    "liquidity_index": "0x" + format(1_030_000_000 * 10**18, "x"),
                    "variable_borrow_index": "1050000000000000000000000000",
                    "current_liquidity_rate": "40000000000000000000000000",
                    "current_variable_borrow_rate": "55000000000000000000000000",
                    "last_update_timestamp": T0,
                    "price": "99990000",
                },
            ],
            "users": [
                {
                    "address": USER,
                    "positions": [
                        {"asset": WETH, "scaled_atoken_balance": str(10**18), "collateral": True},
                        {"asset": USDC, "scaled_variable_debt": 2_300_000_000, "borrowing": True},
                    ],
                }
            ],
        }
    )


SPEC_3_5_PLUS = (306000698630, 241477366149, 4853196248, 8300, 8050, 1051777994407082769)
SPEC_3_0_TO_3_4 = (306000698630, 241477366148, 4853196249, 8300, 8050, 1051777994411852483)
