"""A save whose COMMIT reached the server but whose answer was lost on the way back.

The recorder retries a save whose connection failed. Had it simply sent the save again, the
second try would collide with the events the first one stored, and the caller would hear
"conflict": the Executor would decide again, find the slot taken (by this very booking) and
answer 409, while the appointment exists. The recorder finds its own events instead, by their
ciphertext (a fresh nonce each time, so no other save stores the same bytes), and reports the
save as done. A save whose connection failed before the server ran it is simply sent again.

The connection is cut by a TCP proxy between the store and a real PostgreSQL.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from booking.days import ProviderDay
from booking.schema import prepare_database
from booking.store import EVENTS_TABLE, SchedulingApp, open_store
from tests.booking_helpers import book_nth, new_day
from tests.support.faultproxy import FaultProxy


@pytest.fixture(scope="module")
def stores(database: tuple[str, str]) -> Iterator[tuple[SchedulingApp, SchedulingApp, FaultProxy]]:
    """A store reaching the database through the proxy, and one reaching it directly."""
    runtime_url, admin_url = database
    key = base64.b64encode(os.urandom(32)).decode()
    prepare_database(admin_url, runtime_url, key)
    proxy = FaultProxy(runtime_url)
    through = open_store(proxy.url, key, pool_size=1, max_overflow=0)
    direct = open_store(runtime_url, key)
    yield through, direct, proxy
    through.close()
    direct.close()
    proxy.close()


def one_booking_pending(store: SchedulingApp) -> ProviderDay:
    """A new provider day, saved, read back with one booking not saved yet: version 2 pending."""
    day: ProviderDay = store.repository.get(new_day(store).id)
    book_nth(day, 1)
    return day


def stored_count(store: SchedulingApp, stream_id: object) -> int:
    return len(list(store.recorder.select_events(stream_id)))  # type: ignore[arg-type]


def test_a_save_whose_commit_answer_is_lost_is_reported_done_and_stored_once(
    stores: tuple[SchedulingApp, SchedulingApp, FaultProxy],
) -> None:
    through, direct, proxy = stores
    day = one_booking_pending(through)
    proxy.cut_after_commit(b"COMMIT")
    (recording,) = through.save(day)  # no IntegrityError: the first try committed
    assert proxy.fired.is_set()
    assert stored_count(direct, day.id) == 2  # created, booked: once each
    assert direct.versions([day.id]).of(day.id) == 2
    position = direct.recorder.max_notification_id()
    assert recording.notification.id <= position
    stored = direct.recorder.select_notifications(recording.notification.id, 1)
    assert stored[0].originator_id == day.id and stored[0].originator_version == 2


def test_a_save_cut_before_the_server_ran_it_is_sent_again(
    stores: tuple[SchedulingApp, SchedulingApp, FaultProxy],
) -> None:
    through, direct, proxy = stores
    day = one_booking_pending(through)
    proxy.cut_before(b"COMMIT")
    through.save(day)
    assert proxy.fired.is_set()
    assert stored_count(direct, day.id) == 2
    assert direct.versions([day.id]).of(day.id) == 2


def test_a_lost_answer_to_a_save_that_collided_is_still_a_conflict(
    stores: tuple[SchedulingApp, SchedulingApp, FaultProxy],
) -> None:
    """The server refused the save (another one took the version); the answer is lost. The
    events found at that version are not this save's: the caller hears "conflict"."""
    from eventsourcing.persistence import IntegrityError

    through, direct, proxy = stores
    day = new_day(through)
    mine, theirs = through.repository.get(day.id), direct.repository.get(day.id)
    book_nth(theirs, 2)
    direct.save(theirs)
    book_nth(mine, 1)
    proxy.cut_after_commit(b"COMMIT")
    with pytest.raises(IntegrityError):
        through.save(mine)
    assert proxy.fired.is_set()
    assert stored_count(direct, day.id) == 2


def test_a_lost_save_the_server_commits_only_after_the_retry_looked_is_still_done(
    stores: tuple[SchedulingApp, SchedulingApp, FaultProxy],
    database: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lost attempt reached the server but waited for the table lock (another save held
    it), so the retry's first look found nothing; the retry then queued behind it, and collided
    with its events once it committed. That collision is looked at again (found in review)."""
    through, direct, proxy = stores
    recorder: Any = through.recorder
    looks: list[list[int] | None] = []
    look = recorder._ids_if_stored

    def recorded_look(stored_events: Any) -> list[int] | None:
        looks.append(look(stored_events))
        return looks[-1]

    monkeypatch.setattr(recorder, "_ids_if_stored", recorded_look)
    day = one_booking_pending(through)
    with psycopg.connect(database[1], autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")  # another save's turn
        released = threading.Thread(target=release_when_two_wait, args=(database[1], blocker))
        released.start()
        proxy.cut_client_after(b"COMMIT")
        through.save(day)  # no IntegrityError
        released.join()
    assert proxy.fired.is_set()
    assert looks[0] is None and looks[-1] is not None and len(looks) == 2  # found at the second
    assert stored_count(direct, day.id) == 2
    assert direct.versions([day.id]).of(day.id) == 2


def release_when_two_wait(admin_url: str, blocker: psycopg.Connection[Any]) -> None:
    """End the blocking transaction once the lost attempt and the retry both wait for the
    table lock (or after 20 s, when the test's assertions will say what went wrong)."""
    with psycopg.connect(admin_url, autocommit=True) as watcher:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
                (EVENTS_TABLE,),
            ).fetchone()
            if row is not None and row[0] >= 2:
                break
            time.sleep(0.02)
    blocker.execute("COMMIT")


def test_the_proxy_finds_a_statement_psycopg_sends_by_name_only(
    stores: tuple[SchedulingApp, SchedulingApp, FaultProxy],
) -> None:
    """After five runs on one connection psycopg prepares a statement and sends its name alone;
    the proxy still knows which SQL it runs (the tests above rely on it)."""
    through, direct, proxy = stores
    for _ in range(5):
        new_day(through)  # the save's statements run on the pool's one connection
    day = one_booking_pending(through)  # the sixth save of them
    proxy.cut_after_commit(b"COMMIT")
    through.save(day)
    assert proxy.fired.is_set()
    assert stored_count(direct, day.id) == 2
