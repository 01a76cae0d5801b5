"""Configuration reload: runtime settings applied, the rest deferred, bad files ignored."""

from __future__ import annotations

import os
from pathlib import Path

from overlord.config import Config, load_config
from overlord.reload import ConfigReloader, changed_settings


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()  # a new mtime even within the filesystem's clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _reloader(path: Path, applied: list[Config]) -> ConfigReloader:
    current = load_config(path, {})
    return ConfigReloader(path, {}, current, applied.append, env={})


def test_a_changed_threshold_is_applied_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "overlord.toml"
    _write(path, "[detection]\nreannounce_interval_s = 10\n")
    applied: list[Config] = []
    reloader = _reloader(path, applied)

    _write(path, "[detection]\nreannounce_interval_s = 500\n[profit]\nfee_bps = 45\n")
    changed = reloader.check()

    assert changed == ["detection.reannounce_interval_s", "profit.fee_bps"]
    assert [c.detection.reannounce_interval_s for c in applied] == [500]
    assert reloader.current.profit.fee_bps == 45
    assert reloader.check() is None  # unchanged file: nothing to do


def test_a_file_that_does_not_load_keeps_the_running_configuration(tmp_path: Path) -> None:
    path = tmp_path / "overlord.toml"
    _write(path, "[detection]\nreannounce_interval_s = 10\n")
    applied: list[Config] = []
    reloader = _reloader(path, applied)

    _write(path, "[detection]\nreannounce_interval_s = -3\n")

    assert reloader.check() is None
    assert applied == []
    assert reloader.failures == 1
    assert reloader.current.detection.reannounce_interval_s == 10


def test_settings_that_need_a_restart_are_not_applied(tmp_path: Path) -> None:
    path = tmp_path / "overlord.toml"
    _write(path, "[chain]\nbuckets = 4\n")
    applied: list[Config] = []
    reloader = _reloader(path, applied)

    _write(path, "[chain]\nbuckets = 8\n")

    assert reloader.check() == []
    assert applied == []
    assert reloader.current.chain.buckets == 4


def test_a_sighup_forces_a_reload_of_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "overlord.toml"
    _write(path, "[detection]\nreannounce_interval_s = 90\n")
    applied: list[Config] = []
    reloader = ConfigReloader(path, {}, Config(), applied.append, env={})

    assert reloader.check() is None  # the file is as it was when the reloader started
    assert reloader.check(forced=True) == ["detection.reannounce_interval_s"]
    assert changed_settings(Config(), applied[0]) == ["detection.reannounce_interval_s"]
