"""Schema, grants and guards, applied by the owner role at start (idempotent, safe from several
processes at once: one advisory lock serialises them).

The runtime role may insert and read events, never change them. The library's save takes
``LOCK TABLE … IN EXCLUSIVE MODE``, which needs MAINTAIN (PostgreSQL 17+) or UPDATE/DELETE/TRUNCATE;
on 15 and 16 we grant UPDATE and refuse every UPDATE, DELETE and TRUNCATE with triggers. The
triggers stand on 17+ too, so even the owner cannot rewrite history without first dropping them.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from booking import audit
from booking.store import EVENTS_TABLE, UNCHANGED_FN, open_store
from fanout import tracking as relay_tracking
from projections.catalog import PROJECTIONS
from projections.schema import create_tables

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x626F6F6B  # "book"

TOKENS_DDL = """
CREATE TABLE IF NOT EXISTS booking_tokens (
    token_id    uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    role        text NOT NULL CHECK (role IN ('staff', 'agent', 'patient', 'auditor')),
    patient_ref text,
    call_id     text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    -- an Idempotency-Key that issued this token: a repeat may not show the secret again
    idempotency_key bytea UNIQUE,
    request_fingerprint text,
    -- the first answer to an Idempotency-Key, encrypted with the event cipher, kept 24 h
    replay bytea
)
"""

IMMUTABLE_FN = """
CREATE OR REPLACE FUNCTION booking_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _immutable(conn: psycopg.Connection, table: str) -> None:
    for when, what in (("update_delete", "UPDATE OR DELETE"), ("truncate", "TRUNCATE")):
        name = f"{table}_refuse_{when}"
        level = "FOR EACH STATEMENT" if what == "TRUNCATE" else "FOR EACH ROW"
        exists = conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} BEFORE "
                    + what
                    + " ON {} "
                    + level
                    + " EXECUTE FUNCTION booking_refuse_change()"
                ).format(sql.Identifier(name), sql.Identifier(table))
            )


# what the runtime role calls (booking/store.py, booking/audit.py)
FUNCTIONS = (
    "public.booking_require_unchanged(uuid[], bigint[])",
    "public.booking_audit_append(text, timestamptz, text, text, text, text, text, integer, uuid,"
    " text, text)",
)


def _audit(conn: psycopg.Connection[Any], role: sql.Identifier) -> None:
    conn.execute(audit.DDL)
    for statement in audit.INDEXES:
        conn.execute(statement)
    conn.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    conn.execute("ALTER TABLE audit_log FORCE ROW LEVEL SECURITY")
    conn.execute("DROP POLICY IF EXISTS tenant_isolation ON audit_log")
    conn.execute(
        "CREATE POLICY tenant_isolation ON audit_log"
        " USING (tenant_id = current_setting('app.tenant_id', true))"
        " WITH CHECK (tenant_id = current_setting('app.tenant_id', true))"
    )
    conn.execute(sql.SQL("GRANT SELECT, INSERT ON audit_log TO {}").format(role))
    _immutable(conn, "audit_log")


def prepare_database(admin_url: str, runtime_url: str, cipher_key: str) -> None:
    runtime_role = str(conninfo_to_dict(runtime_url).get("user") or "")
    if not runtime_role:
        raise ValueError("BOOKING_DATABASE_URL must name its role (user)")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            store = open_store(admin_url, cipher_key, create_tables=True)
            store.close()
            version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
            with conn.transaction():
                conn.execute(TOKENS_DDL)
                conn.execute("ALTER TABLE booking_tokens ADD COLUMN IF NOT EXISTS replay bytea")
                conn.execute(IMMUTABLE_FN)
                conn.execute(UNCHANGED_FN)
                conn.execute(audit.APPEND_FN)
                role = sql.Identifier(runtime_role)
                for function in FUNCTIONS:  # the runtime role's, not PUBLIC's
                    conn.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
                    conn.execute(
                        sql.SQL(f"GRANT EXECUTE ON FUNCTION {function} TO {{}}").format(role)
                    )
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
                for table in (EVENTS_TABLE,):
                    ident = sql.Identifier(table)
                    conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(ident, role))
                    lock_privilege = "MAINTAIN" if version >= 170000 else "UPDATE"
                    conn.execute(
                        sql.SQL("GRANT " + lock_privilege + " ON {} TO {}").format(ident, role)
                    )
                    _immutable(conn, table)
                conn.execute(
                    sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
                        role
                    )
                )
                conn.execute(
                    sql.SQL(
                        "GRANT SELECT, INSERT, UPDATE (revoked_at, replay) ON booking_tokens TO {}"
                    ).format(role)
                )
                for projection in PROJECTIONS:
                    create_tables(conn, projection, runtime_role)
                relay_tracking.create_table(conn, runtime_role)
                _audit(conn, role)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    log.info("database schema ready (runtime role %s)", runtime_role)
