"""Protocol versions and what differs between them, side by side.

Every difference between Aave v3 releases that changes a number Overlord computes is a
field of :class:`ProtocolRules`. Each version's rules are written as the previous
version's rules plus the fields that release changed, so the table below *is* the
changelog (spec: docs/aave-v3-math.md §0, §2.2, §3.2, §5):

=========  ==============================================================================
3.0.0      launch: binomial interest, half-up token math, averaged HF, eMode by reserve
           category id with an optional price source, stable debt, per-reserve close factor
3.0.1      liquidation protocol fee capped at the remaining collateral; the collateral flag
           clears when liquidator share + fee == balance (3.0.0 compared without the fee)
3.0.2      no change to the math
3.1        liquidation grace period per reserve
3.2        stable debt gone; eMode membership by collateral bitmap; eMode price source gone
3.3        position-wide close factor with small-position exemption, dust rule, bad-debt
           deficit; GHO (virtual accounting off) valued with its discounted balance
3.4        Taylor compounded interest; the account loop walks the user's bits; GHO is a
           normal reserve again; self-liquidation forbidden
3.5        floor/ceil token math; debt valued with mulDivCeil; HF from the un-averaged
           weighted sum; availableBorrows with percentMulFloor; debt needed for all of the
           collateral rounded up; liquidation caches the collateral reserve before validation
3.6        collateral counts with any liquidation threshold (LT = 0 included); eMode LTV
           from the ltv-zero bitmap, the reserve LTV ignored for eMode collateral
=========  ==============================================================================

3.7 (POOL_REVISION 11) changes liquidation rounding and collateral-flag rules and adds
isolated eModes; it is not supported yet and is rejected by version detection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from overlord.aave.interest import (
    CompoundedInterest,
    compounded_interest_binomial,
    compounded_interest_taylor,
)
from overlord.aave.tokenmath import DirectedTokenMath, HalfUpTokenMath, TokenMath


class ProtocolVersion(StrEnum):
    """An Aave v3 release whose math Overlord reproduces."""

    V3_0_0 = "3.0.0"
    V3_0_1 = "3.0.1"
    V3_0_2 = "3.0.2"
    V3_1 = "3.1"
    V3_2 = "3.2"
    V3_3 = "3.3"
    V3_4 = "3.4"
    V3_5 = "3.5"
    V3_6 = "3.6"

    @classmethod
    def parse(cls, text: str) -> ProtocolVersion:
        """Parse ``"3.6"``, ``"3.6.0"``, ``"v3.0.2"`` and the like.

        Raises:
            ValueError: the text names no supported version.
        """
        cleaned = text.strip().lower().removeprefix("v")
        candidates = {cleaned}
        if cleaned.count(".") == 2 and cleaned.endswith(".0") and not cleaned.startswith("3.0."):
            candidates.add(cleaned.removesuffix(".0"))
        for version in cls:
            if version.value in candidates:
                return version
        supported = ", ".join(v.value for v in cls)
        raise ValueError(f"unsupported protocol version {text!r} (supported: {supported})")


class LoopBound(StrEnum):
    """How ``calculateUserAccountData`` walks the reserves."""

    RESERVES_COUNT = "reserve ids below reservesCount"
    USER_BITS = "until the user configuration word is consumed"


class EModeMembership(StrEnum):
    """How a reserve is known to belong to the user's eMode category."""

    RESERVE_CATEGORY_ID = "reserve configuration bits 168-175"
    COLLATERAL_BITMAP = "category collateral bitmap"


class EModeLtv(StrEnum):
    """Which LTV an eMode collateral contributes."""

    RESERVE_LTV_GATES = "0 if the reserve LTV is 0, else the category LTV"
    LTVZERO_BITMAP = "0 if in the category ltv-zero bitmap, else the category LTV"


class Rounding(StrEnum):
    """Rounding of a value conversion."""

    FLOOR = "floor"
    CEIL = "ceil"
    HALF_UP = "half-up"


class HealthFactorFormula(StrEnum):
    """How the health factor is derived from the account sums."""

    AVERAGED = "wadDiv(percentMul(TC, avgLT), TD)"
    WEIGHTED_SUM = "wadDiv(sum(value * LT), TD) / 10000"


class CloseFactor(StrEnum):
    """How much of a debt one liquidation may repay."""

    PER_RESERVE = "50% of the debt reserve, 100% below HF 0.95"
    POSITION_WIDE = "50% of total debt, 100% below HF 0.95 or for positions under 2000 base units"


@dataclass(frozen=True, slots=True)
class ProtocolRules:
    """Everything that differs between versions, as data. See the module docstring."""

    version: ProtocolVersion
    # Interest and token amounts.
    compounded_interest: CompoundedInterest
    token_math: TokenMath
    # calculateUserAccountData.
    loop_bound: LoopBound
    collateral_needs_liquidation_threshold: bool
    emode_membership: EModeMembership
    emode_ltv: EModeLtv
    emode_price_source: bool
    stable_debt: bool
    gho_discounted_debt: bool
    debt_value_rounding: Rounding
    health_factor: HealthFactorFormula
    available_borrows_rounding: Rounding
    # Liquidation.
    close_factor: CloseFactor
    liquidation_grace_period: bool
    self_liquidation_forbidden: bool
    liquidation_needs_collateral_threshold: bool
    protocol_fee_cap: bool
    collateral_flag_counts_fee: bool
    debt_for_all_collateral_rounding: Rounding
    collateral_cached_before_validation: bool
    dust_rule: bool
    bad_debt_deficit: bool


_V3_0_0 = ProtocolRules(
    version=ProtocolVersion.V3_0_0,
    compounded_interest=compounded_interest_binomial,
    token_math=HalfUpTokenMath(),
    loop_bound=LoopBound.RESERVES_COUNT,
    collateral_needs_liquidation_threshold=True,
    emode_membership=EModeMembership.RESERVE_CATEGORY_ID,
    emode_ltv=EModeLtv.RESERVE_LTV_GATES,
    emode_price_source=True,
    stable_debt=True,
    gho_discounted_debt=False,
    debt_value_rounding=Rounding.FLOOR,
    health_factor=HealthFactorFormula.AVERAGED,
    available_borrows_rounding=Rounding.HALF_UP,
    close_factor=CloseFactor.PER_RESERVE,
    liquidation_grace_period=False,
    self_liquidation_forbidden=False,
    liquidation_needs_collateral_threshold=True,
    protocol_fee_cap=False,
    collateral_flag_counts_fee=False,
    debt_for_all_collateral_rounding=Rounding.HALF_UP,
    collateral_cached_before_validation=False,
    dust_rule=False,
    bad_debt_deficit=False,
)
_V3_0_1 = replace(
    _V3_0_0,
    version=ProtocolVersion.V3_0_1,
    protocol_fee_cap=True,
    collateral_flag_counts_fee=True,
)
_V3_0_2 = replace(_V3_0_1, version=ProtocolVersion.V3_0_2)
_V3_1 = replace(_V3_0_2, version=ProtocolVersion.V3_1, liquidation_grace_period=True)
_V3_2 = replace(
    _V3_1,
    version=ProtocolVersion.V3_2,
    stable_debt=False,
    emode_membership=EModeMembership.COLLATERAL_BITMAP,
    emode_price_source=False,
)
_V3_3 = replace(
    _V3_2,
    version=ProtocolVersion.V3_3,
    close_factor=CloseFactor.POSITION_WIDE,
    dust_rule=True,
    bad_debt_deficit=True,
    gho_discounted_debt=True,
)
_V3_4 = replace(
    _V3_3,
    version=ProtocolVersion.V3_4,
    compounded_interest=compounded_interest_taylor,
    loop_bound=LoopBound.USER_BITS,
    gho_discounted_debt=False,
    self_liquidation_forbidden=True,
)
_V3_5 = replace(
    _V3_4,
    version=ProtocolVersion.V3_5,
    token_math=DirectedTokenMath(),
    debt_value_rounding=Rounding.CEIL,
    health_factor=HealthFactorFormula.WEIGHTED_SUM,
    available_borrows_rounding=Rounding.FLOOR,
    debt_for_all_collateral_rounding=Rounding.CEIL,
    collateral_cached_before_validation=True,
)
_V3_6 = replace(
    _V3_5,
    version=ProtocolVersion.V3_6,
    collateral_needs_liquidation_threshold=False,
    liquidation_needs_collateral_threshold=False,
    emode_ltv=EModeLtv.LTVZERO_BITMAP,
)

RULES: dict[ProtocolVersion, ProtocolRules] = {
    rules.version: rules
    for rules in (_V3_0_0, _V3_0_1, _V3_0_2, _V3_1, _V3_2, _V3_3, _V3_4, _V3_5, _V3_6)
}


def rules_for(version: ProtocolVersion) -> ProtocolRules:
    """The rules of ``version``."""
    return RULES[version]
