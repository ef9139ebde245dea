"""Every setting the service reads, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{key} must be at least {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{key} must be true or false, got {env.get(key)!r}")


def _cents(env: Mapping[str, str], key: str, default: Decimal) -> Decimal:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise SettingsError(f"{key} must be a number of cents, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{key} must be zero or more cents, got {raw!r}")
    return value


# What a voice minute costs when a call reports no cost of its own (cents, decimals allowed).
DEFAULT_VOICE_CENTS_PER_MINUTE = Decimal("10")


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    admin_database_url: str | None
    home: Path
    admin_token: str | None
    cipher_key: str | None
    nats_url: str | None
    hold_ttl_seconds: int
    rate_limit_per_second: int
    ready_max_lag_seconds: int
    voice_cents_per_minute: Decimal = DEFAULT_VOICE_CENTS_PER_MINUTE
    # false: this process serves the API only; `booking project` keeps the read models
    run_projections: bool = True

    @property
    def embedded(self) -> bool:
        """No database URL given: run PostgreSQL from the wheel under ``home``."""
        return self.database_url is None and self.admin_database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = env.get("BOOKING_DATABASE_URL") or None
        admin_url = env.get("BOOKING_ADMIN_DATABASE_URL") or None
        if (database_url is None) != (admin_url is None):
            raise SettingsError(
                "set both BOOKING_DATABASE_URL (runtime role) and BOOKING_ADMIN_DATABASE_URL "
                "(owner role), or neither to run the embedded PostgreSQL"
            )
        cipher_key = env.get("BOOKING_CIPHER_KEY") or None
        if database_url is not None and cipher_key is None:
            raise SettingsError(
                "BOOKING_CIPHER_KEY is required with an external database: events hold patient "
                "data and are encrypted with it. Create one with "
                "`python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())'` "
                "and keep it in your secret store; losing it makes the events unreadable"
            )
        return cls(
            database_url=database_url,
            admin_database_url=admin_url,
            home=Path(env.get("BOOKING_HOME") or "./.booking").expanduser().resolve(),
            admin_token=env.get("BOOKING_ADMIN_TOKEN") or None,
            cipher_key=cipher_key,
            nats_url=env.get("BOOKING_NATS_URL") or None,
            hold_ttl_seconds=_int(env, "BOOKING_HOLD_TTL_SECONDS", 300, minimum=1),
            rate_limit_per_second=_int(env, "BOOKING_RATE_LIMIT_PER_SECOND", 50),
            ready_max_lag_seconds=_int(env, "BOOKING_READY_MAX_LAG_SECONDS", 30, minimum=1),
            voice_cents_per_minute=_cents(
                env, "BOOKING_VOICE_CENTS_PER_MINUTE", DEFAULT_VOICE_CENTS_PER_MINUTE
            ),
            run_projections=_flag(env, "BOOKING_RUN_PROJECTIONS", True),
        )
