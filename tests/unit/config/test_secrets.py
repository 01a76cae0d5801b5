"""Secrets come only from the environment or flags and are never shown whole."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from overlord.config import ConfigError, SecretUrl
from tests.unit.config.helpers import SECRET_URL, assert_no_secret, load, write_toml


@pytest.mark.parametrize(
    ("section", "key", "variable"),
    [
        ("chain", "rpc_url", "OVERLORD_RPC_URL"),
        ("chain", "ws_url", "OVERLORD_WS_URL"),
        ("feeds", "chainlink_rpc_url", "CHAINLINK_RPC_URL"),
        ("tracker", "subgraph_url", "SUBGRAPH_URL"),
        ("tracker", "subgraph_api_key", "GRAPH_API_KEY"),
        ("notify", "webhook_url", "OVERLORD_WEBHOOK_URL"),
    ],
)
def test_a_secret_in_the_file_is_refused_and_the_error_says_why(
    tmp_path: Path, section: str, key: str, variable: str
) -> None:
    path = write_toml(tmp_path, f'[{section}]\n{key} = "{SECRET_URL}"\n')

    with pytest.raises(ConfigError) as caught:
        load(path)

    assert (caught.value.setting, caught.value.source) == (f"{section}.{key}", f"file {path}")
    assert "secrets are never read from the file" in caught.value.reason
    assert f"set {variable}" in caught.value.reason
    assert_no_secret(str(caught.value))


def test_the_rpc_url_comes_from_the_environment() -> None:
    config = load(None, {"OVERLORD_RPC_URL": SECRET_URL})

    assert config.chain.rpc_url == SecretUrl(SECRET_URL)
    assert config.origins["chain.rpc_url"] == "env OVERLORD_RPC_URL"


def test_the_rpc_url_flag_beats_the_environment() -> None:
    config = load(None, {"OVERLORD_RPC_URL": "http://env:8545"}, {"chain.rpc_url": SECRET_URL})

    assert config.chain.rpc_url is not None
    assert config.chain.rpc_url.reveal() == SECRET_URL


def test_repr_str_and_describe_show_only_the_host() -> None:
    config = load(None, {"OVERLORD_RPC_URL": SECRET_URL, "CHAINLINK_RPC_URL": SECRET_URL})

    for text in (repr(config), str(config), config.describe(), str(config.settings())):
        assert_no_secret(text)
        assert "https://eth.example.com/…" in text


def test_the_secret_is_not_in_log_output(caplog: pytest.LogCaptureFixture) -> None:
    config = load(None, {"OVERLORD_RPC_URL": SECRET_URL})

    with caplog.at_level(logging.INFO):
        logging.getLogger("overlord.test").info(
            "config %s %r %s", config, config, config.describe()
        )
        logging.getLogger("overlord.test").info("url %s %r", config.chain.rpc_url, config.chain)

    assert_no_secret(caplog.text)


def test_a_malformed_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, {"OVERLORD_RPC_URL": "ftp://user:hunter2@eth.example.com/v2/SECRETKEY"})

    assert caught.value.reason == "ftp://eth.example.com/… is not an http(s) or ws(s) URL"
    assert_no_secret(str(caught.value))


def test_a_value_without_a_scheme_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, {"CHAINLINK_RPC_URL": "SECRETKEY"})

    assert caught.value.reason == "<rpc url> is not an http(s) or ws(s) URL"


def test_disagreeing_secret_variables_are_reported_without_their_values() -> None:
    env = {"OVERLORD_RPC_URL": SECRET_URL, "OVERLORD__CHAIN__RPC_URL": "http://other:8545"}

    with pytest.raises(ConfigError) as caught:
        load(None, env)

    assert_no_secret(str(caught.value))
    assert "other" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8545", "https://node.example", "ws://n:8546", "wss://n/key"]
)
def test_http_and_websocket_urls_are_accepted(url: str) -> None:
    config = load(None, {"OVERLORD_RPC_URL": url})

    assert config.chain.rpc_url is not None
    assert config.chain.rpc_url.reveal() == url


def test_a_secret_url_compares_by_value_but_prints_redacted() -> None:
    secret = SecretUrl(SECRET_URL)

    assert secret == SecretUrl(SECRET_URL)
    assert repr(secret) == "SecretUrl('https://eth.example.com/…')"
    assert f"{secret}" == "https://eth.example.com/…"


def test_the_subgraph_key_is_never_shown() -> None:
    config = load(None, {"GRAPH_API_KEY": "SECRETKEY", "SUBGRAPH_URL": SECRET_URL})

    assert config.tracker.subgraph_api_key is not None
    assert config.tracker.subgraph_api_key.reveal() == "SECRETKEY"
    assert_no_secret(repr(config) + str(config.tracker.subgraph_api_key) + config.describe())
