"""The liquidator role: re-check an announced user, liquidate with the best plan, record it.

For each :class:`~overlord.outputs.events.UnderwaterUserEvent`, :meth:`Executor.handle`:

1. reads the market and the user at the latest block (one full market read and one
   batched user read) and computes the user's exact account data at the expected inclusion
   time (the latest block's timestamp plus ``inclusion_delay_s``), so the event's numbers
   are not trusted blindly: a user who recovered is skipped;
2. sizes every valid (collateral, debt) pair with the math package and takes the best net
   profit (:func:`~overlord.engine.plans.ranked_plans`), with the gas cost from
   ``eth_estimateGas`` x ``eth_gasPrice`` x the native token's oracle price;
3. skips plans whose net profit is below ``min_profit_base`` (``PROFIT_MIN_USD``), and
   plans the liquidator cannot pay for (inventory mode: it must hold the debt asset; the
   Pool is approved once per asset);
4. sends ``liquidationCall(collateral, debt, user, debtToCover, false)`` through its
   :class:`~overlord.executor.submit.Submitter`, waits for the receipt and reads the
   ``LiquidationCall`` event: the realized debt repaid, collateral received and gas, valued
   like the estimate (same prices, same swap-cost rule, the real gas);
5. records the attempt in the :class:`~overlord.executor.store.AttemptStore`.

Every outcome is an :class:`~overlord.executor.store.Attempt`; node errors become attempts
with status ``failed`` and the error text, never an exception out of :meth:`handle`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from overlord.aave import Liquidation, calculate_user_account_data
from overlord.chain import aave_abi
from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.abi import Function
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.engine.plans import CostModel, Plan, plan_of, ranked_plans
from overlord.executor.store import Attempt, AttemptStore, Status
from overlord.executor.submit import Submitter
from overlord.outputs.events import UnderwaterUserEvent

log = logging.getLogger("overlord.execute")

ALLOWANCE = Function("allowance(address,address)", ("uint256",))
MAX_UINT256 = 2**256 - 1
GAS_HEADROOM = 1.25  # the gas limit over eth_estimateGas: state may move before inclusion
NATIVE_UNIT = 10**18


class ExecutionError(Exception):
    """An attempt could not be completed (no receipt, an approval reverted, ...)."""


@dataclass(frozen=True)
class ExecutorSettings:
    """``min_profit_base`` is in base-currency units (USD x 1e8 on USD markets).
    ``costs`` are the planner's (swap fee, flash-loan premium); its ``gas_cost_base``
    (``GAS_COST_USD``) is used only without a ``native_asset``, the wrapped native token's
    reserve, whose oracle price otherwise turns the estimated and the real gas into base
    currency.
    """

    min_profit_base: int = 0
    costs: CostModel = field(default_factory=CostModel)
    native_asset: str | None = None
    inclusion_delay_s: int = 12
    receipt_timeout_s: float = 30.0


@dataclass(frozen=True)
class Realized:
    """What one mined liquidation did, from its receipt."""

    debt_repaid: int
    collateral_received: int
    gas_used: int
    gas_base: int
    net_base: int


@dataclass
class Executor:
    """See the module docstring. One thread at a time."""

    client: JsonRpcClient
    pool: str
    submitter: Submitter
    store: AttemptStore
    settings: ExecutorSettings = field(default_factory=ExecutorSettings)
    _approved: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.reader = MarketReader(self.client, self.pool)

    def handle(self, event: UnderwaterUserEvent) -> Attempt:
        """Act on one event and record the attempt (see the module docstring)."""
        base = Attempt(event.event_id, event.address, event.block_number, Status.SKIPPED_DUPLICATE)
        if self.store.seen(event.event_id):
            attempt = base
        else:
            try:
                attempt = self._attempt(event, base)
            except (RpcError, ExecutionError) as exc:
                attempt = _with(base, status=Status.FAILED, error=str(exc))
            except Exception as exc:
                # A bug must not stop the executor: the attempt is recorded as failed.
                log.exception("unexpected error while handling an event")
                attempt = _with(base, status=Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        self.store.record(attempt)
        log.info(
            "attempt",
            extra={
                "user": attempt.user,
                "status": attempt.status.value,
                "tx": attempt.tx_hash,
                "estimated_net_base": attempt.estimated_net_base,
                "realized_net_base": attempt.realized_net_base,
            },
        )
        return attempt

    def _attempt(self, event: UnderwaterUserEvent, base: Attempt) -> Attempt:
        head: Any = self.client.call("eth_getBlockByNumber", ["latest", False])
        block, timestamp = int(head["number"], 16), int(head["timestamp"], 16)
        state = self.reader.read_market(block)
        user = self.reader.read_users([event.address], block, state)[0]
        now = timestamp + self.settings.inclusion_delay_s
        account = calculate_user_account_data(state.market, user, now)
        checked = _with(base, recheck_block=block, health_factor=account.health_factor)
        if not account.is_liquidatable:
            return _with(checked, status=Status.SKIPPED_HEALTHY)
        costs = self.settings.costs
        sender = self.submitter.sender
        plans = ranked_plans(state.market, user, now, sender, account, costs)
        if not plans:
            return _with(checked, status=Status.SKIPPED_NO_PLAN)
        best = plans[0]
        planned = _planned(checked, best)
        liquidation = best.liquidation
        if self._inventory(liquidation.debt_asset, block) < liquidation.debt_repaid:
            return _with(planned, status=Status.SKIPPED_INVENTORY)
        if self._approve(liquidation.debt_asset, liquidation.debt_repaid):
            # The approval was mined in a block of its own: plan again from the new head.
            return self._attempt(event, base)
        data = aave_abi.LIQUIDATION_CALL.encode(
            liquidation.collateral_asset,
            liquidation.debt_asset,
            event.address,
            liquidation.debt_to_cover,
            False,
        )
        gas_units = self._estimate_gas(data)
        gas_price = int(str(self.client.call("eth_gasPrice")), 16)
        gas_base = self._gas_base(gas_units * gas_price, state)
        plan = plan_of(state.market, liquidation, costs.with_gas(gas_base))
        planned = _planned(checked, plan)
        if plan.net_profit_base < self.settings.min_profit_base:
            return _with(planned, status=Status.SKIPPED_UNPROFITABLE)
        tx_hash = self.submitter.send(self.pool, data, int(gas_units * GAS_HEADROOM))
        receipt = self._receipt(tx_hash)
        sent = _with(planned, tx_hash=tx_hash, block_number=int(receipt["blockNumber"], 16))
        if int(receipt["status"], 16) != 1:
            return _with(sent, status=Status.REVERTED, gas_used=int(receipt["gasUsed"], 16))
        realized = self._realized(receipt, event.address, plan, costs, state)
        return _with(
            sent,
            status=Status.EXECUTED,
            gas_used=realized.gas_used,
            realized_debt_repaid=realized.debt_repaid,
            realized_collateral_received=realized.collateral_received,
            realized_gas_base=realized.gas_base,
            realized_net_base=realized.net_base,
        )

    def _inventory(self, asset: str, block: int) -> int:
        data = aave_abi.BALANCE_OF.encode(self.submitter.sender)
        answer = self.client.call("eth_call", [{"to": asset, "data": data}, hex(block)])
        return int(aave_abi.BALANCE_OF.decode_hex(str(answer))[0])

    def _approve(self, asset: str, amount: int) -> bool:
        """Inventory mode: the Pool pulls the debt asset from the liquidator. Approves it
        (for good) when the allowance is short; True when a transaction was sent."""
        if asset in self._approved:
            return False
        sent = False
        data = ALLOWANCE.encode(self.submitter.sender, self.pool)
        answer = self.client.call("eth_call", [{"to": asset, "data": data}, "latest"])
        if int(ALLOWANCE.decode_hex(str(answer))[0]) < amount:
            tx_hash = self.submitter.send(
                asset, aave_abi.APPROVE.encode(self.pool, MAX_UINT256), 100_000
            )
            if int(self._receipt(tx_hash)["status"], 16) != 1:
                raise ExecutionError(f"approve of {asset} for the Pool reverted ({tx_hash})")
            sent = True
        self._approved.add(asset)
        return sent

    def _estimate_gas(self, data: str) -> int:
        call = {"from": self.submitter.sender, "to": self.pool, "data": data}
        return int(str(self.client.call("eth_estimateGas", [call])), 16)

    def _gas_base(self, gas_wei: int, state: MarketState) -> int:
        """Wei of gas in base currency (rounded up), or the fixed cost without a native asset."""
        native = self.settings.native_asset
        if native is None:
            return self.settings.costs.gas_cost_base
        price = state.market.prices[native.lower()]
        return -(-gas_wei * price // NATIVE_UNIT)

    def _receipt(self, tx_hash: str) -> Mapping[str, Any]:
        deadline = time.monotonic() + self.settings.receipt_timeout_s
        while True:
            receipt = self.client.call("eth_getTransactionReceipt", [tx_hash])
            if isinstance(receipt, dict):
                return receipt
            if time.monotonic() > deadline:
                raise ExecutionError(
                    f"no receipt for {tx_hash} in {self.settings.receipt_timeout_s} s"
                )
            time.sleep(0.05)

    def _realized(
        self,
        receipt: Mapping[str, Any],
        user: str,
        plan: Plan,
        costs: CostModel,
        state: MarketState,
    ) -> Realized:
        """The receipt's LiquidationCall, valued at the plan's prices with the real gas."""
        amounts = liquidation_call_amounts(receipt, self.pool, user)
        if amounts is None:
            raise ExecutionError(
                f"{receipt.get('transactionHash')}: mined without a LiquidationCall"
            )
        debt_repaid, received = amounts
        gas_used = int(receipt["gasUsed"], 16)
        gas_price = int(receipt.get("effectiveGasPrice", "0x0"), 16)
        gas_base = self._gas_base(gas_used * gas_price, state)
        actual = with_amounts(plan.liquidation, debt_repaid, received)
        value = plan_of(state.market, actual, costs.with_gas(gas_base))
        return Realized(debt_repaid, received, gas_used, gas_base, value.net_profit_base)


def liquidation_call_amounts(
    receipt: Mapping[str, Any], pool: str, user: str
) -> tuple[int, int] | None:
    """(debt repaid, collateral to the liquidator) of the ``LiquidationCall`` the Pool
    emitted for ``user`` in ``receipt``, or ``None`` if there is none."""
    for entry in receipt.get("logs", []):
        topics = entry.get("topics", [])
        if (
            entry.get("address", "").lower() == pool.lower()
            and len(topics) == 4
            and topics[0] == LIQUIDATION_CALL_TOPIC
            and "0x" + topics[3][-40:] == user.lower()
        ):
            words = entry["data"][2:]
            return int(words[0:64], 16), int(words[64:128], 16)
    return None


def with_amounts(liquidation: Liquidation, debt_repaid: int, received: int) -> Liquidation:
    """``liquidation`` as it turned out: the debt repaid and collateral received replaced."""
    return replace(liquidation, debt_repaid=debt_repaid, collateral_to_liquidator=received)


def _planned(attempt: Attempt, plan: Plan) -> Attempt:
    liquidation = plan.liquidation
    return _with(
        attempt,
        collateral_asset=liquidation.collateral_asset,
        debt_asset=liquidation.debt_asset,
        debt_to_cover=liquidation.debt_to_cover,
        planned_debt_repaid=liquidation.debt_repaid,
        planned_collateral_received=liquidation.collateral_to_liquidator,
        estimated_gross_base=plan.gross_gain_base,
        estimated_gas_base=plan.gas_cost_base,
        estimated_net_base=plan.net_profit_base,
    )


def _with(attempt: Attempt, **changes: Any) -> Attempt:
    return replace(attempt, **changes)
