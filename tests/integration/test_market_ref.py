"""Resolving the local chain's market by its manifest and by its PoolAddressesProvider."""

from __future__ import annotations

import pytest

from overlord.chain.market_ref import MarketRef, MarketResolutionError, resolve_market
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet


def test_the_devnet_resolves_from_its_manifest(devnet: Devnet, rpc: JsonRpcClient) -> None:
    addresses = devnet.manifest.addresses

    market = resolve_market(rpc, MarketRef(manifest=devnet.manifest_path))

    assert market.pool == addresses["pool"].lower()
    assert market.pool_addresses_provider == addresses["pool_addresses_provider"].lower()
    assert market.oracle == addresses["oracle"].lower()
    assert market.pool_data_provider == addresses["pool_data_provider"].lower()
    assert market.chain_id == devnet.manifest.chain_id
    assert market.deployment_block == devnet.manifest.deployment_block


def test_the_devnet_resolves_through_its_provider_to_the_manifests_addresses(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    provider = devnet.manifest.addresses["pool_addresses_provider"]
    by_manifest = resolve_market(rpc, MarketRef(manifest=devnet.manifest_path))

    market = resolve_market(rpc, MarketRef(provider=provider))

    assert (market.pool, market.oracle, market.pool_data_provider) == (
        by_manifest.pool,
        by_manifest.oracle,
        by_manifest.pool_data_provider,
    )
    assert (market.chain_id, market.deployment_block) == (by_manifest.chain_id, None)
    assert market.name == f"provider {provider.lower()}"


def test_the_pool_is_not_a_provider(devnet: Devnet, rpc: JsonRpcClient) -> None:
    pool = devnet.manifest.pool

    with pytest.raises(MarketResolutionError, match=r"reverted on .* not a PoolAddressesProvider"):
        resolve_market(rpc, MarketRef(provider=pool))


def test_a_preset_of_another_chain_is_refused(devnet: Devnet, rpc: JsonRpcClient) -> None:
    with pytest.raises(MarketResolutionError, match=r"but the node is chain \d+"):
        resolve_market(rpc, MarketRef(preset="ethereum"))
