"""Resolve settings into what the service runs on: database URLs, cipher key, admin token.

With no database URL the embedded PostgreSQL starts under BOOKING_HOME, and a cipher key and an
admin token are generated there once (mode 0600) and reused on every start after.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from booking import embedded
from booking.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    database_url: str
    admin_database_url: str
    cipher_key: str
    admin_token: str | None
    server: embedded.EmbeddedPostgres | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _secret_file(path: Path, make: Callable[[], str], what: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make() + "\n")
    log.warning("generated a new %s and stored it in %s (mode 0600); back it up", what, path)
    return path.read_text().strip()


def resolve(settings: Settings) -> Runtime:
    if not settings.embedded:
        assert settings.database_url and settings.admin_database_url and settings.cipher_key
        return Runtime(
            settings.database_url,
            settings.admin_database_url,
            settings.cipher_key,
            settings.admin_token,
        )
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    cipher_key = settings.cipher_key or _secret_file(
        home / "cipher-key", lambda: base64.b64encode(os.urandom(32)).decode(), "cipher key"
    )
    admin_token = settings.admin_token or _secret_file(
        home / "admin-token", lambda: "adm_" + secrets.token_urlsafe(32), "admin token"
    )
    server = embedded.start(home)
    runtime_url, admin_url = embedded.ensure_roles_and_database(server)
    log.info("embedded PostgreSQL %d running with data in %s", embedded.server_major(), home)
    return Runtime(runtime_url, admin_url, cipher_key, admin_token, server)
