"""Stable identifiers. Every aggregate id is a UUIDv5 namespaced by tenant, so an id from another
tenant can never name an object of this one, and uniqueness (codes, idempotency keys) collides in
the event store itself."""

from __future__ import annotations

import re
from functools import lru_cache
from uuid import UUID, uuid5

# Fixed once for the project; changing either would rename every stored object and event.
AGGREGATE_NAMESPACE = UUID("6f1c0a7e-3b1d-5c2e-9a44-0d6b8f2e7c11")
EVENT_NAMESPACE = UUID("b8e3f6d2-4a5c-5e71-8d09-2c7a1f4e9b30")

CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def is_client_id(value: str) -> bool:
    return bool(_CLIENT_ID.match(value))


def normalise(client_id: str) -> str:
    """Client ids match case-insensitively; store and compare them lower-cased."""
    return client_id.lower()


def aggregate_id(tenant_id: str, kind: str, *parts: str) -> UUID:
    return _named("/".join((normalise(tenant_id), kind, *parts)))


@lru_cache(maxsize=16384)  # a command names the same patient, provider, type and day many times
def _named(key: str) -> UUID:
    return uuid5(AGGREGATE_NAMESPACE, key)


def event_id(stream_id: UUID, version: int) -> UUID:
    """The id that names one stored event wherever it travels (HTTP evidence, NATS Nats-Msg-Id)."""
    return uuid5(EVENT_NAMESPACE, f"{stream_id}:{version}")
