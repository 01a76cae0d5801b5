"""Configuration bitmaps (spec docs/aave-v3-math.md §4)."""

from __future__ import annotations

import pytest

from overlord.aave.configuration import (
    MAX_RESERVES_COUNT,
    EModeCategory,
    ReserveConfiguration,
    flagged_reserves,
    is_borrowing,
    is_reserve_in_bitmap,
    is_using_as_collateral,
    reserve_bitmap,
    reserve_configuration_fields,
    user_configuration_word,
)

# The layout of spec §4.1, written out independently of the package: (field, first bit, width).
SPEC_LAYOUT: tuple[tuple[str, int, int], ...] = (
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
ALL_ZERO = ReserveConfiguration.decode(0)


def test_a_zero_word_decodes_to_an_inactive_reserve_with_zero_decimals() -> None:
    assert ALL_ZERO.active is False
    assert ALL_ZERO.decimals == 0
    assert ALL_ZERO.encode() == 0


@pytest.mark.parametrize(("name", "start", "width"), SPEC_LAYOUT, ids=[f[0] for f in SPEC_LAYOUT])
def test_every_field_decodes_from_its_own_bits_only(name: str, start: int, width: int) -> None:
    all_ones = (1 << width) - 1
    word = all_ones << start

    decoded = ReserveConfiguration.decode(word)

    expected: int | bool = True if width == 1 else all_ones
    assert getattr(decoded, name) == expected
    for other, _, other_width in SPEC_LAYOUT:
        if other != name:
            assert getattr(decoded, other) == (False if other_width == 1 else 0), other
    assert decoded.encode() == word


def test_the_fields_tile_bits_0_to_252_without_overlap() -> None:
    covered = 0
    for _, start, width in SPEC_LAYOUT:
        mask = ((1 << width) - 1) << start
        assert covered & mask == 0
        covered |= mask

    assert covered == (1 << 253) - 1


def test_a_typical_reserve_word_computed_by_hand_round_trips() -> None:
    word = (
        8050
        | 8300 << 16
        | 10500 << 32
        | 18 << 48
        | 1 << 56  # active
        | 1 << 58  # borrowing enabled
        | 1 << 63  # flash loans
        | 1500 << 64  # reserve factor
        | 1_400_000 << 80  # borrow cap
        | 1_800_000 << 116  # supply cap
        | 1000 << 152  # protocol fee
        | 1 << 168  # eMode category 1
        | 1 << 252  # virtual accounting
    )

    configuration = ReserveConfiguration.decode(word)

    assert configuration == ReserveConfiguration(
        ltv=8050,
        liquidation_threshold=8300,
        liquidation_bonus=10500,
        decimals=18,
        active=True,
        borrowing_enabled=True,
        flash_loan_enabled=True,
        reserve_factor=1500,
        borrow_cap=1_400_000,
        supply_cap=1_800_000,
        liquidation_protocol_fee=1000,
        emode_category=1,
        virtual_accounting_active=True,
    )
    assert configuration.encode() == word
    assert configuration.unit == 10**18


def test_encode_places_fields_at_the_spec_bit_positions() -> None:
    configuration = ReserveConfiguration(
        ltv=1,
        liquidation_threshold=2,
        decimals=6,
        paused=True,
        debt_ceiling=3,
        active=False,
        unbacked_mint_cap=5,
    )

    assert configuration.encode() == 1 | 2 << 16 | 6 << 48 | 1 << 60 | 5 << 176 | 3 << 212


def test_unused_top_bits_are_ignored_by_decode_and_zero_after_encode() -> None:
    word = 0b111 << 253 | 7500

    configuration = ReserveConfiguration.decode(word)

    assert configuration.ltv == 7500
    assert configuration.encode() == 7500


def test_decimals_give_the_unit() -> None:
    assert ReserveConfiguration(decimals=6).unit == 10**6
    assert ReserveConfiguration(decimals=0).unit == 1


@pytest.mark.parametrize(("name", "start", "width"), SPEC_LAYOUT, ids=[f[0] for f in SPEC_LAYOUT])
def test_a_field_value_that_does_not_fit_its_width_raises_value_error(
    name: str, start: int, width: int
) -> None:
    assert start >= 0
    with pytest.raises(ValueError, match=name):
        ReserveConfiguration(**{name: 1 << width})  # type: ignore[arg-type]


def test_a_negative_field_value_raises_value_error() -> None:
    with pytest.raises(ValueError, match="ltv"):
        ReserveConfiguration(ltv=-1)


@pytest.mark.parametrize("word", [-1, 2**256])
def test_a_word_outside_uint256_raises_value_error(word: int) -> None:
    with pytest.raises(ValueError, match="uint256"):
        ReserveConfiguration.decode(word)


def test_configuration_field_names_are_listed_in_bit_order() -> None:
    assert reserve_configuration_fields() == tuple(name for name, _, _ in SPEC_LAYOUT)


# UserConfigurationMap (spec §4.2).


def test_user_configuration_word_sets_bit_2i_for_borrowing_and_2i_plus_1_for_collateral() -> None:
    word = user_configuration_word(borrowing=[0, 5], collateral=[0, 3, 127])

    assert word == (1 << 0) | (1 << 10) | (1 << 1) | (1 << 7) | (1 << 255)


def test_an_empty_user_configuration_is_zero() -> None:
    assert user_configuration_word() == 0
    assert list(flagged_reserves(0)) == []


def test_flagged_reserves_yields_ids_in_order_with_their_flags() -> None:
    word = user_configuration_word(borrowing=[2, 64], collateral=[0, 2, 127])

    assert list(flagged_reserves(word)) == [
        (0, False, True),
        (2, True, True),
        (64, True, False),
        (127, False, True),
    ]


def test_borrowing_and_collateral_predicates_read_single_bits() -> None:
    word = 0b1001  # reserve 0 borrowing, reserve 1 collateral

    assert is_borrowing(word, 0) is True
    assert is_using_as_collateral(word, 0) is False
    assert is_borrowing(word, 1) is False
    assert is_using_as_collateral(word, 1) is True
    assert is_borrowing(word, 2) is False
    assert is_using_as_collateral(word, 2) is False


def test_reserve_bitmap_sets_bit_i_for_reserve_i() -> None:
    bitmap = reserve_bitmap([0, 3, 127])

    assert bitmap == 1 | 8 | 1 << 127
    assert is_reserve_in_bitmap(bitmap, 3) is True
    assert is_reserve_in_bitmap(bitmap, 2) is False
    assert is_reserve_in_bitmap(bitmap, 127) is True


@pytest.mark.parametrize("reserve_id", [MAX_RESERVES_COUNT, 128, -1])
def test_an_invalid_reserve_id_raises_value_error(reserve_id: int) -> None:
    with pytest.raises(ValueError, match="reserve id"):
        user_configuration_word(borrowing=[reserve_id])
    with pytest.raises(ValueError, match="reserve id"):
        user_configuration_word(collateral=[reserve_id])
    with pytest.raises(ValueError, match="reserve id"):
        reserve_bitmap([reserve_id])


# eMode categories (spec §4.3).


def test_emode_category_defaults_to_no_price_source_and_empty_bitmaps() -> None:
    category = EModeCategory(id=1, ltv=9000, liquidation_threshold=9300, liquidation_bonus=10100)

    assert category.price_source is None
    assert (category.collateral_bitmap, category.borrowable_bitmap, category.ltvzero_bitmap) == (
        0,
        0,
        0,
    )
    assert category.label == ""


@pytest.mark.parametrize("category_id", [1, 255])
def test_emode_category_ids_1_to_255_are_valid(category_id: int) -> None:
    assert EModeCategory(
        id=category_id, ltv=0, liquidation_threshold=0, liquidation_bonus=0
    ).id == (category_id)


@pytest.mark.parametrize("category_id", [0, 256, -1])
def test_emode_category_id_outside_1_to_255_raises_value_error(category_id: int) -> None:
    with pytest.raises(ValueError, match="eMode category id"):
        EModeCategory(id=category_id, ltv=9000, liquidation_threshold=9300, liquidation_bonus=10100)


@pytest.mark.parametrize(
    "bitmap_field", ["collateral_bitmap", "borrowable_bitmap", "ltvzero_bitmap"]
)
def test_emode_bitmaps_must_fit_in_128_bits(bitmap_field: str) -> None:
    largest = EModeCategory(1, 9000, 9300, 10100, **{bitmap_field: (1 << 128) - 1})  # type: ignore[arg-type]
    assert getattr(largest, bitmap_field) == (1 << 128) - 1

    with pytest.raises(ValueError, match=bitmap_field):
        EModeCategory(1, 9000, 9300, 10100, **{bitmap_field: 1 << 128})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=bitmap_field):
        EModeCategory(1, 9000, 9300, 10100, **{bitmap_field: -1})  # type: ignore[arg-type]
