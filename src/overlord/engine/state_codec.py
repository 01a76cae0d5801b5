"""The engine's state as bytes and JSON for the checkpoint store, and back, exactly.

Two encodings, each chosen for what it carries:

* **A market** (:class:`~overlord.chain.reader.MarketState`: reserves, eMode categories,
  prices, token addresses) as a JSON document. Dataclasses become objects with every
  field named, mappings become ``[key, value]`` pairs (JSON object keys are strings, and
  reserve ids are not), integers stay integers (Python's JSON keeps uint256 exact). The
  decoder is driven by the dataclasses' own type hints, so a field added to the math
  package is carried without a second list of names here, and a document that does not
  fit them is a :class:`StateCodecError` naming the field.
* **A user's positions** as fixed 67-byte records, one per reserve with a flag set
  (reserve id, flags, scaled aToken and scaled variable-debt balances as 32-byte
  big-endian words), which load into the position table's columns with numpy in one go;
  the rare extras (3.0-3.1 stable debt, 3.3 GHO discount) as a small JSON text beside.
  As in the position table, only flagged reserves are kept, and stable debt only where
  the borrowing flag is set: that is all the account math reads.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from typing import Any, Final

import numpy as np

from overlord.aave import StableDebt, UserAccount, UserReserve
from overlord.aave.configuration import flagged_reserves, user_configuration_word
from overlord.aave.market import GhoDiscount
from overlord.chain.reader import MarketState

BORROWING_FLAG: Final = 1
COLLATERAL_FLAG: Final = 2
RECORD: Final = np.dtype([("reserve", ">u2"), ("flags", "u1"), ("a", ">u8", 4), ("v", ">u8", 4)])
"""One position record: 2 + 1 + 32 + 32 = 67 bytes."""

_WORD: Final = 1 << 256


class StateCodecError(ValueError):
    """A stored document or record does not decode; the message names the field."""


# Markets.


def market_state_document(state: MarketState) -> dict[str, Any]:
    """``state`` as a JSON-serialisable document (see the module docstring)."""
    document = _plain(state)
    assert isinstance(document, dict)
    return document


def market_state_from_document(document: object) -> MarketState:
    """The :class:`MarketState` a :func:`market_state_document` describes.

    Raises:
        StateCodecError: a field is missing, unknown or of the wrong type (named by path).
    """
    state = _build(MarketState, document, "market")
    assert isinstance(state, MarketState)
    return state


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return [[_plain(k), _plain(v)] for k, v in value.items()]
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(kind: Any, value: object, path: str) -> object:
    """``value`` decoded as the type ``kind`` (a dataclass, an annotation), or an error."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        (inner,) = (option for option in options if option is not type(None))
        return _build(inner, value, path)
    if origin is not None and issubclass(origin, Mapping):
        return _build_mapping(typing.get_args(kind), value, path)
    if dataclasses.is_dataclass(kind):
        return _build_dataclass(kind, value, path)
    return _build_scalar(kind, value, path)


def _build_mapping(kinds: tuple[Any, ...], value: object, path: str) -> dict[Any, Any]:
    key_kind, value_kind = kinds
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 for pair in value
    ):
        raise StateCodecError(f"{path}: expected a list of [key, value] pairs")
    return {
        _build(key_kind, key, f"{path}[{n}].key"): _build(value_kind, item, f"{path}[{n}]")
        for n, (key, item) in enumerate(value)
    }


def _build_dataclass(kind: Any, value: object, path: str) -> object:
    if not isinstance(value, dict):
        raise StateCodecError(f"{path}: expected an object")
    fields = {f.name for f in dataclasses.fields(kind)}
    if set(value) != fields:
        extra, missing = sorted(set(value) - fields), sorted(fields - set(value))
        raise StateCodecError(f"{path}: unknown fields {extra}, missing fields {missing}")
    hints = _hints(kind)
    return kind(**{name: _build(hints[name], value[name], f"{path}.{name}") for name in value})


def _build_scalar(kind: Any, value: object, path: str) -> object:
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise StateCodecError(f"{path}: {value!r} is not a {kind.__name__}") from None
    if kind is bool or kind is str:
        if not isinstance(value, kind):
            raise StateCodecError(f"{path}: expected a {kind.__name__}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StateCodecError(f"{path}: expected an integer")
        return value
    raise StateCodecError(f"{path}: cannot decode a {kind}")  # pragma: no cover - a new type


# Positions.


def encode_positions(account: UserAccount) -> tuple[bytes, str | None]:
    """``account``'s flagged positions as records, and its extras as JSON (or ``None``)."""
    flagged = list(flagged_reserves(account.configuration))
    records = np.zeros(len(flagged), dtype=RECORD)
    stable: dict[str, list[int]] = {}
    gho: dict[str, list[int]] = {}
    for n, (reserve_id, borrowing, collateral) in enumerate(flagged):
        position = account.position(reserve_id)
        records[n]["reserve"] = reserve_id
        records[n]["flags"] = (BORROWING_FLAG if borrowing else 0) | (
            COLLATERAL_FLAG if collateral else 0
        )
        records[n]["a"] = _words(position.scaled_atoken_balance)
        records[n]["v"] = _words(position.scaled_variable_debt)
        if position.stable_debt is not None and borrowing:
            debt = position.stable_debt
            stable[str(reserve_id)] = [debt.principal, debt.rate, debt.last_update_timestamp]
        if position.gho_discount is not None:
            gho[str(reserve_id)] = [position.gho_discount.percent, position.gho_discount.last_index]
    extras = {key: value for key, value in (("stable", stable), ("gho", gho)) if value}
    return records.tobytes(), json.dumps(extras, separators=(",", ":")) if extras else None


def decode_positions(address: str, emode: int, blob: bytes, extras: str | None) -> UserAccount:
    """The account :func:`encode_positions` stored.

    Raises:
        StateCodecError: the blob is not whole records, or the extras do not parse.
    """
    records = records_of(blob, address)
    borrowing, collateral, positions = [], [], {}
    stable, gho = _extras(extras, address)
    for record in records:
        reserve_id, flags = int(record["reserve"]), int(record["flags"])
        if flags & BORROWING_FLAG:
            borrowing.append(reserve_id)
        if flags & COLLATERAL_FLAG:
            collateral.append(reserve_id)
        positions[reserve_id] = UserReserve(
            _integer(record["a"]),
            _integer(record["v"]),
            stable.get(reserve_id),
            gho.get(reserve_id),
        )
    return UserAccount(
        address=address,
        configuration=user_configuration_word(borrowing=borrowing, collateral=collateral),
        emode_category=emode,
        positions=types.MappingProxyType(positions),
    )


def records_of(blob: bytes, address: str) -> np.ndarray[Any, np.dtype[Any]]:
    """``blob`` as position records; raises :class:`StateCodecError` if it is not whole."""
    if len(blob) % RECORD.itemsize:
        raise StateCodecError(
            f"user {address}: {len(blob)} bytes of positions is not a whole number of records"
        )
    return np.frombuffer(blob, dtype=RECORD)


def _extras(text: str | None, address: str) -> tuple[dict[int, StableDebt], dict[int, GhoDiscount]]:
    if text is None:
        return {}, {}
    try:
        document = json.loads(text)
        stable = {int(k): StableDebt(*map(int, v)) for k, v in document.get("stable", {}).items()}
        gho = {int(k): GhoDiscount(*map(int, v)) for k, v in document.get("gho", {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise StateCodecError(f"user {address}: extras do not parse: {exc}") from None
    return stable, gho


def _words(value: int) -> list[int]:
    if not 0 <= value < _WORD:
        raise ValueError(f"balance {value} is not a uint256")
    return [(value >> shift) & 0xFFFFFFFFFFFFFFFF for shift in (192, 128, 64, 0)]


def _integer(words: np.ndarray[Any, np.dtype[Any]]) -> int:
    high, upper, middle, low = (int(word) for word in words)
    return (high << 192) | (upper << 128) | (middle << 64) | low
