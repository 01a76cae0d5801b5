"""User actions of a scenario, and the users' chain state they are chosen from.

The contract of this module:

* :class:`StepKind` names what a scenario step did and :class:`Outcome` collects a step's
  description and receipts while it runs; both are shared by the scenario driver
  (:mod:`overlord.devnet.scenario`) and the liquidation sweep
  (:mod:`overlord.devnet.liquidations`).
* :func:`read_user_states` reads users' account data, eMode and per-reserve positions
  (:class:`UserState`, :class:`Position`) in one batch of ``eth_call`` s.
* :data:`USER_ACTIONS` maps each user step kind (supply, withdraw, borrow, repay,
  collateral on/off, eMode switch, aToken transfer) to an action that sends its
  transactions through an :class:`Actor` (the driver) and returns its :class:`Outcome`,
  or ``None`` when the user cannot do it; :func:`act` applies the fallbacks (repay →
  borrow → supply, which is always possible).

Every random choice is drawn from ``actor.rng`` in a fixed order, so a seeded driver
takes the same actions with the same amounts from the same chain state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.manifest import Manifest, ReserveInfo
from overlord.devnet.seed import (
    MAX_UINT256,
    STABLE_RATE,
    USD,
    VARIABLE_RATE,
    MarketView,
    eth_calls,
    token_unit,
)
from overlord.devnet.transactions import Tx


class StepKind(StrEnum):
    """What a scenario step did."""

    PRICE_WALK = "price_walk"
    PRICE_CRASH = "price_crash"
    PRICE_RECOVERY = "price_recovery"
    RATIO_CHANGE = "ratio_change"
    TIME_JUMP = "time_jump"
    SUPPLY = "supply"
    WITHDRAW = "withdraw"
    BORROW = "borrow"
    REPAY = "repay"
    COLLATERAL = "collateral"
    EMODE = "emode"
    TRANSFER = "atoken_transfer"
    LIQUIDATION = "liquidation"


@dataclass
class Outcome:
    """What a step did so far: its kind, description, receipts and liquidations."""

    kind: StepKind
    description: str
    receipts: list[dict[str, object]] = field(default_factory=list)
    liquidations: int = 0

    @property
    def succeeded(self) -> bool:
        """Whether every transaction of the step succeeded."""
        return all(receipt_ok(receipt) for receipt in self.receipts)


def receipt_ok(receipt: dict[str, object]) -> bool:
    """Whether a transaction receipt reports success."""
    return int(str(receipt["status"]), 16) == 1


class Actor(Protocol):
    """What actions need from the scenario driver."""

    @property
    def rng(self) -> random.Random:
        """The run's random source."""
        ...

    @property
    def users(self) -> Sequence[str]:
        """Every user of the run (lower-case)."""
        ...

    @property
    def admin(self) -> str:
        """The account that mints tokens."""
        ...

    def send(self, outcome: Outcome, txs: Sequence[Tx]) -> list[dict[str, object]]:
        """Send ``txs`` (reverts allowed) and add their receipts to ``outcome``."""
        ...


# Formatting and sampling shared by the scenario modules.


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """A log-uniform draw between ``low`` and ``high``."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def short_address(address: str) -> str:
    """``0x1234…abcd``."""
    return f"{address[:6]}…{address[-4:]}"


def token_amount(amount: int, reserve: ReserveInfo) -> str:
    """``amount`` of ``reserve`` in whole tokens (``all SYMBOL`` for the max uint)."""
    if amount == MAX_UINT256:
        return f"all {reserve.symbol}"
    return f"{amount / token_unit(reserve):,.6g} {reserve.symbol}"


# Reading users.


@dataclass(frozen=True)
class Position:
    """One reserve of one user, as read from the chain."""

    reserve: ReserveInfo
    supplied: int  # aToken balance
    collateral: bool  # the user's collateral flag for the reserve
    variable_debt: int
    stable_debt: int
    wallet: int  # underlying balance

    @property
    def debt(self) -> int:
        """Variable plus stable debt."""
        return self.variable_debt + self.stable_debt


@dataclass(frozen=True)
class UserState:
    """A user's account data, eMode and positions."""

    address: str
    account: tuple[int, ...]  # getUserAccountData
    emode: int
    positions: tuple[Position, ...]

    @property
    def total_debt(self) -> int:
        """totalDebtBase."""
        return self.account[1]

    def supplied(self) -> list[Position]:
        """Positions with an aToken balance."""
        return [p for p in self.positions if p.supplied > 0]

    def borrowed(self) -> list[Position]:
        """Positions with debt."""
        return [p for p in self.positions if p.debt > 0]


def reserve_ids(client: JsonRpcClient, manifest: Manifest) -> dict[str, int]:
    """Each reserve's id (its bit pair in user configurations), by symbol."""
    (listed,) = aave_abi.GET_RESERVES_LIST.decode(
        eth_calls(client, [(manifest.pool, aave_abi.GET_RESERVES_LIST.encode())])[0]
    )
    ids = {str(asset).lower(): i for i, asset in enumerate(listed)}
    return {r.symbol: ids[r.asset.lower()] for r in manifest.reserves}


def read_user_states(
    client: JsonRpcClient,
    manifest: Manifest,
    addresses: Sequence[str],
    ids: dict[str, int] | None = None,
) -> list[UserState]:
    """The state of each user in ``addresses`` at the latest block, in one batch.

    ``ids`` are the reserve ids (:func:`reserve_ids`; read when not given).
    """
    ids = ids if ids is not None else reserve_ids(client, manifest)
    calls: list[tuple[str, str]] = []
    for user in addresses:
        calls.append((manifest.pool, aave_abi.GET_USER_ACCOUNT_DATA.encode(user)))
        calls.append((manifest.pool, aave_abi.GET_USER_EMODE.encode(user)))
        calls.append((manifest.pool, aave_abi.GET_USER_CONFIGURATION.encode(user)))
        for r in manifest.reserves:
            for token in (r.a_token, r.variable_debt_token, r.stable_debt_token, r.asset):
                if token is not None:
                    calls.append((token, aave_abi.BALANCE_OF.encode(user)))
    results = iter(eth_calls(client, calls))
    return [_decode_user(manifest, ids, user.lower(), results) for user in addresses]


def _decode_user(
    manifest: Manifest, ids: dict[str, int], user: str, results: Iterator[str]
) -> UserState:
    account = tuple(int(v) for v in aave_abi.GET_USER_ACCOUNT_DATA.decode(next(results)))
    emode = int(aave_abi.GET_USER_EMODE.decode(next(results))[0])
    configuration = int(aave_abi.GET_USER_CONFIGURATION.decode(next(results))[0])

    def balance() -> int:
        return int(aave_abi.BALANCE_OF.decode(next(results))[0])

    positions = []
    for r in manifest.reserves:
        supplied, variable = balance(), balance()
        stable = balance() if r.stable_debt_token is not None else 0
        collateral = bool(configuration >> (2 * ids[r.symbol] + 1) & 1)
        positions.append(Position(r, supplied, collateral, variable, stable, balance()))
    return UserState(user, account, emode, tuple(positions))


# User actions: each returns None when the user cannot do it (act falls back).

UserAction = Callable[[Actor, UserState, MarketView], "Outcome | None"]


def act(actor: Actor, kind: StepKind, state: UserState, market: MarketView) -> Outcome:
    """Have ``state``'s user do ``kind``, or a fallback when it cannot.

    No debt to repay: borrow; nothing it can do (withdraw, borrow, ...): supply, which
    is always possible.
    """
    outcome = USER_ACTIONS[kind](actor, state, market)
    if outcome is None and kind is StepKind.REPAY:
        outcome = _borrow(actor, state, market)
    return outcome if outcome is not None else _supply(actor, state, market)


def fund(actor: Actor, outcome: Outcome, user: str, reserve: ReserveInfo, amount: int) -> None:
    """Mint ``amount`` of ``reserve`` to ``user`` (from the admin, in its own block)."""
    data = aave_abi.MINT.encode(user, amount)
    actor.send(outcome, [Tx(actor.admin, reserve.asset, data, f"mint {reserve.symbol}")])


def _effective_threshold(state: UserState, market: MarketView, reserve: ReserveInfo) -> int:
    if state.emode and reserve in market.members(state.emode):
        return market.category(state.emode).liquidation_threshold
    return reserve.liquidation_threshold


def safe_removal(state: UserState, market: MarketView, position: Position) -> int:
    """How much of ``position``'s aTokens the user can withdraw or transfer and keep a
    health factor of about 1.02 or more (an estimate from the account data)."""
    if state.total_debt == 0 or not position.collateral:
        return position.supplied
    collateral, debt, _available, threshold = state.account[:4]
    headroom = collateral * threshold - debt * 10_200
    if headroom <= 0:
        return 0
    reserve = position.reserve
    removable = headroom // _effective_threshold(state, market, reserve)
    return min(position.supplied, removable * token_unit(reserve) // market.price(reserve))


def _supply(actor: Actor, state: UserState, market: MarketView) -> Outcome:
    rng = actor.rng
    held = [p.reserve for p in state.supplied()]
    if held and rng.random() < 0.5:
        reserve = rng.choice(held)
    elif state.emode and rng.random() < 0.7:
        reserve = rng.choice(market.members(state.emode))
    else:
        reserve = rng.choice(market.manifest.reserves)
    base = int(log_uniform(rng, 10, 200_000) * USD)
    amount = max(1, base * token_unit(reserve) // market.price(reserve))
    user, pool = state.address, market.manifest.pool
    outcome = Outcome(
        StepKind.SUPPLY, f"{short_address(user)} supplies {token_amount(amount, reserve)}"
    )
    fund(actor, outcome, user, reserve, amount)
    actor.send(
        outcome,
        [
            Tx(user, reserve.asset, aave_abi.APPROVE.encode(pool, MAX_UINT256), "approve"),
            Tx(user, pool, aave_abi.SUPPLY.encode(reserve.asset, amount, user, 0), "supply"),
        ],
    )
    return outcome


def _withdraw(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    options = [(p, safe_removal(state, market, p)) for p in state.supplied()]
    options = [(p, amount) for p, amount in options if amount > 0]
    if not options:
        return None
    position, safe = actor.rng.choice(options)
    amount = max(1, int(safe * actor.rng.uniform(0.1, 0.95)))
    if safe == position.supplied and actor.rng.random() < 0.5:
        amount = MAX_UINT256  # withdraw everything
    reserve, user = position.reserve, state.address
    data = aave_abi.WITHDRAW.encode(reserve.asset, amount, user)
    outcome = Outcome(
        StepKind.WITHDRAW, f"{short_address(user)} withdraws {token_amount(amount, reserve)}"
    )
    actor.send(outcome, [Tx(user, market.manifest.pool, data, "withdraw")])
    return outcome


def _borrowable(state: UserState, market: MarketView) -> list[ReserveInfo]:
    # An eMode user borrows only its category's assets (3.0.2 by category id, 3.6 by the
    # borrowable bitmap, which the deployer sets to the members).
    return market.members(state.emode) if state.emode else list(market.manifest.reserves)


def _rate_mode(actor: Actor, market: MarketView, position: Position) -> int:
    # 3.0.2 refuses stable debt in an asset used as collateral (below the aToken balance).
    eligible = market.stable_debt and position.reserve.stable_borrowing
    if eligible and not (position.collateral and position.supplied > 0):
        return STABLE_RATE if actor.rng.random() < 0.3 else VARIABLE_RATE
    return VARIABLE_RATE


def _borrow(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    available = state.account[2]
    if available < USD:  # less than a dollar of headroom
        return None
    reserve = actor.rng.choice(_borrowable(state, market))
    position = next(p for p in state.positions if p.reserve == reserve)
    base = int(available * actor.rng.uniform(0.1, 0.9))
    amount = base * token_unit(reserve) // market.borrow_price(reserve, state.emode)
    if amount == 0:
        return None
    mode = _rate_mode(actor, market, position)
    user = state.address
    data = aave_abi.BORROW.encode(reserve.asset, amount, mode, 0, user)
    rate = "stable" if mode == STABLE_RATE else "variable"
    outcome = Outcome(
        StepKind.BORROW,
        f"{short_address(user)} borrows {token_amount(amount, reserve)} at a {rate} rate",
    )
    actor.send(outcome, [Tx(user, market.manifest.pool, data, "borrow")])
    return outcome


def _repay(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    debts = state.borrowed()
    if not debts:
        return None
    rng = actor.rng
    position = rng.choice(debts)
    stable = position.stable_debt > 0 and (position.variable_debt == 0 or rng.random() < 0.5)
    mode, owed = (
        (STABLE_RATE, position.stable_debt) if stable else (VARIABLE_RATE, position.variable_debt)
    )
    if rng.random() < 0.4:
        amount, need = MAX_UINT256, owed + owed // 1000 + 10  # margin: a block of interest
    else:
        amount = need = max(1, int(owed * rng.uniform(0.1, 0.9)))
    reserve, user, pool = position.reserve, state.address, market.manifest.pool
    outcome = Outcome(
        StepKind.REPAY, f"{short_address(user)} repays {token_amount(amount, reserve)} of debt"
    )
    if need > position.wallet:
        fund(actor, outcome, user, reserve, need - position.wallet)
    actor.send(
        outcome,
        [
            Tx(user, reserve.asset, aave_abi.APPROVE.encode(pool, MAX_UINT256), "approve"),
            Tx(user, pool, aave_abi.REPAY.encode(reserve.asset, amount, mode, user), "repay"),
        ],
    )
    return outcome


def _collateral(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    options = [p for p in state.supplied() if not p.collateral]
    options += [
        p for p in state.supplied() if p.collateral and safe_removal(state, market, p) >= p.supplied
    ]
    if not options:
        return None
    position = actor.rng.choice(options)
    enable = not position.collateral
    reserve, user = position.reserve, state.address
    data = aave_abi.SET_USE_AS_COLLATERAL.encode(reserve.asset, enable)
    verb = "enables" if enable else "disables"
    outcome = Outcome(
        StepKind.COLLATERAL, f"{short_address(user)} {verb} {reserve.symbol} as collateral"
    )
    actor.send(outcome, [Tx(user, market.manifest.pool, data, "collateral")])
    return outcome


def _hf_without_emode(state: UserState, market: MarketView) -> float:
    # An estimate of the health factor after leaving eMode (reserve thresholds).
    if state.total_debt == 0:
        return math.inf
    weighted = sum(
        p.supplied
        * market.price(p.reserve)
        // token_unit(p.reserve)
        * p.reserve.liquidation_threshold
        for p in state.supplied()
        if p.collateral
    )
    return weighted / 10_000 / state.total_debt


def _emode_targets(state: UserState, market: MarketView) -> list[int]:
    # Leaving a category loses its thresholds: only when the health factor survives that
    # (an estimate). A new category must allow every current debt (3.0.2: by category id;
    # 3.6: the borrowable bitmap, here the members).
    if state.emode and _hf_without_emode(state, market) <= 1.02:
        return []
    debts = {p.reserve.asset.lower() for p in state.borrowed()}
    targets = [
        category.id
        for category in market.manifest.emode_categories
        if category.id != state.emode and debts <= {a.lower() for a in category.assets}
    ]
    return [0, *targets] if state.emode else targets


def _emode(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    targets = _emode_targets(state, market)
    if not targets:
        return None
    target = actor.rng.choice(targets)
    user = state.address
    what = f"enters eMode {target}" if target else f"leaves eMode {state.emode}"
    outcome = Outcome(StepKind.EMODE, f"{short_address(user)} {what}")
    data = aave_abi.SET_USER_EMODE.encode(target)
    actor.send(outcome, [Tx(user, market.manifest.pool, data, "eMode")])
    return outcome


def _transfer(actor: Actor, state: UserState, market: MarketView) -> Outcome | None:
    options = [(p, safe_removal(state, market, p)) for p in state.supplied()]
    options = [(p, amount) for p, amount in options if amount > 0]
    others = [u for u in actor.users if u != state.address]
    if not options or not others:
        return None
    position, safe = actor.rng.choice(options)
    amount = max(1, int(safe * actor.rng.uniform(0.05, 0.5)))
    recipient = actor.rng.choice(others)
    reserve, user = position.reserve, state.address
    data = aave_abi.TRANSFER.encode(recipient, amount)
    outcome = Outcome(
        StepKind.TRANSFER,
        f"{short_address(user)} sends {token_amount(amount, reserve)} of aTokens to "
        f"{short_address(recipient)}",
    )
    actor.send(outcome, [Tx(user, reserve.a_token, data, "aToken transfer")])
    return outcome


USER_ACTIONS: dict[StepKind, UserAction] = {
    StepKind.SUPPLY: _supply,
    StepKind.WITHDRAW: _withdraw,
    StepKind.BORROW: _borrow,
    StepKind.REPAY: _repay,
    StepKind.COLLATERAL: _collateral,
    StepKind.EMODE: _emode,
    StepKind.TRANSFER: _transfer,
}
"""The action of each user step kind."""
