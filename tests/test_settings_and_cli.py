"""Start-up refuses what would lose data or secrets, with a message an operator can act on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from booking import embedded
from booking.settings import Settings, SettingsError


def test_an_external_database_without_a_cipher_key_refuses_to_start() -> None:
    env = {
        "BOOKING_DATABASE_URL": "postgresql://app@db/booking",
        "BOOKING_ADMIN_DATABASE_URL": "postgresql://owner@db/booking",
    }
    with pytest.raises(SettingsError, match="BOOKING_CIPHER_KEY is required"):
        Settings.from_env(env)
    result = subprocess.run(
        [sys.executable, "-m", "booking.cli", "serve"],
        env={**os.environ, **env, "BOOKING_CIPHER_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BOOKING_CIPHER_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_database_url_without_the_other_is_refused() -> None:
    with pytest.raises(SettingsError, match="set both"):
        Settings.from_env({"BOOKING_DATABASE_URL": "postgresql://app@db/booking"})


@pytest.mark.parametrize("raw", ["soon", "-5", "0"])
def test_a_bad_hold_ttl_names_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError, match="BOOKING_HOLD_TTL_SECONDS"):
        Settings.from_env({"BOOKING_HOLD_TTL_SECONDS": raw})


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.embedded and s.hold_ttl_seconds == 300 and s.rate_limit_per_second == 50
    assert s.ready_max_lag_seconds == 30 and s.home == Path("./.booking").resolve()


@pytest.mark.parametrize(
    ("raw", "expected"), [("", True), ("true", True), ("off", False), ("0", False), ("No", False)]
)
def test_run_projections_is_a_flag(raw: str, expected: bool) -> None:
    assert Settings.from_env({"BOOKING_RUN_PROJECTIONS": raw}).run_projections is expected


def test_a_bad_flag_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="BOOKING_RUN_PROJECTIONS must be true or false"):
        Settings.from_env({"BOOKING_RUN_PROJECTIONS": "sometimes"})


def test_embedded_data_of_another_major_is_not_opened(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text(f"{embedded.server_major() - 1}\n")
    with pytest.raises(embedded.EmbeddedServerError, match="was written by PostgreSQL"):
        embedded.start(tmp_path)
    assert sorted(p.name for p in pgdata.iterdir()) == ["PG_VERSION"]  # nothing touched
