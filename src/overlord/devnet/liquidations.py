"""The liquidation sweep of a scenario: the liquidator liquidates users below health factor 1.

The contract of this module: :func:`liquidation_sweep` reads every user's account data,
takes those below health factor 1 (with collateral and debt), lowest health factor first
and at most ``sweeper.max_liquidations`` of them, and plans one ``liquidationCall`` each on
its largest collateral and largest debt (by value): the whole debt or, sometimes, a part
that Aave accepts, receiving aTokens or the underlying. It mints the debt assets to the
liquidator, approves the Pool and sends the calls; reverts are recorded in the returned
:class:`~overlord.devnet.actions.Outcome`, never raised. Without candidates it mines one
empty block, so every sweep mines at least one block.

Random choices are drawn from ``sweeper.rng`` in the order of the candidates, so a seeded
driver plans the same liquidations from the same chain state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.actions import (
    Actor,
    Outcome,
    Position,
    StepKind,
    UserState,
    read_user_states,
    receipt_ok,
    short_address,
    token_amount,
)
from overlord.devnet.manifest import Manifest, ReserveInfo
from overlord.devnet.seed import (
    MAX_UINT256,
    USD,
    MarketView,
    read_account_data,
    token_unit,
)
from overlord.devnet.transactions import Tx

WAD = 10**18


class Sweeper(Actor, Protocol):
    """What a liquidation sweep needs from the scenario driver."""

    @property
    def client(self) -> JsonRpcClient:
        """The node's JSON-RPC client."""
        ...

    @property
    def manifest(self) -> Manifest:
        """The devnet's manifest."""
        ...

    @property
    def liquidator(self) -> str:
        """The liquidator's address (lower-case)."""
        ...

    @property
    def max_liquidations(self) -> int:
        """The most users one sweep liquidates."""
        ...

    @property
    def reserve_ids(self) -> dict[str, int]:
        """Each reserve's id, by symbol."""
        ...

    def market(self) -> MarketView:
        """The manifest with the current oracle prices."""
        ...


def liquidation_sweep(sweeper: Sweeper) -> Outcome:
    """Liquidate every user below health factor 1 (up to the cap) on one valid pair."""
    client, manifest = sweeper.client, sweeper.manifest
    accounts = read_account_data(client, manifest, sweeper.users)
    candidates = sorted(
        (account[5], user)
        for user, account in zip(sweeper.users, accounts, strict=True)
        if account[5] < WAD and account[1] > 0 and account[0] > 0
    )[: sweeper.max_liquidations]
    outcome = Outcome(StepKind.LIQUIDATION, "")
    if not candidates:
        client.call("evm_mine")
        outcome.description = "liquidator finds no user below health factor 1"
        return outcome
    market = sweeper.market()
    plans = [
        plan
        for state in read_user_states(
            client, manifest, [user for _hf, user in candidates], sweeper.reserve_ids
        )
        if (plan := _plan_liquidation(sweeper, state, market)) is not None
    ]
    done = _liquidate(sweeper, outcome, plans)
    outcome.liquidations = done
    sample = ", ".join(p.summary for p in plans[:3]) + (", …" if len(plans) > 3 else "")
    outcome.description = (
        f"liquidator liquidates {done} of {len(candidates)} users below health factor 1"
        + (f": {sample}" if sample else "")
    )
    return outcome


@dataclass(frozen=True)
class _Liquidation:
    state: UserState
    collateral: Position
    debt: Position
    debt_to_cover: int
    receive_a_token: bool

    @property
    def summary(self) -> str:
        cover = (
            "MAX"
            if self.debt_to_cover == MAX_UINT256
            else token_amount(self.debt_to_cover, self.debt.reserve)
        )
        return (
            f"{short_address(self.state.address)} {self.collateral.reserve.symbol}/"
            f"{self.debt.reserve.symbol} cover {cover}"
        )

    def tx(self, liquidator: str, pool: str) -> Tx:
        data = aave_abi.LIQUIDATION_CALL.encode(
            self.collateral.reserve.asset,
            self.debt.reserve.asset,
            self.state.address,
            self.debt_to_cover,
            self.receive_a_token,
        )
        return Tx(liquidator, pool, data, f"liquidate {self.state.address}")


def _plan_liquidation(
    sweeper: Sweeper, state: UserState, market: MarketView
) -> _Liquidation | None:
    def value(amount: int, reserve: ReserveInfo) -> int:
        return amount * market.price(reserve) // token_unit(reserve)

    collaterals = [p for p in state.supplied() if p.collateral]
    debts = state.borrowed()
    if not collaterals or not debts:
        return None
    collateral = max(collaterals, key=lambda p: value(p.supplied, p.reserve))
    debt = max(debts, key=lambda p: value(p.debt, p.reserve))
    amount = MAX_UINT256
    if sweeper.rng.random() < 0.3:
        partial = max(1, int(debt.debt * sweeper.rng.uniform(0.2, 0.6)))
        debt_left = value(debt.debt - partial, debt.reserve)
        seized = value(partial, debt.reserve) * collateral.reserve.liquidation_bonus // 10_000
        collateral_left = value(collateral.supplied, collateral.reserve) - seized
        # 3.3+ reverts when a partial liquidation leaves less than $1000 on either side;
        # 3.0.x (the flavour with stable debt) has no such rule.
        if market.stable_debt or min(debt_left, collateral_left) > 1_100 * USD:
            amount = partial
    return _Liquidation(state, collateral, debt, amount, sweeper.rng.random() < 0.3)


def _liquidate(sweeper: Sweeper, outcome: Outcome, plans: Sequence[_Liquidation]) -> int:
    if not plans:
        sweeper.client.call("evm_mine")
        return 0
    needs: dict[str, tuple[ReserveInfo, int]] = {}
    for plan in plans:
        reserve = plan.debt.reserve
        previous = needs.get(reserve.symbol, (reserve, 0))[1]
        # MAX may repay the whole debt; a margin covers interest until it is mined.
        needs[reserve.symbol] = (reserve, previous + plan.debt.debt * 101 // 100 + 1)
    liquidator, pool = sweeper.liquidator, sweeper.manifest.pool
    mints = [
        Tx(sweeper.admin, r.asset, aave_abi.MINT.encode(liquidator, amount), "fund")
        for r, amount in needs.values()
    ]
    sweeper.send(outcome, mints)  # the liquidator's txs depend on them: a later send
    txs = [
        Tx(
            liquidator,
            r.asset,
            aave_abi.APPROVE.encode(pool, MAX_UINT256),
            f"liquidator approves {r.symbol}",
        )
        for r, _amount in needs.values()
    ]
    txs += [plan.tx(liquidator, pool) for plan in plans]
    receipts = sweeper.send(outcome, txs)
    return sum(receipt_ok(receipt) for receipt in receipts[len(needs) :])
