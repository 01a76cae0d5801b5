"""Market presets: the main Aave v3 markets by name, with their PoolAddressesProvider.

A preset is the one fact Overlord needs to find a public market: its PoolAddressesProvider
address and the chain it lives on. Everything else (Pool, oracle, data provider) is
discovered through the provider at run time (docs/prior-art.md §10, "runtime rule"), so
a Pool upgrade or an oracle swap never makes a preset stale.

Every address below was copied from the BGD Labs / Aave DAO address book, never from
memory. The repository ``bgd-labs/aave-address-book`` (now ``aave-dao/aave-address-book``)
generates one file per market, ``src/ts/AaveV3<Network>.ts``, with
``POOL_ADDRESSES_PROVIDER`` and ``CHAIN_ID``. Files ``src/ts/<X>.ts`` and commits read on
2026-11-21 (docs/markets.md has the same table, with the full commit hashes):

=============  ========  ==========================================  ==================  ========
name           chain id  PoolAddressesProvider                       file <X>            commit
=============  ========  ==========================================  ==================  ========
ethereum       1         0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e  AaveV3Ethereum      9bf037ef
ethereum-lido  1         0xcfBf336fe147D643B9Cb705648500e101504B16d  AaveV3EthereumLido  ecaae886
base           8453      0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D  AaveV3Base          84f98485
arbitrum       42161     0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb  AaveV3Arbitrum      c173b177
optimism       10        0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb  AaveV3Optimism      f1693aea
polygon        137       0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb  AaveV3Polygon       f1693aea
avalanche      43114     0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb  AaveV3Avalanche     65d986bc
gnosis         100       0x36616cf17557639614c1cdDb356b1B83fc0B2132  AaveV3Gnosis        58488002
bnb            56        0xff75B6da14FfbbfD355Daf7a2731456b3562Ba6D  AaveV3BNB           f1693aea
scroll         534352    0x69850D0B276776781C063771b161bd8894BCdD04  AaveV3Scroll        8bc2d0b1
zksync         324       0x2A3948BB219D6B2Fa83D64100006391a96bE6cb7  AaveV3ZkSync        825388cb
linea          59144     0x89502c3731F69DDC95B65753708A07F8Cd0373F4  AaveV3Linea         efd8201d
sonic          146       0x5C2e738F6E27bCE0F7558051Bf90605dD6176900  AaveV3Sonic         b94d8555
celo           42220     0x9F7Cf9417D5251C59fE94fB9147feEe1aAd9Cea5  AaveV3Celo          b94d8555
=============  ========  ==========================================  ==================  ========

Arbitrum, Optimism, Polygon and Avalanche share one provider address (a deterministic
deployment); only the chain id tells them apart, which is one reason
:func:`~overlord.chain.market_ref.resolve_market` checks it. Addresses keep the source's
EIP-55 checksum so that a transcription error shows up as a bad checksum (a unit test
checks every one). Other markets of the address book (EthereumEtherFi, EthereumHorizon,
Metis, Mantle, Soneium, Ink, Plasma, ...) have no preset: give their provider address.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

_REPOSITORY: Final = "bgd-labs/aave-address-book"


@dataclass(frozen=True, slots=True)
class MarketPreset:
    """A public Aave v3 market: where it lives and how to find it.

    Attributes:
        name: the preset's name, lower case (``"base"``, ``"ethereum-lido"``).
        chain: the chain's short name (``"ethereum"``, ``"base"``).
        chain_id: the EIP-155 chain id the node must report.
        pool_addresses_provider: the market's PoolAddressesProvider, EIP-55 checksummed.
        source: where the address was read: repository, path and commit.
    """

    name: str
    chain: str
    chain_id: int
    pool_addresses_provider: str
    source: str


def _preset(
    name: str, chain: str, chain_id: int, provider: str, path: str, commit: str
) -> MarketPreset:
    return MarketPreset(name, chain, chain_id, provider, f"{_REPOSITORY} {path} @ {commit}")


PRESETS: Final[MappingProxyType[str, MarketPreset]] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            _preset(
                "ethereum",
                "ethereum",
                1,
                "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
                "src/ts/AaveV3Ethereum.ts",
                "9bf037efff3a325b8c7fa35ae90d021d65a7a29b",
            ),
            _preset(
                "ethereum-lido",
                "ethereum",
                1,
                "0xcfBf336fe147D643B9Cb705648500e101504B16d",
                "src/ts/AaveV3EthereumLido.ts",
                "ecaae8860d9f3f7efb9b66d2b0a0e7500a8d01b4",
            ),
            _preset(
                "base",
                "base",
                8453,
                "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D",
                "src/ts/AaveV3Base.ts",
                "84f98485bf57a6b9b30a61e183eed1ad019ccfb6",
            ),
            _preset(
                "arbitrum",
                "arbitrum",
                42161,
                "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb",
                "src/ts/AaveV3Arbitrum.ts",
                "c173b1772b4f6c21866eebcfcdb8e21f4eef69ee",
            ),
            _preset(
                "optimism",
                "optimism",
                10,
                "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb",
                "src/ts/AaveV3Optimism.ts",
                "f1693aea8ccd385457e7210542223333fd018321",
            ),
            _preset(
                "polygon",
                "polygon",
                137,
                "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb",
                "src/ts/AaveV3Polygon.ts",
                "f1693aea8ccd385457e7210542223333fd018321",
            ),
            _preset(
                "avalanche",
                "avalanche",
                43114,
                "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb",
                "src/ts/AaveV3Avalanche.ts",
                "65d986bcade68d20780e1173120e209ba71f0d87",
            ),
            _preset(
                "gnosis",
                "gnosis",
                100,
                "0x36616cf17557639614c1cdDb356b1B83fc0B2132",
                "src/ts/AaveV3Gnosis.ts",
                "58488002abe53e906472f1ccfba37aecaad005f8",
            ),
            _preset(
                "bnb",
                "bnb",
                56,
                "0xff75B6da14FfbbfD355Daf7a2731456b3562Ba6D",
                "src/ts/AaveV3BNB.ts",
                "f1693aea8ccd385457e7210542223333fd018321",
            ),
            _preset(
                "scroll",
                "scroll",
                534352,
                "0x69850D0B276776781C063771b161bd8894BCdD04",
                "src/ts/AaveV3Scroll.ts",
                "8bc2d0b1efc7716342b4ae48a2378a01b7ff9465",
            ),
            _preset(
                "zksync",
                "zksync",
                324,
                "0x2A3948BB219D6B2Fa83D64100006391a96bE6cb7",
                "src/ts/AaveV3ZkSync.ts",
                "825388cb7fc1b2b17652ac7ac93015c29de9813b",
            ),
            _preset(
                "linea",
                "linea",
                59144,
                "0x89502c3731F69DDC95B65753708A07F8Cd0373F4",
                "src/ts/AaveV3Linea.ts",
                "efd8201d3c2a260c16900c08855033ca3d833f53",
            ),
            _preset(
                "sonic",
                "sonic",
                146,
                "0x5C2e738F6E27bCE0F7558051Bf90605dD6176900",
                "src/ts/AaveV3Sonic.ts",
                "b94d8555ea0080ce50aab15c61a50a8c25944e3f",
            ),
            _preset(
                "celo",
                "celo",
                42220,
                "0x9F7Cf9417D5251C59fE94fB9147feEe1aAd9Cea5",
                "src/ts/AaveV3Celo.ts",
                "b94d8555ea0080ce50aab15c61a50a8c25944e3f",
            ),
        )
    }
)
"""The presets by name, in the order of the table above."""

ALIASES: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        "mainnet": "ethereum",
        "ethereum-core": "ethereum",
        # The Aave UI calls the Lido instance "Prime"; the address book keeps "Lido".
        "ethereum-prime": "ethereum-lido",
    }
)
"""Other names accepted for a preset."""


def preset(name: str) -> MarketPreset:
    """The preset called ``name`` (case-insensitive; aliases such as ``mainnet`` work).

    Raises:
        ValueError: no preset has that name; the message lists the known names.
    """
    key = name.strip().lower()
    found = PRESETS.get(ALIASES.get(key, key))
    if found is None:
        raise ValueError(f"unknown market preset {name!r}: known presets are {known_names()}")
    return found


def known_names() -> str:
    """The preset names, comma-separated, for messages."""
    return ", ".join(PRESETS)


def chain_name(chain_id: int) -> str | None:
    """The short name of a chain some preset lives on, or ``None`` if no preset does."""
    for candidate in PRESETS.values():
        if candidate.chain_id == chain_id:
            return candidate.chain
    return None


def preset_for(chain_id: int, provider: str) -> MarketPreset | None:
    """The preset with this chain id and provider address (any case), if there is one."""
    for candidate in PRESETS.values():
        if (
            candidate.chain_id == chain_id
            and candidate.pool_addresses_provider.lower() == provider.lower()
        ):
            return candidate
    return None


__all__ = [
    "ALIASES",
    "PRESETS",
    "MarketPreset",
    "chain_name",
    "known_names",
    "preset",
    "preset_for",
]
