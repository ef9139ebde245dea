"""Lint of the database the app prepares: row-level security binds every tenant table, forced, for
the owner too; the runtime role cannot step around it; and the binding really holds, tried with
the runtime role's own connections over real rows of two tenants.

The exempt tables are named here: a new table without row-level security fails this module until
it gets a tenant_id and a policy, or a reason to join exempt()."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.booking_helpers import open_slots
from tests.support.server import LiveServer, Tenant, expect, seed_tenant, setup_practice

TENANTS = ("rls-a", "rls-b")
EVENTS = "scheduling_events"
TOKENS = "booking_tokens"
# one tracking row per projection, and the NATS relay's (nats_relay_tracking): a log position per
# reader, no tenant column and no patient data, exempt by design
TRACKING = re.compile(r"^[a-z0-9_]+_tracking(__next)?$")
READ_MODELS = {"portal_appointments", "board_appointments", "patient_timeline", "timeline_patients"}


def exempt(table: str) -> bool:
    return table in (EVENTS, TOKENS) or bool(TRACKING.match(table))


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(live_server: LiveServer) -> dict[str, list[str]]:
    """Appointments in two tenants, created over HTTP, every read model caught up on them."""
    made: dict[str, list[str]] = {}
    with live_server.client() as client:
        for tenant_id in TENANTS:
            tenant = seed_tenant(live_server, tenant_id)
            practice = setup_practice(live_server, tenant, patients=("pat-1", "pat-2"))
            slots = open_slots(client, tenant, practice, days_from=1, days=3, limit=6)
            made[tenant_id] = []
            position = 0
            for patient_ref, slot in zip(("pat-1", "pat-2", "pat-1"), slots, strict=False):
                answer = expect(
                    client.post(
                        "/v1/agent/bookings",
                        json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
                        headers=tenant.agent_headers,
                    ),
                    201,
                )
                made[tenant_id].append(answer["appointment_id"])
                position = answer["evidence"]["position"]
            cancelled = expect(
                client.post(
                    f"/v1/agent/appointments/{made[tenant_id][-1]}/cancel",
                    json={},
                    headers=tenant.agent_headers,
                ),
                200,
            )
            position = cancelled["evidence"]["position"]
            wait_for_views(client, tenant, position)
    return made


def wait_for_views(client: httpx.Client, tenant: Tenant, position: int) -> None:
    """Every read model has applied ``position`` (each screen waits for its own view)."""
    params = {"min_position": position}
    expect(
        client.get(
            "/v1/staff/appointments",
            params={**params, "date_from": "2000-01-01", "date_to": "2000-01-02"},
            headers=tenant.staff_headers,
        ),
        200,
    )
    expect(
        client.get(
            "/v1/portal/appointments",
            params=params,
            headers=tenant.token("patient", patient_ref="pat-1"),
        ),
        200,
    )
    expect(
        client.get(
            "/v1/staff/patients/pat-1/timeline", params=params, headers=tenant.staff_headers
        ),
        200,
    )


@pytest.fixture(scope="module")
def owner(live_server: LiveServer, data: dict[str, list[str]]) -> Iterator[psycopg.Connection]:
    assert live_server.settings.admin_database_url is not None
    with psycopg.connect(live_server.settings.admin_database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def runtime(live_server: LiveServer, data: dict[str, list[str]]) -> Iterator[psycopg.Connection]:
    """A connection of the runtime role, transactions explicit (autocommit off)."""
    assert live_server.settings.database_url is not None
    with psycopg.connect(live_server.settings.database_url) as conn:
        yield conn


@pytest.fixture(scope="module")
def tables(owner: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Every ordinary or partitioned table in schema public, with its RLS flags and policies."""
    rows = owner.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                          AND NOT a.attisdropped) AS has_tenant,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        """
    ).fetchall()
    return {
        name: {"rls": rls, "force": force, "has_tenant": has_tenant, "policies": policies}
        for name, rls, force, has_tenant, policies in rows
    }


def runtime_role(live_server: LiveServer) -> str:
    assert live_server.settings.database_url is not None
    params = conninfo_to_dict(live_server.settings.database_url)
    return str(params["user"])


def in_tenant(conn: psycopg.Connection, tenant_id: str) -> None:
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))


def count(conn: psycopg.Connection, table: str, where: str = "true", *args: Any) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(sql.Identifier(table))
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return int(row[0])


# -- the catalogue -------------------------------------------------------------------------


def test_every_tenant_table_has_forced_row_level_security_and_a_policy(
    tables: dict[str, dict[str, Any]],
) -> None:
    bound = {name for name, t in tables.items() if t["has_tenant"] and not exempt(name)}
    assert bound >= READ_MODELS, f"read-model tables missing from the lint: {sorted(tables)}"
    for name in sorted(bound):
        t = tables[name]
        assert t["rls"], f"{name}: row level security is not enabled"
        assert t["force"], f"{name}: row level security is not forced (the owner bypasses it)"
        assert t["policies"] >= 1, f"{name}: no policy"


def test_the_exempt_tables_are_exactly_the_named_ones(
    tables: dict[str, dict[str, Any]],
) -> None:
    unbound = {name for name, t in tables.items() if not (t["rls"] and t["force"])}
    unknown = sorted(name for name in unbound if not exempt(name))
    assert not unknown, (
        f"tables without forced row-level security that are not exempt: {unknown}; "
        "give them tenant_id and a policy, or name them in exempt() with a reason"
    )
    no_tenant = sorted(n for n, t in tables.items() if not t["has_tenant"] and not exempt(n))
    assert not no_tenant, f"tables without tenant_id that are not exempt: {no_tenant}"
    assert EVENTS in tables and TOKENS in tables, sorted(tables)
    tracking = {n for n in tables if TRACKING.match(n)}
    assert {"portal_tracking", "board_tracking", "timeline_tracking"} <= tracking, sorted(tables)
    assert not tables[EVENTS]["has_tenant"], "the event table gained a tenant column"


def test_policies_compare_tenant_id_with_the_transaction_setting(
    owner: psycopg.Connection, tables: dict[str, dict[str, Any]]
) -> None:
    for name in sorted(n for n, t in tables.items() if t["has_tenant"] and not exempt(n)):
        policies = owner.execute(
            """
            SELECT polcmd, polpermissive, pg_get_expr(polqual, polrelid),
                   pg_get_expr(polwithcheck, polrelid)
              FROM pg_policy WHERE polrelid = %s::regclass
            """,
            (name,),
        ).fetchall()
        permissive = [p for p in policies if p[1]]
        assert permissive, f"{name}: no permissive policy, so no row is ever visible"
        for cmd, _, using, check in permissive:
            for expression in (using, check):
                if expression is None:
                    continue
                assert "tenant_id" in expression and "app.tenant_id" in expression, (
                    f"{name}: policy ({cmd}) does not bind tenant_id to app.tenant_id: {expression}"
                )


def test_runtime_role_is_neither_superuser_nor_bypassrls_nor_owner(
    live_server: LiveServer, owner: psycopg.Connection
) -> None:
    role = runtime_role(live_server)
    row = owner.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    assert row is not None, role
    assert row == (False, False, False), f"{role}: super, bypassrls, createrole = {row}"
    owned = owner.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND pg_has_role(%s, c.relowner, 'USAGE')
        """,
        (role,),
    ).fetchall()
    assert owned == [], f"{role} owns (or acts as the owner of) {owned}"
    schema_owner = owner.execute(
        "SELECT pg_has_role(%s, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'public'",
        (role,),
    ).fetchone()
    assert schema_owner == (False,), f"{role} acts as the owner of schema public"
    can_create = owner.execute(
        "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)
    ).fetchone()
    assert can_create == (False,), f"{role} may create objects in schema public"


def test_runtime_connection_is_really_that_role(live_server: LiveServer, runtime: Any) -> None:
    row = runtime.execute(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (runtime_role(live_server), False, False), row
    runtime.rollback()


def test_no_plain_views_and_no_security_definer_functions(owner: psycopg.Connection) -> None:
    views = owner.execute(
        """
        SELECT c.relname, c.relkind, c.reloptions
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
        """
    ).fetchall()
    for name, kind, options in views:
        assert kind == "v", f"materialized view {name}: it ignores row-level security"
        settings = {o.split("=", 1)[0]: o.split("=", 1)[1].lower() for o in options or []}
        assert settings.get("security_invoker") in ("true", "on", "1", "yes"), (
            f"view {name} runs with its owner's rights (no security_invoker): {options}"
        )
    definers = owner.execute(
        """
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.prosecdef
        """
    ).fetchall()
    assert definers == [], f"SECURITY DEFINER functions in public: {definers}"


# -- the binding, tried ----------------------------------------------------------------------


def test_read_models_hold_rows_of_both_tenants(runtime: psycopg.Connection) -> None:
    for tenant_id in TENANTS:
        with runtime.transaction():
            in_tenant(runtime, tenant_id)
            for table in sorted(READ_MODELS):
                assert count(runtime, table) > 0, f"{table} has no row of {tenant_id}"


def test_without_a_tenant_the_runtime_role_sees_no_row(runtime: psycopg.Connection) -> None:
    for table in sorted(READ_MODELS):
        with runtime.transaction():
            assert count(runtime, table) == 0, f"{table} shows rows with no tenant set"
        with runtime.transaction():
            in_tenant(runtime, "")
            assert count(runtime, table) == 0, f"{table} shows rows for an empty tenant"
        with runtime.transaction():
            in_tenant(runtime, "no-such-tenant")
            assert count(runtime, table) == 0, f"{table} shows rows for an unknown tenant"


def test_without_a_tenant_the_owner_sees_no_row_either(owner: psycopg.Connection) -> None:
    for table in sorted(READ_MODELS):
        assert count(owner, table) == 0, f"{table}: the owner bypasses row-level security"


def test_with_tenant_a_set_no_row_of_tenant_b_shows(runtime: psycopg.Connection) -> None:
    a, b = TENANTS
    for table in sorted(READ_MODELS):
        with runtime.transaction():
            in_tenant(runtime, a)
            seen = runtime.execute(
                sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table))
            ).fetchall()
            assert seen == [(a,)], f"{table} under {a} shows tenants {seen}"
            assert count(runtime, table, "tenant_id = %s", b) == 0, table


def test_appointments_of_tenant_b_are_invisible_by_id(
    runtime: psycopg.Connection, data: dict[str, list[str]]
) -> None:
    a, b = TENANTS
    for table in ("portal_appointments", "board_appointments", "patient_timeline"):
        with runtime.transaction():
            in_tenant(runtime, a)
            assert count(runtime, table, "appointment_id = ANY(%s::uuid[])", data[b]) == 0
            assert count(runtime, table, "appointment_id = ANY(%s::uuid[])", data[a]) > 0
        with runtime.transaction():
            in_tenant(runtime, b)
            assert count(runtime, table, "appointment_id = ANY(%s::uuid[])", data[b]) > 0


def columns_of(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("table", sorted(READ_MODELS))
def test_writing_a_row_of_another_tenant_is_refused(
    runtime: psycopg.Connection, table: str
) -> None:
    """Under tenant A, a copy of one of A's rows relabelled as tenant B's is refused."""
    a, b = TENANTS
    columns = columns_of(runtime, table)
    runtime.rollback()
    assert columns[0] == "tenant_id", columns
    others = sql.SQL(", ").join(sql.Identifier(c) for c in columns[1:])
    insert = sql.SQL(
        "INSERT INTO {t} (tenant_id, {cols}) SELECT %s, {cols} FROM {t} LIMIT 1"
    ).format(t=sql.Identifier(table), cols=others)
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        runtime.transaction(),
    ):
        in_tenant(runtime, a)
        assert count(runtime, table) > 0
        runtime.execute(insert, (b,))
    relabel = sql.SQL("UPDATE {} SET tenant_id = %s").format(sql.Identifier(table))
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        runtime.transaction(),
    ):
        in_tenant(runtime, a)
        runtime.execute(relabel, (b,))
    # with no tenant set, no write gets through either
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        runtime.transaction(),
    ):
        runtime.execute(
            sql.SQL("INSERT INTO {} (tenant_id) VALUES (%s)").format(sql.Identifier(table)),
            (b,),
        )
    # and tenant B cannot delete tenant A's rows (they are not there for it)
    with runtime.transaction(force_rollback=True):
        in_tenant(runtime, b)
        deleted = runtime.execute(
            sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)), (a,)
        ).rowcount
        assert deleted == 0, f"{table}: tenant B deleted {deleted} rows of tenant A"


def test_a_local_setting_does_not_outlive_its_transaction(runtime: psycopg.Connection) -> None:
    a, _ = TENANTS
    table = "board_appointments"
    with runtime.transaction():
        in_tenant(runtime, a)
        assert count(runtime, table) > 0
    # the next transaction on the same connection starts with no tenant
    with runtime.transaction():
        setting = runtime.execute("SELECT current_setting('app.tenant_id', true)").fetchone()
        assert setting is not None and setting[0] in (None, ""), setting
        assert count(runtime, table) == 0, "the tenant setting leaked into the next transaction"
    # nor after a rollback
    with runtime.transaction(force_rollback=True):
        in_tenant(runtime, a)
        assert count(runtime, table) > 0
    with runtime.transaction():
        assert count(runtime, table) == 0, "the tenant setting survived a rollback"
