"""``chain.fallback_rpc_urls``, the RPC retry settings and ``[state]``."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlord.config import ConfigError, StateConfig
from tests.unit.config.helpers import SECRET_URL, assert_no_secret, load, write_toml

OTHER = "https://rpc.example.org/KEY2"


def test_fallback_urls_come_from_the_environment_separated_by_commas_or_spaces() -> None:
    config = load(None, {"OVERLORD_RPC_FALLBACK_URLS": f"{SECRET_URL}, {OTHER}\n"})

    assert [url.reveal() for url in config.chain.fallback_rpc_urls] == [SECRET_URL, OTHER]
    assert_no_secret(config.describe())
    assert "KEY2" not in config.describe()


def test_a_fallback_url_listed_twice_or_malformed_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError, match="listed twice") as twice:
        load(None, {"OVERLORD_RPC_FALLBACK_URLS": f"{SECRET_URL} {SECRET_URL}"})
    with pytest.raises(ConfigError, match="not an http") as malformed:
        load(None, {"OVERLORD_RPC_FALLBACK_URLS": "ftp://h/SECRETKEY"})

    for error in (twice.value, malformed.value):
        assert_no_secret(str(error))
        assert error.setting == "chain.fallback_rpc_urls"


def test_fallback_urls_in_the_file_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, f'[chain]\nfallback_rpc_urls = ["{OTHER}"]\n')

    with pytest.raises(ConfigError, match="secrets are never read from the file"):
        load(path)


def test_state_defaults_and_zero_turns_the_background_jobs_off(tmp_path: Path) -> None:
    assert load(None).state == StateConfig()
    path = write_toml(
        tmp_path,
        "[state]\nenabled = false\nreconcile_interval_s = 0\nwatch_addresses_s = 0.5\n"
        "restart_verify_users = 0\n",
    )

    assert load(path).state == StateConfig(False, 0.0, 0.5, 0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OVERLORD__STATE__RECONCILE_INTERVAL_S", "-1"),
        ("OVERLORD__STATE__WATCH_ADDRESSES_S", "nan"),
        ("OVERLORD__CHAIN__RPC_ATTEMPTS", "0"),
        ("OVERLORD__CHAIN__RPC_RATE_LIMIT_PER_S", "-5"),
    ],
)
def test_negative_or_malformed_values_are_refused_naming_the_setting(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(None, {variable: value})

    assert error.value.setting == variable.removeprefix("OVERLORD__").lower().replace("__", ".")
