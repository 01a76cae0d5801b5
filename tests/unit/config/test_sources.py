"""Where settings come from: defaults < file < environment < flags, and the prior names."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from overlord.chain.market_ref import MarketRef
from overlord.config import ENV_NAMES, SETTING_NAMES, Config, ConfigError, ZmqMode
from tests.unit.config.helpers import PROVIDER, load, write_toml

RPC = {"OVERLORD_RPC_URL": "http://127.0.0.1:8545"}


def test_without_any_source_the_defaults_apply() -> None:
    config = load()

    assert config == Config()
    assert config.chain.poll_interval_s == 1.0
    assert config.profit.fee_bps == 30
    assert config.profit.min_usd == Decimal(10)
    assert config.output.zmq_mode is ZmqMode.PUSH
    assert set(config.origins.values()) == {"default"}


def test_the_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[chain]\npoll_interval_s = 2.5\n[profit]\nfee_bps = 45\n")

    config = load(path)

    assert (config.chain.poll_interval_s, config.profit.fee_bps) == (2.5, 45)
    assert config.origins["chain.poll_interval_s"] == f"file {path}"
    assert config.origins["chain.buckets"] == "default"


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[chain]\npoll_interval_s = 2.5\n")

    config = load(path, {"OVERLORD__CHAIN__POLL_INTERVAL_S": "4"})

    assert config.chain.poll_interval_s == 4.0
    assert config.origins["chain.poll_interval_s"] == "env OVERLORD__CHAIN__POLL_INTERVAL_S"


def test_flags_override_the_environment_and_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[chain]\nbuckets = 2\n")

    config = load(path, {"OVERLORD__CHAIN__BUCKETS": "3"}, {"chain.buckets": 8})

    assert config.chain.buckets == 8
    assert config.origins["chain.buckets"] == "flag chain.buckets"


def test_flags_given_as_none_count_as_not_given() -> None:
    config = load(None, {"OVERLORD__CHAIN__BUCKETS": "3"}, {"chain.buckets": None})

    assert config.chain.buckets == 3


def test_flag_strings_are_converted_like_environment_strings() -> None:
    config = load(None, None, {"users.backfill": "no", "chain.batch_size": "250"})

    assert (config.users.backfill, config.chain.batch_size) == (False, 250)


def test_an_empty_environment_variable_counts_as_unset() -> None:
    assert load(None, {"POLL_LIMIT": "", "OVERLORD__USERS__BACKFILL": "  "}) == Config()


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"),
    [
        ("TEMP_OUTPUT_DIR", "{tmp}", "output.temp_output_dir", "{tmp}"),
        ("VEGA_ADDRESSES_FILE", "{tmp}/users.txt", "users.addresses_file", "{tmp}/users.txt"),
        (
            "VEGA_CHAINLINK_ADDRESSES_FILE",
            "{tmp}/feeds.csv",
            "feeds.chainlink_addresses_file",
            "{tmp}/feeds.csv",
        ),
        ("POLL_LIMIT", "7", "tracker.poll_limit", 7),
        ("IGNORE_BOOTSTRAP_BATCH", "false", "tracker.ignore_bootstrap_batch", False),
        ("SUBGRAPH_DEBUG_ERRORS", "yes", "tracker.subgraph_debug_errors", True),
        ("PROFIT_FEE_BPS", "45", "profit.fee_bps", 45),
        ("PROFIT_MIN_USD", "12.5", "profit.min_usd", Decimal("12.5")),
        ("GAS_COST_USD", "0.75", "profit.gas_cost_usd", Decimal("0.75")),
        (
            "CHAINLINK_FEEDS",
            "WETH:0x" + "AB" * 20 + ", USDC:0x" + "cd" * 20,
            "feeds.chainlink_feeds",
            (("WETH", "0x" + "ab" * 20), ("USDC", "0x" + "cd" * 20)),
        ),
    ],
)
def test_the_prior_systems_variable_names_keep_working(
    tmp_path: Path, variable: str, value: str, setting: str, expected: object
) -> None:
    (tmp_path / "users.txt").write_text("")
    (tmp_path / "feeds.csv").write_text("")
    if isinstance(expected, str):
        expected = Path(expected.format(tmp=tmp_path))

    config = load(None, {variable: value.format(tmp=tmp_path)})

    section, key = setting.split(".")
    assert getattr(getattr(config, section), key) == expected
    assert config.origins[setting] == f"env {variable}"


def test_the_secret_variables_keep_their_names() -> None:
    config = load(
        None,
        {"OVERLORD_RPC_URL": "http://node:8545", "CHAINLINK_RPC_URL": "https://feeds.example"},
    )

    assert config.chain.rpc_url is not None
    assert config.chain.rpc_url.reveal() == "http://node:8545"
    assert config.feeds.chainlink_rpc_url is not None
    assert config.feeds.chainlink_rpc_url.reveal() == "https://feeds.example"


def test_every_setting_has_its_generic_variable() -> None:
    for name in SETTING_NAMES:
        section, key = name.split(".")
        assert f"OVERLORD__{section.upper()}__{key.upper()}" in ENV_NAMES[name]


def test_two_names_of_one_setting_agreeing_are_fine() -> None:
    config = load(None, {"POLL_LIMIT": "9", "OVERLORD__TRACKER__POLL_LIMIT": "9"})

    assert config.tracker.poll_limit == 9


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("")
    path = write_toml(tmp_path, '[users]\naddresses_file = "users.txt"\n[output]\ndata_dir = "d"\n')

    config = load(path)

    assert config.users.addresses_file == tmp_path / "users.txt"
    assert config.output.data_dir == tmp_path / "d"


def test_relative_paths_from_the_environment_stay_relative_to_the_working_directory() -> None:
    assert load(None, {"OVERLORD__OUTPUT__DATA_DIR": "var/data"}).output.data_dir == Path(
        "var/data"
    )


# The market.


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("market", "base", MarketRef(preset="base")),
        ("market", PROVIDER, MarketRef(provider=PROVIDER)),
        ("preset", "Mainnet", MarketRef(preset="ethereum")),
        ("pool_addresses_provider", PROVIDER, MarketRef(provider=PROVIDER)),
    ],
)
def test_the_market_has_several_spellings(key: str, value: str, expected: MarketRef) -> None:
    config = load(None, {f"OVERLORD__CHAIN__{key.upper()}": value, **RPC})

    assert config.chain.market == expected


def test_a_manifest_market_in_the_file_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    path = write_toml(tmp_path, '[chain]\nmarket = "manifest.json"\n')

    config = load(path)

    assert config.chain.market == MarketRef(manifest=tmp_path / "manifest.json")


def test_a_manifest_flag_is_a_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text("{}")

    config = load(None, None, {"chain.manifest": manifest})

    assert config.chain.market == MarketRef(manifest=manifest)
    assert config.origins["chain.market"] == "flag chain.manifest"


def test_a_higher_source_replaces_the_market_whatever_its_spelling(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[chain]\npreset = "base"\n')

    config = load(path, RPC, {"chain.pool_addresses_provider": PROVIDER})

    assert config.chain.market == MarketRef(provider=PROVIDER)


def test_one_source_may_name_the_market_only_once() -> None:
    env = {"OVERLORD__CHAIN__MARKET": "base", "OVERLORD__CHAIN__PRESET": "base", **RPC}

    with pytest.raises(ConfigError, match="mutually exclusive") as caught:
        load(None, env)

    assert caught.value.setting == "chain.market"
    assert caught.value.source == "env OVERLORD__CHAIN__MARKET"
    assert "env OVERLORD__CHAIN__PRESET" in str(caught.value)
