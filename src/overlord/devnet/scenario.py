"""Drive a seeded devnet through a random but reproducible market history.

:func:`run_scenario` takes ``steps`` steps, each chosen by weighted random from a
``random.Random(seed)``: price random walks and crashes on our settable feeds, wstETH
ratio changes, time jumps, actions of random seeded users (supply, withdraw, borrow, repay,
collateral on/off, eMode switch, aToken transfer) and liquidation sweeps by the liquidator.
A crash is always followed by a liquidation sweep (bots react at once) and sometimes by a
partial recovery, so crashes do push users below health factor 1 and get them liquidated.

Amounts are chosen from the chain's current state so that actions are likely valid; user
and liquidation transactions may still revert, which is recorded (``succeeded=False``),
never raised. Every step mines at least one block.

Determinism: from the same chain state, the same seed gives the same steps, transactions
and resulting state. Block times are pinned for the run (each block 12 s after the previous
one, time jumps mine at an explicit timestamp), because anvil otherwise stamps blocks with
the wall clock and interest would depend on how fast the run went.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from overlord.chain import aave_abi
from overlord.chain.abi import Function, event_topic
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.manifest import FeedInfo, Manifest, ReserveInfo
from overlord.devnet.seed import (
    MAX_UINT256,
    STABLE_RATE,
    USD,
    VARIABLE_RATE,
    MarketView,
    eth_calls,
    read_account_data,
    read_prices,
    token_unit,
)
from overlord.devnet.transactions import Tx, TxSender

WAD = 10**18
BLOCK_INTERVAL = 12  # seconds between blocks during a run, like mainnet
MAX_TIME_JUMP = 365 * 86_400
DEFAULT_MAX_LIQUIDATIONS = 200
RATIO = Function("ratio()", ("uint256",))
SUPPLY_TOPIC = event_topic("Supply(address,address,address,uint256,uint16)")
LOG_BLOCK_RANGE = 10_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


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


STEP_WEIGHTS: dict[StepKind, int] = {
    StepKind.PRICE_WALK: 20,
    StepKind.PRICE_CRASH: 7,
    StepKind.RATIO_CHANGE: 5,
    StepKind.TIME_JUMP: 8,
    StepKind.SUPPLY: 8,
    StepKind.WITHDRAW: 6,
    StepKind.BORROW: 9,
    StepKind.REPAY: 6,
    StepKind.COLLATERAL: 4,
    StepKind.EMODE: 3,
    StepKind.TRANSFER: 4,
    StepKind.LIQUIDATION: 12,
}
"""Relative frequency of each randomly chosen step (recoveries only follow crashes)."""


@dataclass(frozen=True)
class StepRecord:
    """One step of a scenario run.

    ``block_number`` is the last block the step mined (its effects are in it or before
    it); ``tx_hashes`` are every transaction the step sent, funding mints included;
    ``succeeded`` is whether all of them succeeded; ``liquidations`` counts successful
    ``liquidationCall`` s.
    """

    index: int
    kind: StepKind
    description: str
    block_number: int
    tx_hashes: tuple[str, ...]
    succeeded: bool
    liquidations: int = 0


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


@dataclass
class _Outcome:
    kind: StepKind
    description: str
    receipts: list[dict[str, object]] = field(default_factory=list)
    liquidations: int = 0

    @property
    def succeeded(self) -> bool:
        return all(_ok(receipt) for receipt in self.receipts)


def _ok(receipt: dict[str, object]) -> bool:
    return int(str(receipt["status"]), 16) == 1


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


def run_scenario(
    client: JsonRpcClient,
    manifest: Manifest,
    users: Sequence[str],
    *,
    steps: int,
    seed: int,
    on_step: Callable[[StepRecord], None] | None = None,
    max_liquidations: int = DEFAULT_MAX_LIQUIDATIONS,
) -> list[StepRecord]:
    """Run ``steps`` random steps against an anvil devnet; return their records.

    ``users`` are the addresses actions pick from and liquidation sweeps scan. A sweep
    liquidates at most ``max_liquidations`` users (lowest health factor first); the rest
    wait for the next sweep. ``on_step`` is called after each step. Raises ``ValueError``
    without users, and :class:`~overlord.chain.rpc.RpcError` if the node fails (a revert
    is not an error).
    """
    if not users:
        raise ValueError("a scenario needs at least one user")
    driver = _Driver(client, manifest, [u.lower() for u in users], seed, max_liquidations)
    records: list[StepRecord] = []
    with pinned_block_times(client):
        for index in range(steps):
            record = driver.step(index)
            records.append(record)
            if on_step is not None:
                on_step(record)
    return records


@contextmanager
def pinned_block_times(client: JsonRpcClient) -> Iterator[None]:
    """Stamp every block :data:`BLOCK_INTERVAL` seconds after the previous one.

    On exit the clock resumes from the last block's time (not from the wall clock, which
    could be far from the chain's time and would accrue that much interest at once).
    """
    # Start from the head's time: a chain loaded from a state file would otherwise stamp
    # its next block with the wall clock.
    client.call("evm_setTime", [_head_timestamp(client)])
    client.call("anvil_setBlockTimestampInterval", [BLOCK_INTERVAL])
    try:
        yield
    finally:
        client.call("anvil_removeBlockTimestampInterval")
        client.call("evm_setTime", [_head_timestamp(client)])


def _head_timestamp(client: JsonRpcClient) -> int:
    return int(client.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _tokens(amount: int, reserve: ReserveInfo) -> str:
    if amount == MAX_UINT256:
        return f"all {reserve.symbol}"
    return f"{amount / token_unit(reserve):,.6g} {reserve.symbol}"


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0 s"


def _usd(base: int) -> str:
    return f"${base / USD:,.2f}"


class _Driver:
    """Chooses and executes the steps of one run."""

    def __init__(
        self,
        client: JsonRpcClient,
        manifest: Manifest,
        users: list[str],
        seed: int,
        max_liquidations: int,
    ) -> None:
        self.client = client
        self.manifest = manifest
        self.users = users
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.max_liquidations = max_liquidations
        self.sender = TxSender(client)
        self.admin = manifest.accounts["admin"]
        self.liquidator = manifest.accounts["liquidator"].lower()
        self.pending: deque[StepKind] = deque()
        self.recoveries: deque[tuple[FeedInfo, int]] = deque()
        self.reserve_ids = reserve_ids(client, manifest)
        self.handlers: dict[StepKind, Callable[[], _Outcome]] = {
            StepKind.PRICE_WALK: self.price_walk,
            StepKind.PRICE_CRASH: self.price_crash,
            StepKind.PRICE_RECOVERY: self.price_recovery,
            StepKind.RATIO_CHANGE: self.ratio_change,
            StepKind.TIME_JUMP: self.time_jump,
            StepKind.LIQUIDATION: self.liquidation_sweep,
        }
        for kind in USER_ACTIONS:
            self.handlers[kind] = self._user_step(kind)

    # Running steps.

    def step(self, index: int) -> StepRecord:
        """Choose and run step ``index``."""
        if self.pending:
            kind = self.pending.popleft()
        else:
            kinds = list(STEP_WEIGHTS)
            kind = self.rng.choices(kinds, weights=[STEP_WEIGHTS[k] for k in kinds])[0]
        outcome = self.handlers[kind]()
        block = int(self.client.call("eth_blockNumber"), 16)
        return StepRecord(
            index=index,
            kind=outcome.kind,
            description=outcome.description,
            block_number=block,
            tx_hashes=tuple(str(r["transactionHash"]) for r in outcome.receipts),
            succeeded=outcome.succeeded,
            liquidations=outcome.liquidations,
        )

    def send(self, outcome: _Outcome, txs: Sequence[Tx]) -> list[dict[str, object]]:
        """Send ``txs`` (reverts allowed) and add their receipts to ``outcome``."""
        receipts = self.sender.send(txs, allow_failures=True)
        outcome.receipts += receipts
        return receipts

    def market(self) -> MarketView:
        """The manifest with the current oracle prices."""
        return MarketView(self.manifest, read_prices(self.client, self.manifest))

    # Prices and time.

    def _chainlink_feeds(self) -> list[FeedInfo]:
        return [f for f in self.manifest.feeds if f.kind == "chainlink"]

    def _answer(self, feed: FeedInfo) -> int:
        (answer,) = aave_abi.LATEST_ANSWER.decode(
            eth_calls(self.client, [(feed.address, aave_abi.LATEST_ANSWER.encode())])[0]
        )
        return int(answer)

    def _set_answer(self, outcome: _Outcome, feed: FeedInfo, answer: int) -> None:
        data = aave_abi.UPDATE_ANSWER.encode(max(answer, 1))
        self.send(outcome, [Tx(self.admin, feed.address, data, f"update {feed.name}")])

    def price_walk(self) -> _Outcome:
        """Move a random feed by ±0.1-5 % (pegged feeds: a small step back towards $1)."""
        feed = self.rng.choice(self._chainlink_feeds())
        old = self._answer(feed)
        unit = token_unit(feed)
        sign = self.rng.choice((-1, 1))
        if 0.9 * unit <= old <= 1.1 * unit:
            # A stablecoin does not random-walk 5 %: it wobbles around its peg.
            new = old + (unit - old) // 2 + sign * int(old * self.rng.uniform(0.0005, 0.005))
        else:
            new = old + sign * int(old * self.rng.uniform(0.001, 0.05))
        outcome = _Outcome(StepKind.PRICE_WALK, "")
        self._set_answer(outcome, feed, new)
        outcome.description = f"{feed.name} moves {(new - old) / old:+.2%} to {_usd(new)}"
        return outcome

    def _crash_feed(self) -> FeedInfo:
        feeds = [f for f in self._chainlink_feeds() if f.name.split(" ")[0] in ("ETH", "BTC")]
        return self.rng.choice(feeds or self._chainlink_feeds())

    def price_crash(self) -> _Outcome:
        """Drop ETH or BTC by 15-40 %; queue a liquidation sweep and maybe a recovery."""
        feed = self._crash_feed()
        old = self._answer(feed)
        drop = self.rng.uniform(0.15, 0.40)
        new = old - int(old * drop)
        outcome = _Outcome(StepKind.PRICE_CRASH, "")
        self._set_answer(outcome, feed, new)
        self.pending.append(StepKind.LIQUIDATION)
        recovery = self.rng.random() < 0.4
        if recovery:
            self.recoveries.append((feed, old))
            self.pending.append(StepKind.PRICE_RECOVERY)
        outcome.description = f"{feed.name} crashes {-drop:.1%} to {_usd(new)}" + (
            " (a recovery will follow)" if recovery else ""
        )
        return outcome

    def price_recovery(self) -> _Outcome:
        """Win back 30-90 % of the last crash's loss."""
        feed, target = self.recoveries.popleft()
        old = self._answer(feed)
        new = old + int((target - old) * self.rng.uniform(0.3, 0.9))
        outcome = _Outcome(StepKind.PRICE_RECOVERY, "")
        self._set_answer(outcome, feed, new)
        outcome.description = f"{feed.name} recovers {(new - old) / old:+.1%} to {_usd(new)}"
        return outcome

    def ratio_change(self) -> _Outcome:
        """Move a ratio adapter (wstETH/ETH): mostly a small accrual, sometimes a drop."""
        adapters = [f for f in self.manifest.feeds if f.kind == "ratio"]
        if not adapters:
            return self.price_walk()
        adapter = self.rng.choice(adapters)
        (old,) = RATIO.decode(eth_calls(self.client, [(adapter.address, RATIO.encode())])[0])
        if self.rng.random() < 0.85:
            change = self.rng.uniform(0.0001, 0.01)
        else:
            change = -self.rng.uniform(0.005, 0.05)  # a slashing or depeg event
        new = int(old) + int(int(old) * change)
        outcome = _Outcome(StepKind.RATIO_CHANGE, "")
        data = aave_abi.SET_RATIO.encode(new)
        self.send(outcome, [Tx(self.admin, adapter.address, data, f"ratio {adapter.name}")])
        outcome.description = f"{adapter.name} ratio moves {change:+.2%} to {new / WAD:.6f}"
        return outcome

    def time_jump(self) -> _Outcome:
        """Mine a block 1 s to 365 days (log-uniform) after the head."""
        delta = int(_log_uniform(self.rng, 1, MAX_TIME_JUMP))
        # anvil ignores evm_increaseTime while block times are pinned; an explicit
        # timestamp on evm_mine has the same effect.
        self.client.call("evm_mine", [_head_timestamp(self.client) + delta])
        return _Outcome(StepKind.TIME_JUMP, f"time jumps {_duration(delta)} ({delta:,} s)")

    # User actions.

    def _user_step(self, kind: StepKind) -> Callable[[], _Outcome]:
        def run() -> _Outcome:
            user = self.rng.choice(self.users)
            (state,) = read_user_states(self.client, self.manifest, [user], self.reserve_ids)
            return self.act(kind, state, self.market())

        return run

    def act(self, kind: StepKind, state: UserState, market: MarketView) -> _Outcome:
        """Have ``state``'s user do ``kind``, or a fallback when it cannot.

        No debt to repay: borrow; nothing it can do (withdraw, borrow, ...): supply, which
        is always possible.
        """
        outcome = USER_ACTIONS[kind](self, state, market)
        if outcome is None and kind is StepKind.REPAY:
            outcome = _borrow(self, state, market)
        return outcome if outcome is not None else _supply(self, state, market)

    def fund(self, outcome: _Outcome, user: str, reserve: ReserveInfo, amount: int) -> None:
        """Mint ``amount`` of ``reserve`` to ``user`` (from the admin, in its own block)."""
        data = aave_abi.MINT.encode(user, amount)
        self.send(outcome, [Tx(self.admin, reserve.asset, data, f"mint {reserve.symbol}")])

    # Liquidations.

    def liquidation_sweep(self) -> _Outcome:
        """Liquidate every user below health factor 1 (up to the cap) on one valid pair."""
        accounts = read_account_data(self.client, self.manifest, self.users)
        candidates = sorted(
            (account[5], user)
            for user, account in zip(self.users, accounts, strict=True)
            if account[5] < WAD and account[1] > 0 and account[0] > 0
        )[: self.max_liquidations]
        outcome = _Outcome(StepKind.LIQUIDATION, "")
        if not candidates:
            self.client.call("evm_mine")
            outcome.description = "liquidator finds no user below health factor 1"
            return outcome
        market = self.market()
        plans = [
            plan
            for state in read_user_states(
                self.client, self.manifest, [user for _hf, user in candidates], self.reserve_ids
            )
            if (plan := self._plan_liquidation(state, market)) is not None
        ]
        done = self._liquidate(outcome, plans)
        outcome.liquidations = done
        sample = ", ".join(p.summary for p in plans[:3]) + (", …" if len(plans) > 3 else "")
        outcome.description = (
            f"liquidator liquidates {done} of {len(candidates)} users below health factor 1"
            + (f": {sample}" if sample else "")
        )
        return outcome

    def _plan_liquidation(self, state: UserState, market: MarketView) -> _Liquidation | None:
        def value(amount: int, reserve: ReserveInfo) -> int:
            return amount * market.price(reserve) // token_unit(reserve)

        collaterals = [p for p in state.supplied() if p.collateral]
        debts = state.borrowed()
        if not collaterals or not debts:
            return None
        collateral = max(collaterals, key=lambda p: value(p.supplied, p.reserve))
        debt = max(debts, key=lambda p: value(p.debt, p.reserve))
        amount = MAX_UINT256
        if self.rng.random() < 0.3:
            partial = max(1, int(debt.debt * self.rng.uniform(0.2, 0.6)))
            debt_left = value(debt.debt - partial, debt.reserve)
            seized = value(partial, debt.reserve) * collateral.reserve.liquidation_bonus // 10_000
            collateral_left = value(collateral.supplied, collateral.reserve) - seized
            # 3.3+ reverts when a partial liquidation leaves less than $1000 on either side;
            # 3.0.x (the flavour with stable debt) has no such rule.
            if market.stable_debt or min(debt_left, collateral_left) > 1_100 * USD:
                amount = partial
        return _Liquidation(state, collateral, debt, amount, self.rng.random() < 0.3)

    def _liquidate(self, outcome: _Outcome, plans: Sequence[_Liquidation]) -> int:
        if not plans:
            self.client.call("evm_mine")
            return 0
        needs: dict[str, tuple[ReserveInfo, int]] = {}
        for plan in plans:
            reserve = plan.debt.reserve
            previous = needs.get(reserve.symbol, (reserve, 0))[1]
            # MAX may repay the whole debt; a margin covers interest until it is mined.
            needs[reserve.symbol] = (reserve, previous + plan.debt.debt * 101 // 100 + 1)
        mints = [
            Tx(self.admin, r.asset, aave_abi.MINT.encode(self.liquidator, amount), "fund")
            for r, amount in needs.values()
        ]
        self.send(outcome, mints)  # the liquidator's txs depend on them: a later send
        txs = [
            Tx(
                self.liquidator,
                r.asset,
                aave_abi.APPROVE.encode(self.manifest.pool, MAX_UINT256),
                f"liquidator approves {r.symbol}",
            )
            for r, _amount in needs.values()
        ]
        txs += [plan.tx(self.liquidator, self.manifest.pool) for plan in plans]
        receipts = self.send(outcome, txs)
        return sum(_ok(receipt) for receipt in receipts[len(needs) :])


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
            else _tokens(self.debt_to_cover, self.debt.reserve)
        )
        return (
            f"{_short(self.state.address)} {self.collateral.reserve.symbol}/"
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


# User actions: each returns None when the user cannot do it (the driver falls back).

UserAction = Callable[[_Driver, UserState, MarketView], "_Outcome | None"]


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


def _supply(driver: _Driver, state: UserState, market: MarketView) -> _Outcome:
    rng = driver.rng
    held = [p.reserve for p in state.supplied()]
    if held and rng.random() < 0.5:
        reserve = rng.choice(held)
    elif state.emode and rng.random() < 0.7:
        reserve = rng.choice(market.members(state.emode))
    else:
        reserve = rng.choice(market.manifest.reserves)
    base = int(_log_uniform(rng, 10, 200_000) * USD)
    amount = max(1, base * token_unit(reserve) // market.price(reserve))
    user, pool = state.address, market.manifest.pool
    outcome = _Outcome(StepKind.SUPPLY, f"{_short(user)} supplies {_tokens(amount, reserve)}")
    driver.fund(outcome, user, reserve, amount)
    driver.send(
        outcome,
        [
            Tx(user, reserve.asset, aave_abi.APPROVE.encode(pool, MAX_UINT256), "approve"),
            Tx(user, pool, aave_abi.SUPPLY.encode(reserve.asset, amount, user, 0), "supply"),
        ],
    )
    return outcome


def _withdraw(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    options = [(p, safe_removal(state, market, p)) for p in state.supplied()]
    options = [(p, amount) for p, amount in options if amount > 0]
    if not options:
        return None
    position, safe = driver.rng.choice(options)
    amount = max(1, int(safe * driver.rng.uniform(0.1, 0.95)))
    if safe == position.supplied and driver.rng.random() < 0.5:
        amount = MAX_UINT256  # withdraw everything
    reserve, user = position.reserve, state.address
    data = aave_abi.WITHDRAW.encode(reserve.asset, amount, user)
    outcome = _Outcome(StepKind.WITHDRAW, f"{_short(user)} withdraws {_tokens(amount, reserve)}")
    driver.send(outcome, [Tx(user, market.manifest.pool, data, "withdraw")])
    return outcome


def _borrowable(state: UserState, market: MarketView) -> list[ReserveInfo]:
    # An eMode user borrows only its category's assets (3.0.2 by category id, 3.6 by the
    # borrowable bitmap, which the deployer sets to the members).
    return market.members(state.emode) if state.emode else list(market.manifest.reserves)


def _rate_mode(driver: _Driver, market: MarketView, position: Position) -> int:
    # 3.0.2 refuses stable debt in an asset used as collateral (below the aToken balance).
    eligible = market.stable_debt and position.reserve.stable_borrowing
    if eligible and not (position.collateral and position.supplied > 0):
        return STABLE_RATE if driver.rng.random() < 0.3 else VARIABLE_RATE
    return VARIABLE_RATE


def _borrow(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    available = state.account[2]
    if available < USD:  # less than a dollar of headroom
        return None
    reserve = driver.rng.choice(_borrowable(state, market))
    position = next(p for p in state.positions if p.reserve == reserve)
    base = int(available * driver.rng.uniform(0.1, 0.9))
    amount = base * token_unit(reserve) // market.borrow_price(reserve, state.emode)
    if amount == 0:
        return None
    mode = _rate_mode(driver, market, position)
    user = state.address
    data = aave_abi.BORROW.encode(reserve.asset, amount, mode, 0, user)
    rate = "stable" if mode == STABLE_RATE else "variable"
    outcome = _Outcome(
        StepKind.BORROW, f"{_short(user)} borrows {_tokens(amount, reserve)} at a {rate} rate"
    )
    driver.send(outcome, [Tx(user, market.manifest.pool, data, "borrow")])
    return outcome


def _repay(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    debts = state.borrowed()
    if not debts:
        return None
    rng = driver.rng
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
    outcome = _Outcome(StepKind.REPAY, f"{_short(user)} repays {_tokens(amount, reserve)} of debt")
    if need > position.wallet:
        driver.fund(outcome, user, reserve, need - position.wallet)
    driver.send(
        outcome,
        [
            Tx(user, reserve.asset, aave_abi.APPROVE.encode(pool, MAX_UINT256), "approve"),
            Tx(user, pool, aave_abi.REPAY.encode(reserve.asset, amount, mode, user), "repay"),
        ],
    )
    return outcome


def _collateral(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    options = [p for p in state.supplied() if not p.collateral]
    options += [
        p for p in state.supplied() if p.collateral and safe_removal(state, market, p) >= p.supplied
    ]
    if not options:
        return None
    position = driver.rng.choice(options)
    enable = not position.collateral
    reserve, user = position.reserve, state.address
    data = aave_abi.SET_USE_AS_COLLATERAL.encode(reserve.asset, enable)
    verb = "enables" if enable else "disables"
    outcome = _Outcome(StepKind.COLLATERAL, f"{_short(user)} {verb} {reserve.symbol} as collateral")
    driver.send(outcome, [Tx(user, market.manifest.pool, data, "collateral")])
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


def _emode(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    targets = _emode_targets(state, market)
    if not targets:
        return None
    target = driver.rng.choice(targets)
    user = state.address
    what = f"enters eMode {target}" if target else f"leaves eMode {state.emode}"
    outcome = _Outcome(StepKind.EMODE, f"{_short(user)} {what}")
    data = aave_abi.SET_USER_EMODE.encode(target)
    driver.send(outcome, [Tx(user, market.manifest.pool, data, "eMode")])
    return outcome


def _transfer(driver: _Driver, state: UserState, market: MarketView) -> _Outcome | None:
    options = [(p, safe_removal(state, market, p)) for p in state.supplied()]
    options = [(p, amount) for p, amount in options if amount > 0]
    others = [u for u in driver.users if u != state.address]
    if not options or not others:
        return None
    position, safe = driver.rng.choice(options)
    amount = max(1, int(safe * driver.rng.uniform(0.05, 0.5)))
    recipient = driver.rng.choice(others)
    reserve, user = position.reserve, state.address
    data = aave_abi.TRANSFER.encode(recipient, amount)
    outcome = _Outcome(
        StepKind.TRANSFER,
        f"{_short(user)} sends {_tokens(amount, reserve)} of aTokens to {_short(recipient)}",
    )
    driver.send(outcome, [Tx(user, reserve.a_token, data, "aToken transfer")])
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


# Users of a running devnet.


def parse_users(text: str) -> tuple[str, ...]:
    """Addresses from a JSON list (``users.json``) or one address per line.

    Blank lines and ``#`` comments are ignored; addresses come back lower-case, in order,
    without duplicates. Raises ``ValueError`` naming the first bad entry.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        entries = json.loads(stripped)
        if not isinstance(entries, list):
            raise ValueError("expected a JSON list of addresses")
    else:
        entries = [line.split("#", 1)[0].strip() for line in stripped.splitlines()]
        entries = [entry for entry in entries if entry]
    users: dict[str, None] = {}
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, str) or not _ADDRESS.match(entry):
            raise ValueError(f"entry {number} is not an address: {str(entry)[:60]!r}")
        users[entry.lower()] = None
    return tuple(users)


def read_users_file(path: Path) -> tuple[str, ...]:
    """:func:`parse_users` of a file; ``ValueError`` names the file on any problem."""
    try:
        return parse_users(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def discover_users(client: JsonRpcClient, manifest: Manifest) -> tuple[str, ...]:
    """Every ``onBehalfOf`` of a Pool ``Supply`` event since the deployment, in order of
    first supply, without the manifest's own accounts (admin, liquidity provider, ...)."""
    head = int(client.call("eth_blockNumber"), 16)
    skip = {address.lower() for address in manifest.accounts.values()}
    users: dict[str, None] = {}
    for start in range(manifest.deployment_block, head + 1, LOG_BLOCK_RANGE):
        end = min(start + LOG_BLOCK_RANGE - 1, head)
        query = {
            "address": manifest.pool,
            "topics": [SUPPLY_TOPIC],
            "fromBlock": hex(start),
            "toBlock": hex(end),
        }
        for log in client.call("eth_getLogs", [query]):
            user = "0x" + str(log["topics"][2])[-40:].lower()
            if user not in skip:
                users[user] = None
    return tuple(users)
