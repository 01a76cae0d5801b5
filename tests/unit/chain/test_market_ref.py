"""Market references and their resolution against a scripted JSON-RPC node."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from overlord.chain import aave_abi as abi
from overlord.chain.market_ref import (
    GET_POOL_DATA_PROVIDER,
    MarketRef,
    MarketResolutionError,
    ResolvedMarket,
    resolve_market,
)
from overlord.chain.markets import PRESETS
from overlord.chain.rpc import RpcError, RpcTransportError
from overlord.devnet.manifest import Manifest
from tests.unit.chain.fakes import REVERT, Answer, FakeNode, client_for, raw, result

BASE_PROVIDER = PRESETS["base"].pool_addresses_provider.lower()
OTHER_PROVIDER = "0x" + "22" * 20
POOL = "0x" + "11" * 20
ORACLE = "0x" + "33" * 20
DATA_PROVIDER = "0x" + "44" * 20
ZERO = "0x" + "00" * 20
CODE = "0x6080604052"
LATEST = 1234


@dataclass
class ChainNode(FakeNode):
    """The fake node, plus chain id, latest block number and contract code."""

    chain_id: int = 8453
    latest: int = LATEST
    code: dict[str, str] = field(default_factory=dict)

    def answer(self, method: str, params: list[Any]) -> Answer:
        if method == "eth_chainId":
            return raw(hex(self.chain_id))
        if method == "eth_blockNumber":
            return raw(hex(self.latest))
        if method == "eth_getCode":
            address, _tag = params
            return raw(self.code.get(address.lower(), "0x"))
        return super().answer(method, params)

    def sent(self, method: str) -> list[Any]:
        """The params of every request of ``method`` the client sent, batched or not."""
        items = [i for p in self.requests for i in (p if isinstance(p, list) else [p])]
        return [item["params"] for item in items if item["method"] == method]


def market_node(provider: str = BASE_PROVIDER, chain_id: int = 8453) -> ChainNode:
    """A node with a whole market behind ``provider``."""
    node = ChainNode(chain_id=chain_id)
    node.on(provider, abi.GET_POOL, result(("address",), POOL))
    node.on(provider, abi.GET_PRICE_ORACLE, result(("address",), ORACLE))
    node.on(provider, GET_POOL_DATA_PROVIDER, result(("address",), DATA_PROVIDER))
    node.code = dict.fromkeys((provider, POOL, ORACLE, DATA_PROVIDER), CODE)
    return node


def resolve(node: ChainNode, ref: MarketRef) -> ResolvedMarket:
    with client_for(node) as client:
        return resolve_market(client, ref)


# The reference.


def test_a_reference_needs_exactly_one_way_to_name_the_market() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        MarketRef()
    with pytest.raises(ValueError, match=r"got provider and preset"):
        MarketRef(provider=POOL, preset="base")


def test_a_provider_is_kept_lower_case_and_must_be_an_address() -> None:
    assert MarketRef(provider=PRESETS["base"].pool_addresses_provider).provider == BASE_PROVIDER
    with pytest.raises(ValueError, match="'0x12' is not a 0x address"):
        MarketRef(provider="0x12")


def test_a_preset_is_kept_under_its_canonical_name() -> None:
    assert MarketRef(preset="Mainnet") == MarketRef(preset="ethereum")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PRESETS["base"].pool_addresses_provider, MarketRef(provider=BASE_PROVIDER)),
        ("Base", MarketRef(preset="base")),
        ("devnet/manifest.json", MarketRef(manifest=Path("devnet/manifest.json"))),
        ("manifest.json", MarketRef(manifest=Path("manifest.json"))),
    ],
)
def test_parse_tells_an_address_a_preset_and_a_path_apart(text: str, expected: MarketRef) -> None:
    assert MarketRef.parse(text) == expected


def test_parse_refuses_a_bare_word_that_is_no_preset_with_the_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown market preset 'basee'.*ethereum, "):
        MarketRef.parse("basee")


def test_parse_takes_a_bare_word_naming_an_existing_file_as_a_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mychain").write_text("{}")

    assert MarketRef.parse("mychain") == MarketRef(manifest=Path("mychain"))


def test_parse_refuses_an_empty_market() -> None:
    with pytest.raises(ValueError, match="empty"):
        MarketRef.parse("  ")


def test_a_reference_reads_as_its_kind_and_value() -> None:
    assert str(MarketRef(preset="base")) == "preset base"
    assert str(MarketRef(provider=POOL)) == f"provider {POOL}"
    assert str(MarketRef(manifest=Path("m.json"))) == "manifest m.json"


# Through the provider.


def test_a_preset_resolves_through_its_provider_on_its_chain() -> None:
    node = market_node()

    market = resolve(node, MarketRef(preset="base"))

    assert market == ResolvedMarket(
        pool=POOL,
        pool_addresses_provider=BASE_PROVIDER,
        oracle=ORACLE,
        pool_data_provider=DATA_PROVIDER,
        chain_id=8453,
        deployment_block=None,
        name="base",
    )


def test_every_read_is_pinned_to_the_latest_block_seen_first() -> None:
    node = market_node()

    resolve(node, MarketRef(preset="base"))

    tags = [params[-1] for params in node.sent("eth_call") + node.sent("eth_getCode")]
    assert tags
    assert set(tags) == {hex(LATEST)}


def test_a_preset_on_the_wrong_chain_is_refused_before_any_call() -> None:
    node = market_node(chain_id=1)

    with pytest.raises(
        MarketResolutionError,
        match=r"market base is on base \(chain 8453\) but the node is chain 1 \(ethereum\)",
    ):
        resolve(node, MarketRef(preset="base"))
    assert node.sent("eth_call") == []


def test_a_provider_address_resolves_and_is_named_after_its_preset_when_it_is_one() -> None:
    node = market_node()

    assert resolve(node, MarketRef(provider=BASE_PROVIDER)).name == "base"


def test_a_provider_of_no_preset_is_named_by_its_address() -> None:
    node = market_node(OTHER_PROVIDER, chain_id=31337)

    market = resolve(node, MarketRef(provider=OTHER_PROVIDER))

    assert (market.name, market.chain_id, market.pool) == (
        f"provider {OTHER_PROVIDER}",
        31337,
        POOL,
    )


def test_a_provider_without_code_is_refused() -> None:
    node = market_node()
    del node.code[BASE_PROVIDER]

    with pytest.raises(
        MarketResolutionError,
        match=f"no contract at PoolAddressesProvider {BASE_PROVIDER} on chain 8453 "
        f"\\(base\\) at block {LATEST}",
    ):
        resolve(node, MarketRef(preset="base"))


def test_a_provider_whose_get_pool_reverts_is_refused() -> None:
    node = market_node()
    node.on(BASE_PROVIDER, abi.GET_POOL, REVERT)

    with pytest.raises(MarketResolutionError, match=r"getPool\(\) reverted on .*PoolAddressesProv"):
        resolve(node, MarketRef(preset="base"))


def test_a_contract_answering_nothing_is_not_a_provider() -> None:
    node = market_node()
    node.on(BASE_PROVIDER, abi.GET_PRICE_ORACLE, raw("0x"))

    with pytest.raises(MarketResolutionError, match="does not answer like a PoolAddressesProv"):
        resolve(node, MarketRef(preset="base"))


def test_a_provider_with_no_oracle_set_is_refused() -> None:
    node = market_node()
    node.on(BASE_PROVIDER, abi.GET_PRICE_ORACLE, result(("address",), ZERO))

    with pytest.raises(MarketResolutionError, match=r"getPriceOracle\(\) .* is the zero address"):
        resolve(node, MarketRef(preset="base"))


def test_a_pool_without_code_is_refused() -> None:
    node = market_node()
    del node.code[POOL]

    with pytest.raises(MarketResolutionError, match=f"no contract at the pool {POOL}"):
        resolve(node, MarketRef(preset="base"))


def test_a_malformed_chain_id_is_a_node_error() -> None:
    node = market_node()
    node.chain_id = -1  # hex(-1) is "-0x1"

    with pytest.raises(RpcError, match="eth_chainId: not a hex quantity"):
        resolve(node, MarketRef(preset="base"))


# From a manifest.


def write_manifest(folder: Path, chain_id: int = 31337) -> Path:
    path = folder / "manifest.json"
    Manifest(
        chain_id=chain_id,
        protocol_version="3.6.0",
        deployment_block=7,
        accounts={},
        addresses={
            "pool_addresses_provider": OTHER_PROVIDER,
            "pool": POOL,
            "oracle": ORACLE,
            "pool_data_provider": DATA_PROVIDER,
        },
        reserves=(),
        feeds=(),
        emode_categories=(),
    ).save(path)
    return path


def test_a_manifest_gives_the_addresses_and_the_deployment_block(tmp_path: Path) -> None:
    path = write_manifest(tmp_path)
    node = ChainNode(chain_id=31337, code={POOL: CODE})

    market = resolve(node, MarketRef(manifest=path))

    assert market == ResolvedMarket(
        pool=POOL,
        pool_addresses_provider=OTHER_PROVIDER,
        oracle=ORACLE,
        pool_data_provider=DATA_PROVIDER,
        chain_id=31337,
        deployment_block=7,
        name=f"manifest {path}",
    )
    assert node.sent("eth_call") == []


def test_a_manifest_of_another_chain_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, chain_id=31337)
    node = ChainNode(chain_id=1, code={POOL: CODE})

    with pytest.raises(
        MarketResolutionError, match=r"is of chain 31337 but the node is chain 1 \(ethereum\)"
    ):
        resolve(node, MarketRef(manifest=path))


def test_a_manifest_whose_pool_has_no_code_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path)
    node = ChainNode(chain_id=31337)

    with pytest.raises(MarketResolutionError, match=f"no contract at the Pool {POOL} of manifest"):
        resolve(node, MarketRef(manifest=path))


def test_an_unreadable_manifest_is_a_resolution_error(tmp_path: Path) -> None:
    node = ChainNode(chain_id=31337)

    with pytest.raises(MarketResolutionError, match="cannot read manifest"):
        resolve(node, MarketRef(manifest=tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        ({"pool": POOL, "oracle": ORACLE}, "has no address 'pool_addresses_provider'"),
        ({"pool": "0x12"}, "pool '0x12' is not an address"),
    ],
)
def test_a_manifest_missing_or_garbling_an_address_is_refused(
    tmp_path: Path, addresses: dict[str, str], reason: str
) -> None:
    path = write_manifest(tmp_path)
    manifest = Manifest.load(path)
    Manifest(**{**manifest.__dict__, "addresses": addresses}).save(path)
    node = ChainNode(chain_id=31337, code={POOL: CODE})

    with pytest.raises(MarketResolutionError, match=reason):
        resolve(node, MarketRef(manifest=path))


def test_a_garbled_code_answer_is_a_node_error() -> None:
    node = market_node()
    node.code[BASE_PROVIDER] = "code"

    with pytest.raises(RpcError, match=r"eth_getCode .*: result is not hex"):
        resolve(node, MarketRef(preset="base"))


def test_a_node_failing_mid_resolution_stays_a_transport_error() -> None:
    node = market_node()
    calls = 0

    def fail_on_third_post(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 3:  # chain head, provider code, then the getters
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=node.reply(json.loads(request.content)))

    with client_for(node) as client:
        client._http.close()
        client._http = httpx.Client(transport=httpx.MockTransport(fail_on_third_post))
        with pytest.raises(RpcTransportError, match="ConnectError"):
            resolve_market(client, MarketRef(preset="base"))
