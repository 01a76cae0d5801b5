"""Load a market snapshot (JSON) into the math package's values, with precise errors.

The format is documented in docs/snapshot-format.md. Every problem is reported as a
:class:`SnapshotError` naming the field by its path (``reserves[2].liquidity_index``), so a
user can fix the file without guessing. Nothing is defaulted silently except the optional
fields the format documents as optional.

Integers may be JSON numbers, decimal strings or ``0x`` hex strings (uint256 values do not
fit in JSON parsers that use doubles); floats and booleans are rejected where an integer is
expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from overlord.aave.configuration import (
    EModeCategory,
    ReserveConfiguration,
    reserve_configuration_fields,
    user_configuration_word,
)
from overlord.aave.market import GhoDiscount, Market, Reserve, StableDebt, UserAccount, UserReserve
from overlord.aave.versions import ProtocolVersion
from overlord.aave.wadray import UINT256_MAX

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_BASE_CURRENCY_UNIT = 10**8


class SnapshotError(ValueError):
    """The snapshot is malformed; the message names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A market at one block and the users to evaluate in it."""

    market: Market
    block_timestamp: int
    users: tuple[UserAccount, ...]
    base_currency_unit: int = DEFAULT_BASE_CURRENCY_UNIT
    block_number: int | None = None

    def symbol(self, asset: str) -> str:
        """The reserve's symbol, or a shortened address."""
        for reserve in self.market.reserves.values():
            if reserve.asset == asset and reserve.symbol:
                return reserve.symbol
        return asset[:10]

    def user(self, address: str) -> UserAccount:
        """The snapshot's user with ``address``; raises :class:`SnapshotError` if absent."""
        wanted = address.lower()
        for user in self.users:
            if user.address == wanted:
                return user
        raise SnapshotError("users", f"no user {address} in the snapshot")


class _Fields:
    """A JSON object with path-aware typed accessors."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise SnapshotError(path or "snapshot", f"expected an object, got {_kind(value)}")
        self.data: dict[str, Any] = value
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> object:
        if not self.has(key):
            raise SnapshotError(self.at(key), "missing required field")
        return self.data[key]

    def integer(self, key: str, default: int | None = None, *, bits: int = 256) -> int:
        if not self.has(key):
            if default is None:
                raise SnapshotError(self.at(key), "missing required field")
            return default
        return parse_integer(self.data[key], self.at(key), bits=bits)

    def boolean(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise SnapshotError(self.at(key), f"expected true or false, got {_kind(value)}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        if not self.has(key):
            if default is None:
                raise SnapshotError(self.at(key), "missing required field")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise SnapshotError(self.at(key), f"expected a string, got {_kind(value)}")
        return value

    def address(self, key: str) -> str:
        return parse_address(self.raw(key), self.at(key))

    def items(self, key: str, *, required: bool = True) -> list[_Fields]:
        if not self.has(key):
            if required:
                raise SnapshotError(self.at(key), "missing required field")
            return []
        value = self.data[key]
        if not isinstance(value, list):
            raise SnapshotError(self.at(key), f"expected a list, got {_kind(value)}")
        return [_Fields(item, f"{self.at(key)}[{index}]") for index, item in enumerate(value)]

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise SnapshotError(
                self.at(unknown[0]), f"unknown field (allowed: {', '.join(sorted(allowed))})"
            )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Decimal | float):
        return f"non-integer number {value}"
    return f"{type(value).__name__} {value!r}"


def parse_integer(value: object, path: str, *, bits: int = 256) -> int:
    """Parse a non-negative integer of at most ``bits`` bits from a number or string."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            number = None
    if number is None:
        raise SnapshotError(
            path, f"expected an integer (number, decimal string or 0x hex), got {_kind(value)}"
        )
    limit = UINT256_MAX if bits == 256 else (1 << bits) - 1
    if not 0 <= number <= limit:
        raise SnapshotError(path, f"{number} is outside 0..{limit}")
    return number


def parse_address(value: object, path: str) -> str:
    """Parse a 20-byte hex address into the lower-case form the math package uses."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise SnapshotError(
            path, f"expected a 0x-prefixed 40-hex-digit address, got {_kind(value)}"
        )
    return value.lower()


_CONFIGURATION_FIELDS = set(reserve_configuration_fields())
_RESERVE_FIELDS = {
    "id",
    "asset",
    "symbol",
    "configuration",
    "liquidity_index",
    "variable_borrow_index",
    "current_liquidity_rate",
    "current_variable_borrow_rate",
    "last_update_timestamp",
    "liquidation_grace_period_until",
    "price",
}


def _configuration(fields: _Fields) -> ReserveConfiguration:
    value = fields.raw("configuration")
    path = fields.at("configuration")
    if not isinstance(value, dict):
        return ReserveConfiguration.decode(parse_integer(value, path))
    decoded = _Fields(value, path)
    decoded.reject_unknown(_CONFIGURATION_FIELDS)
    defaults = ReserveConfiguration()
    values: dict[str, int | bool] = {}
    for name in _CONFIGURATION_FIELDS:
        default = getattr(defaults, name)
        if isinstance(default, bool):
            values[name] = decoded.boolean(name, default)
        else:
            values[name] = decoded.integer(name, default)
    try:
        return ReserveConfiguration(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SnapshotError(path, str(exc)) from None


def _reserve(fields: _Fields) -> tuple[Reserve, int]:
    fields.reject_unknown(_RESERVE_FIELDS)
    reserve = Reserve(
        id=fields.integer("id", bits=7),
        asset=fields.address("asset"),
        symbol=fields.text("symbol", ""),
        configuration=_configuration(fields),
        liquidity_index=fields.integer("liquidity_index"),
        variable_borrow_index=fields.integer("variable_borrow_index"),
        current_liquidity_rate=fields.integer("current_liquidity_rate", 0),
        current_variable_borrow_rate=fields.integer("current_variable_borrow_rate", 0),
        last_update_timestamp=fields.integer("last_update_timestamp", bits=40),
        liquidation_grace_period_until=fields.integer("liquidation_grace_period_until", 0, bits=40),
    )
    return reserve, fields.integer("price")


_EMODE_FIELDS = {
    "id",
    "ltv",
    "liquidation_threshold",
    "liquidation_bonus",
    "label",
    "price_source",
    "collateral_bitmap",
    "borrowable_bitmap",
    "ltvzero_bitmap",
}


def _emode_category(fields: _Fields) -> EModeCategory:
    fields.reject_unknown(_EMODE_FIELDS)
    category_id = fields.integer("id", bits=8)
    if category_id == 0:
        raise SnapshotError(fields.at("id"), "category 0 means no eMode and cannot be defined")
    return EModeCategory(
        id=category_id,
        ltv=fields.integer("ltv", bits=16),
        liquidation_threshold=fields.integer("liquidation_threshold", bits=16),
        liquidation_bonus=fields.integer("liquidation_bonus", bits=16),
        label=fields.text("label", ""),
        price_source=fields.address("price_source") if fields.has("price_source") else None,
        collateral_bitmap=fields.integer("collateral_bitmap", 0, bits=128),
        borrowable_bitmap=fields.integer("borrowable_bitmap", 0, bits=128),
        ltvzero_bitmap=fields.integer("ltvzero_bitmap", 0, bits=128),
    )


_POSITION_FIELDS = {
    "asset",
    "scaled_atoken_balance",
    "scaled_variable_debt",
    "collateral",
    "borrowing",
    "stable_debt",
    "gho_discount",
}
_USER_FIELDS = {"address", "configuration", "emode_category", "positions"}


def _position(fields: _Fields) -> UserReserve:
    fields.reject_unknown(_POSITION_FIELDS)
    stable = None
    if fields.has("stable_debt"):
        entry = _Fields(fields.raw("stable_debt"), fields.at("stable_debt"))
        entry.reject_unknown({"principal", "rate", "last_update_timestamp"})
        stable = StableDebt(
            principal=entry.integer("principal"),
            rate=entry.integer("rate"),
            last_update_timestamp=entry.integer("last_update_timestamp", bits=40),
        )
    discount = None
    if fields.has("gho_discount"):
        entry = _Fields(fields.raw("gho_discount"), fields.at("gho_discount"))
        entry.reject_unknown({"percent", "last_index"})
        discount = GhoDiscount(
            percent=entry.integer("percent", bits=16), last_index=entry.integer("last_index")
        )
    return UserReserve(
        scaled_atoken_balance=fields.integer("scaled_atoken_balance", 0),
        scaled_variable_debt=fields.integer("scaled_variable_debt", 0),
        stable_debt=stable,
        gho_discount=discount,
    )


def _user(fields: _Fields, ids_by_asset: Mapping[str, int]) -> UserAccount:
    fields.reject_unknown(_USER_FIELDS)
    positions: dict[int, UserReserve] = {}
    borrowing: list[int] = []
    collateral: list[int] = []
    flags_given = False
    for entry in fields.items("positions", required=False):
        asset = entry.address("asset")
        if asset not in ids_by_asset:
            raise SnapshotError(entry.at("asset"), f"{asset} is not one of the snapshot's reserves")
        reserve_id = ids_by_asset[asset]
        if reserve_id in positions:
            raise SnapshotError(entry.at("asset"), f"a second position in {asset}")
        positions[reserve_id] = _position(entry)
        flags_given |= entry.has("collateral") or entry.has("borrowing")
        if entry.boolean("collateral", False):
            collateral.append(reserve_id)
        if entry.boolean("borrowing", False):
            borrowing.append(reserve_id)
    if fields.has("configuration"):
        if flags_given:
            raise SnapshotError(
                fields.at("configuration"),
                "give either the configuration word or collateral/borrowing flags on the "
                "positions, not both",
            )
        configuration = fields.integer("configuration")
    elif flags_given:
        configuration = user_configuration_word(borrowing=borrowing, collateral=collateral)
    else:
        raise SnapshotError(
            fields.at("configuration"),
            "missing required field (or give collateral/borrowing flags on the positions)",
        )
    return UserAccount(
        address=fields.address("address"),
        configuration=configuration,
        emode_category=fields.integer("emode_category", 0, bits=8),
        positions=positions,
    )


_TOP_FIELDS = {
    "protocol_version",
    "block_timestamp",
    "block_number",
    "base_currency_unit",
    "reserves_count",
    "reserves",
    "emode_categories",
    "prices",
    "users",
    "description",
}


def parse_snapshot(document: object) -> Snapshot:
    """Build a :class:`Snapshot` from a decoded JSON document."""
    top = _Fields(document, "")
    top.reject_unknown(_TOP_FIELDS)
    version_text = top.text("protocol_version")
    try:
        version = ProtocolVersion.parse(version_text)
    except ValueError as exc:
        raise SnapshotError("protocol_version", str(exc)) from None
    reserves: dict[int, Reserve] = {}
    prices: dict[str, int] = {}
    for entry in top.items("reserves"):
        reserve, price = _reserve(entry)
        if reserve.id in reserves:
            raise SnapshotError(entry.at("id"), f"reserve id {reserve.id} appears twice")
        if reserve.asset in prices:
            raise SnapshotError(entry.at("asset"), f"asset {reserve.asset} appears twice")
        reserves[reserve.id] = reserve
        prices[reserve.asset] = price
    if top.has("prices"):
        extra = _Fields(top.raw("prices"), "prices")
        for key in extra.data:
            asset = parse_address(key, f"prices.{key}")
            prices[asset] = extra.integer(key)
    categories: dict[int, EModeCategory] = {}
    for entry in top.items("emode_categories", required=False):
        category = _emode_category(entry)
        categories[category.id] = category
    ids_by_asset = {reserve.asset: reserve.id for reserve in reserves.values()}
    users = tuple(_user(entry, ids_by_asset) for entry in top.items("users"))
    market = Market(
        version=version,
        reserves=reserves,
        prices=prices,
        emode_categories=categories,
        reserves_count=top.integer("reserves_count", bits=8) if top.has("reserves_count") else None,
    )
    return Snapshot(
        market=market,
        block_timestamp=top.integer("block_timestamp", bits=40),
        users=users,
        base_currency_unit=top.integer("base_currency_unit", DEFAULT_BASE_CURRENCY_UNIT),
        block_number=top.integer("block_number") if top.has("block_number") else None,
    )


def load_snapshot(path: Path) -> Snapshot:
    """Read and parse a snapshot file; raises :class:`SnapshotError` for every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError("", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        # Floats become Decimal so that the field that holds one is named in the error.
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            "", f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    return parse_snapshot(document)
