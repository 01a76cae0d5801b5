"""Configuration bitmaps: ReserveConfigurationMap, UserConfigurationMap, eMode categories.

Spec: docs/aave-v3-math.md §4. The stored bit layout of a reserve's configuration word is
the same in every version (3.3 only flipped how the library writes its masks); fields that
later versions deprecate still decode, and the version rules decide whether they matter
(for example the eMode category id in bits 168–175 is only meaningful up to 3.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Final

from overlord.aave.wadray import UINT256_MAX

MAX_RESERVES_COUNT: Final = 128

# (field, first bit, width). Single-bit fields decode to bool, the rest to int.
_RESERVE_LAYOUT: Final[tuple[tuple[str, int, int], ...]] = (
    ("ltv", 0, 16),
    ("liquidation_threshold", 16, 16),
    ("liquidation_bonus", 32, 16),
    ("decimals", 48, 8),
    ("active", 56, 1),
    ("frozen", 57, 1),
    ("borrowing_enabled", 58, 1),
    ("stable_borrowing_enabled", 59, 1),
    ("paused", 60, 1),
    ("borrowable_in_isolation", 61, 1),
    ("siloed_borrowing", 62, 1),
    ("flash_loan_enabled", 63, 1),
    ("reserve_factor", 64, 16),
    ("borrow_cap", 80, 36),
    ("supply_cap", 116, 36),
    ("liquidation_protocol_fee", 152, 16),
    ("emode_category", 168, 8),
    ("unbacked_mint_cap", 176, 36),
    ("debt_ceiling", 212, 40),
    ("virtual_accounting_active", 252, 1),
)


@dataclass(frozen=True, slots=True)
class ReserveConfiguration:
    """A decoded ReserveConfigurationMap word.

    Percentages are basis points (10000 = 100 %); ``liquidation_bonus`` includes the
    principal (10500 = 5 % bonus); ``liquidation_protocol_fee`` is a share of the bonus part.
    Caps are whole tokens, ``debt_ceiling`` has 2 decimals.
    """

    ltv: int = 0
    liquidation_threshold: int = 0
    liquidation_bonus: int = 0
    decimals: int = 18
    active: bool = True
    frozen: bool = False
    borrowing_enabled: bool = False
    stable_borrowing_enabled: bool = False
    paused: bool = False
    borrowable_in_isolation: bool = False
    siloed_borrowing: bool = False
    flash_loan_enabled: bool = False
    reserve_factor: int = 0
    borrow_cap: int = 0
    supply_cap: int = 0
    liquidation_protocol_fee: int = 0
    emode_category: int = 0
    unbacked_mint_cap: int = 0
    debt_ceiling: int = 0
    virtual_accounting_active: bool = False

    def __post_init__(self) -> None:
        for name, _start, width in _RESERVE_LAYOUT:
            value = getattr(self, name)
            if not 0 <= int(value) < (1 << width):
                raise ValueError(f"{name}={value} does not fit in {width} bits")

    @property
    def unit(self) -> int:
        """``10**decimals``: one whole token in its smallest unit."""
        return int(10**self.decimals)

    @classmethod
    def decode(cls, word: int) -> ReserveConfiguration:
        """Decode a configuration word as stored by the Pool."""
        if not 0 <= word <= UINT256_MAX:
            raise ValueError(f"configuration word {word} is not a uint256")
        values: dict[str, int | bool] = {}
        for name, start, width in _RESERVE_LAYOUT:
            raw = (word >> start) & ((1 << width) - 1)
            values[name] = bool(raw) if width == 1 else raw
        return cls(**values)  # type: ignore[arg-type]

    def encode(self) -> int:
        """Encode back into the word the Pool stores (unused bits are zero)."""
        word = 0
        for name, start, _width in _RESERVE_LAYOUT:
            word |= int(getattr(self, name)) << start
        return word


def reserve_configuration_fields() -> tuple[str, ...]:
    """Names of the decoded reserve configuration fields, in bit order."""
    return tuple(f.name for f in fields(ReserveConfiguration))


# UserConfigurationMap: bit 2*i = borrowing reserve i, bit 2*i+1 = using reserve i as collateral.


def is_borrowing(user_configuration: int, reserve_id: int) -> bool:
    """Whether the borrowing bit of ``reserve_id`` is set."""
    return bool((user_configuration >> (2 * reserve_id)) & 1)


def is_using_as_collateral(user_configuration: int, reserve_id: int) -> bool:
    """Whether the collateral bit of ``reserve_id`` is set."""
    return bool((user_configuration >> (2 * reserve_id + 1)) & 1)


def flagged_reserves(user_configuration: int) -> Iterator[tuple[int, bool, bool]]:
    """Yield ``(reserve_id, borrowing, collateral)`` for each flagged reserve, by id."""
    reserve_id = 0
    word = user_configuration
    while word:
        pair = word & 3
        if pair:
            yield reserve_id, bool(pair & 1), bool(pair & 2)
        word >>= 2
        reserve_id += 1


def user_configuration_word(
    *, borrowing: Iterable[int] = (), collateral: Iterable[int] = ()
) -> int:
    """Build a UserConfigurationMap word from reserve ids."""
    word = 0
    for reserve_id in borrowing:
        word |= 1 << (2 * _valid_reserve_id(reserve_id))
    for reserve_id in collateral:
        word |= 1 << (2 * _valid_reserve_id(reserve_id) + 1)
    return word


def reserve_bitmap(reserve_ids: Iterable[int]) -> int:
    """Build an eMode reserve bitmap (bit ``i`` = reserve id ``i``)."""
    bitmap = 0
    for reserve_id in reserve_ids:
        bitmap |= 1 << _valid_reserve_id(reserve_id)
    return bitmap


def is_reserve_in_bitmap(bitmap: int, reserve_id: int) -> bool:
    """Whether bit ``reserve_id`` of an eMode bitmap is set."""
    return bool((bitmap >> reserve_id) & 1)


def _valid_reserve_id(reserve_id: int) -> int:
    if not 0 <= reserve_id < MAX_RESERVES_COUNT:
        raise ValueError(f"reserve id {reserve_id} is outside 0..{MAX_RESERVES_COUNT - 1}")
    return reserve_id


@dataclass(frozen=True, slots=True)
class EModeCategory:
    """An eMode category in either layout.

    Up to 3.1 membership is the category id stored in each reserve's configuration and a
    category may name a ``price_source`` whose oracle price replaces its members' prices.
    From 3.2 membership is ``collateral_bitmap`` (bit ``i`` = reserve id ``i``) and there is no
    price source; 3.6 adds ``ltvzero_bitmap``. Fields a layout does not have stay at their
    defaults; the version rules decide which ones are read.
    """

    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str = ""
    price_source: str | None = None
    collateral_bitmap: int = 0
    borrowable_bitmap: int = 0
    ltvzero_bitmap: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.id <= 255:
            raise ValueError(f"eMode category id {self.id} is outside 1..255 (0 means no eMode)")
        for name in ("collateral_bitmap", "borrowable_bitmap", "ltvzero_bitmap"):
            if not 0 <= getattr(self, name) < (1 << MAX_RESERVES_COUNT):
                raise ValueError(f"{name} does not fit in 128 bits")
