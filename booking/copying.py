"""A faster deep copy for aggregates whose state is plain data.

The repository hands every command a deep copy of the cached aggregate, so a refused or
conflicting command cannot corrupt the cache. ``copy.deepcopy`` rebuilds each datetime, UUID and
string through ``__reduce_ex__``; ours shares the immutable values, rebuilds the containers
(dict, list, set) and falls back to ``copy.deepcopy`` for anything else, so the copy is as deep
as before and as independent.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

IMMUTABLE = (str, int, float, bool, bytes, datetime, date, time, timedelta, UUID, Decimal)


def copy_value(value: Any, memo: dict[int, Any]) -> Any:
    if value is None or type(value) in IMMUTABLE:
        return value
    kind = type(value)
    if kind is dict:
        return {k: copy_value(v, memo) for k, v in value.items()}
    if kind is list:
        return [copy_value(v, memo) for v in value]
    if kind is tuple and all(v is None or type(v) in IMMUTABLE for v in value):
        return value
    return copy.deepcopy(value, memo)


class PlainCopy:
    """Mixin: ``copy.deepcopy(aggregate)`` through ``copy_value``."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update({k: copy_value(v, memo) for k, v in self.__dict__.items()})
        return clone
