"""The event store connects with the whole database URL. eventsourcing builds its pool from host,
port, user, password and dbname alone; without help, a URL's ``sslmode=verify-full`` (or
``sslrootcert``, ``options`` …) would be dropped silently and patient data would travel to the
database under libpq's default, ``sslmode=prefer``: encrypted only if the server offers it, and
with no check of whose certificate it is.

``sslmode=allow``, ``application_name`` and ``options`` stand in for the TLS settings here: the
test servers speak over a Unix socket (where libpq ignores TLS) or plain TCP, but a connection
shows which of these it was opened with.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

from booking.schema import prepare_database
from booking.store import open_store

PROBE = "booking-url-probe"


def with_query(url: str, **params: str) -> str:
    extra = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + extra


def test_the_event_store_connects_with_every_parameter_of_its_url(
    database: tuple[str, str],
) -> None:
    runtime_url, admin_url = database
    key = base64.b64encode(os.urandom(32)).decode()
    prepare_database(admin_url, runtime_url, key)
    url = with_query(
        runtime_url, sslmode="allow", application_name=PROBE, options="-c statement_timeout=4321"
    )
    store = open_store(url, key, pool_size=1)
    try:
        with store.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(
                "SELECT current_setting('application_name') AS a,"
                " current_setting('statement_timeout') AS t"
            )
            row = curs.fetchone()
            used = curs.connection.info.get_parameters()
    finally:
        store.close()
    assert row == {"a": PROBE, "t": "4321ms"}, row
    assert used.get("sslmode") == "allow", used
