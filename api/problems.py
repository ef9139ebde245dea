"""Every error, mapped once, to RFC 9457 problem+json. No stack trace, SQL or internal name leaks;
a 5xx carries an error_id that the server log has too."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import msgspec
from eventsourcing.persistence import OperationalError
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from psycopg_pool import PoolTimeout

from api.schemas import FieldProblem, Problem
from booking.errors import BookingError, http_status

log = logging.getLogger("booking.api")

MEDIA_TYPE = "application/problem+json"


# Details quote what the client sent ("no booking carries confirmation code '…'"); a 60 KB path
# must not come back as a 60 KB answer (nor fill logs and audit rows downstream).
MAX_DETAIL = 300


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    if len(problem.detail) > MAX_DETAIL:
        problem.detail = problem.detail[: MAX_DETAIL - 1] + "…"
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def booking_error(_: Request[Any, Any, Any], exc: BookingError) -> Response[Any]:
    status = http_status(exc)
    extra = exc.extra()
    problem = Problem(
        type=f"/problems/{exc.problem}", title=exc.title, status=status, detail=exc.detail
    )
    if "errors" in extra:
        problem.errors = [FieldProblem(**e) for e in extra["errors"]]
    if "alternatives" in extra:
        problem.alternatives = extra["alternatives"]
    if "confirmed" in extra:
        problem.confirmed = extra["confirmed"]
    retry_after = getattr(exc, "retry_after_seconds", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return problem_response(problem, headers)


_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_BARE_NAME = re.compile(r"^'[^']*'$")
_MISSING_PARAM = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def _field(key: str | None, message: str) -> str:
    path = "" if key in (None, "data") else str(key)
    for pattern in (_MISSING, _UNKNOWN):
        m = pattern.search(message)
        if m:
            path = f"{path}.{m.group(1)}" if path else m.group(1)
    return path or "body"


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "invalid"))
        if _BARE_NAME.match(message):  # a KeyError's repr: the body is absent, not invalid
            message = "a JSON body is required"
        errors.append(FieldProblem(field=_field(item.get("key"), message), message=message))
    if not errors:
        missing = _MISSING_PARAM.search(str(exc.detail or ""))
        if missing:  # litestar names a missing query/path/header parameter only in its detail
            errors = [
                FieldProblem(
                    field=missing.group(2), message=f"required {missing.group(1)} parameter"
                )
            ]
        else:
            errors = [FieldProblem(field="body", message="invalid request")]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem_response(
        Problem(
            type="/problems/validation-error",
            title="Invalid request",
            status=422,
            detail=detail,
            errors=errors,
        )
    )


HTTP_PROBLEMS = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}

SAFE_DETAIL = {
    401: "a valid bearer token is required",
    403: "this token's role may not use this route",
    404: "no such resource",
    405: "method not allowed on this route",
    413: "the request body is larger than 64 KiB",
}


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 400:
        # litestar raises 400 for bodies that are not JSON at all: a validation error to us.
        # its detail may name handler internals, so it is never echoed
        return body_error("the body is missing or not valid JSON")
    if status >= 500:
        return internal_error(request, exc)
    return _http_problem(exc)


def body_error(message: str) -> Response[Any]:
    return problem_response(
        Problem(
            type="/problems/validation-error",
            title="Invalid request",
            status=422,
            detail=f"body: {message}",
            errors=[FieldProblem(field="body", message=message)],
        )
    )


def _http_problem(exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    name, title = HTTP_PROBLEMS.get(status, ("http-error", "Request refused"))
    detail = SAFE_DETAIL.get(status) or str(exc.detail or title)
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException) and exc.detail:
        detail = str(exc.detail)
    if isinstance(exc, NotFoundException):
        detail = SAFE_DETAIL[404]
    headers = dict(exc.headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 429:
        detail = str(exc.detail)
    return problem_response(
        Problem(type=f"/problems/{name}", title=title, status=status, detail=detail), headers
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    error_id = uuid.uuid4().hex
    # The log gets the exception type and traceback, never the request body (it may hold PHI).
    log.error(
        "error_id=%s %s %s failed: %s",
        error_id,
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
    )
    return problem_response(
        Problem(
            type="/problems/internal-error",
            title="Internal error",
            status=500,
            detail="the server failed to answer; quote error_id when reporting it",
            error_id=error_id,
        )
    )


def too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    return body_error("the body is nested too deeply")


def overloaded(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The database could not be reached in time (pool exhausted, lock timeout, restart)."""
    log.warning(
        "%s %s: database unavailable: %s", request.method, request.url.path, type(exc).__name__
    )
    return problem_response(
        Problem(
            type="/problems/busy",
            title="Too much contention, try again",
            status=503,
            detail="the database did not answer in time; nothing was written",
        ),
        {"Retry-After": "1"},
    )


HANDLERS: dict[type[Exception] | int, Any] = {
    BookingError: booking_error,
    RecursionError: too_deep,
    PoolTimeout: overloaded,
    OperationalError: overloaded,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
