"""The inputs of the account and liquidation math: reserves, users, prices, eMode categories.

Plain frozen values, no behaviour beyond lookups. Reserves are keyed by their reserve id
(the index used by user configuration words and eMode bitmaps); an id with no reserve is
a gap left by a dropped reserve, exactly as ``reservesList`` holds ``address(0)`` there.
Addresses are lower-case ``0x`` hex strings. Prices are what ``AaveOracle.getAssetPrice``
returns, in base-currency units (1e8 for USD markets), keyed by asset address; the price
of a 3.0/3.1 eMode price source is looked up the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from overlord.aave.configuration import EModeCategory, ReserveConfiguration
from overlord.aave.errors import MissingPriceError
from overlord.aave.versions import ProtocolRules, ProtocolVersion, rules_for


@dataclass(frozen=True, slots=True)
class Reserve:
    """One reserve's state as stored by the Pool (indices are stored, not normalized)."""

    id: int
    asset: str
    configuration: ReserveConfiguration
    liquidity_index: int
    variable_borrow_index: int
    current_liquidity_rate: int = 0
    current_variable_borrow_rate: int = 0
    last_update_timestamp: int = 0
    liquidation_grace_period_until: int = 0
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class StableDebt:
    """A 3.0/3.1 stable-rate debt: principal, the user's rate (ray) and its timestamp."""

    principal: int
    rate: int
    last_update_timestamp: int


@dataclass(frozen=True, slots=True)
class GhoDiscount:
    """vGHO discount state (3.3 only): percent in bps and the user's last index (ray)."""

    percent: int
    last_index: int


@dataclass(frozen=True, slots=True)
class UserReserve:
    """A user's balances in one reserve, scaled as the tokens store them."""

    scaled_atoken_balance: int = 0
    scaled_variable_debt: int = 0
    stable_debt: StableDebt | None = None
    gho_discount: GhoDiscount | None = None


_NO_POSITIONS: Mapping[int, UserReserve] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UserAccount:
    """A user's configuration word, eMode category and balances by reserve id.

    The flags come from the configuration word (as on chain), never from the balances:
    a reserve with a flag and no balance entry has zero balances.
    """

    address: str
    configuration: int
    emode_category: int = 0
    positions: Mapping[int, UserReserve] = field(default_factory=lambda: _NO_POSITIONS)

    def position(self, reserve_id: int) -> UserReserve:
        """The user's balances in ``reserve_id`` (zero balances when there are none)."""
        return self.positions.get(reserve_id, _EMPTY_POSITION)


_EMPTY_POSITION = UserReserve()


@dataclass(frozen=True, slots=True)
class Market:
    """A market at one block: version, reserves by id, eMode categories, oracle prices.

    ``reserves_count`` is the Pool's ``reservesCount`` (the loop bound up to 3.3); by default
    one past the highest reserve id.
    """

    version: ProtocolVersion
    reserves: Mapping[int, Reserve]
    prices: Mapping[str, int]
    emode_categories: Mapping[int, EModeCategory] = field(default_factory=dict)
    reserves_count: int | None = None

    @property
    def rules(self) -> ProtocolRules:
        """The version's rules."""
        return rules_for(self.version)

    @property
    def loop_reserves_count(self) -> int:
        """``reservesCount`` as the Pool would report it."""
        if self.reserves_count is not None:
            return self.reserves_count
        return max(self.reserves, default=-1) + 1

    def price(self, asset: str) -> int:
        """The oracle price of ``asset``; raises :class:`MissingPriceError` if unknown."""
        try:
            return self.prices[asset]
        except KeyError:
            raise MissingPriceError(asset) from None

    def reserve_by_asset(self, asset: str) -> Reserve:
        """The reserve of ``asset``; raises ``KeyError`` if the market has none."""
        for reserve in self.reserves.values():
            if reserve.asset == asset:
                return reserve
        raise KeyError(f"no reserve for asset {asset}")
