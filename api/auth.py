"""Bearer-token guards: 401 for a missing, malformed, unknown or expired token; 403 for a valid
token of the wrong role. The caller's Scope is left on the request for handlers to use."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from litestar import Request
from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from api.auditing import begin_entry, note
from api.services import Services
from booking.access import Scope
from booking.ids import is_client_id
from booking.tokens import TokenStore

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]

# The roles each guard lets through: api/allowlists.py's checks read a route's roles from here.
GUARD_ROLES: dict[Guard, tuple[str, ...]] = {}


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("send Authorization: Bearer <token>")
    return token.strip()


def tokens_of(connection: ASGIConnection[Any, Any, Any, Any]) -> TokenStore:
    return connection.app.state.services.tokens  # type: ignore[no-any-return]


async def authenticate(tokens: TokenStore, token: str) -> Scope | None:
    known, scope = tokens.cached(token)
    return scope if known else await sync_to_thread(tokens.authenticate, token)


def limit(connection: ASGIConnection[Any, Any, Any, Any], principal: str) -> None:
    connection.app.state.rate_limiter.check(principal)


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = bearer(connection)
    tokens = tokens_of(connection)
    if tokens.is_admin(token):
        connection.state.admin = True  # for the audit entry
        return  # the platform operator's token is not an issued token and is not rate limited
    scope = await authenticate(tokens, token)
    if scope is not None:
        connection.state.scope = scope  # an authenticated refusal is audited too
        raise PermissionDeniedException("platform admin routes need the admin token")
    raise NotAuthorizedException("unknown or expired token")


def role_guard(*roles: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = bearer(connection)
        tokens = tokens_of(connection)
        scope = await authenticate(tokens, token)
        if scope is None:
            if tokens.is_admin(token):
                connection.state.admin = True
                raise PermissionDeniedException("the admin token is for platform admin routes only")
            raise NotAuthorizedException("unknown or expired token")
        connection.state.scope = scope  # before any refusal: an authenticated refusal is audited
        begin_entry(connection)
        limit(connection, scope.token_id)
        if scope.role not in roles:
            await note_attempted_patient(connection)
            raise PermissionDeniedException(f"this route needs role {' or '.join(roles)}")

    GUARD_ROLES[guard] = roles
    return guard


GUARD_ROLES[admin_guard] = ("admin",)


async def note_attempted_patient(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """For the audit entry of a refused request: the patient its body or path names, if any."""
    patient_ref = connection.path_params.get("patient_ref")
    if patient_ref is None and isinstance(connection, Request):
        with contextlib.suppress(Exception):  # a body that is not JSON names no patient
            body = msgspec.json.decode(await connection.body())
            if isinstance(body, dict):
                patient_ref = body.get("patient_ref")
    if isinstance(patient_ref, str) and is_client_id(patient_ref):
        note(connection, patient_ref=patient_ref.lower())  # type: ignore[arg-type]


def provide_scope(request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Scope:
    """The Scope the guard left on the request. It takes ``services`` only to be resolved after
    it: litestar resolves the dependencies of one level together in an anyio task group, which
    cost about 6% of an API worker's time per request (py-spy, benchmarks/booking_rate.py)."""
    return request.state.scope  # type: ignore[no-any-return]
