"""``UnderwaterUserEvent``: what Overlord tells the world about a borrower below health factor 1.

The event is a frozen :class:`msgspec.Struct` holding Python ints. Its wire form is JSON
(spec: docs/events.md and docs/schemas/underwater-user-event-v2.json), language-neutral:

- every integer that can exceed 2**53 (JavaScript's safe range) is a canonical decimal
  **string**: ``total_collateral_base``, the six ``user_account_data`` values, every
  ``new_asset_prices[].price``, and the plan's ``debt_to_cover`` (``"max"`` for
  ``type(uint256).max``), ``debt_repaid``, ``collateral_received``, ``protocol_fee``,
  ``estimated_gross_profit_base``, ``swap_cost_base``, ``flash_loan_premium_base``,
  ``gas_cost_base`` and ``estimated_net_profit_base`` (the gross and the net are the
  signed ones);
- block numbers, timestamps, the chain id and the schema version are JSON integers,
  bounded by 2**53 - 1.

:func:`decode_event` validates everything (types, formats, ranges, EIP-55 checksums of
mixed-case addresses, the schema version, no unknown fields) and either returns a complete
event or raises :class:`EventDecodeError` naming the problem; it never returns a partly
built event. Constructing an event directly runs the same value checks (``ValueError``),
so whatever :func:`encode_event` writes, :func:`decode_event` reads back equal.

:func:`event_from` maps an :class:`overlord.aave.AccountData` and an optional
:class:`overlord.aave.Liquidation` onto an event. It only copies values: every number is
computed elsewhere (the profit estimate and the costs too), except the plan's net profit,
which is the gross minus the costs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
from eth_utils.address import to_checksum_address as _eip55

from overlord.aave import MAX_DEBT_TO_COVER, AccountData, Liquidation
from overlord.aave.account import ACCOUNT_DATA_KEYS

SCHEMA_VERSION: Final = 2
"""The schema version this module writes and the only one it reads."""

UINT256_MAX: Final = 2**256 - 1
MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer a JSON number carries exactly in every language (IEEE double)."""

BLOCK_TRIGGER: Final = "block"
"""The ``trigger`` of :func:`event_id_for` when a block (not a pending tx) found the user."""

MAX_KEYWORD: Final = "max"
"""The wire form of ``debt_to_cover == type(uint256).max`` (liquidate as much as allowed)."""

# Python's ``$`` also matches before a trailing newline, hence ``\Z``; ``[0-9]`` rather than
# ``\d``, which matches every Unicode digit. The JSON Schema file uses the same patterns with
# ``$`` (ECMA-262 semantics).
UINT_PATTERN: Final = r"^(?:0|[1-9][0-9]{0,77})\Z"
INT_PATTERN: Final = r"^(?:0|-?[1-9][0-9]{0,77})\Z"
DEBT_TO_COVER_PATTERN: Final = r"^(?:max|0|[1-9][0-9]{0,77})\Z"
ADDRESS_PATTERN: Final = r"^0x[0-9a-fA-F]{40}\Z"
TX_HASH_PATTERN: Final = r"^0x[0-9a-fA-F]{64}\Z"
HEX_DATA_PATTERN: Final = r"^0x(?:[0-9a-fA-F]{2})*\Z"
EVENT_ID_PATTERN: Final = r"^[0-9a-f]{32}\Z"
TRACE_ID_PATTERN: Final = r"^[0-9A-Za-z_-]{1,64}\Z"
"""Trace ids name files (``hf-traces/<trace_id>.txt``): no dots, no slashes."""
PROTOCOL_VERSION_PATTERN: Final = r"^[0-9]+\.[0-9]+(?:\.[0-9]+)?\Z"
MAX_SYMBOL_LENGTH: Final = 64

_ADDRESS = re.compile(ADDRESS_PATTERN)


@functools.lru_cache(maxsize=1 << 16)
def to_checksum_address(address: str) -> str:
    """EIP-55 form of ``address``, cached: a keccak per address per event was the largest
    cost of building events (about 110 µs each)."""
    return _eip55(address)


_TX_HASH = re.compile(TX_HASH_PATTERN)
_HEX_DATA = re.compile(HEX_DATA_PATTERN)
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_TRACE_ID = re.compile(TRACE_ID_PATTERN)
_PROTOCOL_VERSION = re.compile(PROTOCOL_VERSION_PATTERN)

"""The wire keys of ``user_account_data``: ``getUserAccountData``'s outputs, in order."""


class EventDecodeError(ValueError):
    """The bytes are not a valid version-2 ``UnderwaterUserEvent``; ``str()`` says why."""


# Value checks shared by the event types (and by the trace writer).


def is_valid_trace_id(value: str) -> bool:
    """Whether ``value`` is a usable trace id (1–64 of ``[0-9A-Za-z_-]``)."""
    return _TRACE_ID.match(value) is not None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int subclass; True is never a valid amount or block number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} = {value} is outside [{low}, {high}]")


def _check_uint256(name: str, value: object) -> None:
    _check_int(name, value, 0, UINT256_MAX)


def _check_safe_uint(name: str, value: object) -> None:
    _check_int(name, value, 0, MAX_SAFE_INTEGER)


def _check_text(name: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or pattern.match(value) is None:
        raise ValueError(f"{name} = {value!r} does not match {pattern.pattern}")
    return value


def _check_address(name: str, value: object) -> None:
    """A 20-byte hex address; when it mixes cases, the case must be its EIP-55 checksum."""
    address = _check_text(name, value, _ADDRESS)
    digits = address[2:]
    mixed_case = digits not in (digits.lower(), digits.upper())
    if mixed_case and not _is_checksummed(address):
        raise ValueError(f"{name} = {address!r} has a bad EIP-55 checksum")


@functools.lru_cache(maxsize=4096)
def _is_checksummed(address: str) -> bool:
    # The pool, the reserves and hot borrowers recur in every event; keccak each once.
    return to_checksum_address(address) == address


def _unsupported_version(version: object) -> str:
    return f"unsupported schema_version {version!r} (this reader understands {SCHEMA_VERSION})"


def _check_symbol(name: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_SYMBOL_LENGTH:
        raise ValueError(f"{name} must be a string of at most {MAX_SYMBOL_LENGTH} characters")


# The event, as Python sees it.


class UserAccountData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The six outputs of ``Pool.getUserAccountData``, in order (each a uint256).

    Base amounts in the oracle's base-currency units (``BASE_CURRENCY_UNIT``, 1e8 for USD
    markets), threshold and LTV in bps, health factor in wad (1e18 = 1.0).
    """

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int

    def __post_init__(self) -> None:
        for key, value in zip(ACCOUNT_DATA_KEYS, self.as_tuple(), strict=True):
            _check_uint256(f"user_account_data.{key}", value)

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        """The tuple ``getUserAccountData`` returns."""
        return (
            self.total_collateral_base,
            self.total_debt_base,
            self.available_borrows_base,
            self.current_liquidation_threshold,
            self.ltv,
            self.health_factor,
        )

    @classmethod
    def from_account(cls, account: AccountData) -> UserAccountData:
        """Copy the six values of an :class:`overlord.aave.AccountData`."""
        return cls(
            total_collateral_base=account.total_collateral_base,
            total_debt_base=account.total_debt_base,
            available_borrows_base=account.available_borrows_base,
            current_liquidation_threshold=account.current_liquidation_threshold,
            ltv=account.ltv,
            health_factor=account.health_factor,
        )


class AssetPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A reserve's price as ``AaveOracle.getAssetPrice`` returns it (base-currency units)."""

    reserve: str
    symbol: str
    price: int

    def __post_init__(self) -> None:
        _check_address("new_asset_prices.reserve", self.reserve)
        _check_symbol("new_asset_prices.symbol", self.symbol)
        _check_uint256("new_asset_prices.price", self.price)


_PLAN_UINT_FIELDS: Final = (
    "debt_to_cover",
    "debt_repaid",
    "collateral_received",
    "protocol_fee",
    "swap_cost_base",
    "flash_loan_premium_base",
    "gas_cost_base",
)


def _net_profit(gross: int, swap_cost: int, flash_loan_premium: int, gas_cost: int) -> int:
    """The plan's net profit: the gross minus the three costs (all base-currency units)."""
    return gross - swap_cost - flash_loan_premium - gas_cost


class LiquidationPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The liquidation Overlord would make now: one ``liquidationCall`` and what it moves.

    ``debt_to_cover`` is the argument to pass (``MAX_DEBT_TO_COVER`` = liquidate as much as
    the Pool allows; ``"max"`` on the wire). ``debt_repaid`` is in debt-token units,
    ``collateral_received`` (to the liquidator) and ``protocol_fee`` (to the treasury) in
    collateral-token units.

    The profit and costs are in base-currency units, valued at the event's prices:

    - ``estimated_gross_profit_base``: collateral received minus debt repaid; can be
      negative;
    - ``swap_cost_base``: the fee on selling the received collateral for the debt asset
      (0 when they are the same asset);
    - ``flash_loan_premium_base``: the flash-loan premium (0 in inventory mode, when the
      liquidator repays from its own balance);
    - ``gas_cost_base``: the gas of the liquidation, converted to base-currency units;
    - ``estimated_net_profit_base``: the gross minus the three costs, exactly (checked);
      can be negative.
    """

    collateral_asset: str
    collateral_symbol: str
    debt_asset: str
    debt_symbol: str
    debt_to_cover: int
    debt_repaid: int
    collateral_received: int
    protocol_fee: int
    estimated_gross_profit_base: int
    swap_cost_base: int
    flash_loan_premium_base: int
    gas_cost_base: int
    estimated_net_profit_base: int

    def __post_init__(self) -> None:
        _check_address("liquidation_plan.collateral_asset", self.collateral_asset)
        _check_symbol("liquidation_plan.collateral_symbol", self.collateral_symbol)
        _check_address("liquidation_plan.debt_asset", self.debt_asset)
        _check_symbol("liquidation_plan.debt_symbol", self.debt_symbol)
        for name in _PLAN_UINT_FIELDS:
            _check_uint256(f"liquidation_plan.{name}", getattr(self, name))
        for name in ("estimated_gross_profit_base", "estimated_net_profit_base"):
            _check_int(f"liquidation_plan.{name}", getattr(self, name), -UINT256_MAX, UINT256_MAX)
        net = _net_profit(
            self.estimated_gross_profit_base,
            self.swap_cost_base,
            self.flash_loan_premium_base,
            self.gas_cost_base,
        )
        if self.estimated_net_profit_base != net:
            raise ValueError(
                f"liquidation_plan.estimated_net_profit_base = {self.estimated_net_profit_base}"
                f" is not estimated_gross_profit_base - swap_cost_base"
                f" - flash_loan_premium_base - gas_cost_base = {net}"
            )


class UnderwaterUserEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One borrower found below health factor 1 (or about to be), with a liquidation plan.

    Identity and delivery: ``event_id`` is :func:`event_id_for` of (chain, pool, user, block,
    trigger); a re-sent event carries the same id, so consumers deduplicate on it.
    ``tx_hash``, ``raw_tx`` and ``inclusion_block`` describe the pending oracle transaction
    that triggered the event (all ``None`` when a mined block did). ``block_number`` and
    ``block_timestamp`` are the block whose state (plus the trigger's prices) was evaluated.
    ``liquidation_plan`` is ``None`` when no collateral/debt pair can be liquidated now.

    Raises:
        ValueError: on construction, when a value is out of range or malformed.
    """

    schema_version: int = SCHEMA_VERSION
    event_id: str
    address: str
    trace_id: str
    tx_hash: str | None = None
    raw_tx: str | None = None
    inclusion_block: int | None = None
    total_collateral_base: int
    user_account_data: UserAccountData
    new_asset_prices: tuple[AssetPrice, ...] = ()
    protocol_version: str
    chain_id: int
    pool: str
    block_number: int
    block_timestamp: int
    liquidation_plan: LiquidationPlan | None = None

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(_unsupported_version(self.schema_version))
        _check_text("event_id", self.event_id, _EVENT_ID)
        _check_address("address", self.address)
        _check_text("trace_id", self.trace_id, _TRACE_ID)
        self._check_trigger()
        self._check_block()
        _check_uint256("total_collateral_base", self.total_collateral_base)
        if self.total_collateral_base != self.user_account_data.total_collateral_base:
            raise ValueError(
                "total_collateral_base differs from user_account_data.totalCollateralBase"
            )

    def _check_trigger(self) -> None:
        if self.tx_hash is None:
            if self.raw_tx is not None or self.inclusion_block is not None:
                raise ValueError("raw_tx and inclusion_block need a tx_hash")
            return
        _check_text("tx_hash", self.tx_hash, _TX_HASH)
        if self.raw_tx is not None:
            _check_text("raw_tx", self.raw_tx, _HEX_DATA)
        if self.inclusion_block is not None:
            _check_safe_uint("inclusion_block", self.inclusion_block)

    def _check_block(self) -> None:
        _check_text("protocol_version", self.protocol_version, _PROTOCOL_VERSION)
        _check_int("chain_id", self.chain_id, 1, MAX_SAFE_INTEGER)
        _check_address("pool", self.pool)
        _check_safe_uint("block_number", self.block_number)
        _check_safe_uint("block_timestamp", self.block_timestamp)

    @property
    def health_factor(self) -> int:
        """The health factor in wad (``user_account_data.health_factor``)."""
        return self.user_account_data.health_factor


def event_id_for(*, chain_id: int, pool: str, user: str, block_number: int, trigger: str) -> str:
    """The deterministic id of the event for ``user`` at ``block_number``.

    ``trigger`` is the pending transaction's hash, or :data:`BLOCK_TRIGGER` when a mined
    block found the user. Addresses and the hash are compared case-insensitively. The id is
    the first 32 hex digits of SHA-256 over
    ``"overlord.underwater.v1|<chain_id>|<pool>|<user>|<block_number>|<trigger>"``
    (lower-case hex addresses and hash), so any producer can compute it.
    """
    key = "|".join(
        (
            "overlord.underwater.v1",
            str(chain_id),
            pool.lower(),
            user.lower(),
            str(block_number),
            trigger.lower(),
        )
    )
    return hashlib.sha256(key.encode("ascii")).hexdigest()[:32]


# The wire form: big integers as canonical decimal strings. Formats are checked here (with
# the JSON path in msgspec's message); ranges and checksums by the event types above.

_Uint = Annotated[str, msgspec.Meta(pattern=UINT_PATTERN)]
_Int = Annotated[str, msgspec.Meta(pattern=INT_PATTERN)]
_DebtToCover = Annotated[str, msgspec.Meta(pattern=DEBT_TO_COVER_PATTERN)]
_Address = Annotated[str, msgspec.Meta(pattern=ADDRESS_PATTERN)]
_Symbol = Annotated[str, msgspec.Meta(max_length=MAX_SYMBOL_LENGTH)]
_SafeUint = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]


class _WireAccountData(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    total_collateral_base: _Uint
    total_debt_base: _Uint
    available_borrows_base: _Uint
    current_liquidation_threshold: _Uint
    ltv: _Uint
    health_factor: _Uint


class _WirePrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reserve: _Address
    symbol: _Symbol
    price: _Uint


class _WirePlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    collateral_asset: _Address
    collateral_symbol: _Symbol
    debt_asset: _Address
    debt_symbol: _Symbol
    debt_to_cover: _DebtToCover
    debt_repaid: _Uint
    collateral_received: _Uint
    protocol_fee: _Uint
    estimated_gross_profit_base: _Int
    swap_cost_base: _Uint
    flash_loan_premium_base: _Uint
    gas_cost_base: _Uint
    estimated_net_profit_base: _Int


class _WireEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Every field is required, nullable ones included: an absent key is an error, not a None.
    schema_version: int
    event_id: Annotated[str, msgspec.Meta(pattern=EVENT_ID_PATTERN)]
    address: _Address
    trace_id: Annotated[str, msgspec.Meta(pattern=TRACE_ID_PATTERN)]
    tx_hash: Annotated[str, msgspec.Meta(pattern=TX_HASH_PATTERN)] | None
    raw_tx: Annotated[str, msgspec.Meta(pattern=HEX_DATA_PATTERN)] | None
    inclusion_block: _SafeUint | None
    total_collateral_base: _Uint
    user_account_data: _WireAccountData
    new_asset_prices: list[_WirePrice]
    protocol_version: Annotated[str, msgspec.Meta(pattern=PROTOCOL_VERSION_PATTERN)]
    chain_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]
    pool: _Address
    block_number: _SafeUint
    block_timestamp: _SafeUint
    liquidation_plan: _WirePlan | None


class _Envelope(msgspec.Struct):
    """Just the version, read when a message fails to decode, to name the real problem."""

    schema_version: object = None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_WireEvent)
_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)


def _wire_plan(plan: LiquidationPlan) -> _WirePlan:
    to_cover = plan.debt_to_cover
    return _WirePlan(
        collateral_asset=plan.collateral_asset,
        collateral_symbol=plan.collateral_symbol,
        debt_asset=plan.debt_asset,
        debt_symbol=plan.debt_symbol,
        debt_to_cover=MAX_KEYWORD if to_cover == MAX_DEBT_TO_COVER else str(to_cover),
        debt_repaid=str(plan.debt_repaid),
        collateral_received=str(plan.collateral_received),
        protocol_fee=str(plan.protocol_fee),
        estimated_gross_profit_base=str(plan.estimated_gross_profit_base),
        swap_cost_base=str(plan.swap_cost_base),
        flash_loan_premium_base=str(plan.flash_loan_premium_base),
        gas_cost_base=str(plan.gas_cost_base),
        estimated_net_profit_base=str(plan.estimated_net_profit_base),
    )


def _to_wire(event: UnderwaterUserEvent) -> _WireEvent:
    account = event.user_account_data
    plan = event.liquidation_plan
    return _WireEvent(
        schema_version=event.schema_version,
        event_id=event.event_id,
        address=event.address,
        trace_id=event.trace_id,
        tx_hash=event.tx_hash,
        raw_tx=event.raw_tx,
        inclusion_block=event.inclusion_block,
        total_collateral_base=str(event.total_collateral_base),
        user_account_data=_WireAccountData(
            total_collateral_base=str(account.total_collateral_base),
            total_debt_base=str(account.total_debt_base),
            available_borrows_base=str(account.available_borrows_base),
            current_liquidation_threshold=str(account.current_liquidation_threshold),
            ltv=str(account.ltv),
            health_factor=str(account.health_factor),
        ),
        new_asset_prices=[
            _WirePrice(reserve=p.reserve, symbol=p.symbol, price=str(p.price))
            for p in event.new_asset_prices
        ],
        protocol_version=event.protocol_version,
        chain_id=event.chain_id,
        pool=event.pool,
        block_number=event.block_number,
        block_timestamp=event.block_timestamp,
        liquidation_plan=None if plan is None else _wire_plan(plan),
    )


def _plan_from_wire(plan: _WirePlan) -> LiquidationPlan:
    to_cover = plan.debt_to_cover
    return LiquidationPlan(
        collateral_asset=plan.collateral_asset,
        collateral_symbol=plan.collateral_symbol,
        debt_asset=plan.debt_asset,
        debt_symbol=plan.debt_symbol,
        debt_to_cover=MAX_DEBT_TO_COVER if to_cover == MAX_KEYWORD else int(to_cover),
        debt_repaid=int(plan.debt_repaid),
        collateral_received=int(plan.collateral_received),
        protocol_fee=int(plan.protocol_fee),
        estimated_gross_profit_base=int(plan.estimated_gross_profit_base),
        swap_cost_base=int(plan.swap_cost_base),
        flash_loan_premium_base=int(plan.flash_loan_premium_base),
        gas_cost_base=int(plan.gas_cost_base),
        estimated_net_profit_base=int(plan.estimated_net_profit_base),
    )


def _from_wire(wire: _WireEvent) -> UnderwaterUserEvent:
    # The patterns admit only canonical decimals, so int() cannot fail or accept "1_0".
    account = wire.user_account_data
    plan = wire.liquidation_plan
    return UnderwaterUserEvent(
        schema_version=wire.schema_version,
        event_id=wire.event_id,
        address=wire.address,
        trace_id=wire.trace_id,
        tx_hash=wire.tx_hash,
        raw_tx=wire.raw_tx,
        inclusion_block=wire.inclusion_block,
        total_collateral_base=int(wire.total_collateral_base),
        user_account_data=UserAccountData(
            total_collateral_base=int(account.total_collateral_base),
            total_debt_base=int(account.total_debt_base),
            available_borrows_base=int(account.available_borrows_base),
            current_liquidation_threshold=int(account.current_liquidation_threshold),
            ltv=int(account.ltv),
            health_factor=int(account.health_factor),
        ),
        new_asset_prices=tuple(
            AssetPrice(reserve=p.reserve, symbol=p.symbol, price=int(p.price))
            for p in wire.new_asset_prices
        ),
        protocol_version=wire.protocol_version,
        chain_id=wire.chain_id,
        pool=wire.pool,
        block_number=wire.block_number,
        block_timestamp=wire.block_timestamp,
        liquidation_plan=None if plan is None else _plan_from_wire(plan),
    )


def encode_event(event: UnderwaterUserEvent) -> bytes:
    """The event as compact UTF-8 JSON (fields in declaration order: deterministic bytes)."""
    return _ENCODER.encode(_to_wire(event))


def _version_problem(data: bytes) -> str | None:
    try:
        version = _ENVELOPE_DECODER.decode(data).schema_version
    except msgspec.DecodeError:
        return None
    # Only a well-formed other version explains the failure; a bad one is just a bad field.
    if not isinstance(version, int) or isinstance(version, bool) or version == SCHEMA_VERSION:
        return None
    return _unsupported_version(version)


def decode_event(data: bytes) -> UnderwaterUserEvent:
    """Parse and validate one JSON-encoded event.

    Raises:
        EventDecodeError: the bytes are not JSON, a field is missing, unknown, of the wrong
            type or malformed (bad address, checksum, decimal string), a value is out of
            range, the plan's net profit is not its gross minus its costs, or the schema
            version is not 2 (:data:`SCHEMA_VERSION`). The message names the field, or both
            versions.
    """
    try:
        wire = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        # A message from another schema version fails on its fields; say that instead.
        raise EventDecodeError(_version_problem(data) or f"invalid event: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"not valid JSON: {exc}") from exc
    if wire.schema_version != SCHEMA_VERSION:
        raise EventDecodeError(_unsupported_version(wire.schema_version))
    try:
        return _from_wire(wire)
    except ValueError as exc:
        raise EventDecodeError(f"invalid event: {exc}") from exc


# Building an event from the math's results.


@dataclass(frozen=True, slots=True)
class BlockContext:
    """Where and when the account was evaluated: chain, Pool, protocol version, block."""

    chain_id: int
    pool: str
    protocol_version: str
    block_number: int
    block_timestamp: int


@dataclass(frozen=True, slots=True)
class PendingTrigger:
    """The pending oracle transaction whose prices were applied, and where it should land."""

    tx_hash: str
    raw_tx: str | None
    inclusion_block: int


def _symbol_table(
    symbols: Mapping[str, str] | None, prices: Iterable[AssetPrice]
) -> dict[str, str]:
    table = {price.reserve.lower(): price.symbol for price in prices}
    table.update((asset.lower(), symbol) for asset, symbol in (symbols or {}).items())
    return table


def _symbol(table: Mapping[str, str], asset: str) -> str:
    try:
        return table[asset.lower()]
    except KeyError:
        raise ValueError(f"no symbol for asset {asset} (pass it in symbols)") from None


def plan_from(
    liquidation: Liquidation,
    symbols: Mapping[str, str],
    estimated_gross_profit_base: int,
    *,
    swap_cost_base: int = 0,
    flash_loan_premium_base: int = 0,
    gas_cost_base: int = 0,
) -> LiquidationPlan:
    """Copy a :class:`overlord.aave.Liquidation` into a plan (``symbols`` keyed lower-case).

    The gross profit and the three costs (base-currency units, see
    :class:`LiquidationPlan`) are copied; ``estimated_net_profit_base`` is the gross minus
    the costs.

    Raises:
        ValueError: an asset has no symbol, or a value (the net included) is out of range.
    """
    return LiquidationPlan(
        collateral_asset=to_checksum_address(liquidation.collateral_asset),
        collateral_symbol=_symbol(symbols, liquidation.collateral_asset),
        debt_asset=to_checksum_address(liquidation.debt_asset),
        debt_symbol=_symbol(symbols, liquidation.debt_asset),
        debt_to_cover=liquidation.debt_to_cover,
        debt_repaid=liquidation.debt_repaid,
        collateral_received=liquidation.collateral_to_liquidator,
        protocol_fee=liquidation.protocol_fee,
        estimated_gross_profit_base=estimated_gross_profit_base,
        swap_cost_base=swap_cost_base,
        flash_loan_premium_base=flash_loan_premium_base,
        gas_cost_base=gas_cost_base,
        estimated_net_profit_base=_net_profit(
            estimated_gross_profit_base, swap_cost_base, flash_loan_premium_base, gas_cost_base
        ),
    )


def event_from(
    user: str,
    account: AccountData,
    block: BlockContext,
    trace_id: str,
    *,
    prices: Iterable[AssetPrice] = (),
    liquidation: Liquidation | None = None,
    estimated_gross_profit_base: int | None = None,
    swap_cost_base: int = 0,
    flash_loan_premium_base: int = 0,
    gas_cost_base: int = 0,
    symbols: Mapping[str, str] | None = None,
    pending: PendingTrigger | None = None,
) -> UnderwaterUserEvent:
    """Build the event for ``user`` from values computed elsewhere.

    ``prices`` are the oracle prices the evaluation used (``new_asset_prices``).
    ``liquidation`` (the best pair, or ``None``) needs ``estimated_gross_profit_base``;
    its assets' symbols come from ``symbols`` (asset → symbol) or else from ``prices``.
    ``swap_cost_base``, ``flash_loan_premium_base`` and ``gas_cost_base`` are the plan's
    costs (base-currency units, see :class:`LiquidationPlan`); the plan's net profit is the
    gross minus them (:func:`plan_from`). Without a ``liquidation`` they are ignored.
    ``pending`` is the pending transaction that triggered the evaluation, if any; it is part
    of the event id. Addresses are written in EIP-55 form.

    Raises:
        ValueError: a plan without a profit estimate, an asset without a symbol, or a value
            the event does not accept (see :class:`UnderwaterUserEvent`).
    """
    price_list = tuple(prices)
    plan = None
    if liquidation is not None:
        if estimated_gross_profit_base is None:
            raise ValueError("a liquidation plan needs estimated_gross_profit_base")
        table = _symbol_table(symbols, price_list)
        plan = plan_from(
            liquidation,
            table,
            estimated_gross_profit_base,
            swap_cost_base=swap_cost_base,
            flash_loan_premium_base=flash_loan_premium_base,
            gas_cost_base=gas_cost_base,
        )
    address = to_checksum_address(user)
    pool = to_checksum_address(block.pool)
    trigger = BLOCK_TRIGGER if pending is None else pending.tx_hash
    return UnderwaterUserEvent(
        event_id=event_id_for(
            chain_id=block.chain_id,
            pool=pool,
            user=address,
            block_number=block.block_number,
            trigger=trigger,
        ),
        address=address,
        trace_id=trace_id,
        tx_hash=None if pending is None else pending.tx_hash,
        raw_tx=None if pending is None else pending.raw_tx,
        inclusion_block=None if pending is None else pending.inclusion_block,
        total_collateral_base=account.total_collateral_base,
        user_account_data=UserAccountData.from_account(account),
        new_asset_prices=price_list,
        protocol_version=str(block.protocol_version),
        chain_id=block.chain_id,
        pool=pool,
        block_number=block.block_number,
        block_timestamp=block.block_timestamp,
        liquidation_plan=plan,
    )
