"""A manifest shaped like the deployer's (same reserves and eMode categories, made-up
addresses and no chain), for pure tests of the seeder's planning and the scenario's rules."""

from __future__ import annotations

from eth_utils.crypto import keccak

from overlord.devnet.deploy import EMODES, FEEDS, RESERVES
from overlord.devnet.manifest import EModeInfo, FeedInfo, Manifest, ReserveInfo
from overlord.devnet.seed import MarketView

PRICES = {"WETH": 3_000, "wstETH": 3_540, "USDC": 1, "DAI": 1, "WBTC": 60_000, "LINK": 15}


def address(label: str) -> str:
    """A deterministic checksum-free (lower-case) address for ``label``."""
    return "0x" + keccak(text=label)[12:].hex()


def manifest(protocol: str = "3.6.0") -> Manifest:
    """The deployer's market for ``protocol``, with fake addresses."""
    legacy = protocol == "3.0.2"
    reserves = tuple(
        ReserveInfo(
            symbol=spec.symbol,
            asset=address(spec.symbol),
            decimals=spec.decimals,
            a_token=address(f"a{spec.symbol}"),
            variable_debt_token=address(f"v{spec.symbol}"),
            stable_debt_token=address(f"s{spec.symbol}") if legacy else None,
            price_source=address(f"feed {spec.symbol}"),
            ltv=spec.ltv,
            liquidation_threshold=spec.liquidation_threshold,
            liquidation_bonus=spec.liquidation_bonus,
            protocol_fee=spec.protocol_fee,
            emode_category=spec.emode,
            stable_borrowing=spec.stable_borrowing and legacy,
        )
        for spec in RESERVES
    )
    emodes = tuple(
        EModeInfo(
            id=category,
            label=label,
            ltv=ltv,
            liquidation_threshold=lt,
            liquidation_bonus=bonus,
            assets=tuple(address(s.symbol) for s in RESERVES if s.emode == category),
            price_source=address(source) if legacy and source else None,
        )
        for category, label, ltv, lt, bonus, source in EMODES
    )
    feeds = tuple(FeedInfo(f.name, address(f.name), 8, "chainlink", ()) for f in FEEDS)
    return Manifest(
        chain_id=31337,
        protocol_version=protocol,
        deployment_block=1,
        accounts={name: address(name) for name in ("admin", "liquidity_provider", "liquidator")},
        addresses={"pool": address("pool"), "oracle": address("oracle")},
        reserves=reserves,
        feeds=feeds,
        emode_categories=emodes,
    )


def market(protocol: str = "3.6.0") -> MarketView:
    """:func:`manifest` with whole-dollar oracle prices (8 decimals); DAI at $0.9999."""
    built = manifest(protocol)
    prices = {r.asset.lower(): PRICES[r.symbol] * 10**8 for r in built.reserves}
    prices[address("DAI")] = 99_990_000
    return MarketView(built, prices)
