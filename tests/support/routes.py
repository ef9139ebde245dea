"""Every route of the real app, read from litestar itself: its method and path, the roles its
guard lets through, and the msgspec types it declares for its request and success bodies. Tests
that must cover every route enumerate these, so a route added later is covered without a list
to keep in step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import msgspec.inspect as mi
from litestar import Litestar
from litestar.response import Response

from api.auth import GUARD_ROLES

UNKNOWN_GUARD = "?"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # litestar's template without converters: /v1/agent/patients/{patient_ref}/...
    roles: tuple[str, ...]  # () without a guard; UNKNOWN_GUARD for a guard api.auth did not make
    response: Any  # the declared type of a success body; None where it is not declared
    request: Any  # the declared body type; None for routes that take no body
    status_code: int

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def url(self, params: dict[str, str]) -> str:
        return self.path.format(**params)


def _response_type(handler: Any) -> Any:
    annotation = handler.parsed_fn_signature.return_type.annotation
    if get_origin(annotation) is Response:
        (annotation,) = get_args(annotation)
    if annotation in (bytes, Response, Any):
        # a route that renders its own bytes documents the shape in its OpenAPI responses
        spec = (handler.responses or {}).get(handler.status_code)
        return getattr(spec, "data_container", None)
    return annotation


def app_routes(app: Litestar) -> list[Route]:
    found: list[Route] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            methods = sorted(m for m in handler.http_methods if m not in ("OPTIONS", "HEAD"))
            if not methods:
                continue
            roles: tuple[str, ...] = ()
            for guard in handler.resolve_guards():
                roles += GUARD_ROLES.get(guard, (UNKNOWN_GUARD,))
            data = handler.parsed_fn_signature.parameters.get("data")
            for method in methods:
                found.append(
                    Route(
                        method=method,
                        path=re.sub(r"{(\w+):\w+}", r"{\1}", route.path),
                        roles=roles,
                        response=_response_type(handler),
                        request=None if data is None else data.annotation,
                        status_code=handler.status_code,
                    )
                )
    return sorted(found, key=lambda r: (r.path, r.method))


@dataclass(frozen=True)
class DeclaredField:
    path: str  # a JSON path: $.entries[].details
    name: str  # the JSON key
    struct: str  # the msgspec Struct that declares it
    info: mi.Type  # its type


def declared_fields(tp: Any) -> Iterator[DeclaredField]:
    """Every field a msgspec type can put in JSON, at any depth, with the Struct declaring it."""
    yield from _walk(mi.type_info(tp), "$")


def _walk(info: mi.Type, path: str) -> Iterator[DeclaredField]:
    if isinstance(info, mi.StructType):
        for f in info.fields:
            here = f"{path}.{f.encode_name}"
            yield DeclaredField(here, f.encode_name, info.cls.__name__, f.type)
            yield from _walk(f.type, here)
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _walk(info.item_type, f"{path}[]")
    elif isinstance(info, mi.TupleType):
        for item in info.item_types:
            yield from _walk(item, f"{path}[]")
    elif isinstance(info, mi.DictType):
        yield from _walk(info.value_type, f"{path}{{}}")
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            yield from _walk(member, path)


def structs_in(tp: Any) -> Iterator[mi.StructType]:
    """Every Struct type reachable from ``tp``."""

    def walk(info: mi.Type) -> Iterator[mi.StructType]:
        if isinstance(info, mi.StructType):
            yield info
            for f in info.fields:
                yield from walk(f.type)
        elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            yield from walk(info.item_type)
        elif isinstance(info, mi.TupleType):
            for item in info.item_types:
                yield from walk(item)
        elif isinstance(info, mi.DictType):
            yield from walk(info.value_type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                yield from walk(member)

    yield from walk(mi.type_info(tp))


def is_free_form(info: mi.Type) -> bool:
    """Whether a type lets arbitrary keys through (Any, object, a dict of Any)."""
    if isinstance(info, mi.AnyType | mi.CustomType):
        return True
    if isinstance(info, mi.DictType):
        return is_free_form(info.value_type)
    if isinstance(info, mi.UnionType):
        return any(is_free_form(t) for t in info.types)
    return False
