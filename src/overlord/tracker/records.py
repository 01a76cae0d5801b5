"""One liquidation, as every tracker source reports it.

A :class:`LiquidationRecord` is what the log source (``LiquidationCall`` logs) and the
subgraph source (``liquidationCalls``) both produce, so delta detection, the seen-set and
the sinks never care where an event came from. Its :attr:`~LiquidationRecord.id` is the
Aave v3 subgraph's own id for the entity, ``<tx hash>:<log index>``, so a liquidation seen
by both sources is one event.

Amounts are integers in the asset's smallest unit; addresses are lower-case ``0x`` hex.
Fields one source lacks are ``None``: the subgraph has no block number (it has a
timestamp) and no ``receiveAToken``; logs have no symbols.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

_HASH: Final = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS: Final = re.compile(r"0x[0-9a-f]{40}")


class Source(StrEnum):
    """Where a record came from."""

    LOGS = "logs"
    SUBGRAPH = "subgraph"


def record_id(tx_hash: str, log_index: int) -> str:
    """The stable id of the liquidation logged at ``log_index`` of ``tx_hash``.

    >>> record_id("0x" + "AB" * 32, 7) == "0x" + "ab" * 32 + ":7"
    True
    """
    return f"{tx_hash.lower()}:{log_index}"


@dataclass(frozen=True, slots=True)
class LiquidationRecord:
    """A ``LiquidationCall``: who was liquidated, by whom, of what, when.

    Raises ``ValueError`` on construction when a hash or an address is malformed or an
    amount is negative, so a garbage answer from a node or the subgraph never becomes an
    event.
    """

    id: str
    tx_hash: str
    log_index: int
    timestamp: int
    user: str
    liquidator: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int
    liquidated_collateral_amount: int
    source: Source
    block_number: int | None = None
    receive_a_token: bool | None = None
    collateral_symbol: str | None = None
    debt_symbol: str | None = None

    def __post_init__(self) -> None:
        if not _HASH.fullmatch(self.tx_hash):
            raise ValueError(f"liquidation: malformed transaction hash {self.tx_hash!r}")
        for name in ("user", "liquidator", "collateral_asset", "debt_asset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
                raise ValueError(f"liquidation {self.id}: malformed {name} {value!r}")
        for name in ("log_index", "timestamp", "debt_to_cover", "liquidated_collateral_amount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"liquidation {self.id}: {name} must be a non-negative integer")
        if self.block_number is not None and self.block_number < 0:
            raise ValueError(f"liquidation {self.id}: negative block number")
        if self.id != record_id(self.tx_hash, self.log_index):
            raise ValueError(
                f"liquidation: id {self.id!r} is not {record_id(self.tx_hash, self.log_index)!r}"
            )

    def to_document(self) -> dict[str, Any]:
        """A JSON-ready dict (amounts as decimal strings, which JSON numbers cannot hold)."""
        document = asdict(self)
        document["source"] = self.source.value
        document["debt_to_cover"] = str(self.debt_to_cover)
        document["liquidated_collateral_amount"] = str(self.liquidated_collateral_amount)
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> LiquidationRecord:
        """The inverse of :meth:`to_document`; ``ValueError``/``KeyError`` on bad input."""
        values = dict(document)
        values["source"] = Source(values["source"])
        values["debt_to_cover"] = int(values["debt_to_cover"])
        values["liquidated_collateral_amount"] = int(values["liquidated_collateral_amount"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """One poll of a source: the records it found and where the next poll starts.

    ``records`` may repeat records of earlier polls (sources re-read their boundary so
    that nothing falls between two polls); the tracker's seen-set removes them.
    ``cursor`` is opaque text the tracker persists only once the batch is handled and
    hands back to the next poll; ``cold`` says the poll started without a cursor.
    """

    records: tuple[LiquidationRecord, ...]
    cursor: str
    cold: bool
