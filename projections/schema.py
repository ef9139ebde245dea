"""Read-model tables, created by the owner role: each with tenant_id, row-level security enabled
and forced (the owner is bound too), one policy comparing tenant_id with the transaction's
``app.tenant_id`` setting, and grants for the runtime role. No views, no SECURITY DEFINER."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from projections.base import Projection

POLICY = "tenant_isolation"


def index_name(table: str, i: int) -> str:
    return f"{table}_idx{i}"


def create_tables(conn: psycopg.Connection[Any], projection: Projection, runtime_role: str) -> None:
    """Create (if missing) the tables of ``projection`` under its physical names."""
    role = sql.Identifier(runtime_role)
    for table in projection.tables:
        name = projection.physical(table.name)
        ident = sql.Identifier(name)
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (tenant_id text NOT NULL, " + table.columns + ")"
            ).format(ident)
        )
        for i, columns in enumerate(table.indexes):
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} " + columns).format(
                    sql.Identifier(index_name(name, i)), ident
                )
            )
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
        conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(ident))
        conn.execute(
            sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), ident)
        )
        conn.execute(
            sql.SQL(
                "CREATE POLICY {} ON {} USING (tenant_id = current_setting('app.tenant_id', true))"
                " WITH CHECK (tenant_id = current_setting('app.tenant_id', true))"
            ).format(sql.Identifier(POLICY), ident)
        )
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(ident, role)
        )
    tracking = sql.Identifier(projection.tracking_table)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (application_name text PRIMARY KEY,"
            " notification_id bigint)"
        ).format(tracking)
    )
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(tracking, role))
