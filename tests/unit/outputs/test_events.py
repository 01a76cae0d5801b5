"""UnderwaterUserEvent: wire round trip, validation of every malformed class, ids, builder."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from overlord.aave import MAX_DEBT_TO_COVER, NO_DEBT_HEALTH_FACTOR
from overlord.aave.account import ACCOUNT_DATA_KEYS
from overlord.outputs.events import (
    BLOCK_TRIGGER,
    EventDecodeError,
    UnderwaterUserEvent,
    decode_event,
    encode_event,
    event_from,
    event_id_for,
)
from tests.unit.outputs.samples import (
    ACCOUNT,
    BLOCK,
    PENDING,
    POOL,
    PRICES,
    TX_HASH,
    UINT256_MAX,
    USDC,
    USER,
    WETH,
    liquidation,
    sample_event,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"
Document = dict[str, Any]


def wire(event: UnderwaterUserEvent) -> Document:
    document = json.loads(encode_event(event))
    assert isinstance(document, dict)
    return document


def encoded(document: Document) -> bytes:
    return json.dumps(document).encode()


# Round trip.


@pytest.mark.parametrize(
    "event",
    [
        sample_event(),
        sample_event(health_factor=UINT256_MAX),
        sample_event(pending=False, plan=False),
        sample_event(health_factor=0),
    ],
    ids=["full", "max-health-factor", "all-optional-none", "zero-health-factor"],
)
def test_decode_of_encode_is_the_same_event(event: UnderwaterUserEvent) -> None:
    assert decode_event(encode_event(event)) == event


def test_encoding_is_deterministic_and_reencodes_byte_for_byte() -> None:
    data = encode_event(sample_event())
    assert encode_event(sample_event()) == data
    assert encode_event(decode_event(data)) == data


def test_big_integers_travel_as_decimal_strings() -> None:
    document = wire(sample_event(health_factor=UINT256_MAX))
    assert document["user_account_data"]["healthFactor"] == str(UINT256_MAX)
    assert document["total_collateral_base"] == "1250000000000"
    assert all(isinstance(document["user_account_data"][k], str) for k in ACCOUNT_DATA_KEYS)
    assert document["new_asset_prices"][0] == {
        "reserve": WETH,
        "symbol": "WETH",
        "price": "250000000000",
    }
    plan = document["liquidation_plan"]
    assert plan["debt_to_cover"] == "max"
    assert plan["collateral_received"] == "4620000000000000000"
    assert plan["estimated_gross_profit_base"] == "55000000000"


def test_small_integers_travel_as_numbers_and_none_as_null() -> None:
    document = wire(sample_event(pending=False, plan=False))
    assert document["block_number"] == 21_000_000
    assert document["block_timestamp"] == 1_730_000_000
    assert document["chain_id"] == 1
    assert document["schema_version"] == 1
    assert document["tx_hash"] is None
    assert document["raw_tx"] is None
    assert document["inclusion_block"] is None
    assert document["liquidation_plan"] is None


def test_debt_to_cover_max_and_amount_both_decode() -> None:
    document = wire(sample_event())
    assert decode_event(encoded(document)).liquidation_plan is not None
    document["liquidation_plan"]["debt_to_cover"] = "123"
    plan = decode_event(encoded(document)).liquidation_plan
    assert plan is not None
    assert plan.debt_to_cover == 123
    document["liquidation_plan"]["debt_to_cover"] = str(UINT256_MAX)
    plan = decode_event(encoded(document)).liquidation_plan
    assert plan is not None
    assert plan.debt_to_cover == MAX_DEBT_TO_COVER


def test_negative_gross_profit_round_trips() -> None:
    document = wire(sample_event())
    document["liquidation_plan"]["estimated_gross_profit_base"] = "-1"
    plan = decode_event(encoded(document)).liquidation_plan
    assert plan is not None
    assert plan.estimated_gross_profit_base == -1


def test_lower_case_addresses_are_accepted() -> None:
    document = wire(sample_event())
    document["address"] = USER.lower()
    document["pool"] = POOL.upper().replace("0X", "0x")
    assert decode_event(encoded(document)).address == USER.lower()


def test_the_documented_example_decodes() -> None:
    text = (DOCS / "events.md").read_text()
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert block is not None
    event = decode_event(block.group(1).replace("\n", "").encode())
    assert event.health_factor == 937_500_000_000_000_000
    assert event.event_id == event_id_for(
        chain_id=1, pool=POOL, user=USER, block_number=21_000_000, trigger=BLOCK_TRIGGER
    )


# Malformed messages: each raises EventDecodeError naming the problem.


def _set(path: str, value: object) -> Callable[[Document], None]:
    def mutate(document: Document) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(path: str) -> Callable[[Document], None]:
    def mutate(document: Document) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


MALFORMED = [
    ("missing-top-level-field", _delete("address"), "missing required field `address`"),
    ("missing-nullable-field", _delete("tx_hash"), "missing required field `tx_hash`"),
    (
        "missing-account-field",
        _delete("user_account_data.healthFactor"),
        "missing required field `healthFactor`",
    ),
    ("extra-top-level-field", _set("surprise", 1), "unknown field `surprise`"),
    ("extra-nested-field", _set("liquidation_plan.bribe", "1"), "unknown field `bribe`"),
    ("number-for-decimal-string", _set("total_collateral_base", 5), "$.total_collateral_base"),
    ("string-for-number", _set("block_number", "21000000"), "$.block_number"),
    ("bool-for-number", _set("chain_id", True), "$.chain_id"),
    ("float-for-number", _set("block_timestamp", 1.5), "$.block_timestamp"),
    ("null-for-required", _set("pool", None), "$.pool"),
    ("list-for-object", _set("user_account_data", []), "$.user_account_data"),
    ("non-hex-address", _set("address", "0x" + "zz" * 20), "$.address"),
    ("short-address", _set("pool", "0x1234"), "$.pool"),
    ("bad-checksum", _set("address", USER[:3] + USER[3].swapcase() + USER[4:]), "EIP-55"),
    ("nested-bad-address", _set("new_asset_prices.0.reserve", "WETH"), "$.new_asset_prices[0]"),
    ("leading-zero-decimal", _set("user_account_data.ltv", "08000"), "$.user_account_data.ltv"),
    ("signed-unsigned", _set("user_account_data.ltv", "-1"), "$.user_account_data.ltv"),
    ("plus-sign", _set("total_collateral_base", "+1"), "$.total_collateral_base"),
    ("exponent", _set("total_collateral_base", "1e12"), "$.total_collateral_base"),
    ("trailing-newline", _set("total_collateral_base", "1\n"), "$.total_collateral_base"),
    ("unicode-digits", _set("total_collateral_base", "١٢"), "$.total_collateral_base"),
    ("above-uint256", _set("user_account_data.healthFactor", str(2**256)), "healthFactor"),
    ("negative-block", _set("block_number", -1), "$.block_number"),
    ("unsafe-number", _set("block_number", 2**53), "$.block_number"),
    ("bad-debt-to-cover", _set("liquidation_plan.debt_to_cover", "MAX"), "debt_to_cover"),
    ("bad-tx-hash", _set("tx_hash", "0x1234"), "$.tx_hash"),
    ("odd-raw-tx", _set("raw_tx", "0x123"), "$.raw_tx"),
    ("trace-id-path", _set("trace_id", "../etc/passwd"), "$.trace_id"),
    ("bad-event-id", _set("event_id", "XYZ"), "$.event_id"),
    ("raw-tx-without-hash", _set("tx_hash", None), "need a tx_hash"),
    ("inconsistent-collateral", _set("total_collateral_base", "1"), "total_collateral_base"),
    ("unknown-version", _set("schema_version", 2), "unsupported schema_version 2"),
    ("version-zero", _set("schema_version", 0), "unsupported schema_version 0"),
    ("version-as-string", _set("schema_version", "1"), "$.schema_version"),
    ("missing-version", _delete("schema_version"), "missing required field `schema_version`"),
]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [pytest.param(mutate, reason, id=name) for name, mutate, reason in MALFORMED],
)
def test_malformed_fields_are_rejected_with_the_reason(
    mutate: Callable[[Document], None], reason: str
) -> None:
    document = wire(sample_event())
    mutate(document)
    with pytest.raises(EventDecodeError) as raised:
        decode_event(encoded(document))
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"schema_version": 1,', "not valid JSON"),
        (b"[]", "Expected `object`"),
        (b"null", "Expected `object`"),
        (b'"event"', "Expected `object`"),
    ],
    ids=["empty", "truncated", "not-utf8", "half-object", "array", "null", "string"],
)
def test_non_events_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=re.escape(reason)):
        decode_event(data)


def test_a_future_version_is_named_even_when_its_fields_differ() -> None:
    future = encoded({"schema_version": 2, "user": USER, "health": "1"})
    with pytest.raises(EventDecodeError, match="unsupported schema_version 2"):
        decode_event(future)


def test_decode_error_is_a_value_error_chaining_the_cause() -> None:
    with pytest.raises(ValueError, match="not valid JSON") as raised:
        decode_event(b"{")
    assert raised.value.__cause__ is not None


# Construction runs the same checks.


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"address": "0x12"}, "address"),
        ({"chain_id": 0}, "chain_id"),
        ({"block_number": True}, "block_number must be an int"),
        ({"total_collateral_base": 1}, "differs"),
        ({"schema_version": 2}, "unsupported schema_version"),
        ({"protocol_version": "three"}, "protocol_version"),
        ({"tx_hash": None}, "need a tx_hash"),
    ],
)
def test_invalid_values_cannot_be_constructed(changes: dict[str, object], reason: str) -> None:
    fields = {name: getattr(sample_event(), name) for name in UnderwaterUserEvent.__struct_fields__}
    fields.update(changes)
    with pytest.raises(ValueError, match=reason):
        UnderwaterUserEvent(**fields)


# Event ids.


def test_event_id_is_stable_and_pinned() -> None:
    first = event_id_for(
        chain_id=1, pool=POOL, user=USER, block_number=21_000_000, trigger=BLOCK_TRIGGER
    )
    again = event_id_for(
        chain_id=1, pool=POOL.lower(), user=USER.upper(), block_number=21_000_000, trigger="BLOCK"
    )
    # Pinned: other producers compute the same id from the documented recipe.
    assert first == again == "3603a1cf5dd21f25d4dd6bb510975adf"


@pytest.mark.parametrize(
    "changes",
    [
        {"chain_id": 10},
        {"pool": USDC},
        {"user": WETH},
        {"block_number": 21_000_001},
        {"trigger": TX_HASH},
    ],
)
def test_event_id_changes_with_every_input(changes: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "chain_id": 1,
        "pool": POOL,
        "user": USER,
        "block_number": 21_000_000,
        "trigger": BLOCK_TRIGGER,
    }
    assert event_id_for(**base) != event_id_for(**{**base, **changes})


def test_a_resent_event_keeps_its_id_but_not_its_trace() -> None:
    first = event_from(USER, ACCOUNT, BLOCK, "trace-a", prices=PRICES)
    resent = event_from(USER, ACCOUNT, BLOCK, "trace-b", prices=PRICES)
    assert first.event_id == resent.event_id
    assert first.trace_id != resent.trace_id


# The builder.


def test_event_from_maps_account_block_prices_and_plan() -> None:
    event = event_from(
        USER.lower(),
        ACCOUNT,
        BLOCK,
        "trace0001",
        prices=PRICES,
        liquidation=liquidation(),
        estimated_gross_profit_base=55_000_000_000,
        pending=PENDING,
    )
    assert event.address == USER  # checksummed
    assert event.user_account_data.as_tuple() == ACCOUNT.as_tuple()
    assert event.total_collateral_base == ACCOUNT.total_collateral_base
    assert event.new_asset_prices == PRICES
    assert (event.tx_hash, event.raw_tx, event.inclusion_block) == (
        TX_HASH,
        "0x02f8b1",
        21_000_001,
    )
    assert (event.chain_id, event.pool, event.protocol_version) == (1, POOL, "3.6")
    assert (event.block_number, event.block_timestamp) == (21_000_000, 1_730_000_000)
    assert event.event_id == event_id_for(
        chain_id=1, pool=POOL, user=USER, block_number=21_000_000, trigger=TX_HASH
    )
    assert event == sample_event()


def test_event_from_without_a_liquidation_or_trigger() -> None:
    event = event_from(USER, ACCOUNT, BLOCK, "trace0001")
    assert event.liquidation_plan is None
    assert event.tx_hash is None
    assert event.new_asset_prices == ()
    assert event == msgspec.structs.replace(
        sample_event(pending=False, plan=False), new_asset_prices=()
    )


def test_event_from_symbols_override_prices() -> None:
    event = event_from(
        USER,
        ACCOUNT,
        BLOCK,
        "t",
        prices=PRICES,
        liquidation=liquidation(debt_to_cover=7),
        estimated_gross_profit_base=-3,
        symbols={USDC: "USDC.e"},
    )
    plan = event.liquidation_plan
    assert plan is not None
    assert (plan.collateral_symbol, plan.debt_symbol) == ("WETH", "USDC.e")
    assert (plan.debt_to_cover, plan.estimated_gross_profit_base) == (7, -3)


def test_event_from_needs_a_profit_estimate_and_symbols() -> None:
    with pytest.raises(ValueError, match="estimated_gross_profit_base"):
        event_from(USER, ACCOUNT, BLOCK, "t", prices=PRICES, liquidation=liquidation())
    with pytest.raises(ValueError, match="no symbol for asset"):
        event_from(
            USER, ACCOUNT, BLOCK, "t", liquidation=liquidation(), estimated_gross_profit_base=1
        )


def test_event_from_keeps_a_no_debt_health_factor() -> None:
    account = dataclasses.replace(ACCOUNT, health_factor=NO_DEBT_HEALTH_FACTOR)
    event = event_from(USER, account, BLOCK, "t")
    assert decode_event(encode_event(event)).health_factor == NO_DEBT_HEALTH_FACTOR
