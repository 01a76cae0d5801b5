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
    SCHEMA_VERSION,
    EventDecodeError,
    LiquidationPlan,
    UnderwaterUserEvent,
    decode_event,
    encode_event,
    event_from,
    event_id_for,
    plan_from,
)
from tests.unit.outputs.samples import (
    ACCOUNT,
    BLOCK,
    FLASH_LOAN_PREMIUM,
    GAS_COST,
    GROSS_PROFIT,
    NET_PROFIT,
    PENDING,
    POOL,
    PRICES,
    SWAP_COST,
    TX_HASH,
    UINT256_MAX,
    USDC,
    USER,
    WETH,
    liquidation,
    sample_event,
    sample_plan,
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
    assert plan["swap_cost_base"] == "577500000"
    assert plan["flash_loan_premium_base"] == "550000000"
    assert plan["gas_cost_base"] == "750000000"
    assert plan["estimated_net_profit_base"] == "53122500000"
    assert list(plan)[-5:] == [
        "estimated_gross_profit_base",
        "swap_cost_base",
        "flash_loan_premium_base",
        "gas_cost_base",
        "estimated_net_profit_base",
    ]


def test_small_integers_travel_as_numbers_and_none_as_null() -> None:
    document = wire(sample_event(pending=False, plan=False))
    assert document["block_number"] == 21_000_000
    assert document["block_timestamp"] == 1_730_000_000
    assert document["chain_id"] == 1
    assert document["schema_version"] == SCHEMA_VERSION == 2
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
    document["liquidation_plan"]["estimated_net_profit_base"] = str(-1 - 1_877_500_000)
    plan = decode_event(encoded(document)).liquidation_plan
    assert plan is not None
    assert plan.estimated_gross_profit_base == -1
    assert plan.estimated_net_profit_base == -1_877_500_001


def _plan_event(**changes: int) -> UnderwaterUserEvent:
    return msgspec.structs.replace(
        sample_event(), liquidation_plan=msgspec.structs.replace(sample_plan(), **changes)
    )


@pytest.mark.parametrize(
    "changes",
    [
        # Positive gross, costs above it: a negative net.
        {"swap_cost_base": 60_000_000_000, "estimated_net_profit_base": -6_300_000_000},
        # Every value beyond 2**53: exact as decimal strings, not as JSON numbers.
        {
            "estimated_gross_profit_base": 2**200,
            "swap_cost_base": 2**53 + 1,
            "flash_loan_premium_base": 2**64 + 7,
            "gas_cost_base": 2**60 + 3,
            "estimated_net_profit_base": 2**200 - (2**53 + 1) - (2**64 + 7) - (2**60 + 3),
        },
        # A large negative net (beyond -2**53) from costs beyond 2**53.
        {
            "estimated_gross_profit_base": 1,
            "swap_cost_base": 2**255,
            "flash_loan_premium_base": 0,
            "gas_cost_base": 2**54 + 1,
            "estimated_net_profit_base": 1 - 2**255 - (2**54 + 1),
        },
        # The extremes of the ranges.
        {
            "estimated_gross_profit_base": UINT256_MAX,
            "swap_cost_base": UINT256_MAX,
            "flash_loan_premium_base": 0,
            "gas_cost_base": 0,
            "estimated_net_profit_base": 0,
        },
        {
            "estimated_gross_profit_base": -UINT256_MAX,
            "swap_cost_base": 0,
            "flash_loan_premium_base": 0,
            "gas_cost_base": 0,
            "estimated_net_profit_base": -UINT256_MAX,
        },
        # Same asset, inventory mode: no swap, no premium; only gas.
        {
            "swap_cost_base": 0,
            "flash_loan_premium_base": 0,
            "estimated_net_profit_base": GROSS_PROFIT - GAS_COST,
        },
    ],
    ids=["negative-net", "above-2**53", "large-negative-net", "max-gross", "min-gross", "gas-only"],
)
def test_plan_costs_and_net_round_trip_exactly(changes: dict[str, int]) -> None:
    event = _plan_event(**changes)
    document = wire(event)
    for name, value in changes.items():
        assert document["liquidation_plan"][name] == str(value)
    decoded = decode_event(encoded(document))
    assert decoded == event
    assert decoded.liquidation_plan is not None
    for name, value in changes.items():
        assert getattr(decoded.liquidation_plan, name) == value
    assert encode_event(decoded) == encode_event(event)


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
    (
        "missing-net-profit",
        _delete("liquidation_plan.estimated_net_profit_base"),
        "missing required field `estimated_net_profit_base`",
    ),
    (
        "missing-swap-cost",
        _delete("liquidation_plan.swap_cost_base"),
        "missing required field `swap_cost_base`",
    ),
    (
        "number-for-gas-cost",
        _set("liquidation_plan.gas_cost_base", 750_000_000),
        "$.liquidation_plan.gas_cost_base",
    ),
    (
        "negative-swap-cost",
        _set("liquidation_plan.swap_cost_base", "-1"),
        "$.liquidation_plan.swap_cost_base",
    ),
    (
        "negative-premium",
        _set("liquidation_plan.flash_loan_premium_base", "-550000000"),
        "$.liquidation_plan.flash_loan_premium_base",
    ),
    (
        "leading-zero-net",
        _set("liquidation_plan.estimated_net_profit_base", "053122500000"),
        "$.liquidation_plan.estimated_net_profit_base",
    ),
    (
        "cost-above-uint256",
        _set("liquidation_plan.gas_cost_base", str(2**256)),
        "liquidation_plan.gas_cost_base",
    ),
    (
        "net-is-the-gross",
        _set("liquidation_plan.estimated_net_profit_base", "55000000000"),
        "liquidation_plan.estimated_net_profit_base = 55000000000 is not",
    ),
    (
        "net-off-by-one",
        _set("liquidation_plan.estimated_net_profit_base", "53122500001"),
        "liquidation_plan.estimated_net_profit_base = 53122500001 is not",
    ),
    (
        "cost-changed-net-not",
        _set("liquidation_plan.gas_cost_base", "750000001"),
        "liquidation_plan.estimated_net_profit_base",
    ),
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
    (
        "previous-version",
        _set("schema_version", 1),
        "unsupported schema_version 1 (this reader understands 2)",
    ),
    (
        "unknown-version",
        _set("schema_version", 3),
        "unsupported schema_version 3 (this reader understands 2)",
    ),
    ("version-zero", _set("schema_version", 0), "unsupported schema_version 0"),
    ("version-as-string", _set("schema_version", "2"), "$.schema_version"),
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
    future = encoded({"schema_version": 3, "user": USER, "health": "1"})
    with pytest.raises(EventDecodeError, match="unsupported schema_version 3"):
        decode_event(future)


V2_PLAN_FIELDS = (
    "swap_cost_base",
    "flash_loan_premium_base",
    "gas_cost_base",
    "estimated_net_profit_base",
)


def version_1(event: UnderwaterUserEvent) -> Document:
    """``event`` as a version-1 producer wrote it: no plan costs, no net profit."""
    document = wire(event)
    document["schema_version"] = 1
    if document["liquidation_plan"] is not None:
        for name in V2_PLAN_FIELDS:
            del document["liquidation_plan"][name]
    return document


@pytest.mark.parametrize(
    "event",
    [sample_event(), sample_event(pending=False, plan=False)],
    # With a plan, the v1 message also fails on its fields (the envelope path names the
    # version instead); without one, its fields are valid v2 and only the version differs.
    ids=["with-plan", "without-plan"],
)
def test_a_version_1_message_is_rejected_naming_both_versions(
    event: UnderwaterUserEvent,
) -> None:
    with pytest.raises(EventDecodeError) as raised:
        decode_event(encoded(version_1(event)))
    assert str(raised.value) == "unsupported schema_version 1 (this reader understands 2)"


def test_a_version_1_plan_lacks_the_costs_and_the_net() -> None:
    # What the envelope path turns into the version error above.
    document = version_1(sample_event())
    document["schema_version"] = SCHEMA_VERSION
    with pytest.raises(EventDecodeError, match="missing required field `swap_cost_base`"):
        decode_event(encoded(document))


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
        (
            {"schema_version": 1},
            re.escape("unsupported schema_version 1 (this reader understands 2)"),
        ),
        ({"schema_version": 3}, "unsupported schema_version 3"),
        ({"protocol_version": "three"}, "protocol_version"),
        ({"tx_hash": None}, "need a tx_hash"),
    ],
)
def test_invalid_values_cannot_be_constructed(changes: dict[str, object], reason: str) -> None:
    fields = {name: getattr(sample_event(), name) for name in UnderwaterUserEvent.__struct_fields__}
    fields.update(changes)
    with pytest.raises(ValueError, match=reason):
        UnderwaterUserEvent(**fields)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"estimated_net_profit_base": GROSS_PROFIT}, "estimated_net_profit_base = 55000000000"),
        ({"estimated_net_profit_base": NET_PROFIT - 1}, "estimated_net_profit_base"),
        ({"estimated_net_profit_base": NET_PROFIT + 1}, "estimated_net_profit_base"),
        ({"estimated_net_profit_base": -NET_PROFIT}, "estimated_net_profit_base"),
        ({"swap_cost_base": SWAP_COST + 1}, "estimated_net_profit_base"),
        ({"flash_loan_premium_base": 0}, "estimated_net_profit_base"),
        ({"gas_cost_base": GAS_COST - 1}, "estimated_net_profit_base"),
        ({"estimated_gross_profit_base": GROSS_PROFIT + 1}, "estimated_net_profit_base"),
        ({"swap_cost_base": -1}, "liquidation_plan.swap_cost_base = -1 is outside"),
        ({"flash_loan_premium_base": 2**256}, "liquidation_plan.flash_loan_premium_base"),
        ({"gas_cost_base": True}, "liquidation_plan.gas_cost_base must be an int"),
        ({"swap_cost_base": 1.0}, "liquidation_plan.swap_cost_base must be an int"),
        ({"estimated_net_profit_base": "1"}, "estimated_net_profit_base must be an int"),
        # Each value in range, but the net they imply is not: the range check names it.
        (
            {
                "estimated_gross_profit_base": -UINT256_MAX,
                "swap_cost_base": 0,
                "flash_loan_premium_base": 0,
                "gas_cost_base": 1,
                "estimated_net_profit_base": -UINT256_MAX - 1,
            },
            "liquidation_plan.estimated_net_profit_base = -" + str(2**256) + " is outside",
        ),
    ],
    ids=[
        "net-is-gross",
        "net-minus-one",
        "net-plus-one",
        "net-sign-flipped",
        "swap-cost-changed",
        "premium-changed",
        "gas-changed",
        "gross-changed",
        "negative-swap-cost",
        "premium-above-uint256",
        "bool-gas",
        "float-swap-cost",
        "string-net",
        "net-below-range",
    ],
)
def test_invalid_plans_cannot_be_constructed(changes: dict[str, object], reason: str) -> None:
    fields = {name: getattr(sample_plan(), name) for name in LiquidationPlan.__struct_fields__}
    fields.update(changes)
    with pytest.raises(ValueError, match=re.escape(reason)):
        LiquidationPlan(**fields)


def test_the_net_profit_error_names_the_field_and_the_expected_value() -> None:
    with pytest.raises(ValueError, match="estimated_net_profit_base") as raised:
        msgspec.structs.replace(sample_plan(), estimated_net_profit_base=GROSS_PROFIT)
    assert str(raised.value) == (
        "liquidation_plan.estimated_net_profit_base = 55000000000 is not "
        "estimated_gross_profit_base - swap_cost_base - flash_loan_premium_base - "
        "gas_cost_base = 53122500000"
    )


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
        estimated_gross_profit_base=GROSS_PROFIT,
        swap_cost_base=SWAP_COST,
        flash_loan_premium_base=FLASH_LOAN_PREMIUM,
        gas_cost_base=GAS_COST,
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
    assert event.liquidation_plan is not None
    assert event.liquidation_plan.estimated_net_profit_base == NET_PROFIT
    assert event == sample_event()


def test_event_from_without_costs_has_a_net_equal_to_the_gross() -> None:
    event = event_from(
        USER,
        ACCOUNT,
        BLOCK,
        "t",
        prices=PRICES,
        liquidation=liquidation(),
        estimated_gross_profit_base=GROSS_PROFIT,
    )
    plan = event.liquidation_plan
    assert plan is not None
    costs = (plan.swap_cost_base, plan.flash_loan_premium_base, plan.gas_cost_base)
    assert costs == (0, 0, 0)
    assert plan.estimated_net_profit_base == plan.estimated_gross_profit_base == GROSS_PROFIT


@pytest.mark.parametrize(
    ("gross", "swap", "premium", "gas", "net"),
    [
        (GROSS_PROFIT, SWAP_COST, FLASH_LOAN_PREMIUM, GAS_COST, NET_PROFIT),
        (GROSS_PROFIT, 0, 0, 0, GROSS_PROFIT),
        (100, 70, 0, 50, -20),
        (-5, 1, 2, 3, -11),
        (2**200, 2**199, 2**198, 2**60, 2**198 - 2**60),
    ],
    ids=["sample", "no-costs", "negative-net", "negative-gross", "above-2**53"],
)
def test_plan_from_copies_the_costs_and_computes_the_net(
    gross: int, swap: int, premium: int, gas: int, net: int
) -> None:
    symbols = {WETH.lower(): "WETH", USDC.lower(): "USDC"}
    plan = plan_from(
        liquidation(),
        symbols,
        gross,
        swap_cost_base=swap,
        flash_loan_premium_base=premium,
        gas_cost_base=gas,
    )
    assert (plan.estimated_gross_profit_base, plan.swap_cost_base) == (gross, swap)
    assert (plan.flash_loan_premium_base, plan.gas_cost_base) == (premium, gas)
    assert plan.estimated_net_profit_base == net


def test_plan_from_rejects_a_net_out_of_range() -> None:
    symbols = {WETH.lower(): "WETH", USDC.lower(): "USDC"}
    with pytest.raises(ValueError, match="estimated_net_profit_base"):
        plan_from(liquidation(), symbols, -UINT256_MAX, gas_cost_base=1)


def test_event_from_ignores_costs_without_a_liquidation() -> None:
    event = event_from(USER, ACCOUNT, BLOCK, "t", swap_cost_base=1, gas_cost_base=2)
    assert event.liquidation_plan is None
    assert event == event_from(USER, ACCOUNT, BLOCK, "t")


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
        gas_cost_base=2,
        symbols={USDC: "USDC.e"},
    )
    plan = event.liquidation_plan
    assert plan is not None
    assert (plan.collateral_symbol, plan.debt_symbol) == ("WETH", "USDC.e")
    assert (plan.debt_to_cover, plan.estimated_gross_profit_base) == (7, -3)
    assert (plan.gas_cost_base, plan.estimated_net_profit_base) == (2, -5)


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
