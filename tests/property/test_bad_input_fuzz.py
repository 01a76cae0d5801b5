"""Hypothesis-driven bad input: each parser rejects garbage with its own clear error, and
never crashes with anything else (the engine keeps running on what it rejects)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.rpc import RpcError
from overlord.config import ENV_NAMES, SETTING_NAMES, Config, ConfigError, load_config
from overlord.outputs.events import EventDecodeError, decode_event
from overlord.tracker.logsource import decode_liquidation_call
from overlord.tracker.records import LiquidationRecord
from overlord.verify import parse_addresses

ADDRESS = re.compile(r"0x[0-9a-f]{40}")
FAST = settings(max_examples=300, deadline=None)


def _outcome(call: Callable[[], object], *expected: type[Exception]) -> object:
    """What ``call`` returns, or the expected exception it raised (anything else escapes)."""
    try:
        return call()
    except expected as exc:
        return exc


hex_words = st.text(alphabet="0123456789abcdefABCDEFxz", max_size=300)


@FAST
@given(st.lists(st.text(max_size=60), max_size=40))
def test_an_addresses_file_of_anything_gives_addresses_and_numbered_problems(
    lines: list[str],
) -> None:
    addresses, problems = parse_addresses(lines)

    assert all(ADDRESS.fullmatch(address) for address in addresses)
    assert len(addresses) == len(set(addresses))
    assert all(1 <= problem.line <= len(lines) for problem in problems)
    assert len(addresses) + len(problems) <= len(lines)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_are_an_event_or_an_event_decode_error(data: bytes) -> None:
    outcome = _outcome(lambda: decode_event(data), EventDecodeError)
    assert not isinstance(outcome, EventDecodeError) or str(outcome)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@FAST
@given(st.dictionaries(st.sampled_from(["schema_version", "event_id", "address"]), json_values))
def test_json_objects_of_the_wrong_shape_are_refused_by_name(document: dict[str, Any]) -> None:
    outcome = _outcome(lambda: decode_event(json.dumps(document).encode()), EventDecodeError)
    assert isinstance(outcome, EventDecodeError)  # no field set of these makes an event
    assert str(outcome)


@FAST
@given(
    topics=st.lists(st.one_of(st.just(LIQUIDATION_CALL_TOPIC), hex_words), max_size=5),
    data=hex_words,
    tx_hash=st.one_of(hex_words, st.none(), st.integers()),
    log_index=st.one_of(hex_words, st.integers(), st.none()),
    block=st.one_of(hex_words, st.integers()),
)
def test_garbage_logs_are_rpc_errors_never_records_or_crashes(
    topics: list[str], data: str, tx_hash: object, log_index: object, block: object
) -> None:
    log = {
        "topics": topics,
        "data": data,
        "transactionHash": tx_hash,
        "logIndex": log_index,
        "blockNumber": block,
    }
    outcome = _outcome(lambda: decode_liquidation_call(log, 1), RpcError, ValueError)
    if isinstance(outcome, Exception):
        assert str(outcome)
    else:  # only a well-formed log decodes, and then into a valid record
        assert isinstance(outcome, LiquidationRecord)
        assert ADDRESS.fullmatch(outcome.user)


env_names = sorted(name for names in ENV_NAMES.values() for name in names if "FILE" not in name)


@FAST
@given(st.dictionaries(st.sampled_from(env_names), st.text(max_size=30), max_size=6))
def test_any_environment_is_a_config_or_a_config_error_naming_the_setting(
    env: dict[str, str],
) -> None:
    outcome = _outcome(lambda: load_config(None, env, {}), ConfigError)
    if isinstance(outcome, ConfigError):
        assert outcome.setting in SETTING_NAMES or outcome.setting.startswith("chain.")
    else:
        assert isinstance(outcome, Config)
