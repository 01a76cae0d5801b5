"""The vector screen: every user's health factor in float64, with a bound on its error.

For one block (a :class:`~overlord.aave.Market` and a timestamp) the per-reserve factors are
computed once from the exact indices (``index × price / unit``), then every position's
collateral and debt value is a product and every user's sums a ``bincount``. Each user is
classified against health factor 1:

* ``SAFE``: the exact health factor is certainly >= 1;
* ``UNDERWATER``: the exact health factor is certainly < 1;
* ``UNCERTAIN``: too close to call; :func:`confirm` computes it exactly.

**Error bound.** Write ``S`` for the weighted collateral ``Σ value_i × LT_i / 10^4`` and
``D`` for the total debt, both in base-currency units; the exact health factor is
``S_exact / D_exact`` up to the contract's final roundings. Against the float sums:

* each collateral value differs from its float estimate by at most ``p/u + 1`` base units
  (the balance rounding moves the token amount by at most 1 unit, worth ``p/u``; the floor
  of the value by less than 1), and each debt value by at most ``p/u + 2`` (ceil, or the
  half-up balance and floor), where ``p/u`` is that reserve's price per smallest unit
  (3.0/3.1: the larger of its own and its eMode price source's); stable debt (3.0/3.1)
  adds a relative 1e-11 for the float compounding. One term per user,
  ``E = Σ over its rows of (p/u + 2)``, bounds both ``|ΔS|`` (LT/10^4 <= 1) and ``|ΔD|``;
* float rounding: every estimate is a product of at most four rounded factors summed over
  at most 256 positions, so its relative error is below ``512 × 2^-53`` (taken as 1e-13);
* before 3.5 the average liquidation threshold is floored to whole bps:
  ``S_exact`` lies in ``[S − TC/10^4 − 1, S + 1]`` (``TC``: total collateral);
* the final ``wadDiv`` / floor of the health factor moves it by at most 2e-18 (absolute).

A user is ``SAFE`` when ``(S − ΔS)(1 − 1e-13) >= (D + ΔD)(1 + 1e-13)(1 + 1e-17)`` and
``UNDERWATER`` when ``(S + ΔS)(1 + 1e-13) < (D − ΔD)(1 − 1e-13)(1 − 1e-17)``. A user with
no debt flag is ``SAFE``; 3.3 users with a GHO discount are always ``UNCERTAIN``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from overlord.aave import AccountData, Market, UserAccount, UserReserve, calculate_user_account_data
from overlord.aave.account import (
    emode_source_price,
    reserve_debt_index,
    reserve_income_index,
    reserve_price,
    stable_debt_balance,
    user_emode_category,
)
from overlord.aave.configuration import MAX_RESERVES_COUNT, is_reserve_in_bitmap
from overlord.aave.versions import EModeMembership, HealthFactorFormula, LoopBound
from overlord.engine.positions import BORROWING, COLLATERAL, DEAD, PositionTable

SAFE, UNDERWATER, UNCERTAIN = np.int8(0), np.int8(1), np.int8(2)
RELATIVE_FLOAT_ERROR = 1e-13
FINAL_ROUNDING = 1e-17  # relative slack for the last wadDiv/floor (2e-18 absolute near 1)
STABLE_RELATIVE_ERROR = 1e-11
RAY = 10**27
_CATEGORIES = 256

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BlockFactors:
    """What one block contributes to every position, per reserve id (and eMode category)."""

    market: Market
    now: int
    collateral: FloatArray  # base units per scaled aToken unit
    debt: FloatArray  # base units per scaled debt unit
    threshold: FloatArray  # reserve LT in bps, 0 where the collateral does not count
    counted: npt.NDArray[np.bool_]  # the collateral gate (3.6: every flagged collateral)
    member: npt.NDArray[np.bool_]  # [category, reserve]
    emode_threshold: FloatArray  # [category]
    source_collateral: FloatArray | None  # 3.0/3.1: [category, reserve], source-priced members
    source_debt: FloatArray | None  # likewise for debt; NaN where no source price applies
    price_per_unit: FloatArray  # per reserve: the largest price/unit it can be valued at
    loop_bound: int | None  # reserve ids at or above are ignored (<= 3.3)

    def configuration_key(self) -> bytes:
        """Identifies what per-row weights depend on (not prices, not indices)."""
        parts = (self.threshold, self.counted, self.member, self.emode_threshold)
        bound = b"" if self.loop_bound is None else self.loop_bound.to_bytes(2, "big")
        return b"|".join(part.tobytes() for part in parts) + bound


def block_factors(market: Market, now: int) -> BlockFactors:
    """Per-reserve factors of ``market`` at timestamp ``now`` (exact indices, then float)."""
    rules = market.rules
    size = MAX_RESERVES_COUNT  # every possible id, so gaps and unknown reserves index safely
    collateral = np.zeros(size)
    debt = np.zeros(size)
    threshold = np.zeros(size)
    counted = np.zeros(size, dtype=np.bool_)
    price_per_unit = np.zeros(size)
    indices: dict[int, tuple[float, float]] = {}
    for reserve_id, reserve in market.reserves.items():
        price = market.price(reserve.asset)
        unit = reserve.configuration.unit
        income = reserve_income_index(reserve, now) / RAY / unit
        borrow = reserve_debt_index(rules, reserve, now) / RAY / unit
        indices[reserve_id] = (income, borrow)
        collateral[reserve_id], debt[reserve_id] = income * price, borrow * price
        lt = reserve.configuration.liquidation_threshold
        counted[reserve_id] = lt != 0 or not rules.collateral_needs_liquidation_threshold
        threshold[reserve_id] = lt
        price_per_unit[reserve_id] = price / unit
    member, emode_threshold = _emode_tables(market, size)
    source_collateral = source_debt = None
    if rules.emode_price_source:
        source_collateral, source_debt = _source_tables(market, indices, price_per_unit)
    bound = market.loop_reserves_count if rules.loop_bound is LoopBound.RESERVES_COUNT else None
    return BlockFactors(
        market,
        now,
        collateral,
        debt,
        threshold,
        counted,
        member,
        emode_threshold,
        source_collateral,
        source_debt,
        price_per_unit,
        bound,
    )


def _emode_tables(market: Market, size: int) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Category membership ``[category, reserve]`` by the version's rule, and category LTs."""
    by_id = market.rules.emode_membership is EModeMembership.RESERVE_CATEGORY_ID
    member = np.zeros((_CATEGORIES, size), dtype=np.bool_)
    lt = np.zeros(_CATEGORIES)
    for category_id, category in market.emode_categories.items():
        lt[category_id] = category.liquidation_threshold
        for reserve_id, reserve in market.reserves.items():
            member[category_id, reserve_id] = (
                reserve.configuration.emode_category == category_id
                if by_id
                else is_reserve_in_bitmap(category.collateral_bitmap, reserve_id)
            )
    return member, lt


def _source_tables(
    market: Market, indices: Mapping[int, tuple[float, float]], price_per_unit: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """3.0/3.1: factors of reserves priced by their eMode category's price source."""
    collateral = np.full((_CATEGORIES, MAX_RESERVES_COUNT), np.nan)
    debt = np.full((_CATEGORIES, MAX_RESERVES_COUNT), np.nan)
    for category_id, category in market.emode_categories.items():
        price = emode_source_price(market, category)
        if price == 0:
            continue  # the account loop ignores a source quoting 0
        for reserve_id, reserve in market.reserves.items():
            if reserve.configuration.emode_category == category_id:
                income, borrow = indices[reserve_id]
                collateral[category_id, reserve_id] = income * price
                debt[category_id, reserve_id] = borrow * price
                unit_price = price / reserve.configuration.unit
                price_per_unit[reserve_id] = max(price_per_unit[reserve_id], unit_price)
    return collateral, debt


@dataclass(frozen=True)
class ScreenResult:
    """For ``users`` (indices into the table, in this order): estimates and classification."""

    users: npt.NDArray[np.intp]
    health_factor: FloatArray
    status: npt.NDArray[np.int8]
    weighted_collateral: FloatArray
    debt: FloatArray


@dataclass(frozen=True)
class _RowWeights:
    """Per-row values that change only with the table or the market's configuration."""

    key: tuple[int, bytes]
    local: npt.NDArray[np.intp]  # user index, dead rows -> the sentinel ``users``
    reserve: npt.NDArray[np.intp]
    category: npt.NDArray[np.intp]  # the row's user's eMode category
    scaled_a: FloatArray  # scaled aTokens where the collateral counts, else 0
    threshold: FloatArray  # effective LT / 10^4 where the collateral counts, else 0
    scaled_v: FloatArray  # scaled debt where the borrowing flag is set, else 0
    flagged: FloatArray  # 1.0 on live rows (any flag), for the error bound
    n_debt: FloatArray  # per user: debt flags (beyond a <= 3.3 loop bound too)


_CACHE: weakref.WeakKeyDictionary[PositionTable, _RowWeights] = weakref.WeakKeyDictionary()


def _row_weights(table: PositionTable, factors: BlockFactors) -> _RowWeights:
    key = (table.version, factors.configuration_key())
    cached = _CACHE.get(table)
    if cached is not None and cached.key == key:
        return cached
    rows, n = table.rows(), table.users
    live = rows.user != DEAD
    reserve = rows.reserve.astype(np.intp)
    in_bound = live if factors.loop_bound is None else live & (reserve < factors.loop_bound)
    category = (
        table.emode[np.where(live, rows.user, 0)].astype(np.intp) if n else np.zeros(0, np.intp)
    )
    counted = in_bound & ((rows.flags & COLLATERAL) != 0) & factors.counted[reserve]
    borrowed = in_bound & ((rows.flags & BORROWING) != 0)
    in_emode = factors.member[category, reserve] & (category != 0)
    lt = np.where(in_emode, factors.emode_threshold[category], factors.threshold[reserve])
    local = np.where(live, rows.user, n).astype(np.intp)
    weights = _RowWeights(
        key=key,
        local=local,
        reserve=reserve,
        category=category,
        scaled_a=np.where(counted, rows.scaled_a, 0.0),
        threshold=np.where(counted, lt / 1e4, 0.0),
        scaled_v=np.where(borrowed, rows.scaled_v, 0.0),
        flagged=live.astype(np.float64),
        n_debt=_per_user(local, (live & ((rows.flags & BORROWING) != 0)).astype(np.float64), n),
    )
    _CACHE[table] = weights
    return weights


@dataclass(frozen=True)
class _Sums:
    weighted: FloatArray
    total_collateral: FloatArray | None  # only for the averaged (pre-3.5) health factor
    debt: FloatArray
    error: FloatArray  # Σ over the user's rows of (price/unit + 2)
    n_debt: FloatArray


def screen(
    table: PositionTable, factors: BlockFactors, users: npt.NDArray[np.intp] | None = None
) -> ScreenResult:
    """Estimate and classify ``users`` (default: every user) at the block of ``factors``.

    A targeted screen (some users) computes exactly what the full screen computes for
    them: the same rows, the same arithmetic, in the same order.
    """
    weights = _row_weights(table, factors)
    if users is None:
        users = np.arange(table.users, dtype=np.intp)
        sums = _sums(factors, weights, slice(None), weights.local, len(users))
        n_debt = weights.n_debt
    else:
        users = np.asarray(users, dtype=np.intp)
        row_index, local = table.rows_of(users)
        sums = _sums(factors, weights, row_index, local, len(users))
        n_debt = weights.n_debt[users]
    debt, debt_error = _add_stable_debt(table, factors, users, sums.debt)
    return _classify(table, factors, users, replace(sums, n_debt=n_debt), debt, debt_error)


def _sums(
    factors: BlockFactors,
    weights: _RowWeights,
    row_index: npt.NDArray[np.intp] | slice,
    local: npt.NDArray[np.intp],
    k: int,
) -> _Sums:
    reserve = weights.reserve[row_index]
    collateral_factor, debt_factor = factors.collateral[reserve], factors.debt[reserve]
    if factors.source_collateral is not None and factors.source_debt is not None:
        # 3.0/3.1: the user's category price source replaces its members' prices.
        category = weights.category[row_index]
        override = factors.source_collateral[category, reserve]
        applies = (category != 0) & ~np.isnan(override)
        collateral_factor = np.where(applies, override, collateral_factor)
        debt_factor = np.where(applies, factors.source_debt[category, reserve], debt_factor)
    value = weights.scaled_a[row_index] * collateral_factor
    averaged = factors.market.rules.health_factor is HealthFactorFormula.AVERAGED
    error = weights.flagged[row_index] * (factors.price_per_unit[reserve] + 2.0)
    return _Sums(
        weighted=_per_user(local, value * weights.threshold[row_index], k),
        total_collateral=_per_user(local, value, k) if averaged else None,
        debt=_per_user(local, weights.scaled_v[row_index] * debt_factor, k),
        error=_per_user(local, error, k),
        n_debt=np.zeros(0),
    )


def _per_user(local: npt.NDArray[np.intp], weights: FloatArray, k: int) -> FloatArray:
    """Sum ``weights`` per local user (the sentinel ``k`` collects dead rows and is dropped)."""
    sums: FloatArray = np.bincount(local, weights, minlength=k + 1)[:k].astype(np.float64)
    return sums


def _add_stable_debt(
    table: PositionTable, factors: BlockFactors, users: npt.NDArray[np.intp], debt: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Stable debt (3.0/3.1) valued per position; returns the debt and its extra error."""
    extra = np.zeros_like(debt)
    market = factors.market
    rules = market.rules
    if not rules.stable_debt or not table.stable:
        return debt, extra
    debt = debt.copy()
    position_of = {int(user): i for i, user in enumerate(users)}
    for user, per_reserve in table.stable.items():
        local = position_of.get(user)
        if local is None:
            continue
        # The eMode category is all the account loop reads of the user here (3.0/3.1 price
        # source); the table stores stable debt only where the borrowing flag is set.
        holder = UserAccount(table.addresses[user], 0, int(table.emode[user]))
        emode = user_emode_category(market, holder)
        emode_price = emode_source_price(market, emode)
        for reserve_id, stable in per_reserve.items():
            reserve = market.reserves.get(reserve_id)
            if reserve is None:
                continue
            balance = stable_debt_balance(rules, UserReserve(stable_debt=stable), factors.now)
            price = reserve_price(market, reserve, emode, emode_price)
            value = balance * price / reserve.configuration.unit
            debt[local] += value
            extra[local] += value * STABLE_RELATIVE_ERROR + 1.0
    return debt, extra


def _classify(
    table: PositionTable,
    factors: BlockFactors,
    users: npt.NDArray[np.intp],
    sums: _Sums,
    debt: FloatArray,
    debt_error: FloatArray,
) -> ScreenResult:
    # One error term per user covers both sides: each row's value is off by at most its
    # price/unit (the balance rounding) plus 1 (collateral floor) or 2 (debt rounding).
    collateral_error = sums.error + 1.0
    if sums.total_collateral is not None:
        collateral_error = collateral_error + sums.total_collateral / 1e4
    debt_error = debt_error + sums.error
    low, high = 1.0 - RELATIVE_FLOAT_ERROR, 1.0 + RELATIVE_FLOAT_ERROR
    weighted = sums.weighted
    safe = (weighted - collateral_error) * low >= (debt + debt_error) * high * (1 + FINAL_ROUNDING)
    under = (weighted + collateral_error) * high < (debt - debt_error) * low * (1 - FINAL_ROUNDING)
    status = np.full(len(users), UNCERTAIN, dtype=np.int8)
    status[safe] = SAFE
    status[under] = UNDERWATER
    status[sums.n_debt == 0] = SAFE  # no debt flag: HF is 2**256 - 1 in every version
    if table.gho:
        status[np.isin(users, np.fromiter(table.gho, dtype=np.intp))] = UNCERTAIN
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(debt > 0, weighted / debt, np.inf)
    return ScreenResult(users, health, status, weighted, debt)


def confirm(
    table: PositionTable, factors: BlockFactors, users: npt.NDArray[np.intp]
) -> Mapping[int, AccountData]:
    """Exact account data of ``users`` (by index) at the block of ``factors``."""
    market, now = factors.market, factors.now
    return {int(u): calculate_user_account_data(market, table.account(int(u)), now) for u in users}


def underwater_users(table: PositionTable, market: Market, now: int) -> dict[int, AccountData]:
    """Every user whose exact health factor is below 1, with the exact account data.

    Screens everyone, then confirms the ``UNDERWATER`` and ``UNCERTAIN`` users exactly.
    """
    factors = block_factors(market, now)
    result = screen(table, factors)
    exact = confirm(table, factors, result.users[result.status != SAFE])
    return {user: data for user, data in exact.items() if data.is_liquidatable}
