"""The deployment manifest: every address and parameter of a deployed market, as JSON.

Written by the deployer, read by the seeder, the scenario driver, the market reader, the
tests and ``overlord verify``. Loading validates the shape and names the bad field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class ManifestError(ValueError):
    """The manifest file is missing or malformed."""


@dataclass(frozen=True)
class ReserveInfo:
    """One listed reserve."""

    symbol: str
    asset: str
    decimals: int
    a_token: str
    variable_debt_token: str
    stable_debt_token: str | None
    price_source: str  # what AaveOracle reads for this asset
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    protocol_fee: int
    emode_category: int = 0
    stable_borrowing: bool = False


@dataclass(frozen=True)
class FeedInfo:
    """A price feed of ours: a settable Chainlink-style feed or a ratio adapter over one."""

    name: str
    address: str
    decimals: int
    kind: str  # "chainlink" (MockPriceFeed) or "ratio" (RatioPriceAdapter)
    assets: tuple[str, ...]  # reserves whose oracle price moves with it
    base_feed: str | None = None


@dataclass(frozen=True)
class EModeInfo:
    """An eMode category and its member assets."""

    id: int
    label: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    assets: tuple[str, ...]
    price_source: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A deployed market."""

    chain_id: int
    protocol_version: str
    deployment_block: int
    accounts: dict[str, str]
    addresses: dict[str, str]
    reserves: tuple[ReserveInfo, ...]
    feeds: tuple[FeedInfo, ...]
    emode_categories: tuple[EModeInfo, ...]
    libraries: dict[str, str] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def pool(self) -> str:
        """The Pool proxy."""
        return self.addresses["pool"]

    def reserve(self, symbol: str) -> ReserveInfo:
        """The reserve with ``symbol``."""
        for reserve in self.reserves:
            if reserve.symbol == symbol:
                return reserve
        raise KeyError(f"no reserve {symbol} in the manifest")

    def feed(self, name: str) -> FeedInfo:
        """The feed named ``name``."""
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(f"no feed {name} in the manifest")

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    def save(self, path: Path) -> None:
        """Write the manifest atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(self.to_json())
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest; raises :class:`ManifestError` naming what is wrong."""
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ManifestError(f"manifest {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, origin: str = "manifest") -> Manifest:
        """Build from decoded JSON."""
        try:
            if data.get("schema") != SCHEMA_VERSION:
                raise ManifestError(
                    f"{origin}: schema {data.get('schema')!r}, expected {SCHEMA_VERSION}"
                )
            return cls(
                chain_id=int(data["chain_id"]),
                protocol_version=str(data["protocol_version"]),
                deployment_block=int(data["deployment_block"]),
                accounts=dict(data["accounts"]),
                addresses=dict(data["addresses"]),
                reserves=tuple(ReserveInfo(**r) for r in data["reserves"]),
                feeds=tuple(FeedInfo(**{**f, "assets": tuple(f["assets"])}) for f in data["feeds"]),
                emode_categories=tuple(
                    EModeInfo(**{**e, "assets": tuple(e["assets"])})
                    for e in data["emode_categories"]
                ),
                libraries=dict(data.get("libraries", {})),
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(
                f"{origin}: malformed manifest ({type(exc).__name__}: {exc})"
            ) from None
