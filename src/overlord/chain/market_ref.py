"""Which market a command works on, and its addresses as the node reports them.

A :class:`MarketRef` names a market in one of three ways: a devnet manifest (the local
chain's deployment record), a PoolAddressesProvider address (any Aave v3 market), or a
preset name (:mod:`overlord.chain.markets`). :func:`resolve_market` turns it into a
:class:`ResolvedMarket` on a given node:

* a provider or a preset is resolved through the provider, as the protocol itself does:
  ``getPool()``, ``getPriceOracle()``, ``getPoolDataProvider()``, read by ``eth_call``
  at one pinned block, so the three addresses belong to one and the same state;
* a manifest gives the addresses directly.

Checks, each failing with a :class:`MarketResolutionError` that says what is wrong and
what to look at, never with a wrong address:

* the node's chain id is the preset's (the same provider address exists on several
  chains) or the manifest's;
* the provider has code, its getters do not revert and answer non-zero addresses;
* the Pool has code (and so do the oracle and data provider of a discovered market).

Transport failures and malformed node answers stay :class:`~overlord.chain.rpc.RpcError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from overlord.chain import aave_abi as abi
from overlord.chain import markets
from overlord.chain.abi import Function
from overlord.chain.batch import BatchRequest, EthCall, normalize_address, run_batch
from overlord.chain.rpc import JsonRpcClient, JsonValue, RpcError, RpcTransportError
from overlord.devnet.manifest import Manifest, ManifestError

ZERO_ADDRESS: Final = "0x" + "00" * 20

# PoolAddressesProvider getters aave_abi.py lacks.
GET_POOL_DATA_PROVIDER = Function("getPoolDataProvider()", ("address",))

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class MarketResolutionError(Exception):
    """The market cannot be resolved on this node; the message says why."""


# The reference.


@dataclass(frozen=True, slots=True)
class MarketRef:
    """A market, given by exactly one of a manifest path, a provider address or a preset.

    The provider is stored lower-case and the preset under its canonical name (an alias
    such as ``mainnet`` becomes ``ethereum``).

    Raises:
        ValueError: not exactly one is given, the provider is not an address, or the preset
            is unknown (the message lists the known ones).
    """

    manifest: Path | None = None
    provider: str | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name, value in (
                ("manifest", self.manifest),
                ("provider", self.provider),
                ("preset", self.preset),
            )
            if value is not None
        ]
        if len(given) != 1:
            detail = f" (got {' and '.join(given)})" if given else ""
            raise ValueError(
                "a market is given by exactly one of a manifest, a PoolAddressesProvider "
                f"address or a preset name{detail}"
            )
        # Canonical forms, so that equal references compare equal.
        if self.manifest is not None:
            object.__setattr__(self, "manifest", Path(self.manifest))
        if self.provider is not None:
            object.__setattr__(self, "provider", _provider_address(self.provider))
        if self.preset is not None:
            object.__setattr__(self, "preset", markets.preset(self.preset).name)

    @classmethod
    def parse(cls, text: str) -> MarketRef:
        """A reference from one string, as ``--market`` takes it.

        A ``0x`` address is a provider; a preset name or alias is a preset; anything else
        is a manifest path, except a bare word (no path separator, no suffix) that names
        no existing file, which is taken as a mistyped preset name.

        Raises:
            ValueError: ``text`` is empty or an unknown preset name.
        """
        value = text.strip()
        if not value:
            raise ValueError("the market is empty: give a preset name, an address or a manifest")
        if _ADDRESS.match(value):
            return cls(provider=value)
        try:
            return cls(preset=value)
        except ValueError:
            path = Path(value).expanduser()
            if _NAME.match(value) and not path.is_file():
                raise  # "unknown market preset ...: known presets are ..."
            return cls(manifest=path)

    def __str__(self) -> str:
        if self.manifest is not None:
            return f"manifest {self.manifest}"
        if self.provider is not None:
            return f"provider {self.provider}"
        return f"preset {self.preset}"


def _provider_address(text: str) -> str:
    try:
        return normalize_address(text)
    except ValueError:
        raise ValueError(f"PoolAddressesProvider {text!r} is not a 0x address") from None


# The resolution.


@dataclass(frozen=True, slots=True)
class ResolvedMarket:
    """A market's addresses on one node (lower-case ``0x`` hex).

    Attributes:
        pool: the Pool proxy.
        pool_addresses_provider: the PoolAddressesProvider.
        oracle: the AaveOracle.
        pool_data_provider: the AaveProtocolDataProvider.
        chain_id: the node's chain id.
        deployment_block: the first block of the deployment when known (a manifest
            records it), where a log backfill can start; ``None`` otherwise.
        name: a name for logs: the preset's name, ``manifest <path>``, or
            ``provider <address>`` for a provider that is no preset.
    """

    pool: str
    pool_addresses_provider: str
    oracle: str
    pool_data_provider: str
    chain_id: int
    deployment_block: int | None
    name: str


def resolve_market(client: JsonRpcClient, ref: MarketRef) -> ResolvedMarket:
    """Resolve ``ref`` on the node behind ``client`` (2 to 4 round trips).

    Reads are pinned to the node's latest block at the start.

    Raises:
        MarketResolutionError: the manifest cannot be read, the chain id does not match,
            an address has no code, or a provider getter reverts or answers zero.
        RpcError: the node cannot be reached or answers something malformed.
    """
    chain_id, block = _chain_head(client)
    if ref.manifest is not None:
        return _from_manifest(client, ref.manifest, chain_id, block)
    if ref.preset is not None:
        found = markets.preset(ref.preset)
        _check_preset_chain(found, chain_id)
        provider = found.pool_addresses_provider.lower()
        return _from_provider(client, provider, chain_id, block, found.name)
    provider = str(ref.provider)
    known = markets.preset_for(chain_id, provider)
    name = known.name if known is not None else f"provider {provider}"
    return _from_provider(client, provider, chain_id, block, name)


def _chain_head(client: JsonRpcClient) -> tuple[int, int]:
    """The node's chain id and latest block number, in one round trip."""
    chain_id, block = client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    return _quantity("eth_chainId", chain_id), _quantity("eth_blockNumber", block)


def _quantity(method: str, value: object) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]+", value):
        raise RpcError(method, f"not a hex quantity: {str(value)[:80]!r}")
    return int(value, 16)


def _chain_label(chain_id: int) -> str:
    name = markets.chain_name(chain_id)
    return f"chain {chain_id}" + (f" ({name})" if name else "")


def _check_preset_chain(found: markets.MarketPreset, chain_id: int) -> None:
    if found.chain_id != chain_id:
        raise MarketResolutionError(
            f"market {found.name} is on {found.chain} (chain {found.chain_id}) but the node "
            f"is {_chain_label(chain_id)}: check the RPC URL or the market"
        )


# A market through its provider.


@dataclass(frozen=True, slots=True)
class _Code:
    """``eth_getCode``: whether ``address`` holds a contract at the block."""

    address: str
    optional: bool = False

    def payload(self, tag: str) -> tuple[str, list[JsonValue]]:
        return ("eth_getCode", [self.address, tag])

    def describe(self) -> str:
        return f"eth_getCode {self.address}"

    def parse(self, result: JsonValue) -> Any:
        if not isinstance(result, str) or not re.fullmatch(r"0x[0-9a-fA-F]*", result):
            raise RpcError(self.describe(), f"result is not hex: {str(result)[:80]!r}")
        return result not in ("0x", "0x0")


_GETTERS: Final = {
    "pool": abi.GET_POOL,
    "oracle": abi.GET_PRICE_ORACLE,
    "pool_data_provider": GET_POOL_DATA_PROVIDER,
}


def _from_provider(
    client: JsonRpcClient, provider: str, chain_id: int, block: int, name: str
) -> ResolvedMarket:
    where = f"on {_chain_label(chain_id)} at block {block}"
    if not run_batch(client, {"code": _Code(provider)}, block)["code"]:
        raise MarketResolutionError(
            f"no contract at PoolAddressesProvider {provider} {where}: wrong address or chain?"
        )
    addresses = _provider_getters(client, provider, block, where)
    _require_code(client, addresses, block, where)
    return ResolvedMarket(
        pool=addresses["pool"],
        pool_addresses_provider=provider,
        oracle=addresses["oracle"],
        pool_data_provider=addresses["pool_data_provider"],
        chain_id=chain_id,
        deployment_block=None,
        name=name,
    )


def _provider_getters(
    client: JsonRpcClient, provider: str, block: int, where: str
) -> dict[str, str]:
    """getPool, getPriceOracle and getPoolDataProvider, each checked to be a non-zero address."""
    requests: dict[Any, BatchRequest] = {
        key: EthCall(provider, function, optional=True) for key, function in _GETTERS.items()
    }
    try:
        results = run_batch(client, requests, block)
    except RpcTransportError:
        raise
    except RpcError as exc:  # an empty or garbled answer: some other kind of contract
        raise MarketResolutionError(
            f"{provider} {where} does not answer like a PoolAddressesProvider: {exc}"
        ) from exc
    addresses: dict[str, str] = {}
    for key, function in _GETTERS.items():
        if results[key] is None:
            raise MarketResolutionError(
                f"{function.signature} reverted on {provider} {where}: not a PoolAddressesProvider?"
            )
        address = normalize_address(str(results[key]))
        if address == ZERO_ADDRESS:
            raise MarketResolutionError(
                f"{function.signature} of {provider} {where} is the zero address: "
                "the market is not set up"
            )
        addresses[key] = address
    return addresses


def _require_code(client: JsonRpcClient, addresses: dict[str, str], block: int, where: str) -> None:
    requests: dict[Any, BatchRequest] = {key: _Code(address) for key, address in addresses.items()}
    has_code = run_batch(client, requests, block)
    for key, address in addresses.items():
        if not has_code[key]:
            raise MarketResolutionError(f"no contract at the {key} {address} {where}")


# A market from a devnet manifest.


def _from_manifest(client: JsonRpcClient, path: Path, chain_id: int, block: int) -> ResolvedMarket:
    try:
        manifest = Manifest.load(path)
    except ManifestError as exc:
        raise MarketResolutionError(str(exc)) from None
    if manifest.chain_id != chain_id:
        raise MarketResolutionError(
            f"manifest {path} is of chain {manifest.chain_id} but the node is "
            f"{_chain_label(chain_id)}: is the RPC URL the devnet's?"
        )
    pool = _manifest_address(manifest, path, "pool")
    if not run_batch(client, {"pool": _Code(pool)}, block)["pool"]:
        raise MarketResolutionError(
            f"no contract at the Pool {pool} of manifest {path} (block {block}): "
            "is the chain the one this manifest was deployed on?"
        )
    return ResolvedMarket(
        pool=pool,
        pool_addresses_provider=_manifest_address(manifest, path, "pool_addresses_provider"),
        oracle=_manifest_address(manifest, path, "oracle"),
        pool_data_provider=_manifest_address(manifest, path, "pool_data_provider"),
        chain_id=chain_id,
        deployment_block=manifest.deployment_block,
        name=f"manifest {path}",
    )


def _manifest_address(manifest: Manifest, path: Path, key: str) -> str:
    try:
        return normalize_address(manifest.addresses[key])
    except KeyError:
        raise MarketResolutionError(f"manifest {path} has no address {key!r}") from None
    except ValueError:
        raise MarketResolutionError(
            f"manifest {path}: {key} {manifest.addresses[key]!r} is not an address"
        ) from None


__all__ = [
    "GET_POOL_DATA_PROVIDER",
    "MarketRef",
    "MarketResolutionError",
    "ResolvedMarket",
    "resolve_market",
]
