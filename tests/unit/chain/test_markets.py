"""Market presets: lookup by name, aliases, unknown names, and the table's integrity."""

from __future__ import annotations

import pytest
from eth_utils.address import is_checksum_address

from overlord.chain.markets import PRESETS, chain_name, preset, preset_for

REQUIRED = ("ethereum", "base", "arbitrum", "optimism", "polygon", "avalanche")


def test_the_main_markets_are_all_presets() -> None:
    assert set(REQUIRED) <= set(PRESETS)


@pytest.mark.parametrize(
    ("name", "chain_id", "provider"),
    [
        ("ethereum", 1, "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"),
        ("base", 8453, "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D"),
        ("arbitrum", 42161, "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb"),
    ],
)
def test_a_preset_has_its_chain_and_provider(name: str, chain_id: int, provider: str) -> None:
    found = preset(name)

    assert (found.name, found.chain_id, found.pool_addresses_provider) == (
        name,
        chain_id,
        provider,
    )


def test_lookup_ignores_case_and_surrounding_space() -> None:
    assert preset("  BaSe ") is PRESETS["base"]


@pytest.mark.parametrize(
    ("alias", "name"),
    [("mainnet", "ethereum"), ("ethereum-core", "ethereum"), ("ethereum-prime", "ethereum-lido")],
)
def test_aliases_name_their_preset(alias: str, name: str) -> None:
    assert preset(alias) is PRESETS[name]


def test_an_unknown_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown market preset 'basee'") as caught:
        preset("basee")

    for name in REQUIRED:
        assert name in str(caught.value)


def test_every_address_keeps_a_valid_checksum_so_typos_show() -> None:
    bad = [p.name for p in PRESETS.values() if not is_checksum_address(p.pool_addresses_provider)]

    assert bad == []


def test_every_preset_names_its_source_with_a_full_commit() -> None:
    for found in PRESETS.values():
        repository, path, at, commit = found.source.split(" ")
        assert repository == "bgd-labs/aave-address-book"
        assert path.startswith("src/ts/AaveV3")
        assert path.endswith(".ts")
        assert at == "@"
        assert len(commit) == 40


def test_names_are_canonical_lower_case_keys() -> None:
    assert all(name == p.name == name.lower() for name, p in PRESETS.items())


def test_a_chain_and_provider_pair_is_unique() -> None:
    pairs = [(p.chain_id, p.pool_addresses_provider.lower()) for p in PRESETS.values()]

    assert len(pairs) == len(set(pairs))


def test_the_same_provider_on_another_chain_is_another_preset() -> None:
    shared = "0xa97684ead0e402dc232d5a977953df7ecbab3cdb"

    found = {chain_id: preset_for(chain_id, shared) for chain_id in (10, 137, 42161, 43114)}

    assert {chain_id: p.name for chain_id, p in found.items() if p} == {
        10: "optimism",
        137: "polygon",
        42161: "arbitrum",
        43114: "avalanche",
    }
    assert preset_for(1, shared) is None


def test_chain_names_come_from_the_presets() -> None:
    assert chain_name(8453) == "base"
    assert chain_name(31337) is None
