"""The read path bookings take: stream versions in one query, cached aggregates at exactly those
versions, saved aggregates handed back to the cache, and copies that share nothing mutable."""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Iterator
from uuid import uuid4

import pytest

from booking.days import ProviderDay
from booking.schema import prepare_database
from booking.store import SchedulingApp, open_store
from tests.booking_helpers import book_nth, new_day


@pytest.fixture(scope="module")
def store(database: tuple[str, str]) -> Iterator[SchedulingApp]:
    runtime_url, admin_url = database
    key = base64.b64encode(os.urandom(32)).decode()
    prepare_database(admin_url, runtime_url, key)
    app = open_store(runtime_url, key)
    yield app
    app.close()


def test_versions_name_every_stream_asked_and_only_stored_ones_have_a_version(
    store: SchedulingApp,
) -> None:
    day, missing = new_day(store), uuid4()
    versions = store.versions([day.id, missing])
    assert versions.knows(day.id) and versions.knows(missing)
    assert (versions.of(day.id), versions.of(missing)) == (1, None)
    assert not versions.knows(uuid4())


def test_a_stream_written_elsewhere_is_read_again_not_served_from_the_cache(
    store: SchedulingApp,
) -> None:
    day = new_day(store)
    store.repository.get(day.id)  # cached at version 1
    other = store.repository.get(day.id)
    book_nth(other, 0)
    store.save(other)  # not remembered: the cache still holds version 1
    fresh = store.get_at(day.id, store.versions([day.id]).of(day.id) or 0)
    assert fresh.version == 2 and "a0" in fresh.bookings


def test_a_saved_aggregate_is_remembered_but_never_over_a_newer_one(store: SchedulingApp) -> None:
    day = new_day(store)
    first = store.repository.get(day.id)
    book_nth(first, 0)
    store.save(first)
    store.remember([first])
    assert store.repository.cache is not None
    assert store.repository.cache.get(day.id) is first
    newer = store.get_at(day.id, 2)
    book_nth(newer, 1)
    store.save(newer)
    store.remember([newer])
    store.remember([first])  # late and older: ignored
    assert store.repository.cache.get(day.id).version == 3


def test_get_at_hands_out_a_copy_the_command_may_change_freely(store: SchedulingApp) -> None:
    day = new_day(store)
    store.repository.get(day.id)
    mine = store.get_at(day.id, 1)
    book_nth(mine, 0)  # not saved
    again = store.get_at(day.id, 1)
    assert again.bookings == {} and again.version == 1


def test_plain_copy_is_as_deep_as_deepcopy() -> None:
    day = ProviderDay(tenant_id="t", provider_id="dr", date="2030-01-01", timezone="UTC")
    book_nth(day, 0)
    day.collect_events()
    clone = copy.deepcopy(day)
    assert type(clone) is ProviderDay and clone.__dict__ == day.__dict__
    assert clone.bookings is not day.bookings
    assert clone.bookings["a0"] is not day.bookings["a0"]
    book_nth(clone, 1)
    assert "a1" not in day.bookings and day.version == 2
