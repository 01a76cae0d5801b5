"""Shared helpers of the configuration tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from overlord.config import Config, load_config

SECRET_URL = "https://user:hunter2@eth.example.com/v2/SECRETKEY?apikey=QUERYKEY#FRAG"
SECRET_PARTS = ("hunter2", "user:", "SECRETKEY", "QUERYKEY", "apikey", "/v2", "FRAG")
PROVIDER = "0x" + "ab" * 20


def write_toml(folder: Path, text: str, name: str = "overlord.toml") -> Path:
    """Write ``text`` as a config file in ``folder``; its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(
    toml: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """:func:`load_config` with an empty environment unless one is given."""
    return load_config(toml, env or {}, flags)


def assert_no_secret(text: str) -> None:
    """``text`` shows no part of :data:`SECRET_URL` beyond its host."""
    for part in SECRET_PARTS:
        assert part not in text, f"{part!r} leaked into {text!r}"
