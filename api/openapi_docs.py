"""The real status codes of each route, for the OpenAPI document."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from api.schemas import Problem

DESCRIPTIONS = {
    401: "Missing, malformed, unknown or expired token",
    403: "The token's role may not use this route",
    404: "No such object in the caller's scope",
    409: "The current state refuses the request",
    413: "Body larger than 64 KiB",
    422: "Invalid request (errors name the fields)",
    429: "Rate limit for this token exceeded; retry after Retry-After seconds",
    503: "Too much contention; retry after Retry-After seconds",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """Problem+json responses every authenticated route can give, plus ``codes``."""
    wanted = sorted({401, 403, 413, 422, 429, 500, *codes})
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description=DESCRIPTIONS.get(code, "Internal error, with error_id"),
        )
        for code in wanted
    }
