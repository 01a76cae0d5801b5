"""Snapshot loading: formats it accepts and the errors that name the bad field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from overlord.aave import ReserveConfiguration, calculate_user_account_data, user_configuration_word
from overlord.snapshot import SnapshotError, load_snapshot, parse_snapshot
from tests.unit.snapshot_documents import (
    SPEC_3_0_TO_3_4,
    SPEC_3_5_PLUS,
    USDC,
    USER,
    WETH,
    spec_example,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _drop_flags(document: dict[str, Any]) -> None:
    for position in document["users"][0]["positions"]:
        position.pop("collateral", None)
        position.pop("borrowing", None)


def _error(document: Any) -> SnapshotError:
    with pytest.raises(SnapshotError) as raised:
        parse_snapshot(document)
    return raised.value


def test_spec_example_snapshot_gives_the_spec_account_data_for_3_6() -> None:
    snapshot = parse_snapshot(spec_example())

    data = calculate_user_account_data(snapshot.market, snapshot.users[0], snapshot.block_timestamp)

    assert data.as_tuple() == SPEC_3_5_PLUS


def test_spec_example_snapshot_gives_the_older_numbers_for_3_0_2() -> None:
    document = spec_example()
    document["protocol_version"] = "v3.0.2"
    snapshot = parse_snapshot(document)

    data = calculate_user_account_data(snapshot.market, snapshot.users[0], snapshot.block_timestamp)

    assert data.as_tuple() == SPEC_3_0_TO_3_4


def test_integers_may_be_numbers_decimal_strings_or_hex_strings() -> None:
    snapshot = parse_snapshot(spec_example())

    usdc = snapshot.market.reserve_by_asset(USDC)
    assert usdc.liquidity_index == 1_030_000_000 * 10**18
    assert snapshot.market.prices[USDC] == 99_990_000
    assert snapshot.market.prices[WETH] == 300_000_000_000


def test_configuration_word_and_decoded_fields_are_equivalent() -> None:
    decoded = spec_example()
    as_word = spec_example()
    word = ReserveConfiguration(
        ltv=8050, liquidation_threshold=8300, liquidation_bonus=10500
    ).encode()
    as_word["reserves"][0]["configuration"] = hex(word)

    assert (
        parse_snapshot(decoded).market.reserves[0].configuration
        == parse_snapshot(as_word).market.reserves[0].configuration
    )


def test_user_flags_on_positions_build_the_configuration_word() -> None:
    snapshot = parse_snapshot(spec_example())

    assert snapshot.users[0].configuration == user_configuration_word(borrowing=[1], collateral=[0])


def test_user_configuration_word_may_be_given_directly() -> None:
    document = spec_example()
    _drop_flags(document)
    document["users"][0]["configuration"] = "0x6"  # borrowing reserve 1, collateral reserve 0

    snapshot = parse_snapshot(document)

    assert snapshot.users[0].configuration == (1 << 2) | (1 << 1)


def test_extra_prices_are_added_to_the_oracle_prices() -> None:
    document = spec_example()
    source = "0x" + "cc" * 20
    document["prices"] = {source.upper().replace("0X", "0x"): "123"}

    snapshot = parse_snapshot(document)

    assert snapshot.market.prices[source] == 123


def test_addresses_are_normalised_to_lower_case() -> None:
    document = spec_example()
    document["users"][0]["address"] = USER.upper().replace("0X", "0x")

    assert parse_snapshot(document).user(USER).address == USER


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda d: d.pop("block_timestamp"), "block_timestamp", "missing required field"),
        (
            lambda d: d["reserves"][1].pop("liquidity_index"),
            "reserves[1].liquidity_index",
            "missing",
        ),
        (lambda d: d["reserves"][0].update(price=True), "reserves[0].price", "got boolean true"),
        (lambda d: d["reserves"][0].update(price=-1), "reserves[0].price", "outside"),
        (
            lambda d: d["reserves"][0].update(price="12x"),
            "reserves[0].price",
            "expected an integer",
        ),
        (lambda d: d["reserves"][0].update(asset="0x1234"), "reserves[0].asset", "40-hex-digit"),
        (lambda d: d["reserves"][0].update(asset="0x" + "zz" * 20), "reserves[0].asset", "address"),
        (lambda d: d["reserves"][0].update(id=128), "reserves[0].id", "outside 0..127"),
        (lambda d: d["reserves"][0].update(colour="red"), "reserves[0].colour", "unknown field"),
        (
            lambda d: d["reserves"][0]["configuration"].update(ltv=70000),
            "reserves[0].configuration",
            "ltv=70000 does not fit in 16 bits",
        ),
        (
            lambda d: d["reserves"][0]["configuration"].update(active="yes"),
            "reserves[0].configuration.active",
            "expected true or false",
        ),
        (lambda d: d["reserves"][1].update(id=0), "reserves[1].id", "appears twice"),
        (lambda d: d["reserves"][1].update(asset=WETH), "reserves[1].asset", "appears twice"),
        (lambda d: d.update(protocol_version="3.7"), "protocol_version", "unsupported"),
        (lambda d: d.update(protocol_version=3.6), "protocol_version", "expected a string"),
        (lambda d: d.update(reserves={}), "reserves", "expected a list"),
        (lambda d: d.update(users=[1]), "users[0]", "expected an object"),
        (
            lambda d: d["users"][0]["positions"][0].update(asset="0x" + "dd" * 20),
            "users[0].positions[0].asset",
            "not one of the snapshot's reserves",
        ),
        (
            lambda d: d["users"][0]["positions"][1].update(asset=WETH),
            "users[0].positions[1].asset",
            "a second position",
        ),
        (lambda d: d["users"][0].update(configuration=6), "users[0].configuration", "not both"),
        (
            _drop_flags,
            "users[0].configuration",
            "missing required field",
        ),
        (
            lambda d: d["users"][0]["positions"][1].update(stable_debt={"principal": 1}),
            "users[0].positions[1].stable_debt.rate",
            "missing",
        ),
        (
            lambda d: d["users"][0]["positions"][1].update(
                gho_discount={"percent": 1, "last_index": 1, "x": 1}
            ),
            "users[0].positions[1].gho_discount.x",
            "unknown field",
        ),
        (
            lambda d: d.update(
                emode_categories=[
                    {"id": 0, "ltv": 1, "liquidation_threshold": 1, "liquidation_bonus": 1}
                ]
            ),
            "emode_categories[0].id",
            "category 0",
        ),
        (
            lambda d: d.update(
                emode_categories=[
                    {
                        "id": 1,
                        "ltv": 1,
                        "liquidation_threshold": 1,
                        "liquidation_bonus": 1,
                        "collateral_bitmap": 2**128,
                    }
                ]
            ),
            "emode_categories[0].collateral_bitmap",
            "outside",
        ),
        (lambda d: d.update(prices={"bad": 1}), "prices.bad", "address"),
    ],
)
def test_malformed_input_names_the_field(mutate: Any, path: str, problem: str) -> None:
    document = spec_example()
    mutate(document)

    error = _error(document)

    assert error.path == path
    assert problem in error.problem


def test_a_document_that_is_not_an_object_is_rejected() -> None:
    assert "expected an object" in str(_error([1, 2]))


def test_float_in_a_file_is_reported_with_its_field(tmp_path: Path) -> None:
    document = spec_example()
    text = json.dumps(document).replace('"price": 300000000000', '"price": 3000.5')
    path = tmp_path / "snapshot.json"
    path.write_text(text)

    with pytest.raises(SnapshotError) as raised:
        load_snapshot(path)

    assert raised.value.path == "reserves[0].price"
    assert "non-integer number 3000.5" in raised.value.problem


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "protocol_version": "3.6",\n  oops\n}')

    with pytest.raises(SnapshotError, match=r"not valid JSON: .* at line 3, column 3"):
        load_snapshot(path)


def test_missing_file_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read"):
        load_snapshot(tmp_path / "absent.json")


def test_unknown_user_is_a_snapshot_error() -> None:
    snapshot = parse_snapshot(spec_example())

    with pytest.raises(SnapshotError, match="no user 0x22"):
        snapshot.user("0x" + "22" * 20)


def test_symbol_falls_back_to_a_short_address() -> None:
    document = spec_example()
    del document["reserves"][1]["symbol"]
    snapshot = parse_snapshot(document)

    assert snapshot.symbol(WETH) == "WETH"
    assert snapshot.symbol(USDC) == USDC[:10]


@pytest.mark.parametrize("name", ["market-3.6.json", "market-3.0.2.json"])
def test_shipped_examples_load_and_evaluate(name: str) -> None:
    snapshot = load_snapshot(EXAMPLES / name)

    results = [
        calculate_user_account_data(snapshot.market, user, snapshot.block_timestamp)
        for user in snapshot.users
    ]

    assert len(results) >= 3
    assert any(result.is_liquidatable for result in results)
    assert any(not result.is_liquidatable for result in results)


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda d: d["reserves"][0].pop("asset"), "reserves[0].asset", "missing required field"),
        (lambda d: d.pop("protocol_version"), "protocol_version", "missing required field"),
        (lambda d: d.pop("users"), "users", "missing required field"),
        (lambda d: d.update(users=[None]), "users[0]", "expected an object, got null"),
    ],
)
def test_missing_or_null_required_fields_are_named(mutate: Any, path: str, problem: str) -> None:
    document = spec_example()
    mutate(document)

    error = _error(document)

    assert (error.path, error.problem) == (path, problem)


def test_stable_debt_and_gho_discount_are_read() -> None:
    document = spec_example()
    position = document["users"][0]["positions"][1]
    position["stable_debt"] = {"principal": "5", "rate": "0x10", "last_update_timestamp": 7}
    position["gho_discount"] = {"percent": 3000, "last_index": str(10**27)}

    user = parse_snapshot(document).users[0]

    stable, discount = user.position(1).stable_debt, user.position(1).gho_discount
    assert stable is not None
    assert (stable.principal, stable.rate, stable.last_update_timestamp) == (5, 16, 7)
    assert discount is not None
    assert (discount.percent, discount.last_index) == (3000, 10**27)
