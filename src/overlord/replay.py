"""Replay a market at a past block: who was underwater, why, and what liquidating them paid.

The debugging tool for a missed liquidation. Everything is computed from the market as the
Pool held it at one block (every read pinned to that block with ``eth_call``), with the
same exact math the engine uses, and checked against ``Pool.getUserAccountData`` at the
same block:

* :func:`replay_market`: every user's six account values at the block; the users whose
  health factor is below 1, lowest first, each with the top ranked liquidation plans
  (:func:`overlord.engine.plans.ranked_plans`), and every user whose numbers differ from
  the Pool's;
* :func:`user_breakdown`: one user's positions reserve by reserve (scaled balances,
  indexes at the block's timestamp, actual balances, prices, risk parameters, eMode), the
  account values, the ranked plans and why the other pairs would revert;
* :func:`parse_trace` and :func:`compare_trace`: an ``hf-traces`` file's health factors
  (:mod:`overlord.outputs.traces`) next to the recomputed ones.

The JSON documents of the ``overlord replay`` command (:mod:`overlord.replay_cli`) are
built here too (:func:`market_document`, :func:`breakdown_document`); docs/replay.md
describes them. Integers stay exact JSON integers (they may exceed 2**53).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from overlord.aave import (
    AaveMathError,
    AccountData,
    EModeCategory,
    Liquidation,
    Market,
    ProtocolVersion,
    Reserve,
    UserAccount,
    calculate_user_account_data,
    max_liquidation,
)
from overlord.aave.account import (
    ACCOUNT_DATA_KEYS,
    NO_DEBT_HEALTH_FACTOR,
    atoken_balance,
    collateral_value,
    collateral_weights,
    debt_value,
    emode_source_price,
    in_emode,
    reserve_debt_index,
    reserve_income_index,
    reserve_price,
    stable_debt_balance,
    user_emode_category,
    variable_debt_balance,
)
from overlord.aave.configuration import flagged_reserves
from overlord.aave.versions import LoopBound
from overlord.chain.reader import MarketReader, MarketState, normalize_address
from overlord.engine.plans import CostModel, Plan, candidate_pairs, ranked_plans
from overlord.verify import AccountTuple, UserCheck

WAD: Final = 10**18
DEFAULT_GROUP_SIZE: Final = 1000

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: called after each group of users."""


# Exact numbers as text.


def fixed_point(amount: int, decimals: int) -> str:
    """``amount`` units of ``10**-decimals`` as an exact decimal: ``fixed_point(15, 1)`` is
    ``"1.5"``, every digit kept (``decimals`` of them after the point)."""
    if decimals < 0:
        raise ValueError(f"decimals must not be negative, not {decimals}")
    sign, magnitude = ("-", -amount) if amount < 0 else ("", amount)
    if decimals == 0:
        return f"{sign}{magnitude}"
    whole, fraction = divmod(magnitude, 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def wad_decimal(value: int) -> str:
    """A wad (``10**18`` = 1.0) as an exact decimal with 18 digits after the point."""
    return fixed_point(value, 18)


def unit_decimals(unit: int) -> int:
    """The number of decimals of a power-of-ten unit (``10**8`` -> 8)."""
    text = str(unit)
    if unit <= 0 or text.rstrip("0") != "1":
        raise ValueError(f"{unit} is not a positive power of ten")
    return len(text) - 1


_PRUNED = re.compile(
    r"missing trie node|pruned|header not found|historical state|state (?:is )?not available"
    r"|state histor|unknown block|old data not available|distance to target block",
    re.IGNORECASE,
)


def looks_pruned(message: str) -> bool:
    """Whether a node's error message says it no longer has the state of a block."""
    return _PRUNED.search(message) is not None


# One user.


@dataclass(frozen=True, slots=True)
class ReplayedUser:
    """A user at the replayed block: our account data, the Pool's, and the best plans.

    ``account`` is ``None`` when our math raised (``error`` says why); ``check`` is the
    comparison with ``getUserAccountData`` when the Pool's answer was read; ``plans`` are
    the best ranked plans (only for users underwater).
    """

    address: str
    account: AccountData | None
    check: UserCheck | None
    plans: tuple[Plan, ...] = ()
    error: str | None = None

    @property
    def health_factor(self) -> int | None:
        """Our health factor in wad (``None`` when our math raised)."""
        return None if self.account is None else self.account.health_factor

    @property
    def underwater(self) -> bool:
        """Health factor below 1 with debt, by our math."""
        account = self.account
        return account is not None and account.total_debt_base > 0 and account.is_liquidatable

    @property
    def matches_chain(self) -> bool | None:
        """Whether the six values equal ``getUserAccountData`` (``None``: not compared)."""
        return None if self.check is None else self.check.matches


def replay_account(
    market: Market,
    account: UserAccount,
    now: int,
    chain: AccountTuple | None,
    *,
    costs: CostModel,
    top: int,
    liquidator: str | None = None,
) -> ReplayedUser:
    """Our account data for ``account`` at ``now``, compared with ``chain`` (the Pool's six
    values at the same block, if read), and the ``top`` best plans when it is underwater."""
    try:
        data = calculate_user_account_data(market, account, now)
    except AaveMathError as exc:
        error = f"{type(exc).__name__}: {exc}"
        check = None if chain is None else UserCheck(account.address, None, chain, error)
        return ReplayedUser(account.address, None, check, (), error)
    check = None if chain is None else UserCheck(account.address, data.as_tuple(), chain)
    replayed = ReplayedUser(account.address, data, check)
    if not replayed.underwater:
        return replayed
    try:
        plans = ranked_plans(market, account, now, liquidator, data, costs)
    except AaveMathError as exc:
        return ReplayedUser(
            account.address, data, check, (), f"planning: {type(exc).__name__}: {exc}"
        )
    return ReplayedUser(account.address, data, check, tuple(plans[:top]))


def underwater_first(users: Iterable[ReplayedUser]) -> list[ReplayedUser]:
    """The users underwater, lowest health factor first (ties: by address)."""
    return sorted(
        (user for user in users if user.underwater),
        key=lambda user: (user.health_factor, user.address),
    )


# The market.


@dataclass(frozen=True, slots=True)
class ReplayTotals:
    """Sums over the users underwater, in base currency."""

    collateral_base: int
    debt_base: int
    best_gross_base: int
    best_net_base: int


@dataclass(frozen=True, slots=True)
class MarketReplay:
    """:func:`replay_market`'s outcome: every user read at ``state``'s block."""

    state: MarketState
    base_currency_unit: int
    costs: CostModel
    users: tuple[ReplayedUser, ...]

    @property
    def block(self) -> int:
        """The replayed block."""
        return self.state.block_number

    @property
    def underwater(self) -> list[ReplayedUser]:
        """The users underwater, lowest health factor first."""
        return underwater_first(self.users)

    @property
    def mismatches(self) -> list[ReplayedUser]:
        """The users whose six values differ from ``getUserAccountData`` (or whose math
        raised while the Pool answered)."""
        return [user for user in self.users if user.matches_chain is False]

    @property
    def totals(self) -> ReplayTotals:
        """Collateral, debt and best plans summed over the users underwater."""
        underwater = self.underwater
        best = [user.plans[0] for user in underwater if user.plans]
        return ReplayTotals(
            collateral_base=sum(u.account.total_collateral_base for u in underwater if u.account),
            debt_base=sum(u.account.total_debt_base for u in underwater if u.account),
            best_gross_base=sum(plan.gross_gain_base for plan in best),
            best_net_base=sum(plan.net_profit_base for plan in best),
        )


def _groups(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def replay_market(
    reader: MarketReader,
    state: MarketState,
    users: Sequence[str],
    *,
    base_currency_unit: int,
    costs: CostModel | None = None,
    top: int = 1,
    progress: ProgressCallback | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> MarketReplay:
    """Every user of ``users`` at ``state``'s block, read with ``reader`` (the reader that
    read ``state``), recomputed and compared with ``getUserAccountData`` at that block.

    Users are normalized and read once each, in groups of ``group_size`` (a few batches
    per group) so that ``progress`` can follow.

    Raises:
        RpcError: a read failed or the node answered garbage.
        ValueError: a user is not an address, or ``top`` is below 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    model = costs or CostModel()
    block, now = state.block_number, state.block_timestamp
    addresses = list(dict.fromkeys(normalize_address(user) for user in users))
    replayed: list[ReplayedUser] = []
    for group in _groups(addresses, group_size):
        accounts = reader.read_users(group, block, state)
        chain = reader.read_account_data(group, block)
        replayed += [
            replay_account(state.market, account, now, values, costs=model, top=top)
            for account, values in zip(accounts, chain, strict=True)
        ]
        if progress is not None:
            progress(len(replayed), len(addresses))
    return MarketReplay(state, base_currency_unit, model, tuple(replayed))


# One user in full.


@dataclass(frozen=True, slots=True)
class ReserveLine:
    """One reserve a user has a flag on, at the replayed block.

    Indexes: ``liquidity_index`` and ``variable_borrow_index`` are the stored ones,
    ``normalized_income`` and ``normalized_debt`` the ones at the block's timestamp (what
    the balances use). ``stable_debt`` is ``None`` where the version has no stable debt.
    ``price`` is the oracle's price of the asset, ``account_price`` the one the account
    math uses (3.0/3.1: the eMode price source's for a member of the user's category).
    ``ltv``, ``liquidation_threshold`` and ``liquidation_bonus`` are the reserve's own;
    ``effective_*`` are those that apply to this user (eMode). ``collateral_base`` and
    ``debt_base`` are this reserve's contributions to ``totalCollateralBase`` and
    ``totalDebtBase`` (``None`` where it adds nothing: no flag, a collateral without
    liquidation threshold where that does not count, no price).
    """

    reserve_id: int
    symbol: str
    asset: str
    decimals: int
    collateral: bool
    borrowing: bool
    scaled_atoken_balance: int
    liquidity_index: int
    normalized_income: int
    atoken_balance: int
    scaled_variable_debt: int
    variable_borrow_index: int
    normalized_debt: int
    variable_debt: int
    stable_debt: int | None
    price: int | None
    account_price: int | None
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    in_emode: bool
    effective_ltv: int
    effective_liquidation_threshold: int
    effective_liquidation_bonus: int
    collateral_base: int | None
    debt_base: int | None


@dataclass(frozen=True, slots=True)
class EModeView:
    """The user's eMode category; ``price_source`` (3.0/3.1) and its price when set."""

    id: int
    label: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str | None
    price_source_price: int | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A (collateral, debt) pair the Pool would refuse to liquidate, and its error name."""

    collateral_asset: str
    debt_asset: str
    reason: str


@dataclass(frozen=True, slots=True)
class UserBreakdown:
    """:func:`user_breakdown`'s outcome."""

    state: MarketState
    base_currency_unit: int
    costs: CostModel
    user: ReplayedUser
    emode: EModeView | None
    reserves: tuple[ReserveLine, ...]
    rejections: tuple[Rejection, ...]

    @property
    def block(self) -> int:
        """The replayed block."""
        return self.state.block_number


def _emode_view(market: Market, category: EModeCategory | None) -> EModeView | None:
    if category is None:
        return None
    source = category.price_source if market.rules.emode_price_source else None
    return EModeView(
        id=category.id,
        label=category.label,
        ltv=category.ltv,
        liquidation_threshold=category.liquidation_threshold,
        liquidation_bonus=category.liquidation_bonus,
        price_source=source,
        price_source_price=market.prices.get(source) if source else None,
    )


def _account_price(market: Market, reserve: Reserve, emode: EModeCategory | None) -> int | None:
    try:
        return reserve_price(market, reserve, emode, emode_source_price(market, emode))
    except AaveMathError:  # a missing price: shown as absent, the account data says why
        return None


def _contributions(
    market: Market,
    reserve: Reserve,
    flags: tuple[bool, bool],
    price: int | None,
    balances: tuple[int, int],
) -> tuple[int | None, int | None]:
    """The reserve's collateral and debt in the account totals, in base currency (``None``
    where it adds nothing: no flag, no price, or a reserve the Pool's loop skips)."""
    rules, configuration = market.rules, reserve.configuration
    borrowing, collateral = flags
    if price is None:
        return None, None
    if rules.loop_bound is LoopBound.RESERVES_COUNT and reserve.id >= market.loop_reserves_count:
        return None, None
    counts = configuration.liquidation_threshold != 0
    counts = counts or not rules.collateral_needs_liquidation_threshold
    supplied, owed = balances
    return (
        collateral_value(supplied, price, configuration.unit) if collateral and counts else None,
        debt_value(rules, owed, price, configuration.unit) if borrowing else None,
    )


def _reserve_line(
    market: Market, user: UserAccount, reserve: Reserve, flags: tuple[bool, bool], now: int
) -> ReserveLine:
    borrowing, collateral = flags
    rules, configuration = market.rules, reserve.configuration
    position = user.position(reserve.id)
    emode = user_emode_category(market, user)
    member = emode is not None and in_emode(rules, emode, reserve.id, configuration)
    ltv, threshold = collateral_weights(rules, emode, reserve)
    balance = atoken_balance(rules, reserve, position, now)
    variable = variable_debt_balance(rules, reserve, position, now)
    stable = stable_debt_balance(rules, position, now) if rules.stable_debt else None
    price = _account_price(market, reserve, emode)
    collateral_base, debt_base = _contributions(
        market, reserve, flags, price, (balance, variable + (stable or 0))
    )
    return ReserveLine(
        reserve_id=reserve.id,
        symbol=reserve.symbol,
        asset=reserve.asset,
        decimals=configuration.decimals,
        collateral=collateral,
        borrowing=borrowing,
        scaled_atoken_balance=position.scaled_atoken_balance,
        liquidity_index=reserve.liquidity_index,
        normalized_income=reserve_income_index(reserve, now),
        atoken_balance=balance,
        scaled_variable_debt=position.scaled_variable_debt,
        variable_borrow_index=reserve.variable_borrow_index,
        normalized_debt=reserve_debt_index(rules, reserve, now),
        variable_debt=variable,
        stable_debt=stable,
        price=market.prices.get(reserve.asset),
        account_price=price,
        ltv=configuration.ltv,
        liquidation_threshold=configuration.liquidation_threshold,
        liquidation_bonus=configuration.liquidation_bonus,
        in_emode=member,
        effective_ltv=ltv,
        effective_liquidation_threshold=threshold,
        effective_liquidation_bonus=emode.liquidation_bonus
        if emode is not None and member
        else configuration.liquidation_bonus,
        collateral_base=collateral_base,
        debt_base=debt_base,
    )


def _rejections(
    market: Market, user: UserAccount, now: int, account: AccountData
) -> tuple[Rejection, ...]:
    rejected = []
    for collateral, debt in candidate_pairs(market, user):
        try:
            result = max_liquidation(market, user, collateral, debt, now=now, account=account)
        except AaveMathError as exc:
            rejected.append(Rejection(collateral, debt, f"{type(exc).__name__}: {exc}"))
            continue
        if not isinstance(result, Liquidation):
            rejected.append(Rejection(collateral, debt, result.reason.value))
    return tuple(rejected)


def user_breakdown(
    state: MarketState,
    account: UserAccount,
    chain: AccountTuple | None,
    *,
    base_currency_unit: int,
    costs: CostModel | None = None,
    top: int = 1,
) -> UserBreakdown:
    """``account`` (read at ``state``'s block) in full: every reserve it has a flag on,
    its account data compared with ``chain`` (``getUserAccountData`` at the same block),
    the ``top`` best plans and, when underwater, the pairs the Pool would refuse and why.

    Raises:
        AaveMathError: a balance cannot be computed (the contract would revert too).
        ValueError: ``top`` is below 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    market, now = state.market, state.block_timestamp
    model = costs or CostModel()
    replayed = replay_account(market, account, now, chain, costs=model, top=top)
    lines = tuple(
        _reserve_line(market, account, market.reserves[reserve_id], (borrowing, collateral), now)
        for reserve_id, borrowing, collateral in flagged_reserves(account.configuration)
        if reserve_id in market.reserves
    )
    rejections: tuple[Rejection, ...] = ()
    if replayed.underwater and replayed.account is not None:
        rejections = _rejections(market, account, now, replayed.account)
    return UserBreakdown(
        state=state,
        base_currency_unit=base_currency_unit,
        costs=model,
        user=replayed,
        emode=_emode_view(market, user_emode_category(market, account)),
        reserves=lines,
        rejections=rejections,
    )


# hf-traces files.


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One line of an hf-traces file: a user and the health factor (wad) it recorded."""

    user: str
    health_factor: int
    line: int


@dataclass(frozen=True, slots=True)
class TraceProblem:
    """A line of an hf-traces file that is not ``<address> <hf_wad> [<hf_float>]``."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


def _trace_line(number: int, text: str) -> TraceEntry | TraceProblem:
    fields = text.split()
    if len(fields) not in (2, 3):
        return TraceProblem(number, text, "not '<address> <hf_wad> <hf_float>'")
    try:
        user = normalize_address(fields[0])
    except ValueError:
        return TraceProblem(number, text, "not a 0x-prefixed 20-byte hex address")
    if not fields[1].isdecimal() or int(fields[1]) > NO_DEBT_HEALTH_FACTOR:
        return TraceProblem(number, text, "the health factor is not a uint256 decimal")
    return TraceEntry(user, int(fields[1]), number)


def parse_trace(lines: Iterable[str]) -> tuple[list[TraceEntry], list[TraceProblem]]:
    """The entries of an hf-traces file (format: :mod:`overlord.outputs.traces`).

    The float column is for reading and is ignored; blank lines are skipped. A line that
    does not parse, or repeats a user, is a problem and skipped (the first line of a user
    counts).
    """
    entries: dict[str, TraceEntry] = {}
    problems: list[TraceProblem] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        parsed = _trace_line(number, text)
        if isinstance(parsed, TraceProblem):
            problems.append(parsed)
        elif parsed.user in entries:
            problems.append(TraceProblem(number, text, "repeats a user"))
        else:
            entries[parsed.user] = parsed
    return list(entries.values()), problems


def load_trace(path: Path) -> tuple[list[TraceEntry], list[TraceProblem]]:
    """Read an hf-traces file (see :func:`parse_trace`).

    Raises:
        OSError: the file cannot be read.
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    return parse_trace(path.read_text(encoding="utf-8").splitlines())


@dataclass(frozen=True, slots=True)
class TraceComparison:
    """A trace's health factor next to the replayed one (``None``: our math raised)."""

    user: str
    trace_health_factor: int
    replay_health_factor: int | None

    @property
    def differs(self) -> bool:
        """Whether the two health factors differ."""
        return self.trace_health_factor != self.replay_health_factor


def compare_trace(
    entries: Sequence[TraceEntry], replayed: Iterable[ReplayedUser]
) -> list[TraceComparison]:
    """Each trace entry, in file order, next to the replayed health factor of its user.

    Raises:
        KeyError: a trace user was not replayed.
    """
    by_user = {user.address: user for user in replayed}
    return [
        TraceComparison(entry.user, entry.health_factor, by_user[entry.user].health_factor)
        for entry in entries
    ]


# JSON documents.


def account_object(values: AccountTuple | None) -> dict[str, int] | None:
    """The six values under their ABI names (``None`` stays ``None``)."""
    return None if values is None else dict(zip(ACCOUNT_DATA_KEYS, values, strict=True))


def _symbol(market: Market, asset: str) -> str:
    try:
        return market.reserve_by_asset(asset).symbol
    except KeyError:
        return ""


def plan_document(market: Market, plan: Plan) -> dict[str, Any]:
    """A plan: the pair, the amounts in token units, the values in base currency."""
    liquidation = plan.liquidation
    return {
        "collateral_asset": liquidation.collateral_asset,
        "collateral_symbol": _symbol(market, liquidation.collateral_asset),
        "debt_asset": liquidation.debt_asset,
        "debt_symbol": _symbol(market, liquidation.debt_asset),
        "debt_to_cover": liquidation.debt_to_cover,
        "debt_repaid": liquidation.debt_repaid,
        "collateral_received": liquidation.collateral_to_liquidator,
        "protocol_fee": liquidation.protocol_fee,
        "gross_base": plan.gross_gain_base,
        "swap_cost_base": plan.swap_cost_base,
        "flash_loan_premium_base": plan.flash_loan_premium_base,
        "gas_cost_base": plan.gas_cost_base,
        "net_base": plan.net_profit_base,
    }


def user_document(market: Market, user: ReplayedUser) -> dict[str, Any]:
    """A replayed user: our six values, the health factor as text, the chain's comparison
    and the plans."""
    account = user.account
    check = user.check
    return {
        "user": user.address,
        "account": account_object(None if account is None else account.as_tuple()),
        "health_factor": user.health_factor,
        "health_factor_decimal": None if account is None else wad_decimal(account.health_factor),
        "error": user.error,
        "chain": None if check is None else account_object(check.chain),
        "matches_chain": user.matches_chain,
        "differing_fields": [] if check is None else list(check.differing_fields),
        "plans": [plan_document(market, plan) for plan in user.plans],
    }


def _costs_document(costs: CostModel) -> dict[str, Any]:
    return {
        "fee_bps": costs.fee_bps,
        "flash_loan_premium_bps": costs.flash_loan_premium_bps,
        "gas_cost_base": costs.gas_cost_base,
    }


def _header(state: MarketState, base_currency_unit: int, costs: CostModel) -> dict[str, Any]:
    return {
        "block": state.block_number,
        "block_timestamp": state.block_timestamp,
        "protocol_version": state.version.value,
        "pool": state.pool,
        "oracle": state.oracle,
        "base_currency_unit": base_currency_unit,
        "costs": _costs_document(costs),
    }


def trace_document(comparisons: Sequence[TraceComparison]) -> dict[str, Any]:
    """The trace comparison: every entry and how many differ."""
    return {
        "entries": [
            {
                "user": c.user,
                "trace_health_factor": c.trace_health_factor,
                "replay_health_factor": c.replay_health_factor,
                "differs": c.differs,
            }
            for c in comparisons
        ],
        "differences": sum(c.differs for c in comparisons),
    }


def market_document(
    report: MarketReplay, comparisons: Sequence[TraceComparison] | None = None
) -> dict[str, Any]:
    """The market-wide replay as one JSON object (docs/replay.md)."""
    market = report.state.market
    underwater = report.underwater
    totals = report.totals
    return {
        **_header(report.state, report.base_currency_unit, report.costs),
        "users_read": len(report.users),
        "underwater_count": len(underwater),
        "totals": {
            "underwater_collateral_base": totals.collateral_base,
            "underwater_debt_base": totals.debt_base,
            "best_gross_base": totals.best_gross_base,
            "best_net_base": totals.best_net_base,
        },
        "mismatch_count": len(report.mismatches),
        "mismatches": [user_document(market, user) for user in report.mismatches],
        "underwater": [user_document(market, user) for user in underwater],
        "trace": None if comparisons is None else trace_document(comparisons),
    }


def _reserve_document(line: ReserveLine) -> dict[str, Any]:
    return {
        "reserve_id": line.reserve_id,
        "symbol": line.symbol,
        "asset": line.asset,
        "decimals": line.decimals,
        "collateral": line.collateral,
        "borrowing": line.borrowing,
        "scaled_atoken_balance": line.scaled_atoken_balance,
        "liquidity_index": line.liquidity_index,
        "normalized_income": line.normalized_income,
        "atoken_balance": line.atoken_balance,
        "scaled_variable_debt": line.scaled_variable_debt,
        "variable_borrow_index": line.variable_borrow_index,
        "normalized_debt": line.normalized_debt,
        "variable_debt": line.variable_debt,
        "stable_debt": line.stable_debt,
        "price": line.price,
        "account_price": line.account_price,
        "ltv": line.ltv,
        "liquidation_threshold": line.liquidation_threshold,
        "liquidation_bonus": line.liquidation_bonus,
        "in_emode": line.in_emode,
        "effective_ltv": line.effective_ltv,
        "effective_liquidation_threshold": line.effective_liquidation_threshold,
        "effective_liquidation_bonus": line.effective_liquidation_bonus,
        "collateral_base": line.collateral_base,
        "debt_base": line.debt_base,
    }


def _emode_document(emode: EModeView | None) -> dict[str, Any] | None:
    if emode is None:
        return None
    return {
        "id": emode.id,
        "label": emode.label,
        "ltv": emode.ltv,
        "liquidation_threshold": emode.liquidation_threshold,
        "liquidation_bonus": emode.liquidation_bonus,
        "price_source": emode.price_source,
        "price_source_price": emode.price_source_price,
    }


def breakdown_document(breakdown: UserBreakdown) -> dict[str, Any]:
    """One user's breakdown as one JSON object (docs/replay.md)."""
    market = breakdown.state.market
    return {
        **_header(breakdown.state, breakdown.base_currency_unit, breakdown.costs),
        **user_document(market, breakdown.user),
        "underwater": breakdown.user.underwater,
        "emode": _emode_document(breakdown.emode),
        "reserves": [_reserve_document(line) for line in breakdown.reserves],
        "rejected_pairs": [
            {
                "collateral_asset": r.collateral_asset,
                "collateral_symbol": _symbol(market, r.collateral_asset),
                "debt_asset": r.debt_asset,
                "debt_symbol": _symbol(market, r.debt_asset),
                "reason": r.reason,
            }
            for r in breakdown.rejections
        ],
    }


def version_label(version: ProtocolVersion) -> str:
    """``"Aave v3.6"``-style label."""
    return f"Aave v{version.value}"


def health_text(value: int) -> str:
    """A health factor for reading: 18 exact digits, or ``no debt``."""
    return "no debt" if value == NO_DEBT_HEALTH_FACTOR else wad_decimal(value)


def pair_label(market: Market, collateral_asset: str, debt_asset: str) -> str:
    """``"WETH/USDC"``: collateral symbol, then debt symbol (addresses when unnamed)."""
    collateral = _symbol(market, collateral_asset) or collateral_asset
    debt = _symbol(market, debt_asset) or debt_asset
    return f"{collateral}/{debt}"


def token_amount(market: Market, asset: str, amount: int) -> str:
    """An amount of ``asset`` in whole tokens, exact (the reserve's decimals)."""
    try:
        decimals = market.reserve_by_asset(asset).configuration.decimals
    except KeyError:
        return str(amount)
    return fixed_point(amount, decimals)


def base_amount(amount: int, base_currency_unit: int) -> str:
    """A base-currency amount in whole units, exact."""
    return fixed_point(amount, unit_decimals(base_currency_unit))
