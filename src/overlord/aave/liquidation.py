"""Liquidation sizing: what ``Pool.liquidationCall`` would do, per version.

Spec: docs/aave-v3-math.md §5; mirrors ``LiquidationLogic.executeLiquidationCall`` and
``ValidationLogic.validateLiquidationCall``. :func:`simulate_liquidation` answers, for a
borrower, a (collateral, debt) pair and a ``debtToCover``, either the reason the Pool
would revert or the amounts it would move. :func:`max_liquidation` finds the largest
liquidation of a pair that the Pool accepts, shrinking it when the 3.3+ dust rule would
reject the maximum (the procedure of ``LiquidationDataProvider.getLiquidationInfo``, then
checked against the core rules, which round the debt leftover up from 3.5).

Not modelled: the aToken ``burn`` reverting on a zero scaled amount before 3.5 (a
liquidation whose collateral share is a few wei on a reserve with index above 2),
available liquidity for ``receiveAToken = false``, and which other reserves' debt a 3.3+
bad-debt liquidation burns (only the debt reserve's deficit is reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from overlord.aave.account import (
    AccountData,
    atoken_balance,
    calculate_user_account_data,
    collateral_value,
    debt_value,
    in_emode,
    reserve_income_index,
    total_debt_balance,
    user_emode_category,
)
from overlord.aave.configuration import (
    EModeCategory,
    ReserveConfiguration,
    is_using_as_collateral,
)
from overlord.aave.errors import ArithmeticRevert, ReserveNotListedError
from overlord.aave.market import Market, Reserve, UserAccount
from overlord.aave.versions import CloseFactor, ProtocolRules, Rounding
from overlord.aave.wadray import (
    UINT256_MAX,
    checked,
    percent_div,
    percent_div_ceil,
    percent_mul,
)

MAX_DEBT_TO_COVER = UINT256_MAX
"""Pass as ``debt_to_cover`` to liquidate as much as the Pool allows."""

DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
MINIMUM_HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 95 * 10**16
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 10**18
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = 1_000 * 10**8


class LiquidationRevert(StrEnum):
    """Why the Pool would reject the liquidation (the contract's error names)."""

    SELF_LIQUIDATION = "SelfLiquidation"
    RESERVE_INACTIVE = "ReserveInactive"
    RESERVE_PAUSED = "ReservePaused"
    PRICE_ORACLE_SENTINEL_CHECK_FAILED = "PriceOracleSentinelCheckFailed"
    LIQUIDATION_GRACE_SENTINEL_CHECK_FAILED = "LiquidationGraceSentinelCheckFailed"
    HEALTH_FACTOR_NOT_BELOW_THRESHOLD = "HealthFactorNotBelowThreshold"
    COLLATERAL_CANNOT_BE_LIQUIDATED = "CollateralCannotBeLiquidated"
    SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER = "SpecifiedCurrencyNotBorrowedByUser"
    MUST_NOT_LEAVE_DUST = "MustNotLeaveDust"


@dataclass(frozen=True, slots=True)
class LiquidationRejected:
    """The Pool would revert with ``reason``."""

    reason: LiquidationRevert
    health_factor: int


@dataclass(frozen=True, slots=True)
class Liquidation:
    """What ``liquidationCall`` would do. Amounts in token units of their asset.

    ``debt_repaid`` and ``collateral_to_liquidator`` are the ``debtToCover`` and
    ``liquidatedCollateralAmount`` of the ``LiquidationCall`` event; ``protocol_fee`` goes to
    the treasury on top. ``debt_to_cover`` is the argument to pass to reproduce it.
    ``deficit_created`` is the debt reserve's bad debt (3.3+, when no collateral is left).
    """

    collateral_asset: str
    debt_asset: str
    debt_to_cover: int
    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int
    collateral_flag_cleared: bool
    liquidation_bonus: int
    collateral_price: int
    debt_price: int
    collateral_balance: int
    debt_balance: int
    max_liquidatable_debt: int
    account: AccountData
    has_no_collateral_left: bool = False
    deficit_created: int = 0


LiquidationResult = Liquidation | LiquidationRejected


@dataclass(frozen=True, slots=True)
class _Pair:
    rules: ProtocolRules
    collateral: Reserve
    debt: Reserve
    emode: EModeCategory | None
    account: AccountData
    collateral_balance: int
    debt_balance: int


def validate_liquidation(
    market: Market,
    user: UserAccount,
    collateral: Reserve,
    debt: Reserve,
    *,
    now: int,
    health_factor: int,
    debt_balance: int,
    liquidator: str | None = None,
    oracle_sentinel_allows: bool | None = None,
) -> LiquidationRevert | None:
    """The first check of ``validateLiquidationCall`` that fails, or ``None``.

    ``oracle_sentinel_allows`` is ``None`` where the market has no PriceOracleSentinel,
    else what ``isLiquidationAllowed()`` returns. ``liquidator`` is only needed from 3.4.
    """
    rules = market.rules
    if rules.self_liquidation_forbidden and liquidator is not None and liquidator == user.address:
        return LiquidationRevert.SELF_LIQUIDATION
    if not (collateral.configuration.active and debt.configuration.active):
        return LiquidationRevert.RESERVE_INACTIVE
    if collateral.configuration.paused or debt.configuration.paused:
        return LiquidationRevert.RESERVE_PAUSED
    if not (
        oracle_sentinel_allows is None
        or health_factor < MINIMUM_HEALTH_FACTOR_LIQUIDATION_THRESHOLD
        or oracle_sentinel_allows
    ):
        return LiquidationRevert.PRICE_ORACLE_SENTINEL_CHECK_FAILED
    if rules.liquidation_grace_period and not (
        collateral.liquidation_grace_period_until < now
        and debt.liquidation_grace_period_until < now
    ):
        return LiquidationRevert.LIQUIDATION_GRACE_SENTINEL_CHECK_FAILED
    if health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        return LiquidationRevert.HEALTH_FACTOR_NOT_BELOW_THRESHOLD
    threshold_ok = (
        collateral.configuration.liquidation_threshold != 0
        or not rules.liquidation_needs_collateral_threshold
    )
    if not (threshold_ok and is_using_as_collateral(user.configuration, collateral.id)):
        return LiquidationRevert.COLLATERAL_CANNOT_BE_LIQUIDATED
    if debt_balance == 0:
        return LiquidationRevert.SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER
    return None


def simulate_liquidation(
    market: Market,
    user: UserAccount,
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int = MAX_DEBT_TO_COVER,
    *,
    now: int,
    liquidator: str | None = None,
    oracle_sentinel_allows: bool | None = None,
    account: AccountData | None = None,
) -> LiquidationResult:
    """What ``liquidationCall(collateral, debt, user, debtToCover, ...)`` would do at ``now``.

    ``account`` is ``calculate_user_account_data(market, user, now)`` when the caller has
    it already (the Pool computes it first); it is computed otherwise. Passing anything
    else gives wrong results.

    Raises:
        MissingPriceError: a price the contract reads is unknown.
        ReserveNotListedError: the debt asset (from 3.5 also the collateral asset) has no
            reserve, and the Pool would revert without a reason.
        ArithmeticRevert: the contract would revert in arithmetic (a zero price, say).
    """
    rules = market.rules
    debt = _reserve(market, debt_asset, placeholder=False)
    collateral = _reserve(
        market, collateral_asset, placeholder=not rules.collateral_cached_before_validation
    )
    pair = _load_pair(market, user, collateral, debt, now, account)
    reason = validate_liquidation(
        market,
        user,
        collateral,
        debt,
        now=now,
        health_factor=pair.account.health_factor,
        debt_balance=pair.debt_balance,
        liquidator=liquidator,
        oracle_sentinel_allows=oracle_sentinel_allows,
    )
    if reason is not None:
        return LiquidationRejected(reason, pair.account.health_factor)
    return _execute(market, user, pair, debt_to_cover, now)


def _load_pair(
    market: Market,
    user: UserAccount,
    collateral: Reserve,
    debt: Reserve,
    now: int,
    account: AccountData | None = None,
) -> _Pair:
    """What the Pool reads before it validates: account data and both balances."""
    rules = market.rules
    return _Pair(
        rules,
        collateral,
        debt,
        user_emode_category(market, user),
        account if account is not None else calculate_user_account_data(market, user, now),
        atoken_balance(rules, collateral, user.position(collateral.id), now),
        total_debt_balance(rules, debt, user.position(debt.id), now),
    )


def _reserve(market: Market, asset: str, *, placeholder: bool) -> Reserve:
    """The asset's reserve.

    An unlisted asset makes the Pool revert without a reason as soon as it caches the
    reserve (its token addresses are zero). Up to 3.4 the collateral reserve is not cached
    before validation, so an unlisted collateral reads as the all-zero struct there and is
    rejected as inactive: ``placeholder`` asks for that struct.
    """
    try:
        return market.reserve_by_asset(asset)
    except KeyError:
        if not placeholder:
            raise ReserveNotListedError(asset) from None
        return Reserve(
            id=0,
            asset=asset,
            configuration=ReserveConfiguration.decode(0),
            liquidity_index=0,
            variable_borrow_index=0,
        )


def _prices(market: Market, pair: _Pair) -> tuple[int, int]:
    """Collateral and debt prices of the liquidation.

    3.0/3.1: when the user's eMode category names a price source, its price replaces the
    debt price, and the collateral price if the collateral is in the category, whatever it
    quotes (unlike the account loop, which ignores a source quoting 0); the assets' own
    prices are then not read at all.
    """
    emode = pair.emode
    if pair.rules.emode_price_source and emode is not None and emode.price_source:
        source_price = market.price(emode.price_source)
        collateral_in_category = in_emode(
            pair.rules, emode, pair.collateral.id, pair.collateral.configuration
        )
        collateral_price = (
            source_price if collateral_in_category else market.price(pair.collateral.asset)
        )
        return collateral_price, source_price
    return market.price(pair.collateral.asset), market.price(pair.debt.asset)


def _liquidation_bonus(pair: _Pair) -> int:
    emode = pair.emode
    if emode is not None and in_emode(
        pair.rules, emode, pair.collateral.id, pair.collateral.configuration
    ):
        return emode.liquidation_bonus
    return pair.collateral.configuration.liquidation_bonus


def _max_liquidatable_debt(pair: _Pair, collateral_price: int, debt_price: int) -> int:
    health_factor = pair.account.health_factor
    if pair.rules.close_factor is CloseFactor.PER_RESERVE:
        close_factor = (
            DEFAULT_LIQUIDATION_CLOSE_FACTOR
            if health_factor > CLOSE_FACTOR_HF_THRESHOLD
            else MAX_LIQUIDATION_CLOSE_FACTOR
        )
        return percent_mul(pair.debt_balance, close_factor)
    debt_unit = pair.debt.configuration.unit
    debt_base = debt_value(pair.rules, pair.debt_balance, debt_price, debt_unit)
    collateral_base = collateral_value(
        pair.collateral_balance, collateral_price, pair.collateral.configuration.unit
    )
    if (
        collateral_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and health_factor > CLOSE_FACTOR_HF_THRESHOLD
    ):
        half_of_total_debt = percent_mul(
            pair.account.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR
        )
        if debt_base > half_of_total_debt:
            return checked(half_of_total_debt * debt_unit) // _nonzero_price(debt_price)
    return pair.debt_balance


def _nonzero_price(price: int) -> int:
    if price == 0:
        raise ArithmeticRevert("division by a zero price")
    return price


@dataclass(frozen=True, slots=True)
class _Amounts:
    collateral: int  # to the liquidator, fee excluded
    debt: int
    fee: int
    collateral_base: int  # value of collateral + fee taken (3.3+ no-collateral-left test)


def _collateral_amounts(
    rules: ProtocolRules,
    debt_to_liquidate: int,
    collateral_balance: int,
    collateral_price: int,
    collateral_unit: int,
    debt_price: int,
    debt_unit: int,
    liquidation_bonus: int,
    protocol_fee_bps: int,
) -> _Amounts:
    base_collateral = checked(debt_price * debt_to_liquidate * collateral_unit) // _nonzero_price(
        checked(collateral_price * debt_unit)
    )
    max_collateral = percent_mul(base_collateral, liquidation_bonus)
    if max_collateral > collateral_balance:
        collateral_amount = collateral_balance
        debt_base = checked(collateral_price * collateral_amount * debt_unit) // _nonzero_price(
            checked(debt_price * collateral_unit)
        )
        if rules.debt_for_all_collateral_rounding is Rounding.CEIL:
            debt_needed = percent_div_ceil(debt_base, liquidation_bonus)
        else:
            debt_needed = percent_div(debt_base, liquidation_bonus)
    else:
        collateral_amount = max_collateral
        debt_needed = debt_to_liquidate
    collateral_base = checked(collateral_amount * collateral_price) // collateral_unit
    fee = 0
    if protocol_fee_bps != 0:
        bonus_part = collateral_amount - percent_div(collateral_amount, liquidation_bonus)
        fee = percent_mul(bonus_part, protocol_fee_bps)
    return _Amounts(collateral_amount - fee, debt_needed, fee, collateral_base)


def _execute(
    market: Market, user: UserAccount, pair: _Pair, debt_to_cover: int, now: int
) -> LiquidationResult:
    rules = pair.rules
    collateral_price, debt_price = _prices(market, pair)
    bonus = _liquidation_bonus(pair)
    max_debt = _max_liquidatable_debt(pair, collateral_price, debt_price)
    amounts = _collateral_amounts(
        rules,
        min(debt_to_cover, max_debt),
        pair.collateral_balance,
        collateral_price,
        pair.collateral.configuration.unit,
        debt_price,
        pair.debt.configuration.unit,
        bonus,
        pair.collateral.configuration.liquidation_protocol_fee,
    )
    if rules.dust_rule and _leaves_dust(pair, amounts, collateral_price, debt_price):
        return LiquidationRejected(
            LiquidationRevert.MUST_NOT_LEAVE_DUST, pair.account.health_factor
        )
    taken = amounts.collateral + (amounts.fee if rules.collateral_flag_counts_fee else 0)
    no_collateral_left = rules.bad_debt_deficit and (
        pair.account.total_collateral_base == amounts.collateral_base
    )
    deficit = pair.debt_balance - amounts.debt if no_collateral_left else 0
    return Liquidation(
        collateral_asset=pair.collateral.asset,
        debt_asset=pair.debt.asset,
        debt_to_cover=debt_to_cover,
        debt_repaid=amounts.debt,
        collateral_to_liquidator=amounts.collateral,
        protocol_fee=_capped_fee(market, user, pair, amounts, now),
        collateral_flag_cleared=taken == pair.collateral_balance,
        liquidation_bonus=bonus,
        collateral_price=collateral_price,
        debt_price=debt_price,
        collateral_balance=pair.collateral_balance,
        debt_balance=pair.debt_balance,
        max_liquidatable_debt=max_debt,
        account=pair.account,
        has_no_collateral_left=no_collateral_left,
        deficit_created=deficit,
    )


def _leaves_dust(pair: _Pair, amounts: _Amounts, collateral_price: int, debt_price: int) -> bool:
    """3.3+: a liquidation partial on both sides must leave >= MIN_LEFTOVER_BASE of each."""
    collateral_left = pair.collateral_balance - amounts.collateral - amounts.fee
    debt_left = pair.debt_balance - amounts.debt
    if not (debt_left > 0 and collateral_left > 0):
        return False
    debt_left_base = debt_value(pair.rules, debt_left, debt_price, pair.debt.configuration.unit)
    collateral_left_base = collateral_value(
        collateral_left, collateral_price, pair.collateral.configuration.unit
    )
    return debt_left_base < MIN_LEFTOVER_BASE or collateral_left_base < MIN_LEFTOVER_BASE


def _capped_fee(market: Market, user: UserAccount, pair: _Pair, amounts: _Amounts, now: int) -> int:
    """The fee actually transferred to the treasury.

    After the liquidator's share leaves the borrower, 3.0.1+ shrinks a fee whose scaled
    amount exceeds what remains to the remaining balance; 3.0.0 transfers it anyway and
    the transfer underflows (aave-v3-core PR #709).
    """
    if amounts.fee == 0:
        return 0
    token_math = pair.rules.token_math
    index = reserve_income_index(pair.collateral, now)
    scaled_balance = user.position(pair.collateral.id).scaled_atoken_balance
    remaining = scaled_balance - token_math.a_burn_scaled(amounts.collateral, index)
    if remaining < 0:
        raise ArithmeticRevert("liquidator share exceeds the scaled collateral balance")
    if token_math.a_transfer_scaled(amounts.fee, index) <= remaining:
        return amounts.fee
    if not pair.rules.protocol_fee_cap:
        raise ArithmeticRevert("protocol fee exceeds the remaining scaled collateral (3.0.0)")
    return token_math.a_balance(remaining, index)


def max_liquidation(
    market: Market,
    user: UserAccount,
    collateral_asset: str,
    debt_asset: str,
    *,
    now: int,
    liquidator: str | None = None,
    oracle_sentinel_allows: bool | None = None,
    account: AccountData | None = None,
) -> LiquidationResult:
    """The largest liquidation of the pair that the Pool accepts.

    Tries ``debtToCover = MAX`` first. When the 3.3+ dust rule rejects it, shrinks the side
    short of ``MIN_LEFTOVER_BASE`` as ``LiquidationDataProvider`` does, then confirms the
    amount with :func:`simulate_liquidation` and, where the periphery's rounding is off by a
    unit, searches downwards for the largest accepted ``debtToCover``. ``account``: as for
    :func:`simulate_liquidation`; every attempt shares it.
    """
    if account is None:
        account = calculate_user_account_data(market, user, now)

    def attempt(debt_to_cover: int) -> LiquidationResult:
        return simulate_liquidation(
            market,
            user,
            collateral_asset,
            debt_asset,
            debt_to_cover,
            now=now,
            liquidator=liquidator,
            oracle_sentinel_allows=oracle_sentinel_allows,
            account=account,
        )

    full = attempt(MAX_DEBT_TO_COVER)
    if not (
        isinstance(full, LiquidationRejected)
        and full.reason is LiquidationRevert.MUST_NOT_LEAVE_DUST
    ):
        return full
    ceiling = _dust_free_debt_estimate(market, user, collateral_asset, debt_asset, now, account)
    result = attempt(ceiling)
    if isinstance(result, Liquidation):
        return result
    # attempt(ceiling) is rejected: search below it for the largest accepted debtToCover.
    low, high = 0, ceiling - 1
    best: LiquidationResult = result
    while low < high:
        middle = (low + high + 1) // 2
        candidate = attempt(middle)
        if isinstance(candidate, Liquidation):
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _dust_free_debt_estimate(
    market: Market,
    user: UserAccount,
    collateral_asset: str,
    debt_asset: str,
    now: int,
    account: AccountData,
) -> int:
    """``LiquidationDataProvider._adjustAmountsForGoodLeftovers``: the debt to cover."""
    rules = market.rules
    collateral = market.reserve_by_asset(collateral_asset)
    debt = market.reserve_by_asset(debt_asset)
    pair = _load_pair(market, user, collateral, debt, now, account)
    collateral_price, debt_price = _prices(market, pair)
    collateral_unit, debt_unit = collateral.configuration.unit, debt.configuration.unit
    amounts = _collateral_amounts(
        rules,
        _max_liquidatable_debt(pair, collateral_price, debt_price),
        pair.collateral_balance,
        collateral_price,
        collateral_unit,
        debt_price,
        debt_unit,
        _liquidation_bonus(pair),
        collateral.configuration.liquidation_protocol_fee,
    )
    collateral_left_base = collateral_value(
        pair.collateral_balance - amounts.collateral - amounts.fee,
        collateral_price,
        collateral_unit,
    )
    debt_left_base = collateral_value(pair.debt_balance - amounts.debt, debt_price, debt_unit)
    collateral_short = max(MIN_LEFTOVER_BASE - collateral_left_base, 0)
    debt_short = max(MIN_LEFTOVER_BASE - debt_left_base, 0)
    if collateral_short > debt_short:
        # Give up collateral worth the shortfall, and cover the debt that buys exactly that.
        decrease = collateral_short * collateral_unit // collateral_price
        collateral_amount = max(amounts.collateral - decrease, 0)
        debt_base = checked(collateral_price * collateral_amount * debt_unit) // (
            debt_price * collateral_unit
        )
        return percent_div_ceil(debt_base, _liquidation_bonus(pair))
    return max(amounts.debt - debt_short * debt_unit // debt_price, 0)
