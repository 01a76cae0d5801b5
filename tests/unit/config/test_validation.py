"""Every validation error names the setting, its source and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlord.config import ConfigError, ZmqMode
from tests.unit.config.helpers import load, write_toml


def file_error(tmp_path: Path, text: str) -> ConfigError:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.source == f"file {path}"
    return caught.value


def env_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(None, env)
    return caught.value


# The file.


def test_an_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    error = file_error(tmp_path, "[chain]\npoll_intervall_s = 1\n")

    assert error.setting == "chain.poll_intervall_s"
    assert error.reason == "unknown setting (did you mean chain.poll_interval_s?)"


def test_an_unknown_section_is_an_error(tmp_path: Path) -> None:
    error = file_error(tmp_path, "[chian]\nbuckets = 1\n")

    assert error.setting == "chian"
    assert "not a known section; sections are [chain], [users]" in error.reason


def test_a_setting_outside_any_section_is_an_error(tmp_path: Path) -> None:
    assert file_error(tmp_path, "buckets = 1\n").setting == "buckets"


def test_a_file_that_is_not_toml_is_an_error(tmp_path: Path) -> None:
    error = file_error(tmp_path, "[chain\n")

    assert (error.setting, error.reason.startswith("not valid TOML")) == ("config", True)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config \(file .*nope.toml\): cannot read it"):
        load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "setting", "reason"),
    [
        ('[chain]\nbuckets = "4"', "chain.buckets", "expected an integer, got str '4'"),
        ("[chain]\nbuckets = true", "chain.buckets", "expected an integer, got a boolean"),
        ('[users]\nbackfill = "yes"', "users.backfill", "expected a boolean, got str 'yes'"),
        (
            '[chain]\npoll_interval_s = "1"',
            "chain.poll_interval_s",
            "expected a number of seconds, got str '1'",
        ),
        ("[output]\nzmq_topic = 5", "output.zmq_topic", "expected a string, got int 5"),
        ('[profit]\nmin_usd = "10"', "profit.min_usd", "expected an amount in USD, got str '10'"),
    ],
)
def test_file_values_must_have_the_right_toml_type(
    tmp_path: Path, text: str, setting: str, reason: str
) -> None:
    error = file_error(tmp_path, text + "\n")

    assert (error.setting, error.reason) == (setting, reason)


# Ranges.


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("OVERLORD__CHAIN__BUCKETS", "0", "0 is out of range: must be 1..1024"),
        ("OVERLORD__CHAIN__BATCH_SIZE", "10001", "10001 is out of range: must be 1..10000"),
        ("PROFIT_FEE_BPS", "10001", "10001 is out of range: must be 0..10000"),
        ("PROFIT_FEE_BPS", "-1", "-1 is out of range: must be 0..10000"),
        ("OVERLORD__USERS__FROM_BLOCK", "-5", "-5 is out of range: must be at least 0"),
        ("POLL_LIMIT", "0", "0 is out of range: must be 1..1000"),
        (
            "OVERLORD__CHAIN__POLL_INTERVAL_S",
            "0",
            "0.0 is out of range: must be a positive number of seconds",
        ),
        (
            "OVERLORD__DETECTION__REANNOUNCE_INTERVAL_S",
            "nan",
            "nan is out of range: must be a positive number of seconds",
        ),
        (
            "OVERLORD__CHAIN__REQUEST_TIMEOUT_S",
            "soon",
            "expected a number of seconds, got 'soon'",
        ),
        ("PROFIT_MIN_USD", "-1", "-1 is out of range: must be a non-negative amount"),
        ("GAS_COST_USD", "lots", "expected an amount in USD, got 'lots'"),
        ("OVERLORD__CHAIN__BUCKETS", "4.5", "expected an integer, got '4.5'"),
    ],
)
def test_numbers_out_of_range_or_malformed_are_refused(
    variable: str, value: str, reason: str
) -> None:
    error = env_error({variable: value})

    assert (error.source, error.reason) == (f"env {variable}", reason)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("tcp://127.0.0.1:70000", "port 70000 is out of range: must be 1..65535"),
        ("tcp://127.0.0.1:0", "port 0 is out of range: must be 1..65535"),
        (
            "tcp://127.0.0.1",
            "'tcp://127.0.0.1' is not tcp://host:port, ipc://path or inproc://name",
        ),
        ("udp://host:1", "'udp://host:1' is not tcp://host:port, ipc://path or inproc://name"),
    ],
)
def test_zmq_endpoints_are_checked_with_their_port(endpoint: str, reason: str) -> None:
    error = env_error({"OVERLORD__OUTPUT__ZMQ_ENDPOINT": endpoint})

    assert (error.setting, error.reason) == ("output.zmq_endpoint", reason)


@pytest.mark.parametrize(
    "endpoint", ["tcp://*:5556", "tcp://[::1]:5556", "ipc:///tmp/overlord", "inproc://events"]
)
def test_valid_zmq_endpoints_pass(endpoint: str) -> None:
    assert load(None, {"OVERLORD__OUTPUT__ZMQ_ENDPOINT": endpoint}).output.zmq_endpoint == endpoint


def test_the_zmq_mode_is_push_or_pub() -> None:
    assert load(None, {"OVERLORD__OUTPUT__ZMQ_MODE": "PUB"}).output.zmq_mode is ZmqMode.PUB
    assert env_error({"OVERLORD__OUTPUT__ZMQ_MODE": "pull"}).reason == (
        "expected push or pub, got 'pull'"
    )


# Booleans from strings.


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True)],
        *[("false", False), ("0", False), ("no", False), ("NO", False)],
    ],
)
def test_booleans_from_the_environment_accept_six_words(word: str, expected: bool) -> None:
    assert load(None, {"IGNORE_BOOTSTRAP_BATCH": word}).tracker.ignore_bootstrap_batch is expected


@pytest.mark.parametrize("word", ["on", "off", "y", "2", "truthy", "enabled"])
def test_booleans_from_the_environment_refuse_anything_else(word: str) -> None:
    error = env_error({"SUBGRAPH_DEBUG_ERRORS": word})

    assert error.setting == "tracker.subgraph_debug_errors"
    assert error.source == "env SUBGRAPH_DEBUG_ERRORS"
    assert error.reason == f"expected true/false/1/0/yes/no, got {word!r}"


# Files and addresses.


def test_an_addresses_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "users.txt"

    error = env_error({"VEGA_ADDRESSES_FILE": str(missing)})

    assert str(error) == (
        f"users.addresses_file (env VEGA_ADDRESSES_FILE): {missing} is not an existing file"
    )


def test_the_temp_output_dir_must_already_exist(tmp_path: Path) -> None:
    error = env_error({"TEMP_OUTPUT_DIR": str(tmp_path / "out")})

    assert error.reason == f"{tmp_path / 'out'} is not an existing directory (it is not created)"


@pytest.mark.parametrize(
    ("feeds", "reason"),
    [
        ("WETH:0x12", "feed WETH: '0x12' is not a 0x address"),
        ("WETH", "feed WETH: '' is not a 0x address"),
        ("WETH:0x" + "ab" * 20 + ",WETH:0x" + "cd" * 20, "feed symbol 'WETH' is empty or repeated"),
        (":0x" + "ab" * 20, "feed symbol '' is empty or repeated"),
    ],
)
def test_chainlink_feeds_are_symbol_address_pairs(feeds: str, reason: str) -> None:
    assert env_error({"CHAINLINK_FEEDS": feeds}).reason == reason


def test_chainlink_feeds_in_the_file_are_a_table(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[feeds.chainlink_feeds]\nWETH = "0x' + "AB" * 20 + '"\n')

    assert load(path).feeds.chainlink_feeds == (("WETH", "0x" + "ab" * 20),)


# Names.


def test_an_unknown_overlord_variable_is_an_error_with_a_suggestion() -> None:
    error = env_error({"OVERLORD__CHAIN__BUCKET": "2"})

    assert (error.setting, error.source) == (
        "OVERLORD__CHAIN__BUCKET",
        "env OVERLORD__CHAIN__BUCKET",
    )
    assert error.reason == "names no setting (did you mean OVERLORD__CHAIN__BUCKETS?)"


def test_other_variables_are_ignored() -> None:
    assert load(None, {"OVERLORD_HOME": "/x", "PATH": "/bin", "BUCKETS": "x"}).chain.buckets == 4


def test_two_names_of_one_setting_disagreeing_is_an_error() -> None:
    error = env_error({"POLL_LIMIT": "5", "OVERLORD__TRACKER__POLL_LIMIT": "6"})

    assert (error.setting, error.source) == ("tracker.poll_limit", "env POLL_LIMIT")
    assert error.reason == "OVERLORD__TRACKER__POLL_LIMIT is set to something else: unset one"


def test_an_unknown_flag_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^chain\.bukets \(flag chain\.bukets\): unknown"):
        load(None, None, {"chain.bukets": 2})


# The market.


def test_an_unknown_preset_lists_the_known_ones() -> None:
    error = env_error({"OVERLORD__CHAIN__PRESET": "basee", "OVERLORD_RPC_URL": "http://n"})

    assert error.setting == "chain.preset"
    assert error.reason.startswith("unknown market preset 'basee': known presets are ethereum")


def test_a_provider_must_be_an_address() -> None:
    error = env_error({"OVERLORD__CHAIN__POOL_ADDRESSES_PROVIDER": "base"})

    assert (error.setting, error.reason) == (
        "chain.pool_addresses_provider",
        "PoolAddressesProvider 'base' is not a 0x address",
    )


def test_a_manifest_must_exist(tmp_path: Path) -> None:
    error = env_error({"OVERLORD__CHAIN__MARKET": str(tmp_path / "m.json")})

    assert (error.setting, error.reason) == (
        "chain.market",
        f"{tmp_path / 'm.json'} is not an existing file",
    )


def test_a_public_market_needs_an_rpc_url() -> None:
    error = env_error({"OVERLORD__CHAIN__MARKET": "base"})

    assert (error.setting, error.source) == ("chain.market", "env OVERLORD__CHAIN__MARKET")
    assert error.reason.startswith("preset base needs a node: set OVERLORD_RPC_URL")


# Rules across settings.


def test_the_reportable_minimum_cannot_be_below_the_detection_minimum(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, "[detection]\nmin_collateral_base = 100\nmin_reportable_collateral_base = 10\n"
    )

    with pytest.raises(ConfigError) as caught:
        load(path)

    assert caught.value.setting == "detection.min_reportable_collateral_base"
    assert caught.value.source == f"file {path}"
    assert "is below detection.min_collateral_base" in caught.value.reason


def test_a_zmq_topic_needs_pub() -> None:
    error = env_error({"OVERLORD__OUTPUT__ZMQ_TOPIC": "underwater"})

    assert (error.setting, error.reason) == (
        "output.zmq_topic",
        "a topic needs output.zmq_mode = pub",
    )
    config = load(
        None, {"OVERLORD__OUTPUT__ZMQ_TOPIC": "underwater", "OVERLORD__OUTPUT__ZMQ_MODE": "pub"}
    )
    assert config.output.zmq_topic == "underwater"


def test_an_empty_zmq_topic_is_a_topic_too(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[output]\nzmq_topic = ""\n')

    with pytest.raises(ConfigError, match=r"a topic needs output\.zmq_mode = pub"):
        load(path)


def test_an_error_reads_setting_source_and_reason() -> None:
    error = env_error({"PROFIT_FEE_BPS": "20000"})

    assert (
        str(error) == "profit.fee_bps (env PROFIT_FEE_BPS): 20000 is out of range: must be 0..10000"
    )
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"chain.poll_interval_s": True}, "expected a number of seconds, got a boolean"),
        ({"profit.min_usd": False}, "expected an amount in USD, got a boolean"),
        ({"profit.min_usd": [1]}, "expected an amount in USD, got list [1]"),
        ({"output.data_dir": ""}, "expected a path, got ''"),
        ({"output.data_dir": 3}, "expected a path, got 3"),
        ({"chain.rpc_url": 8545}, "expected a URL, got int"),
        ({"feeds.chainlink_feeds": ["WETH"]}, "expected SYM:0xaddress,... or a table, got list"),
    ],
)
def test_flag_values_of_the_wrong_type_are_refused(flags: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, None, flags)

    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OVERLORD__TRACKER__SOURCE": "dune"}, "expected one of logs, subgraph"),
        ({"OVERLORD__HTTP__METRICS_PREFIX": "9bad-"}, "not a Prometheus metric name prefix"),
        ({"METRICS_PORT": "70000"}, "65535"),
        ({"OVERLORD__VERIFIER__SAMPLE_USERS_PER_BLOCK": "-1"}, "must be 0..10000"),
    ],
)
def test_tracker_http_and_verifier_settings_are_checked(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(None, env)


def test_metrics_port_and_tracker_source_from_the_environment() -> None:
    config = load(None, {"METRICS_PORT": "0", "OVERLORD__TRACKER__SOURCE": "subgraph"})

    assert (config.http.port, config.tracker.source) == (0, "subgraph")
