"""Bearer-token guards: 401 for a missing, malformed, unknown or expired token; 403 for a valid
token of the wrong role. The caller's Scope is left on the request for handlers to use."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from booking.access import Scope
from booking.tokens import TokenStore

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("send Authorization: Bearer <token>")
    return token.strip()


def tokens_of(connection: ASGIConnection[Any, Any, Any, Any]) -> TokenStore:
    return connection.app.state.services.tokens  # type: ignore[no-any-return]


def limit(connection: ASGIConnection[Any, Any, Any, Any], principal: str) -> None:
    connection.app.state.rate_limiter.check(principal)


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = bearer(connection)
    tokens = tokens_of(connection)
    if tokens.is_admin(token):
        return  # the platform operator's token is not an issued token and is not rate limited
    if await sync_to_thread(tokens.authenticate, token) is not None:
        raise PermissionDeniedException("platform admin routes need the admin token")
    raise NotAuthorizedException("unknown or expired token")


def role_guard(*roles: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = bearer(connection)
        tokens = tokens_of(connection)
        scope = await sync_to_thread(tokens.authenticate, token)
        if scope is None:
            if tokens.is_admin(token):
                raise PermissionDeniedException("the admin token is for platform admin routes only")
            raise NotAuthorizedException("unknown or expired token")
        limit(connection, scope.token_id)
        if scope.role not in roles:
            raise PermissionDeniedException(f"this route needs role {' or '.join(roles)}")
        connection.state.scope = scope

    return guard


def provide_scope(request: Request[Any, Any, Any]) -> Scope:
    return request.state.scope  # type: ignore[no-any-return]
