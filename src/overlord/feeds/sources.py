"""Which feeds move which reserves: AaveOracle sources, followed through proxies and adapters.

For every reserve, ``AaveOracle.getSourceOfAsset`` names its price source. Sources are
often not the contract whose updates matter: a Chainlink ``EACAggregatorProxy`` forwards to
an ``aggregator()`` (where ``transmit`` lands and ``AnswerUpdated`` is emitted), and adapters
(ratio/CAPO adapters, our devnet ``RatioPriceAdapter``) read one or two base feeds. This
module follows those links (a few well-known getters, a bounded depth) and returns, for
every contract worth watching, the reserves whose oracle price can move when it updates.
``VEGA_CHAINLINK_ADDRESSES_FILE`` (CSV: ``asset_symbol,aave_asset_address,
chainlink_contract_address``) adds mappings the getters cannot find.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from overlord.chain import aave_abi
from overlord.chain.abi import Function
from overlord.chain.rpc import JsonRpcClient

_LINKS = (
    Function("aggregator()", ("address",)),  # Chainlink proxy -> aggregator
    Function("baseFeed()", ("address",)),  # our devnet ratio adapter
    Function("BASE_TO_USD_AGGREGATOR()", ("address",)),  # Aave CAPO adapters
    Function("ASSET_TO_USD_AGGREGATOR()", ("address",)),
    Function("RATIO_PROVIDER()", ("address",)),
)
MAX_DEPTH = 3
ZERO = "0x" + "00" * 20


def discover_feeds(
    client: JsonRpcClient, oracle: str, assets: Sequence[str], block: int
) -> dict[str, set[str]]:
    """``{contract: {reserve assets it moves}}``, following sources to depth 3."""
    tag = hex(block)
    sources = client.batch(
        [
            ("eth_call", [{"to": oracle, "data": aave_abi.GET_SOURCE_OF_ASSET.encode(a)}, tag])
            for a in assets
        ]
    )
    watched: dict[str, set[str]] = {}
    frontier: list[tuple[str, str]] = []
    for asset, answer in zip(assets, sources, strict=True):
        source = str(aave_abi.GET_SOURCE_OF_ASSET.decode(answer)[0]).lower()
        if source != ZERO:
            frontier.append((source, asset.lower()))
    for _depth in range(MAX_DEPTH + 1):
        for contract, asset in frontier:
            watched.setdefault(contract, set()).add(asset)
        frontier = _next_links(client, frontier, tag)
        if not frontier:
            break
    return watched


def _next_links(
    client: JsonRpcClient, frontier: list[tuple[str, str]], tag: str
) -> list[tuple[str, str]]:
    requests = [
        ("eth_call", [{"to": contract, "data": link.encode()}, tag])
        for contract, _asset in frontier
        for link in _LINKS
    ]
    answers = client.batch_answers(requests)
    found = []
    for index, answer in enumerate(answers):
        result = answer.get("result")
        if "error" in answer or not isinstance(result, str) or len(result) != 66:
            continue  # this getter does not exist on that contract
        linked = "0x" + result[-40:].lower()
        if linked != ZERO:
            found.append((linked, frontier[index // len(_LINKS)][1]))
    return found


def load_feed_overrides(path: Path) -> dict[str, set[str]]:
    """Mappings from a ``asset_symbol,aave_asset_address,chainlink_contract_address`` CSV.

    Lines whose address columns are not addresses raise ``ValueError`` naming the line.
    """
    mappings: dict[str, set[str]] = {}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#") or row[0].strip().lower() == "asset_symbol":
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 columns, got {len(row)}")
            _symbol, asset, feed = (cell.strip() for cell in row)
            for column, value in (
                ("aave_asset_address", asset),
                ("chainlink_contract_address", feed),
            ):
                if not (value.startswith("0x") and len(value) == 42):
                    raise ValueError(f"{path}:{number}: {column} {value!r} is not an address")
            mappings.setdefault(feed.lower(), set()).add(asset.lower())
    return mappings


def merge(*mappings: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The union of several ``{contract: assets}`` mappings."""
    merged: dict[str, set[str]] = {}
    for mapping in mappings:
        for contract, assets in mapping.items():
            merged.setdefault(contract, set()).update(assets)
    return merged
