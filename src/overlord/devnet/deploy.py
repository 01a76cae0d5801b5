"""Deploy a full Aave v3 market (3.0.2 or 3.6.0) to a node, from npm artifacts.

Follows the tested recipe of docs/local-chain.md §3.4: addresses provider, ACL, Pool and
PoolConfigurator behind their proxies, AaveOracle with a USD base of 1e8, the data
providers, token implementations and rate strategies, our own settable feeds and a derived
(ratio) price source, six reserves of 18, 6 and 8 decimals and two eMode categories.
Returns a :class:`~overlord.devnet.manifest.Manifest`.

Accounts (anvil's unlocked defaults): 0 admin, 1 liquidity provider, 2 liquidator,
9 treasury.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from overlord.devnet.artifacts import Artifact, hardhat_artifact, solc_artifact
from overlord.devnet.compiler import compile_origin, compile_own_contracts
from overlord.devnet.manifest import EModeInfo, FeedInfo, Manifest, ReserveInfo
from overlord.devnet.paths import DevnetSetupError

PROTOCOLS = ("3.0.2", "3.6.0")
BASE_CURRENCY_UNIT = 10**8
RAY = 10**27
ZERO = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class FeedSpec:
    """A settable feed and its first answer (8 decimals)."""

    name: str
    answer: int


@dataclass(frozen=True)
class ReserveSpec:
    """A reserve to list: token, risk parameters and where its price comes from."""

    symbol: str
    decimals: int
    feed: str  # a FeedSpec name, or "ratio:<base feed name>:<ratio 1e18>"
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    protocol_fee: int
    strategy: str  # "volatile" or "stable"
    emode: int = 0
    stable_borrowing: bool = False


FEEDS = (
    FeedSpec("ETH / USD", 3_000 * 10**8),
    FeedSpec("BTC / USD", 60_000 * 10**8),
    FeedSpec("USDC / USD", 10**8),
    FeedSpec("DAI / USD", 99_990_000),
    FeedSpec("LINK / USD", 15 * 10**8),
)
WSTETH_RATIO = 1_180_000_000_000_000_000  # 1.18 ETH per wstETH

RESERVES = (
    ReserveSpec("WETH", 18, "ETH / USD", 8000, 8250, 10500, 1000, "volatile", emode=1),
    ReserveSpec(
        "wstETH",
        18,
        f"ratio:ETH / USD:{WSTETH_RATIO}",
        7850,
        8100,
        10600,
        1500,
        "volatile",
        emode=1,
    ),
    ReserveSpec(
        "USDC", 6, "USDC / USD", 7700, 8000, 10450, 1000, "stable", emode=2, stable_borrowing=True
    ),
    ReserveSpec(
        "DAI", 18, "DAI / USD", 7500, 7800, 10500, 500, "stable", emode=2, stable_borrowing=True
    ),
    ReserveSpec("WBTC", 8, "BTC / USD", 7300, 7800, 10650, 2000, "volatile"),
    ReserveSpec("LINK", 18, "LINK / USD", 6000, 7000, 10750, 1000, "volatile"),
)
EMODES = (
    # (id, label, ltv, lt, bonus, 3.0.2 price source symbol or None)
    (1, "ETH correlated", 9300, 9500, 10100, None),
    (2, "Stablecoins", 9700, 9750, 10100, "USDC"),
)

# Aave's rateStrategyVolatileOne / rateStrategyStableOne (ray for 3.0.2, bps for 3.6).
STRATEGIES_V302 = {
    "volatile": (
        45 * RAY // 100,
        0,
        4 * RAY // 100,
        3 * RAY,
        7 * RAY // 100,
        3 * RAY,
        2 * RAY // 100,
        5 * RAY // 100,
        20 * RAY // 100,
    ),
    "stable": (
        90 * RAY // 100,
        0,
        4 * RAY // 100,
        60 * RAY // 100,
        RAY // 200,
        60 * RAY // 100,
        RAY // 100,
        8 * RAY // 100,
        20 * RAY // 100,
    ),
}
STRATEGIES_V36 = {"volatile": (4500, 0, 400, 30000), "stable": (9000, 0, 400, 6000)}


class _Deployer:
    """Sends the deployment transactions from the admin account and checks each receipt."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        accounts = [str(account) for account in w3.eth.accounts]
        if len(accounts) < 10:
            raise DevnetSetupError("the node must expose 10 unlocked accounts (anvil's defaults)")
        self.admin, self.lp, self.liquidator, self.treasury = (
            accounts[0],
            accounts[1],
            accounts[2],
            accounts[9],
        )
        self.transactions = 0

    def deploy(
        self, artifact: Artifact, *args: Any, libraries: dict[str, str] | None = None
    ) -> Contract:
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.linked(libraries or {}))
        receipt = self._wait(
            factory.constructor(*args).transact({"from": self.admin}), artifact.name
        )
        address = receipt["contractAddress"]
        contract: Contract = self.w3.eth.contract(address=address, abi=artifact.abi)
        return contract

    def send(self, call: Any, label: str, sender: str | None = None) -> None:
        self._wait(call.transact({"from": sender or self.admin}), label)

    def _wait(self, tx_hash: HexBytes, label: str) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        self.transactions += 1
        if receipt["status"] != 1:
            raise DevnetSetupError(f"deployment transaction failed: {label}")
        return receipt

    def at(self, address: str, artifact: Artifact) -> Contract:
        contract: Contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifact.abi
        )
        return contract


@dataclass(frozen=True)
class _Flavour:
    """What differs between deploying 3.0.2 and 3.6.0."""

    version: str
    artifact: Callable[[str], Artifact]
    token_artifact: str


def _flavour(protocol: str) -> _Flavour:
    if protocol == "3.0.2":
        return _Flavour("3.0.2", hardhat_artifact, "MintableERC20")
    if protocol == "3.6.0":
        origin = compile_origin()
        names = {
            "Pool": "PoolInstance",
            "PoolConfigurator": "PoolConfiguratorInstance",
            "AToken": "ATokenInstance",
            "VariableDebtToken": "VariableDebtTokenInstance",
            "DefaultReserveInterestRateStrategy": "DefaultReserveInterestRateStrategyV2",
        }
        return _Flavour(
            "3.6.0", lambda name: solc_artifact(origin, names.get(name, name)), "TestnetERC20"
        )
    raise DevnetSetupError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")


def deploy_market(w3: Web3, protocol: str) -> Manifest:
    """Deploy a complete market for ``protocol`` ("3.0.2" or "3.6.0") and describe it."""
    flavour = _flavour(protocol)
    own = compile_own_contracts()
    d = _Deployer(w3)
    deployment_block = w3.eth.block_number + 1
    art = flavour.artifact

    provider = d.deploy(art("PoolAddressesProvider"), "Overlord Devnet", d.admin)
    d.send(provider.functions.setACLAdmin(d.admin), "setACLAdmin")
    acl = d.deploy(art("ACLManager"), provider.address)
    d.send(provider.functions.setACLManager(acl.address), "setACLManager")
    for role in ("addPoolAdmin", "addEmergencyAdmin", "addRiskAdmin", "addAssetListingAdmin"):
        d.send(getattr(acl.functions, role)(d.admin), role)

    pool_artifact = art("Pool")
    libraries = _deploy_libraries(d, art, pool_artifact)
    if protocol == "3.0.2":
        pool_impl = d.deploy(pool_artifact, provider.address, libraries=libraries)
        d.send(pool_impl.functions.initialize(provider.address), "Pool.initialize")
        strategy_v36 = None
    else:
        strategy_v36 = d.deploy(art("DefaultReserveInterestRateStrategy"), provider.address)
        pool_impl = d.deploy(
            pool_artifact, provider.address, strategy_v36.address, libraries=libraries
        )
    d.send(provider.functions.setPoolImpl(pool_impl.address), "setPoolImpl")
    pool = d.at(provider.functions.getPool().call(), pool_artifact)

    configurator_artifact = art("PoolConfigurator")
    configurator_libraries = _deploy_libraries(d, art, configurator_artifact, libraries)
    configurator_impl = d.deploy(configurator_artifact, libraries=configurator_libraries)
    if protocol == "3.0.2":
        d.send(
            configurator_impl.functions.initialize(provider.address), "PoolConfigurator.initialize"
        )
    d.send(
        provider.functions.setPoolConfiguratorImpl(configurator_impl.address),
        "setPoolConfiguratorImpl",
    )
    configurator = d.at(provider.functions.getPoolConfigurator().call(), configurator_artifact)

    data_provider = d.deploy(art("AaveProtocolDataProvider"), provider.address)
    d.send(provider.functions.setPoolDataProvider(data_provider.address), "setPoolDataProvider")

    feeds, tokens = _deploy_feeds_and_tokens(d, own, art(flavour.token_artifact))
    sources = [_price_source(spec, feeds) for spec in RESERVES]
    oracle = d.deploy(
        art("AaveOracle"),
        provider.address,
        [tokens[s.symbol].address for s in RESERVES],
        sources,
        ZERO,
        ZERO,
        BASE_CURRENCY_UNIT,
    )
    d.send(provider.functions.setPriceOracle(oracle.address), "setPriceOracle")

    _init_reserves(d, art, protocol, configurator, pool, tokens)
    emodes = _configure(d, protocol, configurator, tokens)
    ui = d.deploy(art("UiPoolDataProviderV3"), feeds["ETH / USD"], feeds["USDC / USD"])

    reserves = _reserve_infos(d, art, pool, tokens, sources, protocol)
    return Manifest(
        chain_id=w3.eth.chain_id,
        protocol_version=protocol,
        deployment_block=deployment_block,
        accounts={
            "admin": d.admin,
            "liquidity_provider": d.lp,
            "liquidator": d.liquidator,
            "treasury": d.treasury,
        },
        addresses={
            "pool_addresses_provider": provider.address,
            "acl_manager": acl.address,
            "pool": pool.address,
            "pool_implementation": pool_impl.address,
            "pool_configurator": configurator.address,
            "pool_configurator_implementation": configurator_impl.address,
            "oracle": oracle.address,
            "pool_data_provider": data_provider.address,
            "ui_pool_data_provider": ui.address,
            **(
                {"interest_rate_strategy": strategy_v36.address} if strategy_v36 is not None else {}
            ),
        },
        reserves=reserves,
        feeds=_feed_infos(feeds, tokens),
        emode_categories=emodes,
        libraries={**libraries, **configurator_libraries},
    )


def _deploy_libraries(
    d: _Deployer,
    art: Callable[[str], Artifact],
    target: Artifact,
    known: dict[str, str] | None = None,
) -> dict[str, str]:
    """Deploy every library ``target`` links against (and theirs), each once."""
    deployed = dict(known or {})
    for name in sorted(target.libraries):
        if name in deployed:
            continue
        library = art(name)
        deployed.update(_deploy_libraries(d, art, library, deployed))
        deployed[name] = d.deploy(library, libraries=deployed).address
    return {name: deployed[name] for name in target.libraries}


def _deploy_feeds_and_tokens(
    d: _Deployer, own: dict[str, Any], token_artifact: Artifact
) -> tuple[dict[str, str], dict[str, Contract]]:
    feed_artifact = solc_artifact(own, "MockPriceFeed")
    feeds: dict[str, str] = {
        spec.name: str(d.deploy(feed_artifact, 8, spec.answer, spec.name).address) for spec in FEEDS
    }
    adapter = solc_artifact(own, "RatioPriceAdapter")
    tokens: dict[str, Contract] = {}
    for spec in RESERVES:
        if spec.feed.startswith("ratio:"):
            _, base, ratio = spec.feed.split(":")
            feeds[f"{spec.symbol} / USD"] = str(
                d.deploy(
                    adapter, feeds[base], 8, int(ratio), f"{spec.symbol} / USD (ratio x {base})"
                ).address
            )
        args: tuple[Any, ...] = (f"Devnet {spec.symbol}", spec.symbol, spec.decimals)
        if token_artifact.name == "TestnetERC20":
            args = (*args, d.admin)
        tokens[spec.symbol] = d.deploy(token_artifact, *args)
    return feeds, tokens


def _price_source(spec: ReserveSpec, feeds: dict[str, str]) -> str:
    if spec.feed.startswith("ratio:"):
        return feeds[f"{spec.symbol} / USD"]
    return feeds[spec.feed]


def _init_reserves(
    d: _Deployer,
    art: Callable[[str], Artifact],
    protocol: str,
    configurator: Contract,
    pool: Contract,
    tokens: dict[str, Contract],
) -> None:
    inputs: list[tuple[Any, ...]] = []
    if protocol == "3.0.2":
        a_impl = d.deploy(art("AToken"), pool.address)
        s_impl = d.deploy(art("StableDebtToken"), pool.address)
        v_impl = d.deploy(art("VariableDebtToken"), pool.address)
        provider = pool.functions.ADDRESSES_PROVIDER().call()
        strategies = {
            kind: d.deploy(art("DefaultReserveInterestRateStrategy"), provider, *values).address
            for kind, values in STRATEGIES_V302.items()
        }
        for spec in RESERVES:
            inputs.append(
                (
                    a_impl.address,
                    s_impl.address,
                    v_impl.address,
                    spec.decimals,
                    strategies[spec.strategy],
                    tokens[spec.symbol].address,
                    d.treasury,
                    ZERO,
                    f"Aave Devnet {spec.symbol}",
                    f"aDev{spec.symbol}",
                    f"Aave Devnet Variable Debt {spec.symbol}",
                    f"variableDebtDev{spec.symbol}",
                    f"Aave Devnet Stable Debt {spec.symbol}",
                    f"stableDebtDev{spec.symbol}",
                    b"",
                )
            )
    else:
        a_impl = d.deploy(art("AToken"), pool.address, ZERO, d.treasury)
        v_impl = d.deploy(art("VariableDebtToken"), pool.address, ZERO)
        for spec in RESERVES:
            rate_data = encode(["(uint16,uint32,uint32,uint32)"], [STRATEGIES_V36[spec.strategy]])
            inputs.append(
                (
                    a_impl.address,
                    v_impl.address,
                    tokens[spec.symbol].address,
                    f"Aave Devnet {spec.symbol}",
                    f"aDev{spec.symbol}",
                    f"Aave Devnet Variable Debt {spec.symbol}",
                    f"variableDebtDev{spec.symbol}",
                    b"",
                    rate_data,
                )
            )
    d.send(configurator.functions.initReserves(inputs), "initReserves")


def _configure(
    d: _Deployer, protocol: str, configurator: Contract, tokens: dict[str, Contract]
) -> tuple[EModeInfo, ...]:
    functions = configurator.functions
    for spec in RESERVES:
        asset = tokens[spec.symbol].address
        d.send(
            functions.configureReserveAsCollateral(
                asset, spec.ltv, spec.liquidation_threshold, spec.liquidation_bonus
            ),
            f"collateral {spec.symbol}",
        )
        d.send(functions.setReserveBorrowing(asset, True), f"borrowing {spec.symbol}")
        d.send(functions.setReserveFactor(asset, 1000), f"reserve factor {spec.symbol}")
        d.send(
            functions.setLiquidationProtocolFee(asset, spec.protocol_fee),
            f"protocol fee {spec.symbol}",
        )
        d.send(functions.setReserveFlashLoaning(asset, True), f"flash loans {spec.symbol}")
        if protocol == "3.0.2" and spec.stable_borrowing:
            d.send(
                functions.setReserveStableRateBorrowing(asset, True),
                f"stable borrowing {spec.symbol}",
            )
    emodes = []
    for category_id, label, ltv, lt, bonus, source_symbol in EMODES:
        members = tuple(tokens[s.symbol].address for s in RESERVES if s.emode == category_id)
        source = tokens[source_symbol].address if protocol == "3.0.2" and source_symbol else None
        if protocol == "3.0.2":
            d.send(
                functions.setEModeCategory(category_id, ltv, lt, bonus, source or ZERO, label),
                f"eMode {label}",
            )
            for asset in members:
                d.send(functions.setAssetEModeCategory(asset, category_id), f"eMode asset {asset}")
        else:
            d.send(functions.setEModeCategory(category_id, ltv, lt, bonus, label), f"eMode {label}")
            for asset in members:
                d.send(
                    functions.setAssetCollateralInEMode(asset, category_id, True),
                    f"eMode collateral {asset}",
                )
                d.send(
                    functions.setAssetBorrowableInEMode(asset, category_id, True),
                    f"eMode borrowable {asset}",
                )
        emodes.append(EModeInfo(category_id, label, ltv, lt, bonus, members, source))
    return tuple(emodes)


def _reserve_infos(
    d: _Deployer,
    art: Callable[[str], Artifact],
    pool: Contract,
    tokens: dict[str, Contract],
    sources: list[str],
    protocol: str,
) -> tuple[ReserveInfo, ...]:
    infos = []
    for spec, source in zip(RESERVES, sources, strict=True):
        data = pool.functions.getReserveData(tokens[spec.symbol].address).call()
        # Legacy struct: ..., id (7), aToken (8), stableDebtToken (9), variableDebtToken (10), ...
        stable = data[9] if protocol == "3.0.2" else None
        infos.append(
            ReserveInfo(
                symbol=spec.symbol,
                asset=tokens[spec.symbol].address,
                decimals=spec.decimals,
                a_token=data[8],
                variable_debt_token=data[10],
                stable_debt_token=stable,
                price_source=source,
                ltv=spec.ltv,
                liquidation_threshold=spec.liquidation_threshold,
                liquidation_bonus=spec.liquidation_bonus,
                protocol_fee=spec.protocol_fee,
                emode_category=spec.emode,
                stable_borrowing=spec.stable_borrowing and protocol == "3.0.2",
            )
        )
    return tuple(infos)


def _feed_infos(feeds: dict[str, str], tokens: dict[str, Contract]) -> tuple[FeedInfo, ...]:
    infos = []
    for spec in FEEDS:
        moved = tuple(
            tokens[r.symbol].address
            for r in RESERVES
            if r.feed == spec.name or r.feed.startswith(f"ratio:{spec.name}:")
        )
        infos.append(FeedInfo(spec.name, feeds[spec.name], 8, "chainlink", moved))
    for r in RESERVES:
        if r.feed.startswith("ratio:"):
            base = r.feed.split(":")[1]
            infos.append(
                FeedInfo(
                    f"{r.symbol} / USD",
                    feeds[f"{r.symbol} / USD"],
                    8,
                    "ratio",
                    (tokens[r.symbol].address,),
                    base_feed=feeds[base],
                )
            )
    return tuple(infos)
