"""The recorder writes a save in one round trip (BEGIN … COMMIT pipelined): a save that fails
stores nothing and leaves its connection fit for the next save, and the unchanged-streams check
refuses a decision whose reads moved."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest
from eventsourcing.persistence import IntegrityError

from booking.schema import prepare_database
from booking.store import SchedulingApp, open_store
from tests.booking_helpers import book_nth, new_day


@pytest.fixture(scope="module")
def store(database: tuple[str, str]) -> Iterator[SchedulingApp]:
    """One pooled connection: every save after a failed one reuses the failed one's connection."""
    runtime_url, admin_url = database
    key = base64.b64encode(os.urandom(32)).decode()
    prepare_database(admin_url, runtime_url, key)
    app = open_store(runtime_url, key, pool_size=1, max_overflow=0)
    yield app
    app.close()


def test_a_conflicting_save_stores_nothing_and_the_connection_serves_the_next(
    store: SchedulingApp,
) -> None:
    day = new_day(store)
    first, second = store.repository.get(day.id), store.repository.get(day.id)
    book_nth(first, 1)
    store.save(first)
    other = new_day(store)  # written with the failing save, in the same transaction
    other_copy = store.repository.get(other.id)
    book_nth(other_copy, 2)
    book_nth(second, 3)  # version 2 again: collides with first's
    position = store.recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        store.save(second, other_copy)
    assert store.recorder.max_notification_id() == position  # nothing of either was stored
    assert store.versions([day.id, other.id]).found == {day.id: 2, other.id: 1}
    book_nth(other_copy, 4)
    (recording,) = store.save(other_copy)  # the same (only) connection, clean again
    assert recording.notification.id > position  # (a rolled-back save used up its ids)
    assert store.versions([other.id]).of(other.id) == 3


def test_the_unchanged_check_refuses_a_moved_stream_and_passes_a_still_one(
    store: SchedulingApp,
) -> None:
    read, written = new_day(store), new_day(store)
    moved = store.repository.get(read.id)
    book_nth(moved, 1)
    store.save(moved)  # the stream the decision read is at version 2 now
    target = store.repository.get(written.id)
    book_nth(target, 2)
    with pytest.raises(IntegrityError, match="moved"):
        store.save(target, unchanged={read.id: 1})
    assert store.versions([written.id]).of(written.id) == 1
    target = store.repository.get(written.id)  # a failed save has taken the pending events
    book_nth(target, 2)
    store.save(target, unchanged={read.id: 2})
    assert store.versions([written.id]).of(written.id) == 2


def test_db_functions_set_in_the_environment_are_refused(
    database: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """They would skip the table lock and the unchanged check; eventsourcing reads the
    application-prefixed variable before the settings the service passes."""
    monkeypatch.setenv("SCHEDULING_POSTGRES_ENABLE_DB_FUNCTIONS", "y")
    runtime_url, _ = database
    with pytest.raises(ValueError, match="SCHEDULING_POSTGRES_ENABLE_DB_FUNCTIONS"):
        open_store(runtime_url, base64.b64encode(os.urandom(32)).decode())


class PlainText:
    """A "cipher" that stores what it is given."""

    def __init__(self, environment: object) -> None:
        pass

    def encrypt(self, plaintext: bytes) -> bytes:
        return plaintext

    def decrypt(self, ciphertext: bytes) -> bytes:
        return ciphertext


def test_a_cipher_replaced_from_the_environment_is_refused(
    database: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events hold PHI, and a save that lost its answer tells its own events apart by the
    cipher's fresh nonce: the store refuses to open without eventsourcing's AESCipher."""
    monkeypatch.setenv("SCHEDULING_CIPHER_TOPIC", f"{__name__}:PlainText")
    runtime_url, _ = database
    with pytest.raises(ValueError, match="SCHEDULING_CIPHER_TOPIC"):
        open_store(runtime_url, base64.b64encode(os.urandom(32)).decode())


@pytest.mark.parametrize(
    "key",
    ["PERSISTENCE_MODULE", "CIPHER_KEY", "AGGREGATE_CACHE_FASTFORWARD", "IS_SNAPSHOTTING_ENABLED"],
)
def test_any_store_setting_overridden_from_the_environment_is_refused(
    database: tuple[str, str], monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """eventsourcing reads SCHEDULING_<KEY> before the settings the service passes: another
    recorder (no table lock, no check), another key (replicas unable to read each other's
    events), no fast-forward, snapshots the service never reads. Each is refused by name."""
    monkeypatch.setenv(f"SCHEDULING_{key}", "anything")
    runtime_url, _ = database
    with pytest.raises(ValueError, match=f"SCHEDULING_{key}"):
        open_store(runtime_url, base64.b64encode(os.urandom(32)).decode())


@pytest.mark.parametrize(
    ("setting", "value"), [("AGGREGATE_CACHE_FASTFORWARD", "n"), ("IS_SNAPSHOTTING_ENABLED", "y")]
)
def test_a_store_without_records_premises_is_refused(
    database: tuple[str, str], monkeypatch: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    """SchedulingApp.record stores events only and leaves the cache to ``remember``: whatever
    the settings came to, open_store refuses snapshots and a cache that does not fast-forward."""
    import booking.store

    real = booking.store.store_env

    def changed(*args: object, **kwargs: object) -> dict[str, str]:
        return {**real(*args, **kwargs), setting: value}  # type: ignore[arg-type]

    monkeypatch.setattr(booking.store, "store_env", changed)
    runtime_url, _ = database
    with pytest.raises(ValueError, match="snapshots or without a fast-forwarding cache"):
        open_store(runtime_url, base64.b64encode(os.urandom(32)).decode())


def test_record_stores_what_save_stores_and_checks_the_same(store: SchedulingApp) -> None:
    """The executor's ``record`` skips ``save``'s sorting of objects, nothing it stores."""
    days = [new_day(store) for _ in range(4)]
    loaded = [store.repository.get(day.id) for day in days]
    for n, day in enumerate(loaded):
        book_nth(day, n + 1)
    saved = store.save(loaded[0], loaded[1])
    recorded = store.record([loaded[2], loaded[3]])

    def stored(recordings: list) -> list[tuple[str, int, str]]:  # type: ignore[type-arg]
        return [
            (
                type(r.domain_event).__qualname__,
                r.notification.originator_version,
                r.notification.topic,
            )
            for r in recordings
        ]

    assert stored(recorded) == stored(saved)
    assert [r.notification.id for r in recorded] == sorted(r.notification.id for r in recorded)
    assert recorded[0].notification.id > saved[-1].notification.id
    for day in days[2:]:  # read back through the mapper: the same events, decrypted
        assert store.repository.get(day.id).version == 2
    # the unchanged check travels as with save
    target = store.repository.get(days[2].id)
    book_nth(target, 9)
    with pytest.raises(IntegrityError, match="moved"):
        store.record([target], unchanged={days[0].id: 1})
    assert store.versions([days[2].id]).of(days[2].id) == 2
