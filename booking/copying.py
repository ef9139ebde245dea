"""A faster deep copy for aggregates whose state is plain data.

The repository hands every command a deep copy of the cached aggregate, so a refused or
conflicting command cannot corrupt the cache. ``copy.deepcopy`` rebuilds each datetime, UUID and
string through ``__reduce_ex__``; ours shares the immutable values, rebuilds the containers
(dict, list) and falls back to ``copy.deepcopy`` for anything else, so the copy is as deep
as before and as independent. A container holding only immutable values is copied in C
(``list(value)``, ``dict(value)``) after a C-level check of its item types: a patient's list of
appointment ids grows with its history, and every command on the patient copies it.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

IMMUTABLE = (str, int, float, bool, bytes, datetime, date, time, timedelta, UUID, Decimal)
_SHAREABLE = frozenset((*IMMUTABLE, type(None)))  # exact types: a subclass may be mutable


def copy_value(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in _SHAREABLE:
        return value
    if kind is dict:
        if _SHAREABLE.issuperset(map(type, value)) and _SHAREABLE.issuperset(
            map(type, value.values())
        ):
            return dict(value)
        return {k: copy_value(v, memo) for k, v in value.items()}
    if kind is list:
        if _SHAREABLE.issuperset(map(type, value)):
            return list(value)
        return [copy_value(v, memo) for v in value]
    if kind is tuple and _SHAREABLE.issuperset(map(type, value)):
        return value
    return copy.deepcopy(value, memo)


class PlainCopy:
    """Mixin: ``copy.deepcopy(aggregate)`` through ``copy_value``."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update({k: copy_value(v, memo) for k, v in self.__dict__.items()})
        return clone
