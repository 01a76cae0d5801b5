"""Exact Aave v3 account and liquidation math, per protocol version (3.0.0 to 3.6).

Pure integers: no I/O, no floats, no clock. Every function mirrors a contract function
(spec: docs/aave-v3-math.md in the shared reference) and raises where the contract reverts.
The version differences are data: :mod:`overlord.aave.versions`.
"""

from overlord.aave.account import (
    EMPTY_ACCOUNT,
    NO_DEBT_HEALTH_FACTOR,
    AccountData,
    calculate_user_account_data,
)
from overlord.aave.configuration import (
    EModeCategory,
    ReserveConfiguration,
    reserve_bitmap,
    user_configuration_word,
)
from overlord.aave.detection import VersionDetectionError, VersionProbes, detect_protocol_version
from overlord.aave.errors import (
    AaveMathError,
    ArithmeticRevert,
    DivisionByZero,
    MissingPriceError,
    ReserveNotListedError,
    Uint256Overflow,
)
from overlord.aave.liquidation import (
    MAX_DEBT_TO_COVER,
    Liquidation,
    LiquidationRejected,
    LiquidationResult,
    LiquidationRevert,
    max_liquidation,
    simulate_liquidation,
)
from overlord.aave.market import GhoDiscount, Market, Reserve, StableDebt, UserAccount, UserReserve
from overlord.aave.versions import ProtocolRules, ProtocolVersion, rules_for

__all__ = [
    "EMPTY_ACCOUNT",
    "MAX_DEBT_TO_COVER",
    "NO_DEBT_HEALTH_FACTOR",
    "AaveMathError",
    "AccountData",
    "ArithmeticRevert",
    "DivisionByZero",
    "EModeCategory",
    "GhoDiscount",
    "Liquidation",
    "LiquidationRejected",
    "LiquidationResult",
    "LiquidationRevert",
    "Market",
    "MissingPriceError",
    "ProtocolRules",
    "ProtocolVersion",
    "Reserve",
    "ReserveConfiguration",
    "ReserveNotListedError",
    "StableDebt",
    "Uint256Overflow",
    "UserAccount",
    "UserReserve",
    "VersionDetectionError",
    "VersionProbes",
    "calculate_user_account_data",
    "detect_protocol_version",
    "max_liquidation",
    "reserve_bitmap",
    "rules_for",
    "simulate_liquidation",
    "user_configuration_word",
]
