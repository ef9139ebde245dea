"""The deep copy every command gets of a cached aggregate (booking/copying.py) must be as
independent as ``copy.deepcopy``'s: whatever a command does to its copy, the cache's original
stays as it was. Plain values, nested containers and the fast paths for containers of
immutable values alike."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from booking.copying import PlainCopy, copy_value


class Plain(PlainCopy):
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class Box:  # not plain data: copied by copy.deepcopy
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box) and other.items == self.items

    def __repr__(self) -> str:
        return f"Box({self.items!r})"


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False),
)
keys = st.one_of(st.text(max_size=4), st.integers())
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
        st.tuples(inner, inner),
        st.builds(Box, st.lists(inner, max_size=3)),
    ),
    max_leaves=20,
)


def mutate_every_container(value: Any) -> None:
    """Change every mutable container reachable from ``value``, in place."""
    if isinstance(value, list):
        for item in value:
            mutate_every_container(item)
        value.append("mutated")
    elif isinstance(value, dict):
        for item in list(value.values()):
            mutate_every_container(item)
        value["mutated"] = "mutated"
    elif isinstance(value, tuple):
        for item in value:
            mutate_every_container(item)
    elif isinstance(value, Box):
        mutate_every_container(value.items)


@given(st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6))
def test_a_copy_equals_its_original_and_shares_no_mutable_part(fields: dict[str, Any]) -> None:
    original = Plain(**fields)
    expected = copy.deepcopy(fields)  # what the original must still hold afterwards
    clone = copy.deepcopy(original)
    assert clone is not original and type(clone) is Plain
    assert clone.__dict__ == expected
    for name, value in clone.__dict__.items():
        mutate_every_container(value)
        clone.__dict__[name] = "replaced"
    assert original.__dict__ == expected


def test_containers_of_immutable_values_take_the_fast_path_and_stay_independent() -> None:
    ids = [str(UUID(int=n)) for n in range(1000)]
    holds = {"h1": datetime(2030, 1, 1, tzinfo=UTC), "h2": None}
    stamps = (date(2030, 1, 1), timedelta(minutes=15), Decimal("1.5"), UUID(int=7))
    copied_ids, copied_holds = copy_value(ids, {}), copy_value(holds, {})
    assert copied_ids == ids and copied_ids is not ids
    assert copied_holds == holds and copied_holds is not holds
    assert copy_value(stamps, {}) is stamps  # an immutable tuple of immutables is shared
    copied_ids.append("new")
    copied_holds["h3"] = None
    assert len(ids) == 1000 and "h3" not in holds


def test_a_container_holding_a_mutable_value_is_copied_deeply() -> None:
    inner: list[Any] = [1, 2]
    for outer in ([inner, "x"], {"k": inner}, (inner, "x")):
        copied = copy_value(outer, {})
        assert copied == outer and copied is not outer
        nested = copied[0] if not isinstance(copied, dict) else copied["k"]
        nested.append(3)
        assert inner == [1, 2]


def test_a_subclass_of_an_immutable_type_is_not_taken_for_immutable() -> None:
    class Tagged(str):
        tags: list[str]

    tagged = Tagged("a")
    tagged.tags = ["t"]
    copied = copy_value([tagged], {})
    copied[0].tags.append("u")
    assert tagged.tags == ["t"]
