"""Events and audit entries can be appended and read by the runtime role, never changed: PostgreSQL
itself refuses UPDATE, DELETE and TRUNCATE, on the session's server (the embedded PostgreSQL 18
unless told otherwise) and on PostgreSQL 15, the oldest supported major.

The library's save takes ``LOCK TABLE … IN EXCLUSIVE MODE``, which PostgreSQL allows only with
UPDATE, DELETE, TRUNCATE or (17+) MAINTAIN. So ``prepare_database`` grants MAINTAIN where the
server has it and UPDATE where it does not; triggers refuse every change either way. Both
halves are checked here: a real save (and a bare LOCK TABLE) by the runtime role succeeds, and
each change is refused with a permission error while the rows stay as they were. Past the
database (a superuser with triggers off), AES-GCM makes an altered event unreadable.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import MapperDeserialisationError
from psycopg import errors

from booking.audit import AuditLog
from booking.practice import Tenant
from booking.schema import FUNCTIONS, prepare_database
from booking.store import EVENTS_TABLE, open_store
from tests.support.pg15 import find_pg15_bin, start_pg15
from tests.support.postgres import RUNTIME_ROLE, PgCluster, database_name

TENANT = "append-only"
TABLES = (EVENTS_TABLE, "audit_log")
CHANGES = (
    "UPDATE {table} SET {column} = {column}",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
)
COLUMN = {EVENTS_TABLE: "topic", "audit_log": "outcome"}


@pytest.fixture(scope="module")
def pg15() -> Iterator[PgCluster]:
    bin_dir, where = find_pg15_bin()
    if bin_dir is None:
        pytest.skip(where)
    cluster = start_pg15(bin_dir, where)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=["session-server", "postgresql-15"])
def prepared(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A database prepared by ``prepare_database``, one event and one audit entry stored in it
    by the runtime role through the service's own code."""
    cluster: PgCluster = request.getfixturevalue(
        "pg_cluster" if request.param == "session-server" else "pg15"
    )
    name = database_name(f"{request.module.__name__}_{request.param}")
    runtime_url, admin_url = cluster.create_database(name)
    key = base64.b64encode(os.urandom(32)).decode()
    try:
        prepare_database(admin_url, runtime_url, key)
        store = open_store(runtime_url, key, pool_size=1)
        try:
            # a real save: eventsourcing takes LOCK TABLE … IN EXCLUSIVE MODE, then INSERTs
            store.save(Tenant(tenant_id=TENANT, name="Clinic", timezone="UTC"))
            AuditLog(store).append(
                tenant_id=TENANT,
                at=datetime.now(UTC),
                principal="tester",
                role="staff",
                action="GET /v1/test",
                patient_ref=None,
                status=200,
                request_id=uuid4(),
            )
        finally:
            store.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        yield {
            "runtime_url": runtime_url,
            "admin_url": admin_url,
            "superuser_url": cluster.superuser_url(name),
            "version": int(version[0]),
            "key": key,
            "server": cluster.description,
        }
    finally:
        cluster.drop_database(name)


def snapshot(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, read as superuser (row-level security does not apply)."""
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


def attempt(url: str, statement: str) -> BaseException | None:
    """Run ``statement`` in a transaction that sets the tenant; what PostgreSQL raised, if any."""
    with psycopg.connect(url) as conn:
        try:
            with conn.transaction(force_rollback=True):
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT,))
                conn.execute(statement)
        except psycopg.DatabaseError as exc:
            return exc
    return None


def test_the_runtime_role_can_append_read_and_lock(prepared: dict[str, Any]) -> None:
    with psycopg.connect(prepared["runtime_url"]) as conn, conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT,))
        # what the library's save does before its INSERT
        conn.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
        events = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        entries = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert events == (1,), (prepared["server"], events)
    assert entries == (1,), (prepared["server"], entries)


def test_the_save_functions_run_for_the_runtime_role_only(prepared: dict[str, Any]) -> None:
    """The unchanged check and the audit append judge saves and write the audit chain.
    PostgreSQL lets PUBLIC execute a new function; the schema takes that back and grants EXECUTE
    to the runtime role alone, so a role with no grants of its own cannot call either."""
    nobody = "booking_probe_" + uuid4().hex[:8]
    with psycopg.connect(prepared["superuser_url"], autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {nobody} NOLOGIN")
        try:
            may = {
                (role, function): conn.execute(
                    "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, function)
                ).fetchone()
                for role in (RUNTIME_ROLE, nobody)
                for function in FUNCTIONS
            }
        finally:
            conn.execute(f"DROP ROLE {nobody}")
    for function in FUNCTIONS:
        assert may[RUNTIME_ROLE, function] == (True,), (prepared["server"], function)
        assert may[nobody, function] == (False,), (prepared["server"], function)


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.split()[0])
def test_the_runtime_role_cannot_change_or_remove_rows(
    prepared: dict[str, Any], table: str, change: str
) -> None:
    statement = change.format(table=table, column=COLUMN[table])
    before = snapshot(prepared["superuser_url"], table)
    assert before, f"{table} is empty: nothing to protect"
    refused = attempt(prepared["runtime_url"], statement)
    assert isinstance(refused, errors.InsufficientPrivilege), (
        f"{prepared['server']}: {statement!r} by the runtime role was not refused with a "
        f"permission error: {refused!r}"
    )
    assert snapshot(prepared["superuser_url"], table) == before


@pytest.mark.parametrize("table", TABLES)
def test_grants_follow_the_server_major(prepared: dict[str, Any], table: str) -> None:
    """MAINTAIN where the server has it (17+), UPDATE (refused by triggers) where it does not;
    never DELETE or TRUNCATE, and the refusing triggers are there in both cases."""
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
    if prepared["version"] >= 170000:
        privileges.append("MAINTAIN")  # unknown to older servers
    with psycopg.connect(prepared["superuser_url"], autocommit=True) as conn:
        granted = {
            privilege
            for privilege in privileges
            if conn.execute(
                "SELECT has_table_privilege(%s, %s, %s)", (RUNTIME_ROLE, table, privilege)
            ).fetchone()
            == (True,)
        }
        triggers = {
            row[0]
            for row in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                (table,),
            ).fetchall()
        }

    def has(privilege: str) -> bool:
        return privilege in granted

    assert has("SELECT") and has("INSERT")
    assert not has("DELETE") and not has("TRUNCATE"), prepared["server"]
    assert {f"{table}_refuse_update_delete", f"{table}_refuse_truncate"} <= triggers, triggers
    if table == EVENTS_TABLE:
        if prepared["version"] >= 170000:
            assert has("MAINTAIN") and not has("UPDATE"), prepared["server"]
        else:
            assert has("UPDATE"), f"{prepared['server']}: LOCK TABLE needs UPDATE before 17"
    else:
        assert not has("UPDATE"), prepared["server"]


@pytest.mark.parametrize("table", TABLES)
def test_the_owner_cannot_rewrite_history_either(prepared: dict[str, Any], table: str) -> None:
    """The triggers stand for the owner too: changing history takes dropping them first."""
    before = snapshot(prepared["superuser_url"], table)
    for change in CHANGES:
        statement = change.format(table=table, column=COLUMN[table])
        refused = attempt(prepared["admin_url"], statement)
        assert isinstance(refused, errors.InsufficientPrivilege), (statement, refused)
    assert snapshot(prepared["superuser_url"], table) == before


def test_an_altered_event_fails_to_decrypt_instead_of_reading_wrong(
    prepared: dict[str, Any],
) -> None:
    """Past the database's refusals (a superuser with triggers off): AES-GCM authenticates every
    stored event, so one changed byte makes it unreadable, never silently different."""
    su = prepared["superuser_url"]
    with psycopg.connect(su, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT originator_id, originator_version, state FROM {EVENTS_TABLE} LIMIT 1"
        ).fetchone()
    assert row is not None
    stream, version, state = row
    altered = bytearray(state)
    altered[len(altered) // 2] ^= 0x01

    def put(value: bytes) -> None:
        with psycopg.connect(su) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # triggers off
            conn.execute(
                f"UPDATE {EVENTS_TABLE} SET state = %s"
                " WHERE originator_id = %s AND originator_version = %s",
                (value, stream, version),
            )

    store = open_store(prepared["runtime_url"], prepared["key"], pool_size=1)
    put(bytes(altered))
    try:
        with pytest.raises(MapperDeserialisationError, match="Invalid cipher tag"):
            store.repository.get(stream)
    finally:
        put(bytes(state))
        store.close()
    intact = open_store(prepared["runtime_url"], prepared["key"], pool_size=1)
    try:
        assert intact.repository.get(stream).tenant_id == TENANT
    finally:
        intact.close()
