"""The JSON Schema file agrees with the codec."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from overlord.outputs import events
from overlord.outputs.events import encode_event
from tests.unit.outputs.samples import sample_event, sample_plan

SCHEMAS = Path(__file__).resolve().parents[3] / "docs/schemas"
SCHEMA_PATH = SCHEMAS / f"underwater-user-event-v{events.SCHEMA_VERSION}.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document = json.loads(SCHEMA_PATH.read_text())
    assert isinstance(document, dict)
    return document


def ecma(pattern: str) -> str:
    """A Python pattern of events.py as the schema writes it (ECMA-262 flavour)."""
    return pattern.replace(r"\Z", "$").replace("(?:", "(")


def test_the_schema_file_is_the_current_version(schema: dict[str, Any]) -> None:
    assert SCHEMA_PATH.name == "underwater-user-event-v2.json"
    assert schema["$id"].endswith("/" + SCHEMA_PATH.name)
    assert schema["properties"]["schema_version"] == {"const": events.SCHEMA_VERSION}
    assert str(events.SCHEMA_VERSION) in schema["title"]
    assert [path.name for path in SCHEMAS.glob("underwater-user-event-v*.json")] == [
        SCHEMA_PATH.name
    ]


def test_schema_lists_exactly_the_encoded_fields(schema: dict[str, Any]) -> None:
    document = json.loads(encode_event(sample_event()))
    assert list(schema["required"]) == list(document)
    assert set(schema["properties"]) == set(document)
    account = schema["properties"]["user_account_data"]
    assert list(account["required"]) == list(document["user_account_data"])
    price = schema["properties"]["new_asset_prices"]["items"]
    assert list(price["required"]) == list(document["new_asset_prices"][0])
    assert list(schema["$defs"]["plan"]["required"]) == list(document["liquidation_plan"])


def test_schema_patterns_are_the_codec_patterns(schema: dict[str, Any]) -> None:
    definitions, properties = schema["$defs"], schema["properties"]
    plan = definitions["plan"]["properties"]
    assert definitions["address"]["pattern"] == ecma(events.ADDRESS_PATTERN)
    assert definitions["uint256"]["pattern"] == ecma(events.UINT_PATTERN)
    assert definitions["int256"]["pattern"] == ecma(events.INT_PATTERN)
    assert plan["debt_to_cover"]["pattern"] == ecma(events.DEBT_TO_COVER_PATTERN)
    for name in ("debt_repaid", "swap_cost_base", "flash_loan_premium_base", "gas_cost_base"):
        assert plan[name]["$ref"] == "#/$defs/uint256", name
    for name in ("estimated_gross_profit_base", "estimated_net_profit_base"):
        assert plan[name]["$ref"] == "#/$defs/int256", name
    assert properties["event_id"]["pattern"] == ecma(events.EVENT_ID_PATTERN)
    assert properties["trace_id"]["pattern"] == ecma(events.TRACE_ID_PATTERN)
    assert properties["tx_hash"]["oneOf"][0]["pattern"] == ecma(events.TX_HASH_PATTERN)
    assert properties["raw_tx"]["oneOf"][0]["pattern"] == ecma(events.HEX_DATA_PATTERN)
    assert properties["protocol_version"]["pattern"] == ecma(events.PROTOCOL_VERSION_PATTERN)
    assert definitions["safeUint"]["maximum"] == events.MAX_SAFE_INTEGER


NEGATIVE_NET_PLAN = msgspec.structs.replace(
    sample_plan(),
    estimated_gross_profit_base=-(2**70),
    swap_cost_base=2**60,
    flash_loan_premium_base=2**54,
    gas_cost_base=2**53 + 1,
    estimated_net_profit_base=-(2**70) - 2**60 - 2**54 - (2**53 + 1),
)


@pytest.mark.parametrize(
    "event",
    [
        sample_event(),
        sample_event(pending=False, plan=False, health_factor=2**256 - 1),
        msgspec.structs.replace(sample_event(), liquidation_plan=NEGATIVE_NET_PLAN),
    ],
    ids=["full", "minimal", "negative-net"],
)
def test_encoded_events_validate_against_the_schema(
    schema: dict[str, Any], event: events.UnderwaterUserEvent
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(encode_event(event)))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda document: document.update(schema_version=1), "2 was expected"),
        (
            lambda document: document["liquidation_plan"].pop("estimated_net_profit_base"),
            "'estimated_net_profit_base' is a required property",
        ),
        (
            lambda document: document["liquidation_plan"].update(swap_cost_base="-1"),
            "does not match",
        ),
        (
            lambda document: document["liquidation_plan"].update(gas_cost_base=750_000_000),
            "is not of type 'string'",
        ),
    ],
    ids=["version-1", "missing-net", "negative-cost", "number-cost"],
)
def test_the_schema_rejects_what_the_decoder_rejects(
    schema: dict[str, Any], mutate: Callable[[dict[str, Any]], object], reason: str
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads(encode_event(sample_event()))
    mutate(document)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert errors
    # The plan sits under a oneOf (plan or null): its errors are in the error's context.
    messages = [error.message for error in errors]
    messages += [sub.message for error in errors for sub in error.context or ()]
    assert any(reason in message for message in messages), messages
