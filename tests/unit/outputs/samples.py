"""Sample events and inputs for the output-layer tests."""

from __future__ import annotations

from overlord.aave import MAX_DEBT_TO_COVER, AccountData, Liquidation
from overlord.outputs.events import (
    AssetPrice,
    BlockContext,
    LiquidationPlan,
    PendingTrigger,
    UnderwaterUserEvent,
    UserAccountData,
    event_id_for,
)

USER = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
TX_HASH = "0x" + "ab" * 32
UINT256_MAX = 2**256 - 1

ACCOUNT = AccountData(
    total_collateral_base=1_250_000_000_000,
    total_debt_base=1_100_000_000_000,
    available_borrows_base=0,
    current_liquidation_threshold=8250,
    ltv=8000,
    health_factor=937_500_000_000_000_000,
)
BLOCK = BlockContext(
    chain_id=1,
    pool=POOL,
    protocol_version="3.6",
    block_number=21_000_000,
    block_timestamp=1_730_000_000,
)
PRICES = (
    AssetPrice(reserve=WETH, symbol="WETH", price=250_000_000_000),
    AssetPrice(reserve=USDC, symbol="USDC", price=100_000_000),
)
PENDING = PendingTrigger(tx_hash=TX_HASH, raw_tx="0x02f8b1", inclusion_block=21_000_001)

# The sample plan's profit and costs, base units: 0.05 % swap fee on 11 550 USD of WETH,
# 0.05 % flash-loan premium on 11 000 USD of USDC, 7.50 USD of gas.
GROSS_PROFIT = 55_000_000_000
SWAP_COST = 577_500_000
FLASH_LOAN_PREMIUM = 550_000_000
GAS_COST = 750_000_000
NET_PROFIT = 53_122_500_000


def liquidation(*, debt_to_cover: int = MAX_DEBT_TO_COVER) -> Liquidation:
    """A plausible WETH/USDC liquidation of :data:`ACCOUNT` (the math is not under test)."""
    return Liquidation(
        collateral_asset=WETH.lower(),
        debt_asset=USDC.lower(),
        debt_to_cover=debt_to_cover,
        debt_repaid=11_000_000_000,
        collateral_to_liquidator=4_620_000_000_000_000_000,
        protocol_fee=12_345,
        collateral_flag_cleared=False,
        liquidation_bonus=10_500,
        collateral_price=250_000_000_000,
        debt_price=100_000_000,
        collateral_balance=5 * 10**18,
        debt_balance=11_000_000_000,
        max_liquidatable_debt=11_000_000_000,
        account=ACCOUNT,
    )


def sample_plan() -> LiquidationPlan:
    return LiquidationPlan(
        collateral_asset=WETH,
        collateral_symbol="WETH",
        debt_asset=USDC,
        debt_symbol="USDC",
        debt_to_cover=MAX_DEBT_TO_COVER,
        debt_repaid=11_000_000_000,
        collateral_received=4_620_000_000_000_000_000,
        protocol_fee=12_345,
        estimated_gross_profit_base=GROSS_PROFIT,
        swap_cost_base=SWAP_COST,
        flash_loan_premium_base=FLASH_LOAN_PREMIUM,
        gas_cost_base=GAS_COST,
        estimated_net_profit_base=NET_PROFIT,
    )


def sample_event(
    *,
    trace_id: str = "trace0001",
    block_number: int = 21_000_000,
    health_factor: int = 937_500_000_000_000_000,
    pending: bool = True,
    plan: bool = True,
) -> UnderwaterUserEvent:
    """A fully populated event (every optional field set unless switched off)."""
    trigger = TX_HASH if pending else "block"
    return UnderwaterUserEvent(
        event_id=event_id_for(
            chain_id=1, pool=POOL, user=USER, block_number=block_number, trigger=trigger
        ),
        address=USER,
        trace_id=trace_id,
        tx_hash=TX_HASH if pending else None,
        raw_tx="0x02f8b1" if pending else None,
        inclusion_block=block_number + 1 if pending else None,
        total_collateral_base=1_250_000_000_000,
        user_account_data=UserAccountData(
            total_collateral_base=1_250_000_000_000,
            total_debt_base=1_100_000_000_000,
            available_borrows_base=0,
            current_liquidation_threshold=8250,
            ltv=8000,
            health_factor=health_factor,
        ),
        new_asset_prices=PRICES,
        protocol_version="3.6",
        chain_id=1,
        pool=POOL,
        block_number=block_number,
        block_timestamp=1_730_000_000,
        liquidation_plan=sample_plan() if plan else None,
    )
