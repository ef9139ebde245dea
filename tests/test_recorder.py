"""The recorder writes a save in one round trip (BEGIN … COMMIT pipelined): a save that fails
stores nothing and leaves its connection fit for the next save, and the unchanged-streams check
refuses a decision whose reads moved."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, InternalError

from booking.schema import prepare_database
from booking.store import EVENTS_TABLE, SchedulingApp, open_store
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


def prepared_statements(store: SchedulingApp) -> list[str]:
    """The statements the (only) pooled connection's server session holds prepared."""
    with store.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    return [row["statement"] for row in rows]


def test_a_read_transaction_leaves_the_connection_its_prepared_statements(
    store: SchedulingApp,
) -> None:
    """psycopg forgets (DEALLOCATE ALL) what a connection prepared when it sees a ROLLBACK, and
    the library ends every read transaction with one: each read on a pooled connection cost the
    next saves there their prepared INSERT, planned again with the table lock held."""
    day = store.repository.get(new_day(store).id)
    for n in range(8):  # enough saves for the pipeline's statements to be prepared
        book_nth(day, n + 1)
        store.save(day)
    assert any("INSERT INTO" in s for s in prepared_statements(store))
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as curs:
        curs.execute("SELECT count(*) AS n FROM booking_tokens")
        assert curs.fetchone() is not None
    assert any("INSERT INTO" in s for s in prepared_statements(store))


def test_a_read_transaction_cannot_write_and_a_failed_one_rolls_back(store: SchedulingApp) -> None:
    """Read transactions commit now, so they are READ ONLY: whatever a reader tried to write is
    refused, never committed, and the connection serves the next save."""
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with (
        pytest.raises(InternalError, match="read-only transaction"),
        datastore.transaction(commit=False) as curs,
    ):
        curs.execute("CREATE TEMP TABLE written_by_a_reader (x int)")
    with datastore.transaction(commit=False) as curs:
        curs.execute("SELECT to_regclass('pg_temp.written_by_a_reader') AS t")
        assert curs.fetchone()["t"] is None
    day = store.repository.get(new_day(store).id)
    book_nth(day, 1)
    store.save(day)
    assert store.versions([day.id]).of(day.id) == 2


def test_every_save_notifies_the_log_s_listeners(
    store: SchedulingApp, database: tuple[str, str]
) -> None:
    """The projection worker and the relay wake on NOTIFY: sent by the library's statement for a
    bare save, and folded into one statement with the unchanged check and the audit entry."""
    still, moving = new_day(store), store.repository.get(new_day(store).id)
    with psycopg.connect(database[0], autocommit=True) as listener:
        listener.execute(f"LISTEN {EVENTS_TABLE}")
        book_nth(moving, 1)
        store.save(moving)  # no check: the library's NOTIFY
        book_nth(moving, 2)
        store.record([moving], unchanged={still.id: 1})  # the check, with NOTIFY folded in
        got = [n.channel for n in listener.notifies(timeout=5, stop_after=2)]
    assert got == [EVENTS_TABLE, EVENTS_TABLE]
