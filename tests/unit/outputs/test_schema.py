"""The JSON Schema file agrees with the codec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from overlord.outputs import events
from overlord.outputs.events import encode_event
from tests.unit.outputs.samples import sample_event

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs/schemas/underwater-user-event-v1.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document = json.loads(SCHEMA_PATH.read_text())
    assert isinstance(document, dict)
    return document


def ecma(pattern: str) -> str:
    """A Python pattern of events.py as the schema writes it (ECMA-262 flavour)."""
    return pattern.replace(r"\Z", "$").replace("(?:", "(")


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
    assert properties["event_id"]["pattern"] == ecma(events.EVENT_ID_PATTERN)
    assert properties["trace_id"]["pattern"] == ecma(events.TRACE_ID_PATTERN)
    assert properties["tx_hash"]["oneOf"][0]["pattern"] == ecma(events.TX_HASH_PATTERN)
    assert properties["raw_tx"]["oneOf"][0]["pattern"] == ecma(events.HEX_DATA_PATTERN)
    assert properties["protocol_version"]["pattern"] == ecma(events.PROTOCOL_VERSION_PATTERN)
    assert definitions["safeUint"]["maximum"] == events.MAX_SAFE_INTEGER


@pytest.mark.parametrize(
    "event",
    [sample_event(), sample_event(pending=False, plan=False, health_factor=2**256 - 1)],
    ids=["full", "minimal"],
)
def test_encoded_events_validate_against_the_schema(
    schema: dict[str, Any], event: events.UnderwaterUserEvent
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(encode_event(event)))
