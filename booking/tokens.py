"""Bearer tokens: random, shown once, stored as SHA-256 hashes with tenant, role, bindings, expiry."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from booking.access import Scope
from booking.clock import Clock
from booking.commands import IdempotencyKey
from booking.errors import IdempotencyKeyReuse, TokenAlreadyIssued
from booking.store import SchedulingApp

ROLES = ("staff", "agent", "patient", "auditor")
DEFAULT_TTL = {"agent": 3600, "patient": 3600, "staff": 30 * 86400, "auditor": 30 * 86400}
MAX_TTL_SECONDS = 365 * 86400
PREFIX = "bk_"
CACHE_SECONDS = 1.0
REPLAY_HOURS = 24  # the contract keeps idempotent answers at least this long


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: UUID
    role: str
    tenant_id: str
    patient_ref: str | None
    call_id: str | None
    expires_at: datetime


class TokenStore:
    def __init__(self, store: SchedulingApp, clock: Clock, admin_token: str | None) -> None:
        self.datastore = store.recorder.datastore  # type: ignore[attr-defined]
        cipher = store.mapper.cipher
        if cipher is None:
            raise ValueError("the token store needs the event store's cipher")
        self.cipher = cipher
        self.clock = clock
        self.admin_digest = _digest(admin_token) if admin_token else None
        self._cache: dict[bytes, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def is_admin(self, token: str) -> bool:
        return self.admin_digest is not None and hmac.compare_digest(
            _digest(token), self.admin_digest
        )

    def issue(
        self,
        tenant_id: str,
        role: str,
        patient_ref: str | None,
        call_id: str | None,
        ttl_seconds: int | None,
    ) -> IssuedToken:
        issued, _ = self._issue(tenant_id, role, patient_ref, call_id, ttl_seconds, None, None)
        assert issued is not None
        return issued

    def issue_answer(
        self,
        tenant_id: str,
        role: str,
        patient_ref: str | None,
        call_id: str | None,
        ttl_seconds: int | None,
        idem: IdempotencyKey | None,
        render: Callable[[IssuedToken], bytes],
    ) -> tuple[bytes, bool]:
        """Issue and render the answer; with an Idempotency-Key seen before, the first answer
        again. Returns the answer's bytes and whether it is a replay."""
        issued, body = self._issue(tenant_id, role, patient_ref, call_id, ttl_seconds, idem, render)
        assert body is not None
        return body, issued is None

    def _issue(
        self,
        tenant_id: str,
        role: str,
        patient_ref: str | None,
        call_id: str | None,
        ttl_seconds: int | None,
        idem: IdempotencyKey | None = None,
        render: Callable[[IssuedToken], bytes] | None = None,
    ) -> tuple[IssuedToken | None, bytes | None]:
        """Store a new token's hash; return it and the rendered answer.

        With an Idempotency-Key the rendered answer is kept, encrypted with the event cipher, for
        REPLAY_HOURS: a retry of the same request gets the same bytes back (and ``None`` for the
        token). After that window the secret is gone for good: 409 token-already-issued.
        """
        token = PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        issued = IssuedToken(
            token=token,
            token_id=uuid4(),
            role=role,
            tenant_id=tenant_id,
            patient_ref=patient_ref,
            call_id=call_id,
            expires_at=now + timedelta(seconds=ttl_seconds or DEFAULT_TTL[role]),
        )
        body = render(issued) if render else None
        idem_key = _digest(f"{idem.scope}\n{idem.key}") if idem else None
        replay = self.cipher.encrypt(body) if (idem and body is not None) else None
        try:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(
                    "UPDATE booking_tokens SET replay = NULL"
                    " WHERE replay IS NOT NULL AND created_at < %s",
                    (now - timedelta(hours=REPLAY_HOURS),),
                )
                curs.execute(
                    "INSERT INTO booking_tokens (token_id, token_hash, tenant_id, role,"
                    " patient_ref, call_id, created_at, expires_at, idempotency_key,"
                    " request_fingerprint, replay)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        issued.token_id,
                        _digest(token),
                        tenant_id,
                        role,
                        patient_ref,
                        call_id,
                        now,
                        issued.expires_at,
                        idem_key,
                        idem.fingerprint if idem else None,
                        replay,
                    ),
                )
        except Exception as exc:
            if idem is None or not isinstance(exc.__cause__ or exc, psycopg.errors.UniqueViolation):
                raise
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(
                    "SELECT token_id, request_fingerprint, replay, created_at, revoked_at"
                    " FROM booking_tokens"
                    " WHERE idempotency_key = %s",
                    (idem_key,),
                )
                row = curs.fetchone()
            if row is None:
                raise
            if row["request_fingerprint"] != idem.fingerprint:
                raise IdempotencyKeyReuse() from None
            fresh = row["created_at"] > now - timedelta(hours=REPLAY_HOURS)
            if row["replay"] is not None and fresh and row["revoked_at"] is None:
                return None, self.cipher.decrypt(bytes(row["replay"]))
            raise TokenAlreadyIssued(
                f"token {row['token_id']} was issued for this Idempotency-Key and has since "
                f"been revoked, or more than {REPLAY_HOURS} hours ago: its secret is no longer "
                "shown. Issue a new one with a new key"
            ) from None
        return issued, body

    def revoke(self, token_id: UUID) -> bool:
        """Revoke a token; False when no live token has this id. Every API process stops
        accepting it within CACHE_SECONDS."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE booking_tokens SET revoked_at = %s"
                " WHERE token_id = %s AND revoked_at IS NULL",
                (self.clock.now(), token_id),
            )
            return bool(curs.rowcount)

    def cached(self, token: str) -> tuple[bool, Scope | None]:
        """``(True, scope)`` when ``authenticate`` can answer without the database (a malformed
        token, or one looked up less than CACHE_SECONDS ago); ``(False, None)`` otherwise.
        Cheap enough for the event loop: the common request skips a worker-thread hop."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return True, None
        with self._lock:
            hit = self._cache.get(_digest(token))
        if hit is None or time.monotonic() - hit[0] >= CACHE_SECONDS:
            return False, None
        return True, self._scope(hit[1])

    def authenticate(self, token: str) -> Scope | None:
        """The scope of a live token, or None for unknown, expired or revoked ones.

        Known tokens are remembered for CACHE_SECONDS, so a revocation takes at most that long
        to reach every request; expiry is checked on every request.
        """
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        digest = _digest(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            row = hit[1]
        else:
            # one statement, no transaction around it: one round trip where BEGIN … END took three
            with self.datastore.get_connection() as conn:
                row = conn.execute(
                    "SELECT token_id, tenant_id, role, patient_ref, call_id, expires_at,"
                    " revoked_at FROM booking_tokens WHERE token_hash = %s",
                    (digest,),
                    prepare=True,
                ).fetchone()
            if row is not None:
                with self._lock:
                    if len(self._cache) > 10_000:
                        self._cache.clear()
                    self._cache[digest] = (now, row)
        return self._scope(row)

    def _scope(self, row: Any) -> Scope | None:
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= self.clock.now():
            return None
        return Scope(
            tenant_id=row["tenant_id"],
            role=row["role"],
            token_id=str(row["token_id"]),
            patient_ref=row["patient_ref"],
            call_id=row["call_id"],
        )
